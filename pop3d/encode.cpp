#include "encode.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io.hpp"

namespace yubin::pop3 {

Encoder::Encoder(std::optional<uint64_t> body_lines)
    : limited_(body_lines.has_value()), lines_left_(body_lines.value_or(0)) {}

void Encoder::end_line(bool had_cr, std::string& out) {
    out += had_cr ? "\n" : "\r\n";
    const uint64_t content = line_len_ - (had_cr ? 1 : 0);
    line_len_ = 0;
    prev_cr_ = false;
    if (in_header_) {
        if (content == 0) {   // the empty line after the header
            in_header_ = false;
            if (limited_ && lines_left_ == 0) done_ = true;
        }
    } else if (limited_ && --lines_left_ == 0) {
        done_ = true;
    }
}

bool Encoder::add(std::string_view in, std::string& out) {
    while (!done_ && !in.empty()) {
        const void* lf = std::memchr(in.data(), '\n', in.size());
        const size_t seg = lf ? static_cast<size_t>(static_cast<const char*>(lf) - in.data()) : in.size();
        if (seg > 0) {
            if (line_len_ == 0 && in[0] == '.') out += '.';   // byte-stuffing
            out.append(in.data(), seg);
            line_len_ += seg;
            prev_cr_ = in[seg - 1] == '\r';
        }
        if (!lf) break;
        end_line(prev_cr_, out);
        in.remove_prefix(seg + 1);
    }
    return !done_;
}

void Encoder::finish(std::string& out) {
    if (!done_ && line_len_ > 0) end_line(prev_cr_, out);
    out += ".\r\n";
}

FdReader::~FdReader() {
    if (fd_ >= 0) ::close(fd_);
}

size_t FdReader::read(char* buf, size_t n) {
    for (;;) {
        ssize_t r = ::read(fd_, buf, n);
        if (r >= 0) return static_cast<size_t>(r);
        if (errno != EINTR) throw SysError("read message", errno);
    }
}

bool Transfer::fill(std::string& out) {
    char buf[65536];
    size_t n = in_->read(buf, sizeof buf);
    if (n == 0 || !enc_.add(std::string_view(buf, n), out)) {
        enc_.finish(out);
        return false;
    }
    return true;
}

}  // namespace yubin::pop3
