// Netstrings ("5:hello,") read from a stream one at a time, with a bounded
// buffer: queue-injectd's framing (queue-injectd(8)). packet.hpp nests
// them into records.
#pragma once
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace yubin {

class NetstringError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string encode_netstring(std::string_view s);

// Accumulates bytes and yields complete netstrings of at most max() bytes.
// It never holds more than max() plus the framing: room() says how many
// bytes feed() may take now.
class NetstringReader {
public:
    explicit NetstringReader(size_t max) : max_(max) {}
    // A new limit for the netstrings still to come.
    void set_max(size_t max) { max_ = max; }
    size_t max() const { return max_; }
    size_t room() const;
    // Throws NetstringError if bytes is longer than room().
    void feed(std::string_view bytes);
    // The next complete netstring's payload, or nullopt if more bytes are
    // needed. Throws NetstringError as soon as the bytes cannot begin a
    // netstring: a non-digit in the length, a leading zero, a length over
    // max(), a missing ':' or ','.
    std::optional<std::string> next();
    // Bytes fed and not yet taken by next().
    size_t buffered() const { return buf_.size() - pos_; }

private:
    static constexpr size_t max_digits = 20;
    std::string buf_;
    size_t pos_ = 0;
    size_t max_;
};

}  // namespace yubin
