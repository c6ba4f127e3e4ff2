#include "privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "io.hpp"

namespace yubin {

std::optional<Ids> lookup_user(const std::string& name) {
    long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
    struct passwd pw, *found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
    return Ids{found->pw_uid, found->pw_gid};
}

int become(Ids ids) {
    if (::setgroups(0, nullptr) < 0) return errno;
    if (::setgid(ids.gid) < 0) return errno;
    if (::setuid(ids.uid) < 0) return errno;
    if (ids.uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0)) return EPERM;
    return 0;
}

bool owned_by_root(const std::string& dir) {
    struct stat st;
    if (::stat(dir.c_str(), &st) < 0) throw SysError("stat " + dir, errno);
    return st.st_uid == 0;
}

std::optional<Ids> system_queue_owner(const std::string& queue_dir, const char* queue_user) {
    if (::geteuid() != 0) return std::nullopt;
    struct stat st;
    if (::stat(queue_dir.c_str(), &st) < 0) throw SysError("stat " + queue_dir, errno);
    if (st.st_uid == 0) return std::nullopt;
    auto owner = lookup_user(queue_user);
    if (!owner || owner->uid != st.st_uid) return std::nullopt;
    return Ids{st.st_uid, st.st_gid};
}

ActAsOwnerOf::ActAsOwnerOf(const std::string& dir) {
    if (::geteuid() != 0) return;
    struct stat st;
    if (::lstat(dir.c_str(), &st) < 0) throw SysError("stat " + dir, errno);
    if (!S_ISDIR(st.st_mode)) throw SysError(dir + " is not a directory", ENOTDIR);
    if (st.st_uid == 0) return;
    if (::setegid(st.st_gid) < 0) throw SysError("setegid", errno);
    if (::seteuid(st.st_uid) < 0) {
        int err = errno;
        ::setegid(0);
        throw SysError("seteuid", err);
    }
    switched_ = true;
}

ActAsOwnerOf::~ActAsOwnerOf() {
    if (!switched_) return;
    if (::seteuid(0) < 0 || ::setegid(0) < 0) std::_Exit(111);  // cannot happen: the saved uid is 0
}

}  // namespace yubin

