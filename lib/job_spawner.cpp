#include "job_spawner.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "instance.hpp"

namespace yubin {

JobSpawner::JobSpawner(event_base* base, const char* name, size_t max_output, int in, int out)
    : log_(name), base_(base), max_output_(max_output), in_(in), out_(out) {
    set_nonblock(in_);
    jobs_ev_ = make_event(base_, in_, EV_READ | EV_PERSIST, on_jobs, this);
    sigchld_ = make_event(base_, SIGCHLD, EV_SIGNAL | EV_PERSIST, on_sigchld, this);
    event_add(jobs_ev_.get(), nullptr);
    event_add(sigchld_.get(), nullptr);
}

void JobSpawner::on_jobs(evutil_socket_t, short, void* arg) { static_cast<JobSpawner*>(arg)->read_jobs(); }
void JobSpawner::on_sigchld(evutil_socket_t, short, void* arg) { static_cast<JobSpawner*>(arg)->reap(); }
void JobSpawner::on_output(evutil_socket_t fd, short, void* arg) { static_cast<JobSpawner*>(arg)->drain(fd); }

void JobSpawner::read_jobs() {
    char buf[65536];
    ssize_t n = ::read(in_, buf, sizeof buf);
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

void JobSpawner::track(pid_t pid, Job job, Fd out) {
    set_nonblock(out.get());
    Child c{std::move(job), std::move(out), nullptr, {}};
    c.ev = make_event(base_, c.out.get(), EV_READ | EV_PERSIST, on_output, this);
    event_add(c.ev.get(), nullptr);
    children_.emplace(pid, std::move(c));
}

void JobSpawner::drain(int fd) {
    for (auto& [pid, c] : children_) {
        if (c.out.get() != fd) continue;
        read_output(c);
        return;
    }
}

// Read what is there; past max_output_ the rest is discarded.
void JobSpawner::read_output(Child& c) {
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(c.out.get(), buf, sizeof buf);
        if (n > 0) {
            if (c.output.size() < max_output_)
                c.output.append(buf, std::min(static_cast<size_t>(n), max_output_ - c.output.size()));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) event_del(c.ev.get());  // EOF: the exit status decides the rest
        return;
    }
}

void JobSpawner::reap() {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        auto it = children_.find(pid);
        if (it == children_.end()) continue;
        Child& c = it->second;
        read_output(c);
        finished(c.job, status, c.output);
        children_.erase(it);
    }
    maybe_exit();
}

void JobSpawner::maybe_exit() {
    if (eof_ && children_.empty()) event_base_loopexit(base_, nullptr);
}

int run_job_spawner(const char* name,
                    const std::function<std::unique_ptr<JobSpawner>(const Instance&, event_base*)>& make) {
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    Log log(name);
    try {
        Instance inst = Instance::of_this_program();
        EventBasePtr base = make_event_base();
        auto spawner = make(inst, base.get());
        event_base_dispatch(base.get());
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return 111;
    }
    return 0;
}

}  // namespace yubin
