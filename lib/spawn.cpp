#include "spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "io.hpp"

namespace yubin {

namespace {
constexpr int child_default_signals[] = {SIGPIPE, SIGTERM, SIGINT, SIGCHLD};
}

int spawn_program(const Spawn& s, pid_t* pid) {
    // A source on a target fd would be overwritten by an earlier dup2, or
    // keep its close-on-exec flag on a dup2 to itself: copy such sources
    // above every target first (only when the caller had closed low fds).
    int top = -1;
    for (const SpawnFd& f : s.fds) top = std::max(top, f.to);
    std::vector<Fd> moved;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (const SpawnFd& f : s.fds) {
        int from = f.from;
        if (from <= top) {
            int copy = ::fcntl(from, F_DUPFD_CLOEXEC, top + 1);
            if (copy < 0) {
                int err = errno;
                posix_spawn_file_actions_destroy(&fa);
                return err;
            }
            moved.emplace_back(copy);
            from = copy;
        }
        posix_spawn_file_actions_adddup2(&fa, from, f.to);
    }
    if (!s.dir.empty()) posix_spawn_file_actions_addchdir_np(&fa, s.dir.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults, empty;
    sigemptyset(&defaults);
    for (int sig : child_default_signals) sigaddset(&defaults, sig);
    sigemptyset(&empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char* const* argv = const_cast<char* const*>(s.argv);
    char* const* envp = s.envp ? s.envp : environ;
    int rc = s.search_path ? ::posix_spawnp(pid, s.path.c_str(), &fa, &attr, argv, envp)
                           : ::posix_spawn(pid, s.path.c_str(), &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

void reset_child_signals() {
    for (int sig : child_default_signals) ::signal(sig, SIG_DFL);
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
}

}  // namespace yubin
