#include "inject.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcodes.hpp"
#include "io.hpp"

namespace yubin {

int run_queue_inject(const Instance& inst, std::string_view message, const Envelope& env, int message_fd) {
    int msg[2], envp[2];
    if (::pipe2(msg, O_CLOEXEC) < 0) return inject_exit::internal;
    Fd msg_r(msg[0]), msg_w(msg[1]);
    if (::pipe2(envp, O_CLOEXEC) < 0) return inject_exit::internal;
    Fd env_r(envp[0]), env_w(envp[1]);
    const std::string prog = inst.path("bin/queue-inject");
    pid_t pid = ::fork();
    if (pid < 0) return inject_exit::internal;
    if (pid == 0) {
        if (message_fd >= 0) {
            if (::dup2(message_fd, 0) < 0) std::_Exit(inject_exit::internal);
        } else if (::dup2(msg_r.get(), 0) < 0) {
            std::_Exit(inject_exit::internal);
        }
        if (::dup2(env_r.get(), 1) < 0) std::_Exit(inject_exit::internal);
        ::execl(prog.c_str(), "queue-inject", static_cast<char*>(nullptr));
        std::_Exit(inject_exit::internal);
    }
    msg_r.reset();
    env_r.reset();
    // SIGPIPE would kill us if queue-inject dies early: ignore it here and
    // let the exit status speak.
    struct sigaction ign {}, old {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
    try {
        if (message_fd < 0) write_all(msg_w.get(), message);
        msg_w.reset();
        write_all(env_w.get(), encode_qmail_envelope(env));
    } catch (const SysError&) {
        // queue-inject went away: its exit status says why
    }
    msg_w.reset();
    env_w.reset();
    ::sigaction(SIGPIPE, &old, nullptr);
    int status;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return inject_exit::internal;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return inject_exit::internal;
}

}  // namespace yubin
