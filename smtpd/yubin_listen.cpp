// yubin-listen: a small tcpserver on libevent.
//   yubin-listen [-c LIMIT] [-m MAXUSE] [-x RULES] [-u UID] [-g GID] [-HRDqv] HOST PORT PROGRAM [ARG...]
// Accepts TCP connections on HOST:PORT and runs PROGRAM for each one with
// the socket on fds 0 and 1 and tcpserver's variables set; with -m, hands
// each connection to a PROGRAM that is already running and serves up to
// MAXUSE connections one after another (handoff.hpp). See yubin-listen(8).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <list>
#include <set>
#include <string_view>
#include <vector>

#include "event.hpp"
#include "handoff.hpp"
#include "io.hpp"
#include "log.hpp"
#include "netrules.hpp"
#include "spawn.hpp"

using namespace yubin;

namespace {

struct Options {
    unsigned limit = 40;
    unsigned maxuse = 0;       // 0: a new PROGRAM for each connection
    std::string rules_file;
    long uid = -1, gid = -1;
    std::string host, port;
    std::vector<char*> argv;   // PROGRAM ARG... nullptr
};

[[noreturn]] void usage() {
    std::fputs("usage: yubin-listen [-c LIMIT] [-m MAXUSE] [-x RULES] [-u UID] [-g GID] HOST PORT PROGRAM [ARG...]\n", stderr);
    std::exit(100);
}

long number(const char* s, long max) {
    char* end;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > max) usage();
    return v;
}

Options parse(int argc, char** argv) {
    Options o;
    int opt;
    while ((opt = ::getopt(argc, argv, "+c:m:x:u:g:HRDqvhp")) != -1) {
        switch (opt) {
        case 'c': o.limit = static_cast<unsigned>(number(optarg, 100000)); break;
        case 'm': o.maxuse = static_cast<unsigned>(number(optarg, 1000000)); break;
        case 'x': o.rules_file = optarg; break;
        case 'u': o.uid = number(optarg, 1L << 31); break;
        case 'g': o.gid = number(optarg, 1L << 31); break;
        case 'H': case 'R': case 'D': case 'q': case 'v': case 'h': case 'p': break;  // no DNS, ever
        default: usage();
        }
    }
    if (argc - optind < 3 || o.limit == 0) usage();
    if (o.uid >= 0 && o.gid < 0) {  // or the programs would keep root's group and groups
        std::fputs("yubin-listen: -u needs -g\n", stderr);
        std::exit(100);
    }
    o.host = argv[optind];
    o.port = argv[optind + 1];
    for (int i = optind + 2; i < argc; ++i) o.argv.push_back(argv[i]);
    o.argv.push_back(nullptr);
    return o;
}

std::string numeric(const sockaddr* sa, socklen_t len, std::string* port) {
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "";
    if (port) *port = serv;
    std::string h = host;
    if (h.rfind("::ffff:", 0) == 0 && h.find('.') != std::string::npos) h = h.substr(7);  // v4-mapped
    return h;
}

class Listener {
public:
    Listener(Options o, event_base* base) : o_(std::move(o)), base_(base), log_("yubin-listen") {}

    void start() {
        if (!o_.rules_file.empty()) {
            auto text = read_file(o_.rules_file, 16 << 20);
            if (!text) throw std::runtime_error("cannot read rules file " + o_.rules_file);
            rules_ = parse_net_rules(*text);
        }
        addrinfo hints{}, *res;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        std::string host = o_.host == "0" ? "" : o_.host;
        if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), o_.port.c_str(), &hints, &res))
            throw std::runtime_error("cannot resolve " + o_.host + ":" + o_.port + ": " + ::gai_strerror(rc));
        int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            ::bind(fd, res->ai_addr, res->ai_addrlen) < 0 || ::listen(fd, 128) < 0) {
            int err = errno;
            ::freeaddrinfo(res);
            throw SysError("cannot listen on " + o_.host + ":" + o_.port, err);
        }
        local_ip_ = numeric(res->ai_addr, res->ai_addrlen, nullptr);
        ::freeaddrinfo(res);
        listen_.reset(fd);
        null_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!null_) throw SysError("/dev/null", errno);
        // Privileges go after the bind (port 25 needs root) and before any connection.
        if (o_.gid >= 0 && (::setgroups(0, nullptr) < 0 || ::setgid(static_cast<gid_t>(o_.gid)) < 0))
            throw SysError("setgid", errno);
        if (o_.uid >= 0 && ::setuid(static_cast<uid_t>(o_.uid)) < 0) throw SysError("setuid", errno);
        accept_ev_ = make_event(base_, fd, EV_READ | EV_PERSIST, on_accept, this);
        chld_ev_ = make_event(base_, SIGCHLD, EV_SIGNAL | EV_PERSIST, on_sigchld, this);
        event_add(accept_ev_.get(), nullptr);
        event_add(chld_ev_.get(), nullptr);
        if (o_.maxuse) {
            idle_ev_ = make_event(base_, -1, EV_PERSIST, on_idle_check, this);
            timeval every = seconds(idle_check_seconds);
            event_add(idle_ev_.get(), &every);
        }
        log_({{"event", "listening"}, {"address", o_.host + ":" + o_.port}, {"limit", std::to_string(o_.limit)}});
    }

private:
    static void on_accept(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->accept_one(); }
    static void on_sigchld(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->reap(); }
    static void on_idle_check(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->retire_idle(); }

    using Vars = std::vector<std::pair<std::string, std::string>>;

    // -m: a running PROGRAM, its end of the handoff socket on its fd 3.
    struct Worker {
        Listener* owner;
        pid_t pid = -1;
        Fd sock;
        EventPtr ev;
        unsigned uses = 0;
        bool busy = false;
        time_t idle_since = 0;
    };
    static constexpr int handoff_fd = 3;
    static constexpr time_t max_idle_seconds = 60;  // an idle PROGRAM ends after this
    static constexpr double idle_check_seconds = 10;

    unsigned active() const { return o_.maxuse ? busy_ : static_cast<unsigned>(children_.size()); }

    void accept_one() {
        sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int c = ::accept4(listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
        if (c < 0) return;
        Fd conn(c);
        std::string remote_port, local_port;
        std::string remote = numeric(reinterpret_cast<sockaddr*>(&ss), len, &remote_port);
        sockaddr_storage ls;
        socklen_t llen = sizeof ls;
        std::string local = local_ip_;
        if (::getsockname(c, reinterpret_cast<sockaddr*>(&ls), &llen) == 0)
            local = numeric(reinterpret_cast<sockaddr*>(&ls), llen, &local_port);
        const NetRule* rule = match_net_rule(rules_, remote);
        if (rule && !rule->allow) {
            log_({{"event", "deny"}, {"remote", remote}});
            return;
        }
        Vars vars = {{"PROTO", "TCP"},          {"TCPREMOTEIP", remote}, {"TCPREMOTEPORT", remote_port},
                     {"TCPLOCALIP", local},     {"TCPLOCALPORT", local_port}, {"TCPLOCALHOST", o_.host}};
        if (rule)
            for (const auto& [k, v] : rule->env) vars.emplace_back(k, v);
        if (o_.maxuse) hand_off(conn, vars, remote);
        else run_for(conn, vars, remote);
        // At the limit, stop accepting (the kernel queues further clients) until one ends.
        if (active() >= o_.limit) event_del(accept_ev_.get());
    }

    // PROGRAM with the connection on fds 0 and 1 (conn itself is close-on-exec).
    void run_for(const Fd& conn, const Vars& vars, const std::string& remote) {
        std::vector<std::string> env = base_env_;
        for (const auto& [k, v] : vars) put_env(env, k, v);
        std::vector<char*> envp = pointers(env);
        pid_t pid;
        const int c = conn.get();
        int err = spawn_program({o_.argv[0], true, o_.argv.data(), envp.data(), {{c, 0}, {c, 1}}, ""}, &pid);
        if (err != 0) {
            log_({{"event", "error"}, {"error", std::string("cannot run ") + o_.argv[0] + ": " + std::strerror(err)}});
            return;
        }
        children_.insert(pid);
        log_({{"event", "connect"}, {"pid", std::to_string(pid)}, {"remote", remote},
              {"active", std::to_string(children_.size())}});
    }

    // -m: the connection to the PROGRAM that became idle last (or a new
    // one); a PROGRAM that has gone meanwhile is replaced.
    void hand_off(const Fd& conn, const Vars& vars, const std::string& remote) {
        for (int attempt = 0; attempt < 3; ++attempt) {
            Worker* w = nullptr;
            if (!idle_.empty()) {
                w = idle_.back();
                idle_.pop_back();
            } else {
                w = start_worker();
                if (!w) return;
            }
            int err = send_handoff(w->sock.get(), conn.get(), vars);
            if (err == 0) {
                w->busy = true;
                ++w->uses;
                ++busy_;
                log_({{"event", "connect"}, {"pid", std::to_string(w->pid)}, {"remote", remote},
                      {"active", std::to_string(busy_)}});
                return;
            }
            if (err == EMSGSIZE || err == EINVAL) {
                idle_.push_back(w);
                log_({{"event", "error"}, {"remote", remote}, {"error", "the connection's variables cannot be handed over (too long?)"}});
                return;
            }
            remove(*w);
        }
        log_({{"event", "error"}, {"remote", remote}, {"error", std::string("cannot hand over to ") + o_.argv[0]}});
    }

    Worker* start_worker() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
            log_({{"event", "error"}, {"error", std::string("socketpair: ") + std::strerror(errno)}});
            return nullptr;
        }
        Fd mine(sv[0]), theirs(sv[1]);
        // The program's end blocks: it waits there for its next connection.
        ::fcntl(theirs.get(), F_SETFL, 0);
        std::vector<std::string> env = base_env_;
        put_env(env, handoff_variable, std::to_string(handoff_fd));
        std::vector<char*> envp = pointers(env);
        pid_t pid;
        int err = spawn_program({o_.argv[0], true, o_.argv.data(), envp.data(),
                                 {{null_.get(), 0}, {null_.get(), 1}, {theirs.get(), handoff_fd}}, ""},
                                &pid);
        if (err != 0) {
            log_({{"event", "error"}, {"error", std::string("cannot run ") + o_.argv[0] + ": " + std::strerror(err)}});
            return nullptr;
        }
        Worker& w = workers_.emplace_back();
        w.owner = this;
        w.pid = pid;
        w.sock = std::move(mine);
        w.ev = make_event(base_, w.sock.get(), EV_READ | EV_PERSIST, on_worker, &w);
        event_add(w.ev.get(), nullptr);
        worker_pids_.insert(pid);
        return &w;
    }

    static void on_worker(evutil_socket_t, short, void* arg) {
        auto* w = static_cast<Worker*>(arg);
        w->owner->worker_readable(*w);
    }

    // The PROGRAM is done with its connection (one byte), or has ended (EOF).
    void worker_readable(Worker& w) {
        char buf[16];
        ssize_t n = ::recv(w.sock.get(), buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        const bool was_busy = w.busy;
        if (w.busy) {
            w.busy = false;
            --busy_;
            log_({{"event", "end"}, {"pid", std::to_string(w.pid)}});
        }
        if (n <= 0 || !was_busy || w.uses >= o_.maxuse) {
            remove(w);  // gone, out of turn, or used up: closing its socket ends it
        } else {
            w.idle_since = ::time(nullptr);
            idle_.push_back(&w);
        }
        if (active() < o_.limit) event_add(accept_ev_.get(), nullptr);
    }

    // Only a worker that is not busy (idle, used up, or gone) is removed.
    void remove(Worker& w) {
        for (auto it = idle_.begin(); it != idle_.end(); ++it)
            if (*it == &w) {
                idle_.erase(it);
                break;
            }
        for (auto it = workers_.begin(); it != workers_.end(); ++it)
            if (&*it == &w) {
                workers_.erase(it);  // frees the event, closes the socket
                break;
            }
    }

    // Idle PROGRAMs end after max_idle_seconds; the oldest idle ones are at the front.
    void retire_idle() {
        const time_t now = ::time(nullptr);
        while (!idle_.empty() && now - idle_.front()->idle_since >= max_idle_seconds) remove(*idle_.front());
    }

    // envp for env (which must outlive it).
    static std::vector<char*> pointers(std::vector<std::string>& env) {
        std::vector<char*> p;
        for (auto& e : env) p.push_back(e.data());
        p.push_back(nullptr);
        return p;
    }

    // Sets NAME=VALUE in env, replacing an earlier NAME.
    static void put_env(std::vector<std::string>& env, std::string_view name, std::string_view value) {
        std::string entry = std::string(name) + "=" + std::string(value);
        for (auto& e : env)
            if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
                e = std::move(entry);
                return;
            }
        env.push_back(std::move(entry));
    }

    // Our environment without the variables that must not reach the program
    // from us (a rule may set RELAYCLIENT again).
    static std::vector<std::string> base_env() {
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e) {
            std::string_view kv(*e);
            std::string_view name = kv.substr(0, kv.find('='));
            if (name != "TCPREMOTEHOST" && name != "TCPREMOTEINFO" && name != "RELAYCLIENT") env.emplace_back(kv);
        }
        return env;
    }

    void reap() {
        int status;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            std::string how = WIFEXITED(status) ? std::to_string(WEXITSTATUS(status))
                                                : "signal " + std::to_string(WTERMSIG(status));
            if (children_.erase(pid)) log_({{"event", "end"}, {"pid", std::to_string(pid)}, {"status", how}});
            else if (worker_pids_.erase(pid)) log_({{"event", "exit"}, {"pid", std::to_string(pid)}, {"status", how}});
        }
        if (active() < o_.limit) event_add(accept_ev_.get(), nullptr);
    }

    Options o_;
    event_base* base_;
    Log log_;
    Fd listen_;
    std::string local_ip_;
    std::vector<NetRule> rules_;
    std::vector<std::string> base_env_ = base_env();
    Fd null_;
    EventPtr accept_ev_, chld_ev_, idle_ev_;
    std::set<pid_t> children_;                // without -m: one per connection
    std::list<Worker> workers_;               // with -m (a list: the events point at them)
    std::vector<Worker*> idle_;               // with -m, in the order they became idle
    std::set<pid_t> worker_pids_;
    unsigned busy_ = 0;
};

void on_term(evutil_socket_t, short, void* arg) { event_base_loopexit(static_cast<event_base*>(arg), nullptr); }

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    Log log("yubin-listen");
    try {
        EventBasePtr base = make_event_base();
        Listener l(std::move(o), base.get());
        l.start();
        EventPtr term = make_event(base.get(), SIGTERM, EV_SIGNAL, on_term, base.get());
        EventPtr intr = make_event(base.get(), SIGINT, EV_SIGNAL, on_term, base.get());
        event_add(term.get(), nullptr);
        event_add(intr.get(), nullptr);
        event_base_dispatch(base.get());
        log({{"event", "stop"}});
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return 111;
    }
    return 0;
}
