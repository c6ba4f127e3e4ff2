// Starting a program: posix_spawn, which glibc does with a vfork, so the
// caller's page tables are neither copied nor made copy-on-write. On the
// paths that start a program per connection or per message (yubin-listen,
// QueueInjection, the spawners) that is a third of the CPU time
// (tests/bench/smtp_bench.py).
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace yubin {

struct SpawnFd {
    int from;   // an fd of ours (close-on-exec or not)
    int to;     // where the program gets it
};

struct Spawn {
    std::string path;             // the program
    bool search_path = false;     // look path up in PATH when it has no '/' (tcpserver's PROGRAM)
    const char* const* argv = nullptr;
    char* const* envp = nullptr;  // nullptr: our environment
    std::vector<SpawnFd> fds;     // placed in order; a source that is also a target is moved out of the way first
    std::string dir;              // working directory, "" for ours
};

// Starts the program with SIGPIPE, SIGTERM, SIGINT and SIGCHLD at their
// defaults (whatever we ignore or catch) and no signal blocked. Returns 0
// and the pid, or an errno value when it could not be started (a missing
// program included).
int spawn_program(const Spawn& s, pid_t* pid);

// The same signal set-up, for a child made with fork() (one that must
// change its user first, which posix_spawn cannot do) before its exec.
void reset_child_signals();

}  // namespace yubin
