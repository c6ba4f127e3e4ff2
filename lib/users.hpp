// Virtual mailbox users (INSTANCE/users/passwd: NAME:HASH:HOME) and the
// mapping from a local part to the user who receives it.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "instance.hpp"

namespace yubin {

struct UserEntry {
    std::string name;
    std::string hash;
    std::string home;
};

std::vector<UserEntry> parse_passwd(std::string_view text);
std::string format_passwd(const std::vector<UserEntry>& users);
std::vector<UserEntry> load_users(const Instance& inst);
void save_users(const Instance& inst, const std::vector<UserEntry>& users);

// A user name yubin-user accepts: [a-z0-9._], 1-32 chars, not starting with '.'.
bool valid_user_name(std::string_view name);

// Who receives local part `local` (already without the domain).
struct LocalTarget {
    std::string user;     // user name ("alias" for the alias home)
    std::string home;
    std::string ext;      // the part after user + separator, "" if none
};
// Exact user first, then postmaster / mailer-daemon / root to the alias
// home, then the longest "user-ext" prefix that is a user. Case-insensitive.
std::optional<LocalTarget> resolve_local(const Instance& inst, const std::vector<UserEntry>& users,
                                         std::string_view local, char separator = '-');

}  // namespace yubin
