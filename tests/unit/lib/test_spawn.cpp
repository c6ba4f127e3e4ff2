#include "spawn.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace yubin;

namespace {

// Runs `sh -c script` with fds as given and returns (exit status, what it wrote on the pipe given as `out`).
std::pair<int, std::string> run_sh(const char* script, std::vector<SpawnFd> fds, int out_w, int out_r,
                                   const std::string& dir = "") {
    const char* argv[] = {"sh", "-c", script, nullptr};
    pid_t pid = -1;
    REQUIRE(spawn_program({"sh", true, argv, nullptr, std::move(fds), dir}, &pid) == 0);
    ::close(out_w);
    std::string out = read_all(out_r);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("spawn_program: fds, directory, PATH search, signals at their defaults", "[spawn]") {
    test::TempDir dir;
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    // SIGPIPE ignored here must be back at its default in the program: a
    // write to a closed pipe kills it (status 141 from sh's view: signal 13).
    ::signal(SIGPIPE, SIG_IGN);
    auto [code, out] = run_sh("pwd; grep SigIgn /proc/self/status | tr -d '\\t'; exit 7",
                              {{in.get(), 0}, {p[1], 1}, {p[1], 2}}, p[1], p[0], dir.path());
    ::signal(SIGPIPE, SIG_DFL);
    ::close(p[0]);
    CHECK(code == 7);
    CHECK(out.rfind(dir.path() + "\n", 0) == 0);  // pwd, in dir
    // SigIgn is a hex mask: bit 12 is SIGPIPE (13); it must be clear.
    auto at = out.find("SigIgn:");
    REQUIRE(at != std::string::npos);
    unsigned long long mask = std::stoull(out.substr(at + 7, 16), nullptr, 16);
    CHECK((mask & (1ull << (SIGPIPE - 1))) == 0);
}

TEST_CASE("spawn_program: a source fd that is also a target is moved out of the way", "[spawn]") {
    // The pipe's write end is on fd 3 and must end up on 1, while /dev/null
    // goes onto 3 first: without the move, 1 would get /dev/null too.
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd rd(p[0]);
    int saved3 = ::fcntl(3, F_DUPFD_CLOEXEC, 20);  // fd 3 may be in use (Catch2, the harness): keep it
    REQUIRE(::dup3(p[1], 3, O_CLOEXEC) == 3);
    ::close(p[1]);
    Fd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    const char* argv[] = {"sh", "-c", "echo through-three; echo to-null >&3", nullptr};
    pid_t pid = -1;
    int err = spawn_program({"/bin/sh", false, argv, nullptr, {{null.get(), 3}, {3, 1}}, ""}, &pid);
    ::close(3);
    if (saved3 >= 0) {
        ::dup3(saved3, 3, O_CLOEXEC);
        ::close(saved3);
    }
    REQUIRE(err == 0);
    CHECK(read_all(rd.get()) == "through-three\n");
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("spawn_program: a missing program is an errno, not a child", "[spawn]") {
    pid_t pid = -1;
    const char* argv[] = {"nothing", nullptr};
    CHECK(spawn_program({"/nonexistent/program", false, argv, nullptr, {}, ""}, &pid) == ENOENT);
    CHECK(spawn_program({"no-such-program-yubin", true, argv, nullptr, {}, ""}, &pid) == ENOENT);
}
