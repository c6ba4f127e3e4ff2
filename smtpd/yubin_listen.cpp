// yubin-listen: a small tcpserver on libevent.
//   yubin-listen [-c LIMIT] [-x RULES] [-u UID] [-g GID] [-HRDqv] HOST PORT PROGRAM [ARG...]
// Accepts TCP connections on HOST:PORT and runs PROGRAM for each one with
// the socket on fds 0 and 1 and tcpserver's variables set. See yubin-listen(8).
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
#include <set>
#include <string_view>
#include <vector>

#include "event.hpp"
#include "io.hpp"
#include "log.hpp"
#include "netrules.hpp"
#include "spawn.hpp"

using namespace yubin;

namespace {

struct Options {
    unsigned limit = 40;
    std::string rules_file;
    long uid = -1, gid = -1;
    std::string host, port;
    std::vector<char*> argv;   // PROGRAM ARG... nullptr
};

[[noreturn]] void usage() {
    std::fputs("usage: yubin-listen [-c LIMIT] [-x RULES] [-u UID] [-g GID] HOST PORT PROGRAM [ARG...]\n", stderr);
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
    while ((opt = ::getopt(argc, argv, "+c:x:u:g:HRDqvhp")) != -1) {
        switch (opt) {
        case 'c': o.limit = static_cast<unsigned>(number(optarg, 100000)); break;
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
        // Privileges go after the bind (port 25 needs root) and before any connection.
        if (o_.gid >= 0 && (::setgroups(0, nullptr) < 0 || ::setgid(static_cast<gid_t>(o_.gid)) < 0))
            throw SysError("setgid", errno);
        if (o_.uid >= 0 && ::setuid(static_cast<uid_t>(o_.uid)) < 0) throw SysError("setuid", errno);
        accept_ev_ = make_event(base_, fd, EV_READ | EV_PERSIST, on_accept, this);
        chld_ev_ = make_event(base_, SIGCHLD, EV_SIGNAL | EV_PERSIST, on_sigchld, this);
        event_add(accept_ev_.get(), nullptr);
        event_add(chld_ev_.get(), nullptr);
        log_({{"event", "listening"}, {"address", o_.host + ":" + o_.port}, {"limit", std::to_string(o_.limit)}});
    }

private:
    static void on_accept(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->accept_one(); }
    static void on_sigchld(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->reap(); }

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
        // PROGRAM with the connection on fds 0 and 1 (c itself is close-on-exec).
        std::vector<std::string> env = base_env_;
        put_env(env, "PROTO", "TCP");
        put_env(env, "TCPREMOTEIP", remote);
        put_env(env, "TCPREMOTEPORT", remote_port);
        put_env(env, "TCPLOCALIP", local);
        put_env(env, "TCPLOCALPORT", local_port);
        put_env(env, "TCPLOCALHOST", o_.host);
        if (rule)
            for (const auto& [k, v] : rule->env) put_env(env, k, v);
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        pid_t pid;
        int err = spawn_program({o_.argv[0], true, o_.argv.data(), envp.data(), {{c, 0}, {c, 1}}, ""}, &pid);
        if (err != 0) {
            log_({{"event", "error"}, {"error", std::string("cannot run ") + o_.argv[0] + ": " + std::strerror(err)}});
            return;
        }
        children_.insert(pid);
        log_({{"event", "connect"}, {"pid", std::to_string(pid)}, {"remote", remote},
              {"active", std::to_string(children_.size())}});
        // At the limit, stop accepting (the kernel queues further clients) until one ends.
        if (children_.size() >= o_.limit) event_del(accept_ev_.get());
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
            if (!children_.erase(pid)) continue;
            log_({{"event", "end"}, {"pid", std::to_string(pid)},
                  {"status", WIFEXITED(status) ? std::to_string(WEXITSTATUS(status))
                                               : "signal " + std::to_string(WTERMSIG(status))}});
        }
        if (children_.size() < o_.limit) event_add(accept_ev_.get(), nullptr);
    }

    Options o_;
    event_base* base_;
    Log log_;
    Fd listen_;
    std::string local_ip_;
    std::vector<NetRule> rules_;
    std::vector<std::string> base_env_ = base_env();
    EventPtr accept_ev_, chld_ev_;
    std::set<pid_t> children_;
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
