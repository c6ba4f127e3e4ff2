#include "userfile.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "io.hpp"

namespace yubin {

std::optional<std::string> unsafe_reason(const struct stat& st, uid_t owner, bool check_owner) {
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return std::string("is writable by ") + ((st.st_mode & S_IWOTH) ? "others" : "its group") +
               " (mode " + mode + ")";
    }
    if (check_owner && st.st_uid != owner && st.st_uid != 0)
        return "is owned by uid " + std::to_string(st.st_uid) + ", not by the recipient's uid " +
               std::to_string(owner);
    return std::nullopt;
}

UserFile read_user_file(const std::string& path, uid_t owner, size_t max) {
    UserFile out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return out;
        out.state = UserFile::State::error;
        out.reason = "cannot open " + path + ": " + std::strerror(errno);
        return out;
    }
    Fd guard(fd);
    struct stat st;
    if (::fstat(fd, &st) < 0) {
        out.state = UserFile::State::error;
        out.reason = "cannot stat " + path + ": " + std::strerror(errno);
        return out;
    }
    if (!S_ISREG(st.st_mode)) return out;
    if (auto why = unsafe_reason(st, owner)) {
        out.state = UserFile::State::unsafe;
        out.reason = path + " " + *why;
        return out;
    }
    try {
        out.text = read_all(fd, max);
    } catch (const SysError& e) {
        out.state = UserFile::State::error;
        out.reason = e.err() == EFBIG ? path + " is larger than " + std::to_string(max) + " bytes"
                                      : "cannot read " + path + ": " + std::strerror(e.err());
        return out;
    }
    out.state = UserFile::State::ok;
    return out;
}

}  // namespace yubin
