#include "maildir.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

std::string hostname() {
    char buf[256] = {};
    REQUIRE(::gethostname(buf, sizeof buf - 1) == 0);
    return buf;
}

bool all_digits(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// The parts of a unique name TIME.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<crlf size>.
struct NameParts {
    std::string time, usec, pid, counter, host, size, crlf_size;
};

std::optional<NameParts> split_unique_name(const std::string& name) {
    NameParts p;
    size_t dot = name.find('.');
    if (dot == std::string::npos || name.compare(dot, 2, ".M") != 0) return std::nullopt;
    size_t P = name.find('P', dot), Q = name.find('Q', dot), dot2 = name.find('.', dot + 1);
    size_t S = name.rfind(",S="), W = name.rfind(",W=");
    if (P == std::string::npos || Q == std::string::npos || dot2 == std::string::npos || S == std::string::npos ||
        W == std::string::npos || !(P < Q && Q < dot2 && dot2 < S && S < W))
        return std::nullopt;
    p.time = name.substr(0, dot);
    p.usec = name.substr(dot + 2, P - dot - 2);
    p.pid = name.substr(P + 1, Q - P - 1);
    p.counter = name.substr(Q + 1, dot2 - Q - 1);
    p.host = name.substr(dot2 + 1, S - dot2 - 1);
    p.size = name.substr(S + 3, W - S - 3);
    p.crlf_size = name.substr(W + 3);
    for (const auto* f : {&p.time, &p.usec, &p.pid, &p.counter, &p.size, &p.crlf_size})
        if (!all_digits(*f)) return std::nullopt;
    return p;
}

}  // namespace

TEST_CASE("maildir_host escapes / and :", "[maildir]") {
    CHECK(maildir_host("mx.example.org") == "mx.example.org");
    CHECK(maildir_host("") == "");
    CHECK(maildir_host("a/b") == "a\\057b");
    CHECK(maildir_host("a:b") == "a\\072b");
    CHECK(maildir_host("/:x:/") == "\\057\\072x\\072\\057");
    CHECK(maildir_host("back\\slash,comma") == "back\\slash,comma");
}

TEST_CASE("maildir_unique_name is TIME.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<crlf size>", "[maildir]") {
    CHECK(maildir_unique_name(1700000000, 42, 1234, 7, "mx.example.org", 512, 530) ==
          "1700000000.M42P1234Q7.mx.example.org,S=512,W=530");
    CHECK(maildir_unique_name(0, 0, 1, 0, "h", 0, 0) == "0.M0P1Q0.h,S=0,W=0");
    CHECK(maildir_unique_name(1700000000, 999999, 99999, 4000000000u, "a/b:c", 123456789, 123456999) ==
          "1700000000.M999999P99999Q4000000000.a\\057b\\072c,S=123456789,W=123456999");
}

TEST_CASE("maildir_create makes tmp, new and cur with mode 0700", "[maildir]") {
    test::TempDir dir;
    const std::string md = dir / "Maildir";
    maildir_create(md);
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
        INFO("dir: " << md + sub);
        CHECK(test::is_dir(md + sub));
        CHECK(test::file_mode(md + sub) == 0700);
    }
    CHECK(test::dir_entries(md) == std::vector<std::string>{"cur", "new", "tmp"});

    // Again on an existing maildir: no error, nothing changed.
    maildir_create(md);
    CHECK(test::dir_entries(md) == std::vector<std::string>{"cur", "new", "tmp"});

    // The parent must exist.
    try {
        maildir_create(dir / "no/such/Maildir");
        FAIL("maildir_create did not throw");
    } catch (const SysError& e) {
        CHECK(e.err() == ENOENT);
    }
}

TEST_CASE("maildir_deliver puts prefix + message into new/", "[maildir]") {
    test::TempDir dir;
    const std::string md = dir / "Maildir";
    maildir_create(md);
    const std::string prefix = "Return-Path: <a@b.example>\nDelivered-To: c@d.example\n";
    const std::string message = "Subject: test\n\nbody line\nFrom me\n\0binary\n"s;

    const time_t before = ::time(nullptr);
    DeliveryResult r = maildir_deliver(md, prefix, message);
    const time_t after = ::time(nullptr);
    INFO(r.line());
    REQUIRE(r.ok());
    CHECK(r.status == "2.0.0");

    auto names = test::dir_entries(md + "/new");
    REQUIRE(names.size() == 1);
    CHECK(test::dir_entries(md + "/tmp").empty());
    CHECK(test::dir_entries(md + "/cur").empty());
    CHECK(r.text == "delivered to maildir " + names[0]);
    CHECK(read_file(md + "/new/" + names[0]) == prefix + message);
    CHECK(test::file_mode(md + "/new/" + names[0]) == 0600);

    // TIME.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<crlf size>
    auto parts = split_unique_name(names[0]);
    REQUIRE(parts.has_value());
    CHECK(std::stoll(parts->time) >= before);
    CHECK(std::stoll(parts->time) <= after);
    CHECK(std::stoll(parts->usec) < 1000000);
    CHECK(std::stol(parts->pid) == ::getpid());
    CHECK(parts->host == maildir_host(hostname()));
    CHECK(std::stoul(parts->size) == prefix.size() + message.size());
    CHECK(std::stoull(parts->crlf_size) == crlf_size(prefix + message));
    CHECK(names[0] == maildir_unique_name(std::stol(parts->time), std::stol(parts->usec), ::getpid(),
                                          static_cast<unsigned>(std::stoul(parts->counter)), hostname(),
                                          prefix.size() + message.size(), crlf_size(prefix + message)));
}

TEST_CASE("rapid maildir deliveries get distinct names", "[maildir]") {
    test::TempDir dir;
    const std::string md = dir / "Maildir";
    maildir_create(md);
    const int n = 50;
    std::set<std::string> texts;
    for (int i = 0; i < n; ++i) {
        DeliveryResult r = maildir_deliver(md, "", "message " + std::to_string(i) + "\n");
        REQUIRE(r.ok());
        texts.insert(r.text);
    }
    CHECK(texts.size() == static_cast<size_t>(n));
    auto names = test::dir_entries(md + "/new");
    REQUIRE(names.size() == static_cast<size_t>(n));
    CHECK(test::dir_entries(md + "/tmp").empty());

    // Every message is there once, and the Q counters all differ.
    std::set<std::string> bodies, counters;
    for (const auto& name : names) {
        auto body = read_file(md + "/new/" + name);
        REQUIRE(body.has_value());
        bodies.insert(*body);
        auto parts = split_unique_name(name);
        REQUIRE(parts.has_value());
        CHECK(parts->size == std::to_string(body->size()));
        CHECK(parts->crlf_size == std::to_string(body->size() + 1));  // one LF, which POP3 sends as CRLF
        counters.insert(parts->counter);
    }
    CHECK(bodies.size() == static_cast<size_t>(n));
    CHECK(bodies.count("message 0\n") == 1);
    CHECK(bodies.count("message 49\n") == 1);
    CHECK(counters.size() == static_cast<size_t>(n));
}

TEST_CASE("maildir_deliver to a missing maildir fails temporarily", "[maildir]") {
    test::TempDir dir;
    DeliveryResult r = maildir_deliver(dir / "Maildir", "", "x\n");
    CHECK(r.kind == DeliveryResult::Kind::temporary);
    CHECK(r.status == "4.2.0");
    CHECK(r.text.find(dir / "Maildir") != std::string::npos);
    CHECK(test::dir_entries(dir.path()).empty());

    // A maildir without new/: the file written to tmp/ must not stay there.
    const std::string md = dir / "nonew";
    maildir_create(md);
    REQUIRE(::rmdir((md + "/new").c_str()) == 0);
    DeliveryResult r2 = maildir_deliver(md, "", "x\n");
    CHECK(r2.kind == DeliveryResult::Kind::temporary);
    CHECK(test::dir_entries(md + "/tmp").empty());
}

TEST_CASE("a failed write leaves nothing behind and fails temporarily", "[maildir]") {
    test::TempDir dir;
    const std::string md = dir / "Maildir";
    maildir_create(md);
    // In a child, so that the file size limit does not touch the test process:
    // writes past 1000 bytes fail with EFBIG.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1000, 1000};
        if (::setrlimit(RLIMIT_FSIZE, &rl) < 0) ::_exit(2);
        DeliveryResult r = maildir_deliver(md, "prefix\n", std::string(5000, 'x'));
        ::_exit(r.kind == DeliveryResult::Kind::temporary && r.status == "4.2.0" ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(test::dir_entries(md + "/tmp").empty());
    CHECK(test::dir_entries(md + "/new").empty());
}
