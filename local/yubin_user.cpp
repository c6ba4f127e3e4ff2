// yubin-user: virtual mailbox users of an instance. See yubin-user(8).
//   yubin-user add NAME      (password on stdin)
//   yubin-user passwd NAME   (password on stdin)
//   yubin-user del NAME
//   yubin-user list
//   yubin-user apop NAME on|off   (on: the password on stdin)
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "instance.hpp"
#include "io.hpp"
#include "maildir.hpp"
#include "password.hpp"
#include "privileges.hpp"
#include "users.hpp"

using namespace yubin;

namespace {

int usage() {
    std::fputs("usage: yubin-user add NAME | passwd NAME | del NAME | list | apop NAME on|off\n", stderr);
    return 64;
}

std::string read_password() {
    std::string pw;
    std::getline(std::cin, pw);
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
}

// yubin-user apop NAME on|off: APOP needs the password itself on the
// server (users/apop, mode 0640: pop3d reads it through the group), so it is kept only for the users who
// turn APOP on. "on" reads the password and stores it only if it is the
// user's password.
int apop(const Instance& inst, const std::vector<UserEntry>& users, const std::string& name,
         const std::string& mode) {
    auto it = std::find_if(users.begin(), users.end(), [&](const UserEntry& u) { return u.name == name; });
    if (it == users.end()) {
        std::fprintf(stderr, "yubin-user: no user %s\n", name.c_str());
        return 67;
    }
    auto entries = load_apop(inst);
    entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const ApopEntry& e) { return e.name == name; }),
                  entries.end());
    if (mode == "on") {
        std::string pw = read_password();
        if (pw.empty() || !verify_password(pw, it->hash)) {
            std::fprintf(stderr, "yubin-user: that is not the password of %s\n", name.c_str());
            return 65;
        }
        entries.push_back({name, pw});
    } else if (mode != "off") {
        return usage();
    }
    save_apop(inst, entries);
    return 0;
}

// After passwd or del: the user's APOP secret, if there is one, becomes
// the new password, or goes.
void set_apop_secret(const Instance& inst, const std::string& name, const std::optional<std::string>& pw) {
    auto entries = load_apop(inst);
    auto it = std::find_if(entries.begin(), entries.end(), [&](const ApopEntry& e) { return e.name == name; });
    if (it == entries.end()) return;
    if (pw) it->secret = *pw;
    else entries.erase(it);
    save_apop(inst, entries);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    try {
        Instance inst = Instance::of_this_program();
        auto users = load_users(inst);
        if (cmd == "list" && argc == 2) {
            for (const auto& u : users) std::printf("%s %s\n", u.name.c_str(), u.home.c_str());
            return 0;
        }
        if (cmd == "apop" && argc == 4) {
            if (!valid_user_name(argv[2])) return usage();
            return apop(inst, users, argv[2], argv[3]);
        }
        if (argc != 3) return usage();
        const std::string name = argv[2];
        if (!valid_user_name(name)) {
            std::fprintf(stderr, "yubin-user: bad name %s: use a-z 0-9 . _ (at most 32, no '-')\n", name.c_str());
            return 64;
        }
        auto it = std::find_if(users.begin(), users.end(), [&](const UserEntry& u) { return u.name == name; });
        if (cmd == "add") {
            if (it != users.end()) {
                std::fprintf(stderr, "yubin-user: %s exists\n", name.c_str());
                return 65;
            }
            std::string home = inst.path("home/" + name);
            {
                // Run by root, the mailbox is made by (and belongs to) whoever owns home/: yubinv in a system instance.
                ActAsOwnerOf as(inst.path("home"));
                if (::mkdir(home.c_str(), 0700) < 0 && errno != EEXIST) throw SysError("mkdir " + home, errno);
                maildir_create(home + "/Maildir");
            }
            users.push_back({name, hash_password(read_password()), home});
        } else if (cmd == "passwd") {
            if (it == users.end()) {
                std::fprintf(stderr, "yubin-user: no user %s\n", name.c_str());
                return 67;
            }
            const std::string pw = read_password();
            it->hash = hash_password(pw);
            save_users(inst, users);
            set_apop_secret(inst, name, pw);  // APOP, if on, stays on with the new password
            return 0;
        } else if (cmd == "del") {
            if (it == users.end()) {
                std::fprintf(stderr, "yubin-user: no user %s\n", name.c_str());
                return 67;
            }
            users.erase(it);  // the mailbox stays
            save_users(inst, users);
            set_apop_secret(inst, name, std::nullopt);  // no password of a deleted user is kept in clear
            return 0;
        } else {
            return usage();
        }
        save_users(inst, users);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "yubin-user: %s\n", e.what());
        return 111;
    }
    return 0;
}
