// local-spawn: runs local-deliver for each job queue-manager sends on fd 0
// and reports each result on fd 1. See local-spawn(8).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>

#include "aliases.hpp"
#include "event.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "packet.hpp"
#include "privileges.hpp"
#include "queuefile.hpp"
#include "users.hpp"

using namespace yubin;

namespace {

constexpr size_t max_output = 1000;
constexpr int child_default_signals[] = {SIGPIPE, SIGTERM, SIGINT, SIGCHLD};

struct Child {
    std::string job;
    std::string queue_id;
    std::string recipient;
    Fd out;               // read end of the child's stdout+stderr
    EventPtr ev;
    std::string output;
};

class Spawner {
public:
    Spawner(Instance inst, event_base* base) : inst_(std::move(inst)), base_(base), log_("local-spawn") {
        defaultdelivery_ = inst_.control_string("defaultdelivery", "./Maildir/");
        system_ = system_instance_as_root(inst_.queue_path());
        separator_ = extension_separator(inst_);
        set_nonblock(0);
        jobs_ev_ = make_event(base_, 0, EV_READ | EV_PERSIST, on_jobs, this);
        sigchld_ = make_event(base_, SIGCHLD, EV_SIGNAL | EV_PERSIST, on_sigchld, this);
        event_add(jobs_ev_.get(), nullptr);
        event_add(sigchld_.get(), nullptr);
    }

private:
    static void on_jobs(evutil_socket_t, short, void* arg) { static_cast<Spawner*>(arg)->read_jobs(); }
    static void on_sigchld(evutil_socket_t, short, void* arg) { static_cast<Spawner*>(arg)->reap(); }
    static void on_output(evutil_socket_t fd, short, void* arg) { static_cast<Spawner*>(arg)->drain(fd); }

    void read_jobs() {
        char buf[65536];
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (n <= 0) {  // queue-manager is gone: finish the running deliveries, then exit
            event_del(jobs_ev_.get());
            eof_ = true;
            maybe_exit();
            return;
        }
        reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
        try {
            while (auto p = reader_.next()) start(*p);
        } catch (const PacketError& e) {
            log_({{"event", "fatal"}, {"error", e.what()}});
            std::_Exit(111);
        }
    }

    void report(const std::string& job, char code, const std::string& text) {
        write_all(1, encode_packet({job, std::string(1, code), text}));
    }

    // job: [job-id, queue-id, message-offset, sender, recipient, local, domain]
    void start(const Packet& p) {
        if (p.size() != 7 || !valid_queue_id(p[1])) throw PacketError("bad job record");
        const std::string& job = p[0];
        const off_t offset = static_cast<off_t>(packet_number(p[2]));
        const std::string &sender = p[3], &recipient = p[4], &local = p[5], &domain = p[6];

        std::optional<LocalTarget> target;
        try {
            auto is_alias = [this](const std::string& name) { return alias_value(inst_, name).has_value(); };
            target = resolve_local(inst_, load_users(inst_), local, separator_, is_alias);
        } catch (const std::exception& e) {
            report(job, 'Z', std::string("4.3.0 cannot look up the recipient: ") + e.what());
            return;
        }
        if (!target) {
            report(job, 'D', "5.1.1 no mailbox here by that name: " + recipient);
            return;
        }
        int msg = ::open(inst_.queue_path("cur/" + p[1]).c_str(), O_RDONLY | O_CLOEXEC);
        if (msg < 0 || ::lseek(msg, offset, SEEK_SET) != offset) {
            if (msg >= 0) ::close(msg);
            report(job, 'Z', "4.3.0 cannot open queue file " + p[1]);
            return;
        }
        Fd msgfd(msg);
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) {
            report(job, 'Z', "4.3.0 out of pipes");
            return;
        }
        Fd rd(pipefd[0]), wr(pipefd[1]);
        std::string dash = target->ext.empty() ? "" : std::string(1, separator_);
        const char* argv[] = {"local-deliver", target->user.c_str(), target->home.c_str(), local.c_str(),
                              dash.c_str(), target->ext.c_str(), domain.c_str(), sender.c_str(),
                              defaultdelivery_.c_str(), nullptr};
        // Run as root, the delivery runs as the owner of the mailbox's home
        // (yubinv in a system instance); never as root in a system instance.
        std::optional<Ids> as;
        if (::geteuid() == 0) {
            // lstat: a symbolic link in home/ (which yubinv owns) must not lend its target's owner.
            struct stat st;
            if (::lstat(target->home.c_str(), &st) < 0) {
                report(job, 'Z', "4.3.0 cannot find home " + target->home + ": " + std::strerror(errno));
                return;
            }
            if (!S_ISDIR(st.st_mode)) {
                report(job, 'Z', "4.3.0 home " + target->home + " is not a directory");
                return;
            }
            if (st.st_uid != 0) as = Ids{st.st_uid, st.st_gid};
            else if (system_) {
                report(job, 'Z', "4.3.0 will not deliver as root: " + target->home + " belongs to root");
                return;
            }
        }
        pid_t pid;
        if (int err = run_deliver(argv, msgfd.get(), wr.get(), target->home, as, &pid)) {
            report(job, 'Z', "4.3.0 cannot run local-deliver: " + std::string(std::strerror(err)));
            return;
        }
        wr.reset();
        set_nonblock(rd.get());
        Child c{job, p[1], recipient, std::move(rd), nullptr, {}};
        c.ev = make_event(base_, c.out.get(), EV_READ | EV_PERSIST, on_output, this);
        event_add(c.ev.get(), nullptr);
        children_.emplace(pid, std::move(c));
    }

    // local-deliver with the message on fd 0 and out on fds 1 and 2, in
    // home; default signal handling and an empty mask (we ignore SIGPIPE,
    // SIGTERM and SIGINT ourselves). Returns 0 or an errno value.
    int run_deliver(const char* const* argv, int msg, int out, const std::string& home, std::optional<Ids> as,
                    pid_t* pid) {
        const std::string deliver = inst_.path("bin/local-deliver");
        if (as) return fork_as(deliver, argv, msg, out, home, *as, pid);
        // posix_spawn (vfork-like): no copy-on-write faults in this process per delivery.
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, msg, 0);
        posix_spawn_file_actions_adddup2(&fa, out, 1);
        posix_spawn_file_actions_adddup2(&fa, out, 2);
        posix_spawn_file_actions_addchdir_np(&fa, home.c_str());
        posix_spawnattr_init(&attr);
        sigset_t defaults, empty;
        sigemptyset(&defaults);
        for (int sig : child_default_signals) sigaddset(&defaults, sig);
        sigemptyset(&empty);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setsigmask(&attr, &empty);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
        int rc = ::posix_spawn(pid, deliver.c_str(), &fa, &attr, const_cast<char* const*>(argv), environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        return rc;
    }

    // The same with a change of user, which posix_spawn cannot do. The
    // child reports a failure before exec through a close-on-exec pipe.
    static int fork_as(const std::string& deliver, const char* const* argv, int msg, int out, const std::string& home,
                       Ids as, pid_t* pid) {
        int status[2];
        if (::pipe2(status, O_CLOEXEC) < 0) return errno;
        Fd status_rd(status[0]), status_wr(status[1]);
        *pid = ::fork();
        if (*pid < 0) return errno;
        if (*pid == 0) {
            int err = 0;
            if (::dup2(msg, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) err = errno;
            for (int sig : child_default_signals) ::signal(sig, SIG_DFL);
            sigset_t empty;
            sigemptyset(&empty);
            ::sigprocmask(SIG_SETMASK, &empty, nullptr);
            if (!err) err = become(as);
            if (!err && ::chdir(home.c_str()) < 0) err = errno;
            if (!err) ::execve(deliver.c_str(), const_cast<char* const*>(argv), environ);
            if (!err) err = errno;
            ssize_t n = ::write(status_wr.get(), &err, sizeof err);
            (void)n;
            std::_Exit(111);
        }
        status_wr.reset();
        int err = 0;
        ssize_t n;
        while ((n = ::read(status_rd.get(), &err, sizeof err)) < 0 && errno == EINTR) {}
        if (n == static_cast<ssize_t>(sizeof err)) {  // exec failed: the child is gone already
            while (::waitpid(*pid, nullptr, 0) < 0 && errno == EINTR) {}
            return err;
        }
        return 0;
    }

    void drain(int fd) {
        for (auto& [pid, c] : children_) {
            if (c.out.get() != fd) continue;
            read_output(c);
            return;
        }
    }

    // Read what is there; past max_output the rest is discarded.
    static bool read_output(Child& c) {
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(c.out.get(), buf, sizeof buf);
            if (n > 0) {
                if (c.output.size() < max_output)
                    c.output.append(buf, std::min(static_cast<size_t>(n), max_output - c.output.size()));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) {  // EOF: stop watching; the exit status decides
                event_del(c.ev.get());
                return true;
            }
            return false;
        }
    }

    void reap() {
        int status;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            auto it = children_.find(pid);
            if (it == children_.end()) continue;
            Child& c = it->second;
            read_output(c);
            std::string text = first_line(c.output);
            char code;
            if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 99)) code = 'K';
            else if (WIFEXITED(status) && WEXITSTATUS(status) == 100) code = 'D';
            else code = 'Z';
            if (text.empty())
                text = WIFSIGNALED(status) ? "4.3.0 local-deliver crashed (signal " +
                                                 std::to_string(WTERMSIG(status)) + ")"
                                           : "4.3.0 local-deliver gave no reason";
            report(c.job, code, text);
            children_.erase(it);
        }
        maybe_exit();
    }

    static std::string first_line(const std::string& s) {
        std::string line = s.substr(0, s.find('\n'));
        for (char& ch : line)
            if (static_cast<unsigned char>(ch) < ' ') ch = ' ';
        return trim(line);
    }

    void maybe_exit() {
        if (eof_ && children_.empty()) event_base_loopexit(base_, nullptr);
    }

    Instance inst_;
    event_base* base_;
    Log log_;
    std::string defaultdelivery_;
    char separator_ = '-';
    bool system_ = false;
    EventPtr jobs_ev_, sigchld_;
    PacketReader reader_;
    std::map<pid_t, Child> children_;
    bool eof_ = false;
};

}  // namespace

int main() {
    ::signal(SIGPIPE, SIG_IGN);
    // SIGTERM: keep going until queue-manager closes our input; yubin-start stops it first.
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    Log log("local-spawn");
    try {
        Instance inst = Instance::of_this_program();
        EventBasePtr base = make_event_base();
        Spawner spawner(inst, base.get());
        event_base_dispatch(base.get());
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return 111;
    }
    return 0;
}
