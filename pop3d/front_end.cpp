#include "front_end.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "authorization.hpp"
#include "connection.hpp"
#include "credentials.hpp"
#include "io.hpp"

namespace yubin::pop3d {

namespace {

class FrontHandler : public Handler {
public:
    FrontHandler(pop3::Authorization& auth, const Config& cfg, const Log& log)
        : auth_(auth), cfg_(cfg), log_(log) {}

    Step line(std::string_view line) override { return convert(auth_.command(line)); }
    Step too_long() override { return convert(auth_.too_long()); }
    std::string timeout_reply() override { return auth_.timeout_reply(); }
    const pop3::Account& account() const { return account_; }
    const std::string& method() const { return method_; }

private:
    Step convert(pop3::AuthStep s) {
        using A = pop3::AuthStep::Action;
        Step out;
        out.text = std::move(s.text);
        switch (s.action) {
        case A::reply: break;
        case A::close: out.close = true; break;
        case A::fail:
            log_({{"event", "login-failed"}, {"user", s.user}, {"method", s.method}, {"remote", cfg_.remote},
                  {"reason", s.reason}});
            out.delay_ms = cfg_.fail_delay_ms;   // slows down password guessing
            out.close = s.close;
            break;
        case A::login:
            account_ = std::move(s.account);
            method_ = std::move(s.method);
            out.handoff = true;   // the session answers the login
            break;
        }
        return out;
    }

    pop3::Authorization& auth_;
    const Config& cfg_;
    const Log& log_;
    pop3::Account account_;
    std::string method_;
};

// The pending bytes as fd 3 of the session: a memfd, so that writing them
// can never block, however many the client pipelined.
bool pending_on_fd3(const std::string& pending) {
    int fd = ::memfd_create("pop3d-pending", 0);
    if (fd < 0) return false;
    try {
        write_all(fd, pending);
    } catch (const SysError&) {
        ::close(fd);
        return false;
    }
    if (::lseek(fd, 0, SEEK_SET) < 0) {
        ::close(fd);
        return false;
    }
    if (fd != 3) {
        if (::dup2(fd, 3) < 0) {
            ::close(fd);
            return false;
        }
        ::close(fd);
    }
    return true;
}

}  // namespace

int run_front_end(const Instance& inst, const Config& cfg, const Log& log) {
    InstanceCredentials creds(inst);
    std::string pending;
    pop3::Account account;
    {
        std::string timestamp;
        try {
            if (creds.apop_offered()) timestamp = pop3::make_timestamp(cfg.me);
        } catch (const std::exception& e) {
            log({{"event", "error"}, {"error", e.what()}});   // no APOP then
        }
        pop3::Authorization auth(creds, timestamp);
        FrontHandler handler(auth, cfg, log);
        Connection conn(handler, cfg.timeout);
        End end = conn.run(auth.greeting(), "");
        if (end != End::handoff) {
            if (end == End::timeout) log({{"event", "timeout"}, {"remote", cfg.remote}});
            if (end == End::error) log({{"event", "error"}, {"remote", cfg.remote}, {"error", conn.error()}});
            return exit_status::ok;
        }
        account = handler.account();
        pending = conn.take_pending();
        log({{"event", "login"}, {"user", account.name}, {"method", handler.method()}, {"remote", cfg.remote}});
    }   // the event loop is gone before the exec
    const std::string self = inst.path("bin/pop3d");
    if (::chdir(account.home.c_str()) < 0) {
        log({{"event", "error"}, {"user", account.name}, {"error", "chdir " + account.home + ": " + std::strerror(errno)}});
    } else if (!pending_on_fd3(pending)) {
        log({{"event", "error"}, {"user", account.name}, {"error", std::string("fd 3: ") + std::strerror(errno)}});
    } else {
        ::setenv("USER", account.name.c_str(), 1);
        ::setenv("HOME", account.home.c_str(), 1);
        char arg0[] = "pop3d", arg1[] = "session", arg2[] = "Maildir";
        char* argv[] = {arg0, arg1, arg2, nullptr};
        ::execv(self.c_str(), argv);
        log({{"event", "error"}, {"user", account.name}, {"error", "exec " + self + ": " + std::strerror(errno)}});
    }
    say(pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"));
    return exit_status::temporary;
}

}  // namespace yubin::pop3d
