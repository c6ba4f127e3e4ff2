#include "lines.hpp"

#include <cstring>

namespace yubin::pop3 {

void LineBuffer::append(std::string_view bytes) {
    if (pos_ > 0 && pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    }
    buf_.append(bytes);
}

LineBuffer::Kind LineBuffer::next(std::string& line) {
    for (;;) {
        const char* start = buf_.data() + pos_;
        const size_t avail = buf_.size() - pos_;
        const void* lf = avail ? std::memchr(start, '\n', avail) : nullptr;
        if (!lf) {
            // No line end yet: past the limit this is an overlong line; drop
            // what we have (keeping nothing: its end is all we wait for).
            if (avail >= limit_ || discarding_) {
                discarding_ = true;
                buf_.clear();
                pos_ = 0;
            } else if (pos_ > 0) {
                buf_.erase(0, pos_);
                pos_ = 0;
            }
            return Kind::none;
        }
        size_t len = static_cast<size_t>(static_cast<const char*>(lf) - start);
        pos_ += len + 1;
        // The limit counts the line end as two octets, as CRLF.
        size_t content = len > 0 && start[len - 1] == '\r' ? len - 1 : len;
        if (discarding_ || content + 2 > limit_) {
            discarding_ = false;
            return Kind::too_long;
        }
        line.assign(start, content);
        return Kind::line;
    }
}

std::string LineBuffer::take_pending() {
    std::string out = buf_.substr(pos_);
    buf_.clear();
    pos_ = 0;
    return out;
}

Command parse_command(std::string_view line) {
    Command c;
    size_t sp = line.find(' ');
    for (char ch : line.substr(0, sp))
        c.verb += (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch;
    if (sp == std::string_view::npos) return c;
    c.rest = std::string(line.substr(sp + 1));
    std::string_view s = line.substr(sp + 1);
    while (!s.empty()) {
        size_t b = s.find_first_not_of(' ');
        if (b == std::string_view::npos) break;
        s.remove_prefix(b);
        size_t e = s.find(' ');
        c.args.emplace_back(s.substr(0, e));
        if (e == std::string_view::npos) break;
        s.remove_prefix(e);
    }
    return c;
}

std::optional<uint64_t> parse_number(std::string_view s) {
    if (s.empty() || s.size() > 9) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
}

std::string ok(std::string_view text) {
    std::string r = "+OK";
    if (!text.empty()) {
        r += ' ';
        r += text;
    }
    return r + "\r\n";
}

std::string err(std::string_view text) { return "-ERR " + std::string(text) + "\r\n"; }

}  // namespace yubin::pop3
