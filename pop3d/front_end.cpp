#include "front_end.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "authorization.hpp"
#include "connection.hpp"
#include "checkpassword.hpp"
#include "io.hpp"
#include "lines.hpp"
#include "tls.hpp"

namespace yubin::pop3d {

namespace {

// The credentials go to the password checker (yubin-authd(8), else
// yubin-checkpassword(8)): pop3d never reads the hashes.
class CheckerCredentials : public pop3::CredentialChecker {
public:
    explicit CheckerCredentials(const Instance& inst) : inst_(inst) {}
    pop3::CheckResult check_password(std::string_view user, std::string_view password) override {
        return convert(check_credentials(inst_, user, password));
    }
    pop3::CheckResult check_apop(std::string_view user, std::string_view timestamp, std::string_view digest) override {
        return convert(check_credentials(inst_, user, digest, timestamp));
    }
    // Does any user have APOP on (a users/apop that is not empty)? Only the
    // file's size is looked at, never its secrets.
    bool apop_offered() const {
        struct stat st;
        return ::stat(inst_.path("users/apop").c_str(), &st) == 0 && st.st_size > 0;
    }

private:
    static pop3::CheckResult convert(const PasswordCheck& c) {
        pop3::CheckResult r;
        switch (c.result) {
        case PasswordCheck::Result::ok: r.account = pop3::Account{c.user, c.home}; break;
        case PasswordCheck::Result::refused: r.reason = "refused by the password checker"; break;
        case PasswordCheck::Result::temporary: r.reason = c.error; r.temporary = true; break;
        }
        return r;
    }
    const Instance& inst_;
};

class FrontHandler : public Handler {
public:
    FrontHandler(pop3::Authorization& auth, const Config& cfg, const Log& log)
        : auth_(auth), cfg_(cfg), log_(log) {}

    Step line(std::string_view line) override { return convert(auth_.command(line)); }
    Step too_long() override { return convert(auth_.too_long()); }
    std::string timeout_reply() override { return auth_.timeout_reply(); }
    size_t line_limit() const override { return auth_.awaiting_response() ? pop3::max_sasl_line : pop3::max_line; }
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
        case A::starttls: out.start_tls = true; break;
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

// The TLS handshake on fds 0 and 1; nullptr (logged) when it fails.
std::unique_ptr<TlsStream> handshake(const TlsServer& server, const Config& cfg, const Log& log) {
    SslPtr ssl = server.accept_on(0, 1);
    if (!ssl) {
        log({{"event", "tls-failed"}, {"remote", cfg.remote}, {"error", tls_errors("SSL_new")}});
        return nullptr;
    }
    auto tls = std::make_unique<TlsStream>(std::move(ssl), 0, 1);
    if (!tls->handshake(static_cast<int>(cfg.timeout * 1000))) {
        log({{"event", "tls-failed"}, {"remote", cfg.remote}, {"error", tls->error()}});
        return nullptr;
    }
    log({{"event", "tls"}, {"remote", cfg.remote}, {"version", tls->version()}, {"cipher", tls->cipher()}});
    return tls;
}

// Runs the mailbox session for account on fds 0 and 1, with the bytes the
// client pipelined behind its login on fd 3. Returns only when that fails
// (logged).
void exec_session(const Instance& inst, const pop3::Account& account, const std::string& pending, const Log& log) {
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
}

// Under TLS the session cannot have the connection: the TLS state stays in
// this process, which relays between the client and the session's socket.
int relay_to_session(TlsStream& tls, const Instance& inst, const Config& cfg, const pop3::Account& account,
                     const std::string& pending, const Log& log) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
        log({{"event", "error"}, {"user", account.name}, {"error", std::string("socketpair: ") + std::strerror(errno)}});
        tls.write_all(pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"), 10000);
        return exit_status::temporary;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(sp[1], 0);
        ::dup2(sp[1], 1);
        exec_session(inst, account, pending, log);
        say(pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"));
        ::_exit(exit_status::temporary);
    }
    ::close(sp[1]);
    if (pid < 0) {
        log({{"event", "error"}, {"user", account.name}, {"error", std::string("fork: ") + std::strerror(errno)}});
        tls.write_all(pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"), 10000);
        ::close(sp[0]);
        return exit_status::temporary;
    }
    // The session has its own timeouts; this one only bounds a relay whose
    // session is gone without closing its end.
    tls_relay(tls, sp[0], static_cast<int>((cfg.timeout + 60) * 1000));
    ::close(sp[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : exit_status::temporary;
}

}  // namespace

int run_front_end(const Instance& inst, const Config& cfg, const Log& log) {
    CheckerCredentials creds(inst);
    TlsServer tls_server(inst, "pop3", "pop3d");   // control/pop3tlskey and the like first; tls/pop3d-tickets
    if (tls_server.refresh() && !tls_server.error().empty())
        log({{"event", "tls-unavailable"}, {"error", tls_server.error()}});
    std::string pending;
    pop3::Account account;
    std::unique_ptr<TlsStream> tls;
    {
        std::string timestamp;
        try {
            if (creds.apop_offered()) timestamp = pop3::make_timestamp(cfg.me);
        } catch (const std::exception& e) {
            log({{"event", "error"}, {"error", e.what()}});   // no APOP then
        }
        pop3::AuthOptions options{tls_server.available() && !cfg.implicit_tls, false, cfg.plaintext_ok};
        pop3::Authorization auth(creds, timestamp, options);
        FrontHandler handler(auth, cfg, log);
        Connection conn(handler, cfg.timeout);
        if (cfg.implicit_tls) {
            if (!tls_server.available()) {   // a client on a TLS port cannot read a reply in clear text
                log({{"event", "tls-failed"}, {"remote", cfg.remote}, {"error", "no usable certificate: see control/tlscert"}});
                return exit_status::ok;
            }
            std::unique_ptr<TlsStream> t = handshake(tls_server, cfg, log);
            if (!t) return exit_status::ok;
            auth.tls_started();
            conn.use_tls(std::move(t));
        }
        End end = conn.run(auth.greeting(), "");
        while (end == End::starttls) {
            std::unique_ptr<TlsStream> t = handshake(tls_server, cfg, log);
            if (!t) return exit_status::ok;
            auth.tls_started();
            conn.use_tls(std::move(t));
            end = conn.run("", "");
        }
        if (end != End::handoff) {
            if (end == End::timeout) log({{"event", "timeout"}, {"remote", cfg.remote}});
            if (end == End::error) log({{"event", "error"}, {"remote", cfg.remote}, {"error", conn.error()}});
            return exit_status::ok;
        }
        account = handler.account();
        pending = conn.take_pending();
        tls = conn.take_tls();
        log({{"event", "login"}, {"user", account.name}, {"method", handler.method()}, {"remote", cfg.remote}});
    }   // the event loop is gone before the exec
    if (tls) return relay_to_session(*tls, inst, cfg, account, pending, log);
    exec_session(inst, account, pending, log);
    say(pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"));
    return exit_status::temporary;
}

}  // namespace yubin::pop3d
