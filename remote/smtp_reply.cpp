#include "smtp_reply.hpp"

namespace yubin {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }

// "d.ddd.ddd" of RFC 3463 at the start of text, with class digit k.
size_t status_length(std::string_view text, int k) {
    if (text.size() < 5 || text[0] != static_cast<char>('0' + k) || text[1] != '.') return 0;
    size_t i = 2, n = 0;
    while (i < text.size() && digit(text[i]) && n < 3) ++i, ++n;
    if (n == 0 || i >= text.size() || text[i] != '.') return 0;
    ++i;
    n = 0;
    while (i < text.size() && digit(text[i]) && n < 3) ++i, ++n;
    if (n == 0 || (i < text.size() && text[i] != ' ')) return 0;
    return i;
}

void append_clean(std::string& out, std::string_view s) {
    for (char c : s) out += static_cast<unsigned char>(c) < ' ' || c == 0x7f ? ' ' : c;
}

}  // namespace

std::string SmtpReply::status() const {
    if (!lines.empty())
        if (size_t n = status_length(lines.front(), kind()))
            return lines.front().substr(0, n);
    return std::to_string(kind()) + ".0.0";
}

std::string SmtpReply::text(size_t max) const {
    std::string out = std::to_string(code);
    for (size_t i = 0; i < lines.size(); ++i) {
        std::string_view l = lines[i];
        if (i > 0) {  // later lines repeat the enhanced code: drop it
            size_t n = status_length(l, kind());
            if (n) l.remove_prefix(n < l.size() ? n + 1 : n);
        }
        if (l.empty()) continue;
        out += ' ';
        append_clean(out, l);
        if (out.size() > max) break;
    }
    if (out.size() > max) {
        out.resize(max > 3 ? max - 3 : max);
        out += "...";
    }
    return out;
}

void ReplyReader::feed(std::string_view bytes) {
    if (pos_ > 0 && pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    }
    if (buf_.size() - pos_ + bytes.size() > max_buffer) throw SmtpProtocolError("the server sent too much");
    buf_.append(bytes);
}

std::optional<SmtpReply> ReplyReader::next() {
    for (;;) {
        std::string_view rest = std::string_view(buf_).substr(pos_);
        size_t lf = rest.find('\n');
        size_t limit = lf == std::string_view::npos ? rest.size() : lf;
        size_t cr = rest.substr(0, limit).find('\r');
        // A CR not followed by LF, or an LF without its CR, is never a line end.
        if (cr != std::string_view::npos && (cr + 1 < rest.size() ? rest[cr + 1] != '\n' : false))
            throw SmtpProtocolError("bare CR in a reply");
        if (lf == std::string_view::npos) {
            if (rest.size() >= max_line) throw SmtpProtocolError("reply line too long");
            return std::nullopt;
        }
        if (lf == 0 || rest[lf - 1] != '\r') throw SmtpProtocolError("bare LF in a reply");
        if (lf + 1 > max_line) throw SmtpProtocolError("reply line too long");
        std::string_view line = rest.substr(0, lf - 1);
        pos_ += lf + 1;
        if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[0] < '2' ||
            line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
            throw SmtpProtocolError("malformed reply line");
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (!partial_.lines.empty() && code != partial_.code) throw SmtpProtocolError("reply code changed within a reply");
        partial_.code = code;
        partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
        if (line.size() > 3 && line[3] == '-') {
            if (partial_.lines.size() >= max_lines) throw SmtpProtocolError("reply has too many lines");
            continue;
        }
        SmtpReply done = std::move(partial_);
        partial_ = SmtpReply{};
        if (pos_ == buf_.size()) {
            buf_.clear();
            pos_ = 0;
        }
        return done;
    }
}

}  // namespace yubin
