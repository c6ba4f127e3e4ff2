#include "log.hpp"

#include <unistd.h>

namespace yubin {

std::string log_value(std::string_view v) {
    bool plain = !v.empty();
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) { plain = false; break; }
    if (plain) return std::string(v);
    static const char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : v) {
        if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
        else if (c < ' ' || c == 0x7f) { out += "\\x"; out += hex[c >> 4]; out += hex[c & 15]; }
        else out += static_cast<char>(c);
    }
    out += '"';
    return out;
}

std::string Log::format(std::initializer_list<LogField> fields) const {
    std::string line = program_ + ":";
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        line += log_value(v);
    }
    line += '\n';
    return line;
}

void Log::operator()(std::initializer_list<LogField> fields) const {
    std::string line = format(fields);
    // One write per line so that lines from several processes do not interleave.
    ssize_t n = ::write(fd_, line.data(), line.size());
    (void)n;
}

}  // namespace yubin
