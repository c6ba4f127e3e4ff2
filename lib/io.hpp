// File descriptors and whole-file I/O: RAII and the few loops every program needs.
#pragma once
#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <optional>

namespace yubin {

// A failed system call: what was attempted, and errno.
class SysError : public std::runtime_error {
public:
    SysError(const std::string& what, int err);
    int err() const { return err_; }
    const std::string& action() const { return action_; }  // what without the errno text
private:
    int err_;
    std::string action_;
};

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept { reset(o.release()); return *this; }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { int f = fd_; fd_ = -1; return f; }
    void reset(int fd = -1);
private:
    int fd_ = -1;
};

// Open or throw SysError.
Fd open_or_throw(const std::string& path, int flags, int mode = 0);

// Write everything (retrying on EINTR and short writes); throws SysError.
void write_all(int fd, std::string_view data);
// Read until EOF, at most max bytes (throws SysError with EFBIG past it).
std::string read_all(int fd, size_t max = SIZE_MAX);
// Read a whole file; nullopt if it does not exist; throws on other errors.
std::optional<std::string> read_file(const std::string& path, size_t max = SIZE_MAX);
// Write a file durably: path.tmp, write, fsync, rename, fsync the directory.
// Run by root, the file gets the owner and group of its directory (users/
// of a system instance belongs to yubinv, control/ to root).
void write_file_atomic(const std::string& path, std::string_view data, int mode = 0644);
// fsync a directory (so that a rename or create in it is durable).
void fsync_dir(const std::string& dir);
std::string dirname_of(const std::string& path);
// Set close-on-exec / non-blocking.
void set_cloexec(int fd);
void set_nonblock(int fd);

}  // namespace yubin
