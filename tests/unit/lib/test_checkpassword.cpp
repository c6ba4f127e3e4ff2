// lib/checkpassword: asking a checkpassword program (here small shell
// scripts that keep to the interface) and a yubin-authd-like service (a
// thread on a SOCK_SEQPACKET socket) whether a password is right.
#include "checkpassword.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

using namespace yubin;

namespace {

// A program that answers like yubin-checkpassword: body is the shell after
// the request has been read from fd 3 into $req (NULs as '|').
std::string script(const test::TempDir& dir, const std::string& name, const std::string& body) {
    std::string path = dir / name;
    write_file_atomic(path, "#!/bin/sh\nreq=$(tr '\\0' '|' <&3)\n" + body + "\n");
    REQUIRE(::chmod(path.c_str(), 0755) == 0);
    return path;
}

// A one-request service on path: answers reply (or hangs up when empty) and
// stores what it was asked.
struct Service {
    std::string path, got;
    std::thread t;
    Service(const std::string& p, std::string reply) : path(p) {
        int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
        REQUIRE(fd >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strcpy(a.sun_path, path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 1) == 0);
        t = std::thread([this, fd, reply] {
            int c = ::accept(fd, nullptr, nullptr);
            char buf[1024];
            ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n > 0) got.assign(buf, static_cast<size_t>(n));
            if (!reply.empty()) ::send(c, reply.data(), reply.size(), 0);
            ::close(c);
            ::close(fd);
        });
    }
    ~Service() { t.join(); }
};

}  // namespace

TEST_CASE("check_with_program: the request on fd 3, the answer from the exit code and fd 4", "[checkpassword]") {
    test::TempDir dir;
    std::string log = dir / "req";
    std::string ok = script(dir, "ok", "echo \"$req\" > " + log + "; printf 'alice\\0/home/alice\\0' >&4; exit 0");
    PasswordCheck c = check_with_program(ok, "Alice", "pw");
    CHECK(c.result == PasswordCheck::Result::ok);
    CHECK(c.user == "alice");
    CHECK(c.home == "/home/alice");
    CHECK(*read_file(log) == "Alice|pw|\n");
    // APOP: the timestamp is a third field
    check_with_program(ok, "alice", "0123456789abcdef0123456789abcdef", "<1.2@host>");
    CHECK(*read_file(log) == "alice|0123456789abcdef0123456789abcdef|<1.2@host>|\n");

    CHECK(check_with_program(script(dir, "no", "exit 1"), "a", "b").result == PasswordCheck::Result::refused);
    for (const char* body : {"exit 111", "exit 2", "kill -9 $$", "exit 0"}) {   // exit 0 without fd 4: not an answer
        INFO(body);
        PasswordCheck t = check_with_program(script(dir, "t", body), "a", "pw-secret-7");
        CHECK(t.result == PasswordCheck::Result::temporary);
        CHECK_FALSE(t.error.empty());
        CHECK(t.error.find("pw-secret-7") == std::string::npos);   // never the password
    }
    PasswordCheck missing = check_with_program(dir / "nothing-here", "a", "b");
    CHECK(missing.result == PasswordCheck::Result::temporary);
    CHECK(missing.error.find("cannot run") != std::string::npos);
    // more than the checkpassword limit of 512 bytes: refused without asking
    CHECK(check_with_program(ok, "alice", std::string(600, 'x')).result == PasswordCheck::Result::refused);
}

TEST_CASE("check_with_program: a program that does not answer is killed at the deadline", "[checkpassword]") {
    test::TempDir dir;
    auto t0 = std::chrono::steady_clock::now();
    PasswordCheck c = check_with_program(script(dir, "slow", "exec sleep 30"), "a", "b", {}, 300);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(c.result == PasswordCheck::Result::temporary);
    CHECK(c.error.find("in time") != std::string::npos);
    CHECK(took < std::chrono::seconds(10));
}

TEST_CASE("check_with_service: K, N and T answers; nothing when nobody answers", "[checkpassword]") {
    test::TempDir dir;
    const std::string sock = dir / "socket";
    {
        Service s(sock, std::string("Kalice\0/home/alice\0", 19));
        auto c = check_with_service(sock, "alice", "pw");
        REQUIRE(c);
        CHECK(c->result == PasswordCheck::Result::ok);
        CHECK(c->user == "alice");
        CHECK(c->home == "/home/alice");
        CHECK(s.got == std::string("alice\0pw\0", 9));
    }
    ::unlink(sock.c_str());
    {
        Service s(sock, "N");
        auto c = check_with_service(sock, "alice", "digest", "<ts@h>");
        REQUIRE(c);
        CHECK(c->result == PasswordCheck::Result::refused);
        CHECK(s.got == std::string("alice\0digest\0<ts@h>\0", 20));
    }
    ::unlink(sock.c_str());
    {
        Service s(sock, "Tusers/passwd: Permission denied");
        auto c = check_with_service(sock, "alice", "pw");
        REQUIRE(c);
        CHECK(c->result == PasswordCheck::Result::temporary);
        CHECK(c->error == "yubin-authd: users/passwd: Permission denied");
    }
    ::unlink(sock.c_str());
    {
        Service s(sock, "");   // hangs up: the caller runs the program instead
        CHECK_FALSE(check_with_service(sock, "alice", "pw"));
    }
    ::unlink(sock.c_str());
    CHECK_FALSE(check_with_service(sock, "alice", "pw"));   // no socket at all
}
