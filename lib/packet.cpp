#include "packet.hpp"

namespace yubin {

std::string encode_packet(const Packet& fields) {
    std::string payload;
    for (const auto& f : fields) payload += encode_netstring(f);
    return encode_netstring(payload);
}

namespace {

// Parse "len:" at s[pos]; returns nullopt if incomplete, throws if malformed.
std::optional<size_t> parse_length(std::string_view s, size_t& pos, size_t max) {
    size_t len = 0, digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (digits && len == 0) throw PacketError("netstring: leading zero");
        len = len * 10 + static_cast<size_t>(s[pos] - '0');
        if (len > max) throw PacketError("netstring: too long");
        ++pos;
        ++digits;
    }
    if (pos == s.size()) {
        if (digits > 20) throw PacketError("netstring: bad length");
        return std::nullopt;
    }
    if (!digits || s[pos] != ':') throw PacketError("netstring: bad length");
    ++pos;
    return len;
}

}  // namespace

Packet decode_packet_payload(std::string_view payload) {
    Packet out;
    size_t pos = 0;
    while (pos < payload.size()) {
        auto len = parse_length(payload, pos, payload.size());
        if (!len || pos + *len >= payload.size() || payload[pos + *len] != ',')
            throw PacketError("netstring: truncated field");
        out.emplace_back(payload.substr(pos, *len));
        pos += *len + 1;
    }
    return out;
}

std::optional<Packet> PacketReader::next() {
    size_t pos = pos_;
    auto len = parse_length(buf_, pos, max_);
    if (!len) return std::nullopt;
    if (buf_.size() < pos + *len + 1) return std::nullopt;
    if (buf_[pos + *len] != ',') throw PacketError("netstring: missing comma");
    Packet p = decode_packet_payload(std::string_view(buf_).substr(pos, *len));
    pos_ = pos + *len + 1;
    if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    } else if (pos_ > 65536) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    return p;
}

unsigned long long packet_number(const std::string& field) {
    if (field.empty() || field.size() > 19) throw PacketError("bad number field");
    unsigned long long v = 0;
    for (char c : field) {
        if (c < '0' || c > '9') throw PacketError("bad number field");
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return v;
}

}  // namespace yubin
