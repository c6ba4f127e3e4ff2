#include "bounce.hpp"

#include "datetime.hpp"
#include "header.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

namespace yubin {

namespace {

// Longest texts taken from the inputs; with the field names they keep every
// line well under RFC 5322's 998 octets even where nothing can be folded.
constexpr size_t max_host = 255;
constexpr size_t max_text = 900;
constexpr size_t max_id = 200;
constexpr size_t wrap_width = 76;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Controls (CR, LF, NUL, HT, ...) become spaces; cut at max octets.
std::string clean(std::string_view s, size_t max) {
    std::string out(s.substr(0, max));
    for (char& c : out)
        if (is_control(static_cast<unsigned char>(c))) c = ' ';
    return out;
}

// clean(), and octets >= 0x80 become '?'.
std::string clean_ascii(std::string_view s, size_t max) {
    std::string out = clean(s, max);
    for (char& c : out)
        if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    return out;
}

bool is_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Decode one UTF-8 sequence at s[i]; advances i. Malformed -> U+FFFD, one octet.
char32_t next_code_point(std::string_view s, size_t& i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 1) return s[i++];
    static constexpr char32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (len != 0 && i + len <= s.size()) {
        char32_t cp = c & (0x7f >> len);
        bool ok = true;
        for (size_t k = 1; k < len && ok; ++k) {
            ok = (b(i + k) & 0xc0) == 0x80;
            cp = (cp << 6) | (b(i + k) & 0x3f);
        }
        if (ok && cp >= min_for_len[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)) {
            i += len;
            return cp;
        }
    }
    ++i;
    return 0xfffd;
}

// An address for Final-Recipient: "rfc822; addr" when it is ASCII, else
// RFC 6533 "utf-8; " utf-8-addr-xtext (QCHARs and \x{HEX} escapes).
struct ReportAddress {
    std::string type;
    std::string text;
};

ReportAddress report_address(std::string_view raw) {
    std::string addr = clean(raw, max_text);
    if (is_ascii(addr)) return {"rfc822", addr};
    std::string out;
    for (size_t i = 0; i < addr.size();) {
        char32_t cp = next_code_point(addr, i);
        std::string piece;
        if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\') {
            piece = static_cast<char>(cp);
        } else {
            char buf[16];
            std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(cp));
            piece = buf;
        }
        if (out.size() + piece.size() > max_text) break;
        out += piece;
    }
    return {"utf-8", out};
}

bool all_digits(std::string_view s, size_t min, size_t max) {
    return s.size() >= min && s.size() <= max &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// RFC 3463: class "." subject "." detail, class 2, 4 or 5.
bool valid_status(std::string_view s) {
    if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
    std::string_view rest = s.substr(2);
    size_t dot = rest.find('.');
    return dot != std::string_view::npos && all_digits(rest.substr(0, dot), 1, 3) &&
           all_digits(rest.substr(dot + 1), 1, 3);
}

bool valid_atom(std::string_view s) {
    return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    });
}

bool is_delayed(const FailedRecipient& r) {
    std::string a = r.action;
    std::transform(a.begin(), a.end(), a.begin(),
                   [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
    return a == "delayed";
}

std::string status_of(const FailedRecipient& r) {
    if (valid_status(r.status)) return r.status;
    return is_delayed(r) ? "4.0.0" : "5.0.0";
}

// Words of text, wrapped to lines of at most width (a longer word stands
// alone), each line starting with indent.
std::string wrap(std::string_view text, std::string_view indent, size_t width) {
    std::string out;
    size_t line_len = 0;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && text[i] == ' ') ++i;
        size_t j = i;
        while (j < text.size() && text[j] != ' ') ++j;
        if (j == i) break;
        if (line_len > 0 && line_len + 1 + (j - i) > width) {
            out += '\n';
            line_len = 0;
        }
        if (line_len == 0) {
            out += indent;
            line_len = indent.size();
        } else {
            out += ' ';
            ++line_len;
        }
        out.append(text, i, j - i);
        line_len += j - i;
        i = j;
    }
    if (line_len > 0) out += '\n';
    return out;
}

// The readable address: the ASCII address, or its RFC 6533 escaped form.
std::string human_address(const std::string& address) { return "<" + report_address(address).text + ">"; }

std::string human_recipient(const FailedRecipient& r) {
    std::string text = human_address(r.address) + ":\n";
    std::string diag = clean_ascii(r.diagnostic, max_text);
    if (diag.find_first_not_of(' ') == std::string::npos) diag = "(no further information)";
    if (!r.remote_mta.empty()) diag = "host " + clean_ascii(r.remote_mta, max_host) + " said: " + diag;
    return text + wrap(diag, "    ", wrap_width);
}

std::string human_part(const BounceInput& in, const std::string& host) {
    std::string out = "This is the mail delivery system at host " + host + ".\n\n";
    std::string failed, delayed;
    for (const auto& r : in.recipients) (is_delayed(r) ? delayed : failed) += human_recipient(r) + "\n";
    if (!failed.empty())
        out += wrap("I could not deliver your message to the following recipients. "
                    "This is a permanent error; I have given up.", "", wrap_width) + "\n" + failed;
    if (!delayed.empty())
        out += wrap("Delivery of your message to the following recipients has not succeeded yet. "
                    "I am still trying; you do not need to send it again.", "", wrap_width) + "\n" + delayed;
    out += "Your message:\n";
    out += "    queue id: " + clean_ascii(in.queue_id, max_id) + "\n";
    std::string sender = in.original_sender.empty() ? std::string("<>") : human_address(in.original_sender);
    out += "    sender: " + sender + "\n";
    if (in.arrival != 0) out += "    arrived: " + rfc5322_date(in.arrival) + "\n";
    out += "\nIts header section is attached below.\n";
    return out;
}

std::string delivery_status_part(const BounceInput& in, const std::string& host) {
    std::string out = fold_header("Reporting-MTA", "dns; " + host);
    out += fold_header("X-Yubin-Queue-ID", clean_ascii(in.queue_id, max_id));
    if (in.arrival != 0) out += fold_header("Arrival-Date", rfc5322_date(in.arrival));
    for (const auto& r : in.recipients) {
        ReportAddress a = report_address(r.address);
        out += '\n';
        out += fold_header("Final-Recipient", a.type + "; " + a.text);
        out += fold_header("Action", is_delayed(r) ? "delayed" : "failed");
        out += fold_header("Status", status_of(r));
        if (!r.remote_mta.empty())
            out += fold_header("Remote-MTA", "dns; " + clean_ascii(r.remote_mta, max_host));
        std::string diag = clean_ascii(r.diagnostic, max_text);
        if (diag.find_first_not_of(' ') != std::string::npos) {
            std::string type = valid_atom(r.diagnostic_type) ? r.diagnostic_type : "x-unix";
            out += fold_header("Diagnostic-Code", type + "; " + diag);
        }
        if (r.last_attempt != 0) out += fold_header("Last-Attempt-Date", rfc5322_date(r.last_attempt));
    }
    return out;
}

// A boundary that occurs in none of texts: base if possible, else
// base + "." + N + "=" with N the smallest number such that no occurrence of
// base in the texts is followed by "." and exactly the digits of N.
std::string choose_boundary(const std::string& base, const std::vector<std::string_view>& texts) {
    bool found = false;
    std::set<std::string> taken;
    for (std::string_view t : texts) {
        for (size_t pos = t.find(base); pos != std::string_view::npos; pos = t.find(base, pos + 1)) {
            found = true;
            size_t d = pos + base.size();
            if (d >= t.size() || t[d] != '.') continue;
            size_t e = ++d;
            while (e < t.size() && e - d < 10 && t[e] >= '0' && t[e] <= '9') ++e;
            taken.insert(std::string(t.substr(d, e - d)));
        }
    }
    if (!found) return base;
    for (unsigned long n = 1;; ++n)
        if (!taken.contains(std::to_string(n))) return base + "." + std::to_string(n) + "=";
}

std::string boundary_base(std::string_view message_id) {
    std::string base = "=_";
    for (char c : message_id.substr(0, 50)) {
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_';
        base += keep ? c : '.';
    }
    return message_id.empty() ? base + "yubin" : base;
}

}  // namespace

std::string compose_bounce(const BounceInput& in) {
    std::string host = clean_ascii(in.reporting_mta, max_host);
    if (host.find_first_not_of(' ') == std::string::npos) host = "localhost";

    size_t body_offset = 0;
    std::string original_headers = HeaderBlock::parse(in.original, body_offset).serialize();
    std::string human = human_part(in, host);
    std::string report = delivery_status_part(in, host);
    std::string boundary = choose_boundary(boundary_base(in.message_id), {in.original, human, report});

    bool all_delayed =
        !in.recipients.empty() && std::all_of(in.recipients.begin(), in.recipients.end(), is_delayed);
    std::string out;
    out += fold_header("From", clean(in.bounce_from, max_text));
    out += fold_header("To", clean(in.bounce_to, max_text));
    out += fold_header("Subject", all_delayed ? "Delayed Mail (still being retried)"
                                              : "Undelivered Mail Returned to Sender");
    out += fold_header("Date", rfc5322_date(in.now));
    out += fold_header("Message-ID", "<" + clean(in.message_id, max_text) + ">");
    out += fold_header("Auto-Submitted", "auto-replied");
    out += fold_header("MIME-Version", "1.0");
    out += fold_header("Content-Type",
                       "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
    out += "\nThis is a MIME-encapsulated message.\n\n";

    auto part = [&](std::string_view description, std::string_view type, const std::string& content) {
        out += "--" + boundary + "\n";
        out += fold_header("Content-Description", description);
        out += fold_header("Content-Type", type);
        out += '\n';
        out += content;
        out += '\n';  // belongs to the next delimiter line
    };
    part("Notification", "text/plain; charset=us-ascii", human);
    part("Delivery report", "message/delivery-status", report);
    part("Undelivered Message Headers", "text/rfc822-headers", original_headers);
    out += "--" + boundary + "--\n";
    return out;
}

}  // namespace yubin
