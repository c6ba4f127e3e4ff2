// Files that steer a delivery (.qmail, .forward, :include: files) and the
// rules that make them safe to obey: a file that someone other than its
// user could have written is never followed.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

namespace yubin {

// Why a file or directory with this status must not be trusted by the user
// `owner`, or nullopt if it may: it is writable by group or others (mode &
// 022), or (when check_owner) it belongs to another uid than owner or root
// (as Postfix allows for .forward: in a system instance the administrator
// writes the virtual users' .qmail files as root).
std::optional<std::string> unsafe_reason(const struct stat& st, uid_t owner, bool check_owner = true);

struct UserFile {
    enum class State { absent, ok, unsafe, error };
    State state = State::absent;
    std::string text;     // ok: the content
    std::string reason;   // unsafe, error: why (with the path)
};

// Reads path as a delivery file of the user `owner`: absent when it does
// not exist or is not a regular file (a symbolic link is followed and its
// target judged); unsafe per unsafe_reason(); error when it cannot be read
// (permission, I/O) or is larger than max bytes.
UserFile read_user_file(const std::string& path, uid_t owner, size_t max = 1 << 20);

}  // namespace yubin
