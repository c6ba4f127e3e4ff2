// SMTP replies as the client reads them (RFC 5321 section 4.2): one or more
// lines "NNN-text" ending with "NNN text", each ending in CRLF. The reader is
// bounded and strict: a bare LF or CR, a line without a code, codes that
// change within a reply, an overlong line or too many lines are a protocol
// error (the client then treats the connection as lost), never a crash.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

class SmtpProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SmtpReply {
    int code = 0;                      // 200 to 599
    std::vector<std::string> lines;    // the text of each line, after "NNN-" or "NNN "

    int kind() const { return code / 100; }   // 2, 3, 4 or 5
    // The enhanced status code at the start of the first line when it has the
    // reply's class ("5.1.1" in "550 5.1.1 no such user"), else "K.0.0".
    std::string status() const;
    // The whole reply as one line for logs and Diagnostic-Code: "550 5.1.1
    // first line second line", control characters as spaces, at most max octets.
    std::string text(size_t max = 1000) const;
};

class ReplyReader {
public:
    static constexpr size_t max_line = 4096;     // octets of one line, CRLF included
    static constexpr size_t max_lines = 200;     // lines of one reply
    static constexpr size_t max_buffer = 1 << 20;

    // Throws SmtpProtocolError when more than max_buffer octets wait unread.
    void feed(std::string_view bytes);
    // The next complete reply, or nullopt when more input is needed; throws
    // SmtpProtocolError when the input is malformed.
    std::optional<SmtpReply> next();
    bool empty() const { return pos_ == buf_.size(); }

private:
    std::string buf_;
    size_t pos_ = 0;
    SmtpReply partial_;
};

}  // namespace yubin
