// smtpd [-s] [-T]: SMTP on stdin/stdout for one connection (-s: the
// submission service, RFC 6409; -T: TLS from the first byte, RFC 8314); every accepted message
// goes to queue-injectd (or, when it is not running, queue-inject). Launched by tcpserver, inetd, yubin-listen or
// sendmail -bs; under yubin-listen -m it serves one connection after another,
// each handed over by yubin-listen. See smtpd(8).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>

#include "checkpassword.hpp"
#include "event.hpp"
#include "exitcodes.hpp"
#include "handoff.hpp"
#include "inject.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "sasl.hpp"
#include "session.hpp"
#include "tls.hpp"

using namespace yubin;

namespace {

class QueueSink : public MessageSink {
public:
    explicit QueueSink(const Instance& inst) : inst_(inst) {}
    int begin(const Envelope& env, std::string& id) override {
        q_ = std::make_unique<QueueInjection>(inst_);
        if (!q_->start(env)) {
            // queue-injectd's or queue-inject's reason (a refused envelope is permanent)
            int code = q_->abort();
            q_.reset();
            return code ? code : inject_exit::internal;
        }
        id = q_->id();
        return inject_exit::ok;
    }
    void write(std::string_view data) override { q_->write(data); }
    int commit() override {
        int code = q_->finish();
        q_.reset();
        return code;
    }
    void abort() override { q_.reset(); }

private:
    const Instance& inst_;
    std::unique_ptr<QueueInjection> q_;
};

// AUTH's passwords go to the password checker (yubin-authd(8), else
// yubin-checkpassword(8)): smtpd never reads users/. The log names the
// user and the mechanism, never the password.
class CheckerAuthenticator : public Authenticator {
public:
    CheckerAuthenticator(const Instance& inst, const Log& log, const std::string& remote)
        : inst_(inst), log_(log), remote_(remote) {}
    AuthCheck check(std::string_view mechanism, std::string_view user, std::string_view password) override {
        PasswordCheck c = check_credentials(inst_, user, password);
        AuthCheck out;
        switch (c.result) {
        case PasswordCheck::Result::ok:
            out.result = AuthCheck::Result::ok;
            out.user = c.user;
            log_({{"event", "auth"}, {"user", c.user}, {"mechanism", mechanism}, {"remote", remote_}});
            break;
        case PasswordCheck::Result::refused:
            out.result = AuthCheck::Result::refused;
            log_({{"event", "auth-failed"}, {"user", user}, {"mechanism", mechanism}, {"remote", remote_}});
            break;
        case PasswordCheck::Result::temporary:
            log_({{"event", "auth-temporary"}, {"user", user}, {"mechanism", mechanism}, {"remote", remote_},
                  {"error", c.error}});
            break;
        }
        return out;
    }

private:
    const Instance& inst_;
    const Log& log_;
    const std::string& remote_;
};

// The variables of one connection: the process environment (tcpserver,
// inetd, a single connection from yubin-listen), or what yubin-listen
// handed over with a connection (handoff mode).
using Vars = std::function<const char*(const char*)>;

// The client's address: TCPREMOTEIP (tcpserver, yubin-listen), else the
// socket on fd 0 (inetd), else a local session (sendmail -bs).
void remote_from_socket(SmtpConfig& cfg) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(0, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return;
    char host[NI_MAXHOST];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0)
        cfg.remote_ip = host;
}

SmtpConfig load_config(const Instance& inst, const Vars& var) {
    SmtpConfig cfg;
    cfg.me = inst.control_string("smtpgreeting", inst.control_string("me", "localhost"));
    cfg.rcpthosts = inst.control_lines("rcpthosts");
    cfg.databytes = static_cast<size_t>(inst.control_long("databytes", 10240000, 0, 1L << 40));
    cfg.max_rcpts = static_cast<size_t>(inst.control_long("maxrcpt", 100, 1, 100000));
    cfg.maxhops = static_cast<unsigned>(inst.control_long("maxhops", 100, 1, 10000));
    if (const char* relay = var("RELAYCLIENT")) {
        cfg.relay_allowed = true;
        cfg.relay_suffix = relay;
    }
    const char* ip = var("TCPREMOTEIP");
    const char* host = var("TCPREMOTEHOST");
    cfg.remote_ip = ip ? ip : "";
    cfg.remote_host = host ? host : "";
    if (cfg.remote_ip.empty()) remote_from_socket(cfg);
    if (cfg.remote_ip.empty()) cfg.local_uid = std::to_string(::getuid());
    cfg.auth_offered = ::access(inst.path("bin/yubin-checkpassword").c_str(), X_OK) == 0;
    try {
        cfg.auth_plaintext_ok = plaintext_allowed(lowercase(inst.control_string("smtpplaintext", "no")),
                                                  cfg.remote_ip.empty() ? "local" : cfg.remote_ip);
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(std::string("control/smtpplaintext: ") + e.what());
    }
    cfg.auth_fail_delay_ms = static_cast<unsigned>(inst.control_long("smtpfaildelay", 1000, 0, 60000));
    if (auto text = read_file(inst.control_path("senderlogins"), 1 << 24)) cfg.sender_logins = SenderLogins::parse(*text);
    return cfg;
}

struct Connection {
    SmtpSession* session;
    event_base* base;
    timeval timeout;
    int write_timeout;
    EventPtr ev;
    bool gone = false;  // the client went away or stopped reading
    std::unique_ptr<TlsStream> tls;   // once TLS is on
};

void send(Connection& c, const std::string& out) {
    if (out.empty() || c.gone) return;
    if (c.tls) {
        if (!c.tls->write_all(out, c.write_timeout * 1000)) {
            c.gone = true;
            event_base_loopexit(c.base, nullptr);
        }
        return;
    }
    ::alarm(static_cast<unsigned>(c.write_timeout));  // a client that stops reading cannot hold us
    try {
        write_all(1, out);
    } catch (const SysError&) {
        c.gone = true;
        event_base_loopexit(c.base, nullptr);
    }
    ::alarm(0);
}

// The TLS handshake on fds 0 and 1 (after STARTTLS, or before the greeting
// with -T); false ends the session. The handshake has the idle timeout.
bool start_tls(Connection& c, const TlsServer& server, const Log& log, const std::string& remote) {
    SslPtr ssl = server.accept_on(0, 1);
    if (!ssl) {
        log({{"event", "tls-failed"}, {"remote", remote}, {"error", tls_errors("SSL_new")}});
        return false;
    }
    auto tls = std::make_unique<TlsStream>(std::move(ssl), 0, 1);
    if (!tls->handshake(c.write_timeout * 1000)) {
        log({{"event", "tls-failed"}, {"remote", remote}, {"error", tls->error()}});
        return false;
    }
    const std::string version = tls->version(), cipher = tls->cipher(), sni = tls->server_name();
    const std::string bits = std::to_string(tls->cipher_bits());
    log({{"event", "tls"}, {"remote", remote}, {"version", version}, {"cipher", cipher}, {"sni", sni}});
    c.session->tls_started("(using " + version + " with cipher " + cipher + " (" + bits + "/" + bits + " bits))");
    c.tls = std::move(tls);
    return true;
}

struct Input {
    Connection* c;
    const TlsServer* tls_server;
    const Log* log;
    std::string remote;
};

// What the client sent goes to the session; its replies go back (after
// the delay a failed AUTH earns). false: the session is over.
bool handle(Input& in, std::string_view bytes) {
    Connection& c = *in.c;
    std::string out = c.session->feed(bytes);
    if (unsigned delay = c.session->take_delay_ms()) {
        timespec ts{static_cast<time_t>(delay / 1000), static_cast<long>(delay % 1000) * 1000000L};
        while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
    send(c, out);
    if (c.gone) return false;
    if (c.session->wants_tls() && !start_tls(c, *in.tls_server, *in.log, in.remote)) return false;
    return !c.session->closed();
}

void on_input(evutil_socket_t fd, short what, void* arg) {
    auto* in = static_cast<Input*>(arg);
    Connection* c = in->c;
    if (what & EV_TIMEOUT) {
        send(*c, c->session->timeout_reply());
        event_base_loopexit(c->base, nullptr);
        return;
    }
    char buf[65536];
    if (c->tls) {
        // Until OpenSSL has nothing left: what it has decrypted already, no poll(2) announces.
        for (;;) {
            size_t n = 0;
            TlsStream::Io r = c->tls->read(buf, sizeof buf, n);
            if (r == TlsStream::Io::again) {
                if (!c->tls->wants_write()) break;
                pollfd p{1, POLLOUT, 0};
                if (::poll(&p, 1, c->write_timeout * 1000) <= 0) r = TlsStream::Io::error;
                else continue;
            }
            if (r != TlsStream::Io::ok || !handle(*in, std::string_view(buf, n))) {
                event_base_loopexit(c->base, nullptr);
                return;
            }
        }
    } else {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        // n == 0: the client went away; nothing half-received is kept
        if (n <= 0 || !handle(*in, std::string_view(buf, static_cast<size_t>(n)))) {
            event_base_loopexit(c->base, nullptr);
            return;
        }
    }
    event_add(c->ev.get(), &c->timeout);  // re-arm the idle timeout
}

// poll(2), not epoll: fd 0 may be a regular file (smtpd < dialog).
EventBasePtr poll_event_base() {
    event_config* ecfg = event_config_new();
    event_config_avoid_method(ecfg, "epoll");
    EventBasePtr base(event_base_new_with_config(ecfg));
    event_config_free(ecfg);
    return base;
}

struct Options {
    bool implicit_tls = false;   // -T: TLS from the first byte (port 465, RFC 8314)
    bool submission = false;     // -s: the submission service (port 587, RFC 6409)
};

// One SMTP session on fds 0 and 1. false: the configuration could not be
// read (the client got a 421).
bool serve(const Instance& inst, event_base* base, const Vars& var, const Options& opt, TlsServer& tls, Log& log) {
    SmtpConfig cfg;
    long timeout;
    try {
        cfg = load_config(inst, var);
        timeout = inst.control_long("timeoutsmtpd", 1200, 1, 86400);
        if (tls.refresh() && !tls.error().empty()) log({{"event", "tls-unavailable"}, {"error", tls.error()}});
        cfg.tls_offered = tls.available() && !opt.implicit_tls;
        cfg.submission = opt.submission;
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        const char msg[] = "421 4.3.5 Mail system configuration error; try again later\r\n";
        ssize_t n = ::write(1, msg, sizeof msg - 1);
        (void)n;
        return false;
    }
    const std::string remote = cfg.remote_ip.empty() ? "local" : cfg.remote_ip;
    QueueSink sink(inst);
    CheckerAuthenticator auth(inst, log, remote);
    SmtpSession session(cfg, sink, &auth);
    Connection c{&session, base, seconds(static_cast<double>(timeout)), static_cast<int>(timeout), nullptr};
    Input in{&c, &tls, &log, remote};
    if (opt.implicit_tls) {
        if (!tls.available()) {
            // a client on a TLS port cannot read a reply in clear text
            log({{"event", "tls-failed"}, {"remote", remote}, {"error", "no usable certificate: see control/tlscert"}});
            return true;
        }
        if (!start_tls(c, tls, log, remote)) return true;
    }
    // Until TLS, fd 0 stays blocking: on a socket it is the same file as fd
    // 1, and a full send buffer must make a reply wait (bounded by the
    // alarm), not fail. One read per readiness never blocks. TLS makes
    // both non-blocking, and waits with poll(2).
    c.ev = make_event(base, 0, EV_READ, on_input, &in);
    send(c, session.greeting());
    if (!c.gone) {
        event_add(c.ev.get(), &c.timeout);
        event_base_dispatch(base);
    }
    if (c.tls && !c.gone) c.tls->shutdown(1000);
    return true;
}

// Handoff mode (yubin-listen -m, yubin-listen(8)): yubin-listen passes each
// connection over the SOCK_SEQPACKET socket on fd HANDOFF, with its
// variables as NAME=VALUE strings, each ended by a NUL. smtpd serves it on
// fds 0 and 1, writes one byte back when the session has ended, and waits
// for the next; it ends when yubin-listen closes the socket.
int serve_handoffs(int handoff, const Instance& inst, const Options& opt, TlsServer& tls, Log& log) {
    EventBasePtr base = poll_event_base();
    Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null) return 111;
    for (;;) {
        Handoff h = receive_handoff(handoff);
        if (h.end) return 0;
        if (h.conn) {
            // The connection becomes fds 0 and 1 (not close-on-exec: queue-inject gets /dev/null anyway).
            ::dup2(h.conn.get(), 0);
            ::dup2(h.conn.get(), 1);
            h.conn.reset();
            Vars var = [&h](const char* name) -> const char* {
                auto it = h.vars.find(name);
                return it == h.vars.end() ? nullptr : it->second.c_str();
            };
            bool ok = serve(inst, base.get(), var, opt, tls, log);
            // Closing our copies ends the TCP connection.
            ::dup2(null.get(), 0);
            ::dup2(null.get(), 1);
            if (!ok) return 111;
        }
        if (!send_ready(handoff)) return 0;
    }
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);   // passwords pass through this process: no core file
    keep_log_from_client();                 // inetd: stderr is the connection
    Log log("smtpd");
    Options opt;
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "-T") {
            opt.implicit_tls = true;
        } else if (std::string_view(argv[i]) == "-s") {
            opt.submission = true;
        } else {
            log({{"event", "fatal"}, {"error", std::string("usage: smtpd [-s] [-T]; unknown argument ") + argv[i]}});
            const char msg[] = "421 4.3.5 Mail system configuration error; try again later\r\n";
            ssize_t n = ::write(1, msg, sizeof msg - 1);
            (void)n;
            return 111;
        }
    }
    std::optional<Instance> inst;
    try {
        inst = Instance::of_this_program();
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        const char msg[] = "421 4.3.5 Mail system configuration error; try again later\r\n";
        ssize_t n = ::write(1, msg, sizeof msg - 1);
        (void)n;
        return 111;
    }
    TlsServer tls(*inst, "", "smtpd");   // session tickets from tls/smtpd-tickets
    int handoff = handoff_fd_from_environment();
    if (handoff >= 0) return serve_handoffs(handoff, *inst, opt, tls, log);
    EventBasePtr base = poll_event_base();
    auto env = [](const char* name) -> const char* { return std::getenv(name); };
    return serve(*inst, base.get(), env, opt, tls, log) ? 0 : 111;
}
