// queue-injectd: the long-lived queue writer. Listens on INSTANCE/public/inject
// (a unix stream socket); each client sends its envelope, then its message,
// as netstrings, and gets the queue id and then the result. It writes the
// same queue files as queue-inject (queue/writer), and messages that end
// together share one fsync of queue/new and one trigger. See queue-injectd(8).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "event.hpp"
#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "netstring.hpp"
#include "privileges.hpp"
#include "writer.hpp"

using namespace yubin;

namespace {

constexpr size_t max_envelope = 1u << 20;
constexpr size_t max_chunk = 65536;

struct Config {
    long timeout;      // seconds a client may stay silent
    long max_clients;  // per process; above it the process stops accepting
    long processes;    // processes accepting on the socket
};

// Two processes by default: one process fsyncs its files one after another
// (about 1 ms each here), two overlap them. Measured with 3000 messages of 4 KiB
// from 10 and 50 concurrent clients on 2 CPUs: 700-980 msg/s with one
// process (12 messages per fsync of new/ at 50 clients), 1200-1340 with two.

Config read_config(const Instance& inst) {
    return {inst.control_long("timeoutinjectd", 3600, 1, 86400), inst.control_long("concurrencyinjectd", 500, 1, 10000),
            inst.control_long("injectdprocesses", 2, 1, 64)};
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r' || c == '\0') c = ' ';
    return s;
}

std::string reply_text(int code, const std::string& why) {
    std::string t = std::to_string(code) + " " + inject_exit::describe(code);
    if (!why.empty()) t += ": " + why;
    return one_line(t) + "\n";
}

class Server;

// One connection: envelope, then message chunks, then the end (`0:,`).
class Client {
public:
    enum class State { envelope, message, committing };

    Client(Server& srv, Fd fd, ucred peer);
    int fd() const { return fd_.get(); }
    void on_event(short what);
    // After the batch's commit: the final reply, then the connection closes.
    void finish(int code, const std::string& why);
    QueueFile& file() { return *file_; }

private:
    void take(const std::string& payload);
    void fail(int code, const std::string& why);
    void send(const std::string& line);

    Server& srv_;
    Fd fd_;
    ucred peer_;
    EventPtr ev_;
    NetstringReader reader_{max_envelope};
    State state_ = State::envelope;
    std::optional<QueueFile> file_;
    size_t bytes_ = 0;
};

class Server {
public:
    // socket: the path to remove at SIGTERM, when no supervisor does (one process).
    Server(const Instance& inst, const Config& cfg, int listener, const Log& log, std::string socket = "")
        : inst_(inst), cfg_(cfg), listener_(listener), log_(log), socket_(std::move(socket)), base_(make_event_base()) {
        if (!base_) throw std::runtime_error("event_base_new failed");
        accept_ev_ = make_event(base_.get(), listener_, EV_READ | EV_PERSIST, on_accept, this);
        commit_ev_ = make_event(base_.get(), -1, 0, on_commit, this);
        resume_ev_ = make_event(base_.get(), -1, 0, on_resume, this);
        term_ev_ = make_event(base_.get(), SIGTERM, EV_SIGNAL | EV_PERSIST, on_term, this);
        int_ev_ = make_event(base_.get(), SIGINT, EV_SIGNAL | EV_PERSIST, on_term, this);
        event_add(accept_ev_.get(), nullptr);
        event_add(term_ev_.get(), nullptr);
        event_add(int_ev_.get(), nullptr);
    }

    void run() {
        event_base_dispatch(base_.get());
        log_({{"event", "served"}, {"pid", std::to_string(::getpid())}, {"messages", std::to_string(messages_)},
              {"commits", std::to_string(commits_)}});
    }

    event_base* base() const { return base_.get(); }
    const Instance& inst() const { return inst_; }
    const Log& log() const { return log_; }
    QueueIds& ids() { return ids_; }
    timeval timeout() const { return seconds(static_cast<double>(cfg_.timeout)); }

    // The client has sent the end of its message: commit it with the others
    // that end in this loop iteration (the commit event runs after them).
    void ready(Client* c) {
        if (pending_.empty()) event_active(commit_ev_.get(), 0, 0);
        pending_.push_back(c);
    }
    void drop(Client* c) {
        clients_.erase(c->fd());
        if (stopping_) {
            if (clients_.empty()) event_base_loopbreak(base_.get());
            return;
        }
        if (!accepting_ && static_cast<long>(clients_.size()) < cfg_.max_clients) {
            accepting_ = true;
            event_add(accept_ev_.get(), nullptr);
        }
    }

private:
    static void on_accept(evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->accept_clients(); }
    static void on_commit(evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->commit(); }
    static void on_resume(evutil_socket_t, short, void* arg) {
        auto* s = static_cast<Server*>(arg);
        s->accepting_ = true;
        event_add(s->accept_ev_.get(), nullptr);
    }
    static void on_term(evutil_socket_t, short, void* arg) { static_cast<Server*>(arg)->stop(); }

    // A graceful stop: the socket's name is gone (new clients run
    // queue-inject), the clients already connected, also those still in the
    // listen queue, are served to their end; then the loop ends. Each is
    // bounded by the idle timeout, and yubin-start kills what is left later.
    void stop() {
        if (stopping_) return;
        if (!socket_.empty()) ::unlink(socket_.c_str());
        accept_clients();
        stopping_ = true;
        accepting_ = false;
        event_del(accept_ev_.get());
        event_del(resume_ev_.get());
        if (clients_.empty()) event_base_loopbreak(base_.get());
    }

    void pause_accepting(const timeval* for_how_long) {
        accepting_ = false;
        event_del(accept_ev_.get());
        if (for_how_long) event_add(resume_ev_.get(), for_how_long);
    }

    void accept_clients() {
        if (stopping_) return;
        while (static_cast<long>(clients_.size()) < cfg_.max_clients) {
            int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    log_({{"event", "accept-failed"}, {"error", std::strerror(errno)}});
                    timeval second = seconds(1);
                    pause_accepting(&second);
                }
                return;  // EAGAIN (another process took it), ECONNABORTED ...
            }
            Fd conn(fd);
            ucred peer{};
            socklen_t len = sizeof peer;
            if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) continue;
            clients_.emplace(fd, std::make_unique<Client>(*this, std::move(conn), peer));
        }
        pause_accepting(nullptr);
    }

    // Group commit: fsync and rename each file, one fsync of new/, one
    // trigger, then every reply.
    void commit() {
        std::vector<Client*> batch;
        batch.swap(pending_);
        ++commits_;
        messages_ += batch.size();
        std::vector<std::pair<int, std::string>> results(batch.size(), {inject_exit::ok, ""});
        bool renamed = false;
        for (size_t i = 0; i < batch.size(); ++i) {
            try {
                batch[i]->file().commit();
                renamed = true;
            } catch (const QueueWriteError& e) {
                results[i] = {e.code(), e.what()};
            }
        }
        if (renamed) {
            try {
                sync_queue_new(inst_);
            } catch (const QueueWriteError& e) {
                for (size_t i = 0; i < batch.size(); ++i)
                    if (results[i].first == inject_exit::ok) results[i] = {e.code(), e.what()};
            }
            trigger_queue_manager(inst_);
        }
        for (size_t i = 0; i < batch.size(); ++i) batch[i]->finish(results[i].first, results[i].second);
    }

    const Instance& inst_;
    Config cfg_;
    int listener_;
    const Log& log_;
    std::string socket_;
    EventBasePtr base_;
    EventPtr accept_ev_, commit_ev_, resume_ev_, term_ev_, int_ev_;
    bool accepting_ = true;
    bool stopping_ = false;
    QueueIds ids_;
    unsigned long long messages_ = 0, commits_ = 0;  // messages ended, group commits
    std::map<int, std::unique_ptr<Client>> clients_;
    std::vector<Client*> pending_;
};

Client::Client(Server& srv, Fd fd, ucred peer) : srv_(srv), fd_(std::move(fd)), peer_(peer) {
    ev_ = make_event(srv.base(), fd_.get(), EV_READ | EV_PERSIST,
                     [](evutil_socket_t, short what, void* arg) { static_cast<Client*>(arg)->on_event(what); }, this);
    timeval t = srv.timeout();
    event_add(ev_.get(), &t);
}

void Client::send(const std::string& line) {
    // At most two short lines per connection: they fit in the socket's
    // buffer, so a client that does not read cannot block us.
    ssize_t n = ::send(fd_.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

void Client::fail(int code, const std::string& why) {
    srv_.log()({{"event", "refused"}, {"uid", std::to_string(peer_.uid)}, {"pid", std::to_string(peer_.pid)},
                {"code", std::to_string(code)}, {"error", why}});
    send((state_ == State::envelope ? "!" : "") + reply_text(code, why));
    srv_.drop(this);  // deletes this; an uncommitted file is removed
}

void Client::finish(int code, const std::string& why) {
    if (code == inject_exit::ok)
        srv_.log()({{"event", "queued"}, {"id", file_->id()}, {"uid", std::to_string(peer_.uid)},
                    {"pid", std::to_string(peer_.pid)}, {"bytes", std::to_string(bytes_)}});
    else
        srv_.log()({{"event", "failed"}, {"id", file_->id()}, {"code", std::to_string(code)}, {"error", why}});
    send(reply_text(code, code == inject_exit::ok ? "" : why));
    srv_.drop(this);
}

void Client::on_event(short what) {
    if (what & EV_TIMEOUT) {
        if (state_ == State::committing) return;  // the commit event comes in this iteration
        return fail(inject_exit::timeout, "client idle for too long");
    }
    char buf[max_chunk + 64];
    const size_t want = std::min(sizeof buf, reader_.room());
    ssize_t n = want ? ::read(fd_.get(), buf, want) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (state_ == State::committing) {
        // The message is complete; what the client does now changes nothing.
        if (n <= 0) event_del(ev_.get());
        return;
    }
    if (n <= 0) {
        srv_.log()({{"event", "dropped"}, {"uid", std::to_string(peer_.uid)}, {"pid", std::to_string(peer_.pid)},
                    {"error", n == 0 ? "connection closed before the end of the message" : std::strerror(errno)}});
        srv_.drop(this);
        return;
    }
    try {
        reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
        while (state_ != State::committing) {
            auto payload = reader_.next();
            if (!payload) break;
            take(*payload);
        }
    } catch (const NetstringError& e) {
        fail(state_ == State::envelope ? inject_exit::envelope_format : inject_exit::read_error, e.what());
    } catch (const QueueWriteError& e) {
        fail(e.code(), e.what());
    }
}

void Client::take(const std::string& payload) {
    if (state_ == State::envelope) {
        Envelope env = check_envelope(payload);
        file_.emplace(srv_.inst(), srv_.ids(), ::getpid());
        file_->write(queue_file_head(::time(nullptr), peer_.uid, peer_.pid, env));
        send(file_->id() + "\n");
        state_ = State::message;
        reader_.set_max(max_chunk);
    } else if (!payload.empty()) {
        file_->write(payload);
        bytes_ += payload.size();
    } else {
        state_ = State::committing;
        srv_.ready(this);
    }
}

// INSTANCE/public/inject, a fresh socket. public/ is made (mode 0700) if
// it is missing: in a single-user instance. In a system instance yubin-setup
// made it, yubinq's with mode 0755, and the socket is then 0666.
Fd listen_socket(const Instance& inst, Log& log) {
    const std::string dir = inst.path("public"), path = dir + "/inject";
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) throw SysError("mkdir " + dir, errno);
    struct stat st;
    if (::lstat(dir.c_str(), &st) < 0) throw SysError("stat " + dir, errno);
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid())
        throw std::runtime_error(dir + " is not a directory of ours");
    const mode_t socket_mode = (st.st_mode & S_IXOTH) ? 0666 : 0600;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) throw std::runtime_error(path + ": path too long for a socket");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " is not a socket");
        ::unlink(path.c_str());
        log({{"event", "stale-socket-removed"}, {"socket", path}});
    }
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw SysError("socket", errno);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) throw SysError("bind " + path, errno);
    if (::chmod(path.c_str(), socket_mode) < 0) throw SysError("chmod " + path, errno);
    if (::listen(fd.get(), 1024) < 0) throw SysError("listen " + path, errno);
    return fd;
}

// Several processes accept on the one socket: each has its own loop and
// fsyncs, so their fsyncs overlap. The parent only supervises: one that
// dies ends them all (yubin-start then stops the instance).
int supervise(const std::vector<pid_t>& workers, const std::string& socket, const Log& log) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&mask, s);
    size_t alive = workers.size();
    bool stopping = false;
    int rc = 0;
    while (alive > 0) {
        siginfo_t si;
        timespec tick{1, 0};
        int sig = ::sigtimedwait(&mask, &si, &tick);
        bool stop = sig == SIGTERM || sig == SIGINT;
        int status;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            --alive;
            if (stopping) continue;
            stop = true;
            // Exit 0 is a worker that was told to stop: Ctrl-C or a kill of
            // the process group reaches the workers too, maybe before us.
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
            log({{"event", "worker-exit"}, {"pid", std::to_string(pid)},
                 {"status", WIFEXITED(status) ? std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status))}});
            rc = deliver_exit::temporary;
        }
        if (stop && !stopping) {
            // The name first: no client can connect once the workers take their last.
            stopping = true;
            ::unlink(socket.c_str());
            for (pid_t w : workers) ::kill(w, SIGTERM);
        }
    }
    return rc;
}

int serve(const Instance& inst, Log& log) {
    const Config cfg = read_config(inst);
    Fd listener = listen_socket(inst, log);
    const std::string path = inst.path("public/inject");
    log({{"event", "start"}, {"socket", path}, {"processes", std::to_string(cfg.processes)},
         {"timeout", std::to_string(cfg.timeout)}, {"clients", std::to_string(cfg.max_clients)}});
    int rc = 0;
    if (cfg.processes == 1) {
        Server(inst, cfg, listener.get(), log, path).run();
    } else {
        sigset_t mask, old;
        sigemptyset(&mask);
        for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&mask, s);
        ::sigprocmask(SIG_BLOCK, &mask, &old);
        std::vector<pid_t> workers;
        for (long i = 0; i < cfg.processes; ++i) {
            pid_t pid = ::fork();
            if (pid < 0) {
                log({{"event", "fork-failed"}, {"error", std::strerror(errno)}});
                break;
            }
            if (pid == 0) {
                ::sigprocmask(SIG_SETMASK, &old, nullptr);
                Server(inst, cfg, listener.get(), log).run();
                std::exit(0);
            }
            workers.push_back(pid);
        }
        rc = workers.size() == static_cast<size_t>(cfg.processes) ? 0 : deliver_exit::temporary;
        if (rc) for (pid_t w : workers) ::kill(w, SIGTERM);
        if (int r = supervise(workers, path, log)) rc = r;
    }
    // Clients that find no socket use queue-inject at once.
    ::unlink(path.c_str());
    log({{"event", "stop"}});
    return rc;
}

}  // namespace

int main(int argc, char**) {
    Log log("queue-injectd");
    ::signal(SIGPIPE, SIG_IGN);
    if (argc != 1) {
        log({{"event", "fatal"}, {"error", "usage: queue-injectd"}});
        return deliver_exit::temporary;
    }
    ::umask(027);
    try {
        Instance inst = Instance::of_this_program();
        // Root only for root's own single-user instance, whose every program runs as root.
        if ((::getuid() == 0 || ::geteuid() == 0) && !owned_by_root(inst.path("queue"))) {
            log({{"event", "fatal"},
                 {"error", "refusing to run as root on a queue that is not root's: run it as the queue's owner "
                           "(yubin-start does)"}});
            return deliver_exit::temporary;
        }
        return serve(inst, log);
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return deliver_exit::temporary;
    }
}
