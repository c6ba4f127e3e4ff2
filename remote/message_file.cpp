#include "message_file.hpp"

#include <unistd.h>

#include <algorithm>

#include "io.hpp"

namespace yubin {

namespace {
constexpr size_t piece = 64 * 1024;
}

FileMessage::FileMessage(int fd) : fd_(fd) {
    start_ = ::lseek(fd, 0, SEEK_CUR);
    if (start_ < 0) mem_ = read_all(fd, max_in_memory);
    rewind();
    for (std::string_view p = read(); !p.empty(); p = read()) {
        size_ += p.size() + static_cast<size_t>(std::count(p.begin(), p.end(), '\n'));
        if (!eight_bit_)
            eight_bit_ = std::any_of(p.begin(), p.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    }
    rewind();
}

void FileMessage::rewind() {
    if (start_ < 0) {
        mem_pos_ = 0;
        return;
    }
    if (::lseek(fd_, start_, SEEK_SET) != start_) throw SysError("seek in the message", errno);
}

std::string_view FileMessage::read() {
    if (start_ < 0) {
        size_t n = std::min(piece, mem_.size() - mem_pos_);
        std::string_view out(mem_.data() + mem_pos_, n);
        mem_pos_ += n;
        return out;
    }
    buf_.resize(piece);
    for (;;) {
        ssize_t n = ::read(fd_, buf_.data(), piece);
        if (n >= 0) return std::string_view(buf_.data(), static_cast<size_t>(n));
        if (errno != EINTR) throw SysError("read the message", errno);
    }
}

}  // namespace yubin
