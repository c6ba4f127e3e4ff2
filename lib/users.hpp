// Virtual mailbox users (INSTANCE/users/passwd: NAME:HASH:HOME), their APOP
// secrets (INSTANCE/users/apop), and the mapping from a local part to the
// user who receives it.
#pragma once
#include <functional>
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

// users/apop (NAME:SECRET, mode 0640): APOP (RFC 1939 section 7) needs the
// shared secret itself on the server, not a hash, so this file holds the
// password of only those users whose APOP was turned on with "yubin-user
// apop NAME on".
struct ApopEntry {
    std::string name;
    std::string secret;
};

// NAME:SECRET lines; the secret is everything after the first ':'.
// Lines with an invalid name or an empty secret are skipped.
std::vector<ApopEntry> parse_apop(std::string_view text);
std::string format_apop(const std::vector<ApopEntry>& entries);
std::vector<ApopEntry> load_apop(const Instance& inst);   // empty when there is no file
void save_apop(const Instance& inst, const std::vector<ApopEntry>& entries);

// A user name yubin-user accepts: [a-z0-9._], 1-32 chars, not starting with '.'.
bool valid_user_name(std::string_view name);

// Who receives local part `local` (already without the domain).
struct LocalTarget {
    std::string user;     // user name ("alias" for the alias home)
    std::string home;
    std::string ext;      // the part after user + separator, "" if none;
                          // for the alias home the whole local part
    bool alias = false;   // the alias home (INSTANCE/alias)
};
// Is this (lower-case) local part a name in control/aliases?
using AliasPredicate = std::function<bool(const std::string&)>;
// Case-insensitively, the first that applies:
//  1. a user of that name;
//  2. postmaster, mailer-daemon, root, or a name for which is_alias is
//     true: the alias home, ext = the local part (so that a user "mailer"
//     cannot take mailer-daemon's mail);
//  3. user<separator>ext: the longest prefix before a separator that names
//     a user;
//  4. anything else: the alias home, ext = the local part (its
//     .qmail-default, if any, decides; otherwise the address does not exist).
// nullopt only for an empty local part.
std::optional<LocalTarget> resolve_local(const Instance& inst, const std::vector<UserEntry>& users,
                                         std::string_view local, char separator = '-',
                                         const AliasPredicate& is_alias = {});

// control/extseparator: the one character between a user name and an
// extension. Default '-'. Throws std::runtime_error if it is not a single
// printable ASCII character other than a letter, a digit, '@', '.', '/',
// '"' or '\'.
char extension_separator(const Instance& inst);

}  // namespace yubin
