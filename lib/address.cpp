#include "address.hpp"

#include <optional>
#include <utility>

namespace yubin {

namespace {

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool is_cr_lf_nul(unsigned char c) { return c == '\r' || c == '\n' || c == '\0'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 5321 atext; octets >= 0x80 count only when utf8 (RFC 6531 UTF8-non-ascii).
bool is_atext(unsigned char c, bool utf8) {
    if (c >= 0x80) return utf8;
    if (is_alpha(c) || is_digit(c)) return true;
    for (char s : std::string_view("!#$%&'*+-/=?^_`{|}~"))
        if (c == static_cast<unsigned char>(s)) return true;
    return false;
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) { ++i; continue; }
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return false;
        if (s.size() - i <= n) return false;
        for (size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return false;
        }
        i += n + 1;
    }
    return true;
}

// ---- SMTP path (RFC 5321 section 4.1.2) ----------------------------------

// A cursor over the path; each scan_* advances pos past what it accepts and
// returns false (pos at the offending octet) if the syntax is wrong.
struct Cursor {
    std::string_view s;
    bool utf8;
    size_t pos = 0;
    unsigned char peek() const { return pos < s.size() ? static_cast<unsigned char>(s[pos]) : 0; }
    bool at(char c) const { return pos < s.size() && s[pos] == c; }
};

// Dot-string = Atom *("." Atom)
bool scan_dot_string(Cursor& c) {
    for (;;) {
        size_t start = c.pos;
        while (c.pos < c.s.size() && is_atext(c.peek(), c.utf8)) ++c.pos;
        if (c.pos == start) return false;
        if (!c.at('.')) return true;
        ++c.pos;
    }
}

// Quoted-string = DQUOTE *QcontentSMTP DQUOTE
bool scan_quoted_string(Cursor& c) {
    ++c.pos;  // the opening quote
    while (c.pos < c.s.size()) {
        unsigned char ch = c.peek();
        if (ch == '"') { ++c.pos; return true; }
        if (ch == '\\') {
            ++c.pos;
            unsigned char q = c.peek();
            if (c.pos >= c.s.size() || q < 32 || q > 126) return false;
        } else if (!((ch >= 32 && ch <= 126) || (ch >= 0x80 && c.utf8))) {
            return false;
        }
        ++c.pos;
    }
    return false;  // unterminated
}

// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
// With utf8, octets >= 0x80 count as letters (U-labels). A single trailing
// dot is accepted when trailing_dot_ok.
bool scan_domain_name(Cursor& c, bool trailing_dot_ok) {
    size_t labels = 0;
    for (;;) {
        size_t start = c.pos;
        while (c.pos < c.s.size()) {
            unsigned char ch = c.peek();
            if (!(is_alpha(ch) || is_digit(ch) || ch == '-' || (ch >= 0x80 && c.utf8))) break;
            ++c.pos;
        }
        size_t len = c.pos - start;
        if (len == 0) {
            if (labels > 0 && trailing_dot_ok && c.at('>')) return true;  // "example.com."
            return false;
        }
        if (len > 63 || c.s[start] == '-' || c.s[c.pos - 1] == '-') {
            c.pos = start;
            return false;
        }
        ++labels;
        if (!c.at('.')) return true;
        ++c.pos;
    }
}

bool valid_ipv4(std::string_view s) {
    int parts = 0;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        int value = 0;
        while (i < s.size() && is_digit(static_cast<unsigned char>(s[i])) && i - start < 3)
            value = value * 10 + (s[i++] - '0');
        if (i == start || value > 255) return false;
        ++parts;
        if (i == s.size()) return parts == 4;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
}

// IPv6 text form (RFC 4291 section 2.2), with an optional IPv4 tail.
bool valid_ipv6(std::string_view s) {
    size_t groups = 0;
    bool compressed = false;
    size_t i = 0;
    if (s.substr(0, 2) == "::") { compressed = true; i = 2; }
    else if (!s.empty() && s[0] == ':') return false;
    while (i < s.size()) {
        size_t start = i;
        while (i < s.size() && is_hex(static_cast<unsigned char>(s[i])) && i - start < 5) ++i;
        if (i < s.size() && s[i] == '.') {  // IPv4 tail ends the address
            if (!valid_ipv4(s.substr(start))) return false;
            groups += 2;
            i = s.size();
            break;
        }
        if (i == start || i - start > 4) return false;
        ++groups;
        if (i == s.size()) break;
        if (s[i] != ':') return false;
        ++i;
        if (i < s.size() && s[i] == ':') {
            if (compressed) return false;
            compressed = true;
            ++i;
        } else if (i == s.size()) {
            return false;  // trailing single ':'
        }
        if (groups > 8) return false;
    }
    return compressed ? groups <= 7 : groups == 8;
}

// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]"
bool scan_address_literal(Cursor& c) {
    size_t start = c.pos + 1;
    size_t end = c.s.find(']', start);
    if (end == std::string_view::npos) return false;
    std::string_view body = c.s.substr(start, end - start);
    bool ok = iequal(body.substr(0, 5), "IPv6:") ? valid_ipv6(body.substr(5)) : valid_ipv4(body);
    if (!ok) return false;
    c.pos = end + 1;
    return true;
}

PathResult path_error(std::string text) {
    PathResult r;
    r.error = std::move(text);
    return r;
}

// The reason for a syntax error found at c.pos.
PathResult syntax_error(const Cursor& c, const char* what) {
    if (c.pos < c.s.size()) {
        unsigned char ch = c.peek();
        if (is_cr_lf_nul(ch)) return path_error("address contains CR, LF or NUL");
        if (ch >= 0x80 && !c.utf8) return path_error("non-ASCII address needs SMTPUTF8");
    }
    return path_error(what);
}

}  // namespace

// ---- small helpers ----------------------------------------------------------

AddressParts split_address(std::string_view address) {
    size_t at = std::string_view::npos;
    bool quoted = false;
    for (size_t i = 0; i < address.size(); ++i) {
        char ch = address[i];
        if (quoted && ch == '\\') ++i;
        else if (ch == '"') quoted = !quoted;
        else if (ch == '@' && !quoted) at = i;
    }
    if (quoted) at = address.rfind('@');  // unterminated quote: ignore quoting
    if (at == std::string_view::npos) return {std::string(address), {}};
    return {std::string(address.substr(0, at)), std::string(address.substr(at + 1))};
}

std::string normalize_domain(std::string_view domain) {
    if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    std::string out(domain);
    for (char& ch : out) ch = lower(ch);
    return out;
}

bool domain_equal(std::string_view a, std::string_view b) {
    return normalize_domain(a) == normalize_domain(b);
}

bool is_dot_atom(std::string_view s) {
    Cursor c{s, true};
    return scan_dot_string(c) && c.pos == s.size();
}

std::string quote_local_part(std::string_view local_unquoted) {
    if (is_dot_atom(local_unquoted)) return std::string(local_unquoted);
    std::string out = "\"";
    for (char ch : local_unquoted) {
        if (ch == '\\' || ch == '"') out += '\\';
        out += ch;
    }
    out += '"';
    return out;
}

std::string unquote_local_part(std::string_view local) {
    if (local.size() < 2 || local.front() != '"') return std::string(local);
    std::string out;
    for (size_t i = 1; i < local.size(); ++i) {
        char ch = local[i];
        if (ch == '"') {
            if (i + 1 == local.size()) return out;
            break;  // quote in the middle: not one quoted string
        }
        if (ch == '\\') {
            if (++i == local.size()) break;
            ch = local[i];
        }
        out += ch;
    }
    return std::string(local);
}

bool address_is_storable(std::string_view address, size_t max_len) {
    if (address.size() > max_len) return false;
    for (char ch : address)
        if (is_cr_lf_nul(static_cast<unsigned char>(ch))) return false;
    return true;
}

// ---- SMTP path ----------------------------------------------------------

PathResult parse_smtp_path(std::string_view in, bool allow_null, bool utf8) {
    Cursor c{in, utf8};
    if (!c.at('<')) return syntax_error(c, "address must be enclosed in <>");
    ++c.pos;
    if (c.at('>')) {
        if (!allow_null) return path_error("null address not allowed here");
        PathResult r;
        r.ok = r.null_path = true;
        r.consumed = 2;
        return r;
    }

    // A-d-l = At-domain *( "," At-domain ) ":"  -- parsed and discarded
    if (c.at('@')) {
        for (;;) {
            if (!c.at('@')) return syntax_error(c, "bad source route");
            ++c.pos;
            if (!scan_domain_name(c, false)) return syntax_error(c, "bad source route");
            if (c.at('>')) return path_error("empty local part");  // "<@example.com>"
            if (c.at(':')) break;
            if (!c.at(',')) return syntax_error(c, "bad source route");
            ++c.pos;
        }
        ++c.pos;
    }

    size_t local_start = c.pos;
    bool local_ok = c.at('"') ? scan_quoted_string(c) : scan_dot_string(c);
    if (!local_ok) {
        if (c.pos == local_start && (c.at('@') || c.at('>'))) return path_error("empty local part");
        return syntax_error(c, "bad address syntax");
    }
    std::string_view local = in.substr(local_start, c.pos - local_start);
    if (local.size() > max_local_part_length) return path_error("local part too long");
    std::string canonical_local = quote_local_part(unquote_local_part(local));
    if (canonical_local == "\"\"") return path_error("empty local part");

    std::string address;
    if (c.at('>')) {  // RFC 5321 section 4.5.1: <Postmaster> without a domain
        if (!iequal(local, "postmaster")) return path_error("address must include a domain");
        address = "postmaster";
    } else {
        if (!c.at('@')) return syntax_error(c, "bad address syntax");
        ++c.pos;
        size_t domain_start = c.pos;
        bool domain_ok = c.at('[') ? scan_address_literal(c) : scan_domain_name(c, true);
        if (!domain_ok) return syntax_error(c, "bad domain");
        std::string_view domain = in.substr(domain_start, c.pos - domain_start);
        if (domain.size() > max_domain_length) return path_error("domain too long");
        address = canonical_local + "@" + (domain.front() == '[' ? std::string(domain) : normalize_domain(domain));
    }
    if (!c.at('>')) {
        if (c.pos >= in.size()) return path_error("missing >");
        return syntax_error(c, "bad address syntax");
    }
    ++c.pos;
    if (c.pos > max_path_length) return path_error("address too long");
    if (utf8 && !valid_utf8(in.substr(0, c.pos))) return path_error("address is not valid UTF-8");

    PathResult r;
    r.ok = true;
    r.address = std::move(address);
    r.consumed = c.pos;
    return r;
}

// ---- RFC 5322 address lists -----------------------------------------------

namespace {

// Lexical tokens of RFC 5322 section 3.2 after removing CFWS. text views the
// input; a quoted string or domain literal keeps its delimiters.
enum class Tok { atom, quoted, literal, special };
struct Token {
    Tok kind;
    std::string_view text;
};

bool is_header_atext(unsigned char c) {
    return c >= 0x80 || (c > 32 && c < 127 && std::string_view("()<>[]:;@\\,.\"").find(static_cast<char>(c)) == std::string_view::npos);
}

// Index just past the delimited run opened at s[i] and closed by `close`,
// honouring \ escapes; npos if unterminated.
size_t skip_delimited(std::string_view s, size_t i, char close) {
    for (++i; i < s.size(); ++i) {
        if (s[i] == '\\') ++i;
        else if (s[i] == close) return i + 1;
    }
    return std::string_view::npos;
}

std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < s.size()) {
        auto ch = static_cast<unsigned char>(s[i]);
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            ++i;
        } else if (ch == '(') {  // comment, nested, with \ escapes
            int depth = 0;
            for (; i < s.size(); ++i) {
                if (s[i] == '\\') ++i;
                else if (s[i] == '(') ++depth;
                else if (s[i] == ')' && --depth == 0) break;
            }
            ++i;
        } else if (ch == '"' || ch == '[') {
            size_t end = skip_delimited(s, i, ch == '"' ? '"' : ']');
            if (end == std::string_view::npos) {  // unterminated: garbage to the end
                out.push_back({Tok::special, s.substr(i, 1)});
                break;
            }
            out.push_back({ch == '"' ? Tok::quoted : Tok::literal, s.substr(i, end - i)});
            i = end;
        } else if (is_header_atext(ch)) {
            size_t start = i;
            while (i < s.size() && is_header_atext(static_cast<unsigned char>(s[i]))) ++i;
            out.push_back({Tok::atom, s.substr(start, i - start)});
        } else {
            out.push_back({Tok::special, s.substr(i, 1)});
            ++i;
        }
    }
    return out;
}

class ListParser {
public:
    explicit ListParser(std::vector<Token> t) : t_(std::move(t)) {}

    std::vector<std::string> run() {
        while (i_ < t_.size()) {
            if (special(i_, ',') || special(i_, ';')) {  // ';' ends a group
                ++i_;
                continue;
            }
            size_t before = i_;
            if (!entry() || i_ == before) skip_garbage();
        }
        return std::move(out_);
    }

private:
    std::vector<Token> t_;
    size_t i_ = 0;
    std::vector<std::string> out_;

    bool special(size_t k, char c) const {
        return k < t_.size() && t_[k].kind == Tok::special && t_[k].text[0] == c;
    }
    bool word(size_t k) const {
        return k < t_.size() && (t_[k].kind == Tok::atom || t_[k].kind == Tok::quoted);
    }
    bool at_separator() const { return i_ == t_.size() || special(i_, ',') || special(i_, ';'); }
    void skip_garbage() {
        while (i_ < t_.size() && !special(i_, ',') && !special(i_, ';')) ++i_;
    }

    // One mailbox or the start of a group. Returns false if the rest of the
    // entry is garbage.
    bool entry() {
        size_t k = i_;  // display-name = phrase (obs-phrase allows '.')
        while (word(k) || (k > i_ && special(k, '.'))) ++k;
        if (special(k, '<')) {
            i_ = k + 1;
            return angle_addr();
        }
        if (special(k, ':') && k > i_) {  // group: the members follow as entries
            i_ = k + 1;
            return true;
        }
        auto spec = addr_spec();
        if (!spec || !at_separator()) return false;
        out_.push_back(std::move(*spec));
        return true;
    }

    // After '<': [obs-route] addr-spec ">", or the empty "<>".
    bool angle_addr() {
        if (special(i_, '>')) {
            ++i_;
            return at_separator();
        }
        if (special(i_, '@')) {  // obs-route: "@a,@b:" -- discarded
            while (i_ < t_.size() && !special(i_, ':') && !special(i_, '>')) ++i_;
            if (!special(i_, ':')) return false;
            ++i_;
        }
        auto spec = addr_spec();
        if (!spec || !special(i_, '>')) return false;
        ++i_;
        out_.push_back(std::move(*spec));
        return at_separator();
    }

    // word *("." word), or atom *("." atom) if atoms_only; appended as written.
    bool dotted(std::string& out, bool atoms_only) {
        auto ok = [&](size_t k) { return atoms_only ? k < t_.size() && t_[k].kind == Tok::atom : word(k); };
        if (!ok(i_)) return false;
        out += t_[i_++].text;
        for (; special(i_, '.') && ok(i_ + 1); i_ += 2) {
            out += '.';
            out += t_[i_ + 1].text;
        }
        return true;
    }

    // local-part ["@" domain], as written minus CFWS.
    std::optional<std::string> addr_spec() {
        std::string spec;
        if (!dotted(spec, false)) return std::nullopt;
        if (!special(i_, '@')) return spec;
        ++i_;
        spec += '@';
        if (i_ < t_.size() && t_[i_].kind == Tok::literal) spec += t_[i_++].text;
        else if (!dotted(spec, true)) return std::nullopt;
        return spec;
    }
};

}  // namespace

std::vector<std::string> parse_address_list(std::string_view value) {
    return ListParser(tokenize(value)).run();
}

}  // namespace yubin
