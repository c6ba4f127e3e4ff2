#include "command.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

using namespace yubin;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

Fd memfd_with(const std::string& text) {
    Fd fd(::memfd_create("test", MFD_CLOEXEC));
    REQUIRE(fd);
    write_all(fd.get(), text);
    return fd;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST_CASE("run_command: exit status, output, environment, directory, stdin", "[dotqmail][command]") {
    test::TempDir dir;
    Fd in = memfd_with("line one\nline two\n");
    ::lseek(in.get(), 5, SEEK_SET);  // rewound before the program starts
    CommandLimits lim;
    lim.timeout = 30;
    CommandResult r = run_command("echo \"$FOO\"; pwd; cat; echo err >&2; exit 7", dir.path(),
                                  {"FOO=bar baz", "PATH=/usr/bin:/bin"}, in.get(), lim);
    CHECK(r.end == CommandResult::End::exited);
    CHECK(r.code == 7);
    CHECK(r.output == "bar baz\n" + dir.path() + "\nline one\nline two\nerr\n");
    CHECK_FALSE(r.truncated);

    // Exactly the environment given; the message can be read twice (seekable).
    r = run_command("env; cat >/dev/null; cat <&0", dir.path(), {"ONLY=1"}, in.get(), lim);
    CHECK(r.code == 0);
    CHECK(r.output.find("ONLY=1\n") != std::string::npos);
    CHECK(r.output.find("HOME=") == std::string::npos);

    // No stdin: /dev/null.
    r = run_command("wc -c", dir.path(), {"PATH=/usr/bin:/bin"}, -1, lim);
    CHECK(r.code == 0);
    CHECK(r.output.find('0') != std::string::npos);
}

TEST_CASE("run_command: output is bounded but the program is not blocked", "[dotqmail][command]") {
    test::TempDir dir;
    CommandLimits lim;
    lim.timeout = 30;
    lim.max_output = 100;
    CommandResult r = run_command("head -c 1000000 /dev/zero | tr '\\0' x; exit 3", dir.path(),
                                  {"PATH=/usr/bin:/bin"}, -1, lim);
    CHECK(r.end == CommandResult::End::exited);
    CHECK(r.code == 3);
    CHECK(r.output == std::string(100, 'x'));
    CHECK(r.truncated);
}

TEST_CASE("run_command: signals, missing directory, reset dispositions", "[dotqmail][command]") {
    test::TempDir dir;
    CommandLimits lim;
    lim.timeout = 30;
    CommandResult r = run_command("kill -TERM $$", dir.path(), {"PATH=/usr/bin:/bin"}, -1, lim);
    CHECK(r.end == CommandResult::End::signaled);
    CHECK(r.code == SIGTERM);

    r = run_command("true", dir / "missing", {}, -1, lim);
    CHECK(r.end == CommandResult::End::exited);
    CHECK(r.code == 111);
    CHECK(r.output == "cannot enter the home directory\n");

    // SIGPIPE ignored here is not ignored in the program.
    struct sigaction ign {}, old {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
    r = run_command("yes | head -1 >/dev/null; trap", dir.path(), {"PATH=/usr/bin:/bin"}, -1, lim);
    ::sigaction(SIGPIPE, &old, nullptr);
    CHECK(r.code == 0);
    CHECK(r.output.find("PIPE") == std::string::npos);
}

TEST_CASE("run_command: the timeout kills the whole process group", "[dotqmail][command]") {
    test::TempDir dir;
    CommandLimits lim;
    lim.timeout = 0.5;
    auto t0 = std::chrono::steady_clock::now();
    CommandResult r = run_command("echo started; (sleep 30; echo late) & echo $! > bg.pid; sleep 30", dir.path(),
                                  {"PATH=/usr/bin:/bin"}, -1, lim);
    CHECK(seconds_since(t0) < 5);
    CHECK(r.end == CommandResult::End::timed_out);
    CHECK(r.output == "started\n");
    auto pid = read_file(dir / "bg.pid");
    REQUIRE(pid);
    const pid_t bg = static_cast<pid_t>(std::stol(*pid));
    // Killed; it was reparented to init (or a subreaper), so give it a moment to be reaped.
    for (int i = 0; i < 100 && process_exists(bg); ++i) ::usleep(20000);
    CHECK_FALSE(process_exists(bg));
}

TEST_CASE("run_command: a program that leaves a background job does not hold the delivery", "[dotqmail][command]") {
    test::TempDir dir;
    CommandLimits lim;
    lim.timeout = 60;
    auto t0 = std::chrono::steady_clock::now();
    // The background job keeps the output pipe open and writes after the shell is gone.
    CommandResult r = run_command("(sleep 1; echo late; sleep 30) & echo $! > bg.pid; echo done; exit 0", dir.path(),
                                  {"PATH=/usr/bin:/bin"}, -1, lim);
    CHECK(seconds_since(t0) < 1);
    CHECK(r.end == CommandResult::End::exited);
    CHECK(r.code == 0);
    CHECK(r.output == "done\n");
    auto pid = read_file(dir / "bg.pid");
    REQUIRE(pid);
    const pid_t bg = static_cast<pid_t>(std::stol(*pid));
    for (int i = 0; i < 100 && process_exists(bg); ++i) ::usleep(20000);
    CHECK_FALSE(process_exists(bg));
}
