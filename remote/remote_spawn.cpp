// remote-spawn: runs remote-deliver for each job queue-manager sends on fd 0
// and reports the results, one per recipient, on fd 1. See remote-spawn(8).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "event.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "packet.hpp"
#include "queuefile.hpp"
#include "remote_result.hpp"

using namespace yubin;

namespace {

constexpr size_t max_output = 1 << 20;
constexpr size_t job_fixed_fields = 5;   // job-id, queue-id, offset, sender, domain

struct Child {
    std::string job;
    size_t rcpts = 0;
    Fd out;               // read end of remote-deliver's stdout
    EventPtr ev;
    std::string output;
};

class Spawner {
public:
    Spawner(Instance inst, event_base* base) : inst_(std::move(inst)), base_(base), log_("remote-spawn") {
        deliver_ = inst_.path("bin/remote-deliver");
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

    // The same result for every recipient of a job.
    void report_all(const std::string& job, size_t rcpts, const RemoteResult& r) {
        Packet p{job};
        for (size_t i = 0; i < rcpts; ++i)
            p.insert(p.end(), {std::string(1, r.code), r.status, r.remote_mta, r.diag_type, r.diagnostic});
        write_all(1, encode_packet(p));
    }

    // job: [job-id, queue-id, message-offset, sender, domain, rcpt...]
    void start(const Packet& p) {
        if (p.size() <= job_fixed_fields || !valid_queue_id(p[1])) throw PacketError("bad job record");
        const std::string& job = p[0];
        const size_t rcpts = p.size() - job_fixed_fields;
        const off_t offset = static_cast<off_t>(packet_number(p[2]));
        Fd msg(::open(inst_.queue_path("cur/" + p[1]).c_str(), O_RDONLY | O_CLOEXEC));
        if (!msg || ::lseek(msg.get(), offset, SEEK_SET) != offset) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "cannot open queue file " + p[1]));
            return;
        }
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "out of pipes"));
            return;
        }
        Fd rd(pipefd[0]), wr(pipefd[1]);
        // remote-deliver -i QUEUE-ID DOMAIN SENDER RCPT...
        std::vector<char*> argv{const_cast<char*>("remote-deliver"), const_cast<char*>("-i"),
                                const_cast<char*>(p[1].c_str()), const_cast<char*>(p[4].c_str()),
                                const_cast<char*>(p[3].c_str())};
        for (size_t i = job_fixed_fields; i < p.size(); ++i) argv.push_back(const_cast<char*>(p[i].c_str()));
        argv.push_back(nullptr);
        pid_t pid = spawn(argv.data(), msg.get(), wr.get());
        if (pid < 0) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "cannot run remote-deliver"));
            return;
        }
        wr.reset();
        set_nonblock(rd.get());
        Child c{job, rcpts, std::move(rd), nullptr, {}};
        c.ev = make_event(base_, c.out.get(), EV_READ | EV_PERSIST, on_output, this);
        event_add(c.ev.get(), nullptr);
        children_.emplace(pid, std::move(c));
    }

    // posix_spawn with the message on 0 and the pipe on 1; the signals this
    // program ignores get their default action back.
    pid_t spawn(char** argv, int msg, int out) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_adddup2(&fa, msg, 0);
        posix_spawn_file_actions_adddup2(&fa, out, 1);
        sigset_t def;
        sigemptyset(&def);
        for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD}) sigaddset(&def, s);
        posix_spawnattr_setsigdefault(&attr, &def);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
        pid_t pid = -1;
        if (::posix_spawn(&pid, deliver_.c_str(), &fa, &attr, argv, environ) != 0) pid = -1;
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        return pid;
    }

    void drain(int fd) {
        for (auto& [pid, c] : children_) {
            if (c.out.get() != fd) continue;
            read_output(c);
            return;
        }
    }

    // Read what is there; past max_output the rest is discarded.
    static void read_output(Child& c) {
        char buf[16384];
        for (;;) {
            ssize_t n = ::read(c.out.get(), buf, sizeof buf);
            if (n > 0) {
                if (c.output.size() < max_output)
                    c.output.append(buf, std::min(static_cast<size_t>(n), max_output - c.output.size()));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) event_del(c.ev.get());   // EOF: the exit status decides the rest
            return;
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
            report(c, status);
            children_.erase(it);
        }
        maybe_exit();
    }

    // [job-id, then for each recipient: code, status, remote-mta, diagnostic type, diagnostic]
    void report(const Child& c, int status) {
        const std::string why = WIFSIGNALED(status)
                                    ? "remote-deliver crashed (signal " + std::to_string(WTERMSIG(status)) + ")"
                                    : "remote-deliver exited " + std::to_string(WEXITSTATUS(status)) +
                                          " without a result";
        Packet p{c.job};
        size_t pos = 0;
        for (size_t i = 0; i < c.rcpts; ++i) {
            std::optional<RemoteResult> r;
            size_t nl = c.output.find('\n', pos);
            if (nl != std::string::npos) {
                r = parse_result_line(std::string_view(c.output).substr(pos, nl - pos));
                pos = nl + 1;
            }
            if (!r) r = RemoteResult::temporary("4.3.0", why);
            p.insert(p.end(), {std::string(1, r->code), r->status, r->remote_mta, r->diag_type, r->diagnostic});
        }
        if (pos != c.output.size() || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            log_({{"event", "error"}, {"job", c.job}, {"error", why}});
        write_all(1, encode_packet(p));
    }

    void maybe_exit() {
        if (eof_ && children_.empty()) event_base_loopexit(base_, nullptr);
    }

    Instance inst_;
    event_base* base_;
    Log log_;
    std::string deliver_;
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
    Log log("remote-spawn");
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
