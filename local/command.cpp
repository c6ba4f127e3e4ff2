#include "command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io.hpp"

namespace yubin {

namespace {

double monotonic() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The child's side, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(int in, int out, const char* dir, const char* const* argv, char* const* envp) {
    ::setsid();
    int i = ::fcntl(in, F_DUPFD, 10), o = ::fcntl(out, F_DUPFD, 10);
    if (i < 0 || o < 0 || ::dup2(i, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(o, 2) < 0) ::_exit(111);
    if (::close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    sigset_t all;
    ::sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
    if (::chdir(dir) < 0) {
        const char msg[] = "cannot enter the home directory\n";
        ssize_t n = ::write(2, msg, sizeof msg - 1);
        (void)n;
        ::_exit(111);
    }
    ::execve("/bin/sh", const_cast<char* const*>(argv), envp);
    const char msg[] = "cannot run /bin/sh\n";
    ssize_t n = ::write(2, msg, sizeof msg - 1);
    (void)n;
    ::_exit(111);
}

class Output {
public:
    Output(Fd fd, size_t max) : fd_(std::move(fd)), max_(max) { set_nonblock(fd_.get()); }
    bool open() const { return static_cast<bool>(fd_); }
    int fd() const { return fd_.get(); }
    // Reads what is there (at most `budget` bytes); closes at EOF.
    void read_available(size_t budget = SIZE_MAX) {
        char buf[16384];
        while (fd_ && budget > 0) {
            ssize_t n = ::read(fd_.get(), buf, std::min(sizeof buf, budget));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return;  // EAGAIN, or an error: nothing more now
            if (n == 0) {
                fd_.reset();
                return;
            }
            budget -= static_cast<size_t>(n);
            size_t keep = std::min(static_cast<size_t>(n), max_ - std::min(max_, text.size()));
            text.append(buf, keep);
            if (keep < static_cast<size_t>(n)) truncated = true;
        }
    }
    std::string text;
    bool truncated = false;

private:
    Fd fd_;
    size_t max_;
};

// True once pid has ended; it stays a zombie (WNOWAIT) so that its pid, which
// is also the process group id, cannot be reused before the group is killed.
bool has_ended(pid_t pid) {
    siginfo_t si{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

}  // namespace

CommandResult run_command(const std::string& command, const std::string& dir,
                          const std::vector<std::string>& env, int stdin_fd, const CommandLimits& limits) {
    CommandResult r;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) {
        r.error = std::string("cannot make a pipe: ") + std::strerror(errno);
        return r;
    }
    Fd rd(p[0]), wr(p[1]);
    Fd devnull;
    int in = stdin_fd;
    if (in < 0) {
        devnull = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        in = devnull.get();
    } else if (::lseek(in, 0, SEEK_SET) < 0) {
        r.error = std::string("cannot rewind the message: ") + std::strerror(errno);
        return r;
    }
    std::vector<char*> envp;
    for (const auto& s : env) envp.push_back(const_cast<char*>(s.c_str()));
    envp.push_back(nullptr);
    const char* const argv[] = {"sh", "-c", command.c_str(), nullptr};

    const double deadline = monotonic() + limits.timeout;
    const pid_t pid = ::fork();
    if (pid < 0) {
        r.error = std::string("cannot fork: ") + std::strerror(errno);
        return r;
    }
    if (pid == 0) exec_child(in, wr.get(), dir.c_str(), argv, envp.data());
    wr.reset();
    devnull.reset();
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));   // -1 on old kernels: poll instead
    Output out(std::move(rd), limits.max_output);

    bool timed_out = false;
    while (!has_ended(pid)) {
        const double left = deadline - monotonic();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd fds[2];
        nfds_t n = 0;
        if (out.open()) fds[n++] = {out.fd(), POLLIN, 0};
        if (pidfd) fds[n++] = {pidfd.get(), POLLIN, 0};
        int ms = static_cast<int>(std::min(left * 1000 + 1, 3600e3));
        if (!pidfd) ms = std::min(ms, 20);  // no pidfd: look at the child every 20 ms
        ::poll(fds, n, ms);
        out.read_available(1 << 20);  // bounded, so that the clock is looked at again
    }
    // The shell has ended (or runs out of time): nothing of its process
    // group may outlive the delivery.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // What the shell wrote before it ended is in the pipe; a writer that left
    // the process group does not keep us reading.
    out.read_available(1 << 20);
    // Reap the members of the group that are our children (a subreaper's
    // orphans); they were all killed above.
    for (;;) {
        pid_t w = ::waitpid(-pid, nullptr, 0);
        if (w > 0 || (w < 0 && errno == EINTR)) continue;
        break;
    }
    r.output = std::move(out.text);
    r.truncated = out.truncated;
    if (timed_out) {
        r.end = CommandResult::End::timed_out;
    } else if (WIFEXITED(status)) {
        r.end = CommandResult::End::exited;
        r.code = WEXITSTATUS(status);
    } else {
        r.end = CommandResult::End::signaled;
        r.code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    return r;
}

}  // namespace yubin
