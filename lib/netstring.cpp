#include "netstring.hpp"

namespace yubin {

std::string encode_netstring(std::string_view s) {
    std::string out = std::to_string(s.size());
    out += ':';
    out += s;
    out += ',';
    return out;
}

size_t NetstringReader::room() const {
    const size_t bound = max_ + max_digits + 2;  // digits, ':' and ','
    return buffered() >= bound ? 0 : bound - buffered();
}

void NetstringReader::feed(std::string_view bytes) {
    if (bytes.size() > room()) throw NetstringError("netstring: more input than the buffer holds");
    if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    } else if (pos_ > 0 && pos_ >= buf_.size() / 2) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    buf_.append(bytes);
}

std::optional<std::string> NetstringReader::next() {
    const std::string_view in = std::string_view(buf_).substr(pos_);
    size_t len = 0, i = 0;
    for (; i < in.size() && in[i] != ':'; ++i) {
        const char c = in[i];
        if (c < '0' || c > '9') throw NetstringError("netstring: bad length");
        if (i > 0 && len == 0) throw NetstringError("netstring: leading zero");
        if (i >= max_digits) throw NetstringError("netstring: bad length");
        len = len * 10 + static_cast<size_t>(c - '0');
        if (len > max_) throw NetstringError("netstring: longer than " + std::to_string(max_) + " bytes");
    }
    if (i == in.size()) return std::nullopt;
    if (i == 0) throw NetstringError("netstring: bad length");
    const size_t start = i + 1;
    if (in.size() < start + len + 1) return std::nullopt;
    if (in[start + len] != ',') throw NetstringError("netstring: missing comma");
    std::string payload(in.substr(start, len));
    pos_ += start + len + 1;
    return payload;
}

}  // namespace yubin
