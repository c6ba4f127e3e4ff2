#include "io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace yubin {

SysError::SysError(const std::string& what, int err)
    : std::runtime_error(what + ": " + std::strerror(err)), err_(err), action_(what) {}

void Fd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

Fd open_or_throw(const std::string& path, int flags, int mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) throw SysError("open " + path, errno);
    return Fd(fd);
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SysError("write", errno);
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
}

std::string read_all(int fd, size_t max) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SysError("read", errno);
        }
        if (n == 0) return out;
        if (out.size() + static_cast<size_t>(n) > max) throw SysError("read", EFBIG);
        out.append(buf, static_cast<size_t>(n));
    }
}

std::optional<std::string> read_file(const std::string& path, size_t max) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw SysError("open " + path, errno);
    }
    Fd guard(fd);
    return read_all(fd, max);
}

std::string dirname_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

void fsync_dir(const std::string& dir) {
    Fd fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(fd.get()) < 0) throw SysError("fsync " + dir, errno);
}

void write_file_atomic(const std::string& path, std::string_view data, int mode) {
    std::string tmp = path + ".tmp";
    {
        // A fresh file, never one found there (not a symbolic link someone
        // planted): a stale tmp of a crashed run is removed first.
        if (::unlink(tmp.c_str()) < 0 && errno != ENOENT) throw SysError("unlink " + tmp, errno);
        Fd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (::geteuid() == 0) {  // root writes on behalf of the directory's owner
            struct stat dir;
            if (::stat(dirname_of(path).c_str(), &dir) < 0) throw SysError("stat " + dirname_of(path), errno);
            if (::fchown(fd.get(), dir.st_uid, dir.st_gid) < 0) throw SysError("chown " + tmp, errno);
        }
        write_all(fd.get(), data);
        if (::fsync(fd.get()) < 0) throw SysError("fsync " + tmp, errno);
    }
    if (::rename(tmp.c_str(), path.c_str()) < 0) throw SysError("rename " + tmp, errno);
    fsync_dir(dirname_of(path));
}

void set_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

void set_nonblock(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace yubin
