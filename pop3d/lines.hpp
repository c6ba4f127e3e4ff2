// POP3 command lines (RFC 1939, RFC 2449): splitting the client's bytes into
// bounded lines, parsing a command, and formatting one-line replies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::pop3 {

// RFC 2449 section 4: a command line is at most 255 octets, CRLF included.
inline constexpr size_t max_line = 255;
// A SASL response after "+ " is not a command (RFC 5034 section 4): room
// for a PLAIN message of 512 octets in base64, and more.
inline constexpr size_t max_sasl_line = 2048;

// Splits input into lines. A line ends with LF; a CR just before it belongs
// to the line end (clients send CRLF; a bare LF is accepted as well, as most
// servers do). A line longer than max_line is dropped while it arrives, so
// memory stays bounded, and reported once, when its end arrives.
class LineBuffer {
public:
    enum class Kind { none, line, too_long };

    void append(std::string_view bytes);
    // The next complete line, without its end, into `line`; too_long for an
    // overlong line that has ended; none when no complete line is buffered.
    Kind next(std::string& line);
    // The bytes not yet returned as lines (handed to the mailbox session).
    std::string take_pending();
    size_t pending_size() const { return buf_.size() - pos_; }
    // The longest line, CRLF included, from the next next() on (max_line by default).
    void set_limit(size_t limit) { limit_ = limit; }

private:
    size_t limit_ = max_line;
    std::string buf_;
    size_t pos_ = 0;
    bool discarding_ = false;   // inside an overlong line
};

struct Command {
    std::string verb;               // upper case
    std::vector<std::string> args;  // split at runs of spaces
    std::string rest;               // everything after the verb and one space (PASS)
};
Command parse_command(std::string_view line);

// A message number or line count: decimal digits only, at most 9 of them.
std::optional<uint64_t> parse_number(std::string_view s);

// "+OK text\r\n", "-ERR text\r\n"
std::string ok(std::string_view text);
std::string err(std::string_view text);

}  // namespace yubin::pop3
