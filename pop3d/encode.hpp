// A message as POP3 sends it (RFC 1939 section 3): every line end as CRLF,
// a line that starts with "." byte-stuffed, and ".\r\n" at the end; and the
// size that STAT, LIST and the RETR reply announce for it.
//
// Maildir files have LF line ends. A LF becomes CRLF; a CRLF already in the
// file stays as it is; a last line without a line end gets one. The size is
// the octets of the message so converted (crlf_size in lib/maildir.hpp),
// without the byte-stuffing (which the client removes) and without the
// terminating ".\r\n", so it is exactly what a client receives as the message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace yubin::pop3 {

class Encoder {
public:
    // body_lines: for TOP, how many lines of the body follow the header and
    // the empty line after it; nullopt for the whole message (RETR).
    explicit Encoder(std::optional<uint64_t> body_lines = std::nullopt);
    // Encodes the next bytes of the message onto out. Returns false once
    // TOP's lines are all out; later bytes are then ignored.
    bool add(std::string_view in, std::string& out);
    // A line end for an unfinished last line, then ".\r\n".
    void finish(std::string& out);

private:
    void end_line(bool had_cr, std::string& out);

    bool limited_;
    uint64_t lines_left_;
    bool done_ = false;
    bool in_header_ = true;
    bool prev_cr_ = false;       // the last byte added was CR
    uint64_t line_len_ = 0;      // bytes of the current line so far
};


// Where a message's bytes come from (a file; a string in tests).
class ByteReader {
public:
    virtual ~ByteReader() = default;
    // Up to n bytes into buf; 0 at the end. Throws SysError on a read error.
    virtual size_t read(char* buf, size_t n) = 0;
};

class FdReader : public ByteReader {
public:
    explicit FdReader(int fd) : fd_(fd) {}
    ~FdReader() override;
    size_t read(char* buf, size_t n) override;
private:
    int fd_;
};

// The body of a RETR or TOP reply, produced a piece at a time so that a
// large message never sits whole in memory.
class Transfer {
public:
    Transfer(std::unique_ptr<ByteReader> in, std::optional<uint64_t> body_lines)
        : in_(std::move(in)), enc_(body_lines) {}
    // Appends at least one piece (about 64 KiB of input) to out; false once
    // the whole reply, ".\r\n" included, is out. Throws SysError.
    bool fill(std::string& out);

private:
    std::unique_ptr<ByteReader> in_;
    Encoder enc_;
};

}  // namespace yubin::pop3
