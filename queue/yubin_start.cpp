// yubin-start: the supervisor (qmail-start's role). Takes the instance lock,
// connects queue-manager to local-spawn and to remote-spawn by two pipes
// each, starts the three, queue-injectd and yubin-authd, and stops them on
// SIGTERM/SIGINT.
// See yubin-start(8).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "privileges.hpp"
#include "tls.hpp"

using namespace yubin;

namespace {

constexpr int stop_timeout = 150;  // seconds before a child that ignores SIGTERM is killed

// Fork and exec INSTANCE/bin/NAME with the given fds placed on 0..n, as
// the user `as` when given. The lock fd stays open in the child, so the
// instance stays locked while any of the programs runs.
pid_t spawn(const Instance& inst, const char* name, std::optional<Ids> as,
            std::initializer_list<std::pair<int, int>> fds) {
    std::string path = inst.path(std::string("bin/") + name);
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (as) {
        if (int err = become(*as)) {
            errno = err;
            std::perror("yubin-start: cannot change user");
            std::_Exit(deliver_exit::temporary);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Move sources out of the way first, so that a dup2 cannot clobber one.
    std::vector<std::pair<int, int>> moved;
    for (auto [from, to] : fds) moved.emplace_back(::fcntl(from, F_DUPFD_CLOEXEC, 10), to);
    for (auto [from, to] : moved) ::dup2(from, to);
    ::execl(path.c_str(), name, static_cast<char*>(nullptr));
    std::perror(path.c_str());
    std::_Exit(deliver_exit::temporary);
}

}  // namespace

int main() {
    Log log("yubin-start");
    std::optional<Instance> inst;
    try {
        inst = Instance::of_this_program();
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return deliver_exit::temporary;
    }
    // The lock: inherited (not close-on-exec) by the children.
    int lock = ::open(inst->queue_path("lock/run").c_str(), O_RDWR | O_CREAT, 0600);
    if (lock < 0) {  // not "already running": most often a system instance started by another user than root
        log({{"event", "fatal"}, {"error", "cannot open " + inst->queue_path("lock/run") + ": " + std::strerror(errno)}});
        return deliver_exit::temporary;
    }
    if (::flock(lock, LOCK_EX | LOCK_NB) < 0) {
        log({{"event", "fatal"}, {"error", "already running: " + inst->queue_path("lock/run") + " is locked"}});
        return deliver_exit::temporary;
    }

    // A system instance started by root: queue-manager as the queue's
    // owner, remote-spawn as yubinr with the queue's group (to read the
    // messages), local-spawn stays root to run each delivery as the
    // mailbox's owner. Otherwise every program runs as we do.
    std::optional<Ids> manager_ids, remote_ids, local_ids;
    try {
        manager_ids = system_queue_owner(inst->queue_path());
        if (manager_ids) {
            auto remote = lookup_user(system_user::remote);
            if (!remote) throw std::runtime_error(std::string("no user ") + system_user::remote);
            remote_ids = Ids{remote->uid, manager_ids->gid};
            local_ids = Ids{0, 0};  // root, without root's supplementary groups
        }
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return deliver_exit::temporary;
    }


    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);

    int jobs[2], results[2], rjobs[2], rresults[2];
    if (::pipe2(jobs, O_CLOEXEC) < 0 || ::pipe2(results, O_CLOEXEC) < 0 || ::pipe2(rjobs, O_CLOEXEC) < 0 ||
        ::pipe2(rresults, O_CLOEXEC) < 0) {
        log({{"event", "fatal"}, {"error", "cannot make pipes"}});
        return deliver_exit::temporary;
    }
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct Child {
        const char* name;
        pid_t pid;
    };
    const bool as_root = manager_ids ? manager_ids->uid == 0 : ::geteuid() == 0;
    const bool skip_injectd = as_root && !owned_by_root(inst->path("queue"));
    // Session ticket keys for smtpd and pop3d (lib/tls.hpp), before any of
    // them can be asked for, then new every hour,
    // each file readable by the group its server runs with.
    struct Tickets {
        std::string path;
        Ids owner;
    };
    std::vector<Tickets> tickets;
    if (!skip_injectd && ::access(inst->path("tls").c_str(), W_OK) == 0) {   // never root in a user's instance
        const Ids self{::geteuid(), ::getegid()};
        auto smtpd = manager_ids ? lookup_user(system_user::smtpd) : std::nullopt;
        auto mailbox = manager_ids ? lookup_user(system_user::mailbox) : std::nullopt;
        tickets.push_back({inst->path("tls/smtpd-tickets"), smtpd ? Ids{0, smtpd->gid} : self});
        tickets.push_back({inst->path("tls/pop3d-tickets"), mailbox ? Ids{0, mailbox->gid} : self});
    }
    auto rotate_tickets = [&] {
        for (const Tickets& t : tickets) {
            try {
                rotate_ticket_keys(t.path, t.owner.uid, t.owner.gid);
            } catch (const std::exception& e) {
                log({{"event", "tickets-failed"}, {"error", e.what()}});
            }
        }
    };
    rotate_tickets();
    time_t next_rotation = ::time(nullptr) + 3600;
    Child children[] = {
        {"local-spawn", spawn(*inst, "local-spawn", local_ids, {{jobs[0], 0}, {results[1], 1}})},
        {"remote-spawn", spawn(*inst, "remote-spawn", remote_ids, {{rjobs[0], 0}, {rresults[1], 1}})},
        {"queue-manager", spawn(*inst, "queue-manager", manager_ids,
                                {{devnull, 0}, {2, 1}, {jobs[1], 3}, {results[0], 4}, {rjobs[1], 5}, {rresults[0], 6}})},
        {"queue-injectd", 0},
        {"yubin-authd", 0},
    };
    Child& manager = children[2];
    // queue-injectd runs as the queue's owner: as root only in root's own
    // single-user instance (where everything runs as root). Root starting
    // a user's instance starts none: injections run queue-inject.
    Child& injectd = children[3];
    if (!skip_injectd) injectd.pid = spawn(*inst, "queue-injectd", manager_ids, {{devnull, 0}, {2, 1}});
    // yubin-authd, the password checker that remembers, where the instance
    // has an auth/ directory (yubin-setup makes it): as the mailboxes' owner
    // in a system instance, whose group reads users/. Without it, smtpd and
    // pop3d run yubin-checkpassword for each login.
    Child& authd = children[4];
    std::optional<Ids> authd_ids;
    if (manager_ids) authd_ids = lookup_user(system_user::mailbox);   // its group reads users/
    struct stat auth_dir;
    const bool run_authd = !skip_injectd && (!manager_ids || authd_ids) &&
                           ::stat(inst->path("auth").c_str(), &auth_dir) == 0 && S_ISDIR(auth_dir.st_mode);
    if (run_authd) authd.pid = spawn(*inst, "yubin-authd", authd_ids, {{devnull, 0}, {2, 1}});
    for (int fd : {jobs[0], jobs[1], results[0], results[1], rjobs[0], rjobs[1], rresults[0], rresults[1], devnull})
        ::close(fd);
    log({{"event", "start"}, {"instance", inst->root()}, {"queue-manager", std::to_string(manager.pid)},
         {"local-spawn", std::to_string(children[0].pid)}, {"remote-spawn", std::to_string(children[1].pid)},
         {"queue-injectd", skip_injectd ? "none (root does not write another user's queue: queue-inject serves)"
                                        : std::to_string(injectd.pid)},
         {"yubin-authd", run_authd ? std::to_string(authd.pid) : "none"}});

    auto running = [&] {
        for (const Child& c : children)
            if (c.pid > 0) return true;
        return false;
    };
    bool stopping = false, failed = false;
    time_t kill_at = 0;
    // Stopping is stopping queue-manager (the spawners end when their input
    // closes) and queue-injectd.
    auto stop = [&] {
        stopping = true;
        if (manager.pid > 0) ::kill(manager.pid, SIGTERM);
        if (injectd.pid > 0) ::kill(injectd.pid, SIGTERM);
        if (authd.pid > 0) ::kill(authd.pid, SIGTERM);
        kill_at = ::time(nullptr) + stop_timeout;
    };
    while (running()) {
        siginfo_t si;
        timespec tick{1, 0};
        int sig = ::sigtimedwait(&mask, &si, &tick);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (!stopping) log({{"event", "stopping"}, {"signal", std::to_string(sig)}});
            stop();
        }
        int status;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            Child* who = nullptr;
            for (Child& c : children)
                if (c.pid == pid) who = &c;
            if (!who) continue;
            log({{"event", "exit"}, {"program", who->name},
                 {"status", WIFEXITED(status) ? std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status))}});
            who->pid = 0;
            if (!stopping) {
                // One program died: stop the others.
                failed = true;
                stop();
            }
        }
        if (!stopping && ::time(nullptr) >= next_rotation) {
            rotate_tickets();
            next_rotation = ::time(nullptr) + 3600;
        }
        if (kill_at && ::time(nullptr) >= kill_at)
            for (const Child& c : children)
                if (c.pid > 0) ::kill(c.pid, SIGKILL);
    }
    log({{"event", "stop"}});
    return failed ? deliver_exit::temporary : 0;
}
