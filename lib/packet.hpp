// Records between yubin processes: a netstring whose payload is a sequence
// of netstrings ("15:5:hello,4:abcd,,"). A record must be consumed exactly;
// anything else is a protocol error (PacketError) and the reader stops.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "netstring.hpp"

namespace yubin {

class PacketError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using Packet = std::vector<std::string>;

std::string encode_packet(const Packet& fields);
// Decode one record's payload into its fields (exact consumption).
Packet decode_packet_payload(std::string_view payload);

// Accumulates bytes from a stream and yields complete records.
class PacketReader {
public:
    explicit PacketReader(size_t max_record = 1 << 20) : max_(max_record) {}
    void feed(std::string_view bytes) { buf_.append(bytes); }
    // The next complete record, or nullopt if more bytes are needed.
    // Throws PacketError on malformed input.
    std::optional<Packet> next();
    bool empty() const { return buf_.size() == pos_; }
private:
    std::string buf_;
    size_t pos_ = 0;
    size_t max_;
};

// A field as a number; throws PacketError if it is not a plain decimal.
unsigned long long packet_number(const std::string& field);

}  // namespace yubin
