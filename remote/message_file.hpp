// The message remote-deliver sends: its descriptor 0, a queue file
// positioned at the message (read again from there for every attempt), or
// for a run by hand a pipe, which is read into memory first.
#pragma once
#include <sys/types.h>

#include <string>

#include "smtp_client.hpp"

namespace yubin {

class FileMessage : public MessageData {
public:
    static constexpr size_t max_in_memory = 64 << 20;

    // Reads the message once (size with CRLF line ends, 8-bit or not);
    // throws SysError when it cannot be read.
    explicit FileMessage(int fd);
    size_t size() const override { return size_; }
    bool eight_bit() const override { return eight_bit_; }
    void rewind() override;
    std::string_view read() override;   // throws SysError

private:
    int fd_;
    off_t start_ = -1;       // -1: not seekable, the message is in mem_
    std::string mem_;
    size_t mem_pos_ = 0;
    size_t size_ = 0;
    bool eight_bit_ = false;
    std::string buf_;
};

}  // namespace yubin
