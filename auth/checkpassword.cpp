// yubin-checkpassword: the one program that checks a password against an
// instance's users (yubin-checkpassword(8)), with the checkpassword
// interface of qmail (and Dovecot's passdb checkpassword):
//
//   yubin-checkpassword [PROGRAM [ARG...]]
//
// reads "user\0password\0" and an optional "timestamp\0" from descriptor
// 3, at most 512 bytes; with a timestamp, a 32-digit hex password of a user
// with APOP on is an APOP digest. Right credentials: runs PROGRAM in the
// user's home with USER and HOME set and its own rights given back
// (descriptor 4 is PROGRAM's, as Dovecot's checkpassword-reply wants), or,
// without one, writes "user\0home\0" on descriptor 4 when it is open
// (yubin's smtpd and pop3d read it) and exits 0. Exit 1: wrong credentials (the same answer, after
// the same work, for a user who does not exist); 2: misuse (nothing on
// descriptor 3, no NUL); 111: a temporary failure (users/ unreadable).
//
// In a system instance it is setgid to the group of users/ (yubinv), so
// that smtpd (yubind), which runs as its own user, never reads the hashes
// itself; it then answers only yubind, yubinv and root. It trusts nothing from its environment or arguments:
// the instance is where the executable is, and PROGRAM runs only after
// the group is given up.
#include <sys/prctl.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "request.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "privileges.hpp"

using namespace yubin;

namespace {

constexpr int exit_refused = 1;
constexpr int exit_misuse = 2;
constexpr int exit_temporary = 111;

// Descriptor 3, to its end or 513 bytes (one more than the checkpassword limit).
std::optional<Request> read_request() {
    char buf[max_request + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = ::read(3, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        len += static_cast<size_t>(n);
        if (len == sizeof buf) break;
    }
    ::close(3);
    std::optional<Request> out = parse_request(std::string_view(buf, len));
    OPENSSL_cleanse(buf, sizeof buf);
    return out;
}

// Setgid (a system instance), it answers only the programs whose job is to
// ask: smtpd (yubind), pop3d (yubinv) and root's (Dovecot, qmail-popup).
// Anyone else would have an oracle for guessing passwords.
bool caller_may_ask() {
    if (::getegid() == ::getgid()) return true;   // not setgid: the caller's own rights decide
    const uid_t uid = ::getuid();
    if (uid == 0) return true;
    for (const char* name : {system_user::smtpd, system_user::mailbox})
        if (auto ids = lookup_user(name); ids && ids->uid == uid) return true;
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    // The password is in this process's memory: never in a core file.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    keep_log_from_client();   // under inetd behind qmail-popup, stderr is the client's connection
    Log log("yubin-checkpassword");
    if (!caller_may_ask()) {
        log({{"event", "misuse"}, {"uid", std::to_string(::getuid())}, {"error", "this user may not check passwords"}});
        return exit_misuse;
    }
    std::optional<Request> req = read_request();
    if (!req) {
        log({{"event", "misuse"}, {"error", "descriptor 3 holds no user and password ended by NULs"}});
        return exit_misuse;
    }
    Verified v;
    try {
        v = verify_request(Instance::of_this_program(), *req);
    } catch (const std::exception& e) {
        log({{"event", "temporary"}, {"user", req->user}, {"error", e.what()}});
        return exit_temporary;
    }
    if (!v.user) {   // why, for the administrator; the caller only learns "refused"
        log({{"event", "refused"}, {"user", req->user}, {"reason", v.reason}});
        return exit_refused;
    }
    if (argc < 2) {
        // yubin's callers: the user's name and home on descriptor 4
        const std::string reply = v.user->name + '\0' + v.user->home + '\0';
        ssize_t n = ::write(4, reply.data(), reply.size());   // EBADF when the caller gave no descriptor 4
        (void)n;
        return 0;
    }
    // A PROGRAM (Dovecot's checkpassword-reply, qmail-pop3d) has descriptor 4 for its own answer.
    // Our own rights back before the caller's program runs.
    if (::setgid(::getgid()) < 0 || ::setuid(::getuid()) < 0) return exit_temporary;
    if (::chdir(v.user->home.c_str()) < 0) {
        log({{"event", "temporary"}, {"user", v.user->name}, {"error", "cannot enter " + v.user->home + ": " + std::strerror(errno)}});
        return exit_temporary;
    }
    ::setenv("USER", v.user->name.c_str(), 1);
    ::setenv("HOME", v.user->home.c_str(), 1);
    ::execvp(argv[1], argv + 1);
    log({{"event", "temporary"}, {"error", std::string("cannot run ") + argv[1] + ": " + std::strerror(errno)}});
    return exit_temporary;
}
