// Running a delivery program: /bin/sh -c COMMAND with the message on
// stdin, its output collected up to a bound, its run time limited, and no
// process of its own left behind.
#pragma once
#include <string>
#include <vector>

namespace yubin {

struct CommandLimits {
    double timeout = 3600;        // seconds from the start to SIGKILL of the process group
    size_t max_output = 4096;     // bytes of stdout+stderr kept; the rest is read and dropped
};

struct CommandResult {
    enum class End { exited, signaled, timed_out, not_started };
    End end = End::not_started;
    int code = 0;                 // exited: the exit status; signaled: the signal
    std::string output;           // stdout and stderr, interleaved, at most max_output bytes
    bool truncated = false;       // there was more output
    std::string error;            // not_started: why
};

// Runs /bin/sh -c command in the directory dir with exactly the environment
// env and stdin_fd (rewound to offset 0) as descriptor 0 (-1: /dev/null).
// Descriptors 1 and 2 go to one pipe; every other descriptor is closed;
// signal dispositions and the signal mask are reset. The shell runs in a
// new session, so in its own process group. When the shell exits (or at the
// timeout) the whole process group is killed with SIGKILL and reaped as far
// as its members are our children: a program that leaves something running
// in the background does not hold the delivery, and output written after
// the shell's exit is not waited for.
CommandResult run_command(const std::string& command, const std::string& dir,
                          const std::vector<std::string>& env, int stdin_fd, const CommandLimits& limits);

}  // namespace yubin
