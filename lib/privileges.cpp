#include "privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

bool system_instance_as_root(const std::string& queue_dir) {
    if (::geteuid() != 0) return false;
    struct stat st;
    if (::stat(queue_dir.c_str(), &st) < 0) throw SysError("stat " + queue_dir, errno);
    return st.st_uid != 0;
}

}  // namespace yubin

namespace yubin {

void give_owner_of(const std::string& model, const std::string& path) {
    if (::geteuid() != 0) return;
    struct stat st;
    if (::stat(model.c_str(), &st) < 0) throw SysError("stat " + model, errno);
    if (::lchown(path.c_str(), st.st_uid, st.st_gid) < 0) throw SysError("chown " + path, errno);
}

}  // namespace yubin
