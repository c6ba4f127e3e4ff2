#include "mbox.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

// A child process that holds an fcntl write lock on a file until told to let go.
class LockHolder {
public:
    // hold_ms < 0: hold until release(); otherwise let go after hold_ms.
    LockHolder(const std::string& path, int hold_ms) {
        int ready[2], go[2];
        REQUIRE(::pipe(ready) == 0);
        REQUIRE(::pipe(go) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(ready[0]);
            ::close(go[1]);
            int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
            struct flock lk {};
            lk.l_type = F_WRLCK;
            lk.l_whence = SEEK_SET;
            if (fd < 0 || ::fcntl(fd, F_SETLKW, &lk) < 0) ::_exit(1);
            if (::write(ready[1], "L", 1) != 1) ::_exit(1);
            if (hold_ms >= 0) {
                ::usleep(static_cast<useconds_t>(hold_ms) * 1000);
            } else {
                char c;
                while (::read(go[0], &c, 1) > 0) {}
            }
            ::_exit(0);  // the lock goes with the process
        }
        ::close(ready[1]);
        ::close(go[0]);
        go_ = go[1];
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        REQUIRE(c == 'L');
        ::close(ready[0]);
    }
    ~LockHolder() { release(); }
    LockHolder(const LockHolder&) = delete;
    LockHolder& operator=(const LockHolder&) = delete;

    // Lets go of the lock; true if the child ran without trouble.
    bool release() {
        if (go_ >= 0) ::close(go_);
        go_ = -1;
        if (pid_ <= 0) return ok_;
        int status = 0;
        ok_ = ::waitpid(pid_, &status, 0) == pid_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        pid_ = -1;
        return ok_;
    }

private:
    pid_t pid_ = -1;
    int go_ = -1;
    bool ok_ = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("mbox_from_line: From sender date, in UTC", "[mbox]") {
    CHECK(mbox_from_line("alice@example.org", 1700000000) == "From alice@example.org Tue Nov 14 22:13:20 2023\n");
    CHECK(mbox_from_line("a@b", 0) == "From a@b Thu Jan  1 00:00:00 1970\n");
    // Day of month padded to two places, like asctime().
    CHECK(mbox_from_line("a@b", 1699000000) == "From a@b Fri Nov  3 08:26:40 2023\n");
}

TEST_CASE("mbox_from_line: null sender is MAILER-DAEMON, blanks become _", "[mbox]") {
    CHECK(mbox_from_line("", 1700000000) == "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n");
    CHECK(mbox_from_line("\"a b\"@c\td", 0) == "From \"a_b\"@c_d Thu Jan  1 00:00:00 1970\n");
}

TEST_CASE("mbox_quote: mboxrd quoting of From lines", "[mbox]") {
    struct Row {
        std::string in, out;
    };
    const std::vector<Row> rows = {
        {"From me\n", ">From me\n\n"},
        {">From me\n", ">>From me\n\n"},
        {">>>From me\n", ">>>>From me\n\n"},
        {"a\nFrom b\nc\n", "a\n>From b\nc\n\n"},
        {"a\n>From b\n", "a\n>>From b\n\n"},
        {"From x\nFrom y\n", ">From x\n>From y\n\n"},
        {"From: a@b\n", "From: a@b\n\n"},                // a header, not a From_ line
        {" From x\n", " From x\n\n"},                    // not at the start of the line
        {"x From y\n", "x From y\n\n"},
        {"From\n", "From\n\n"},                          // no space after From
        {"Fromage\n", "Fromage\n\n"},
        {"from x\n", "from x\n\n"},                      // case matters
        {">From\n", ">From\n\n"},
        {"> From x\n", "> From x\n\n"},
        {">>X From\n", ">>X From\n\n"},
        {"body\nFrom ", "body\n>From \n\n"},             // last line without newline
    };
    for (const auto& r : rows) {
        INFO("message: " << r.in);
        CHECK(mbox_quote(r.in) == r.out);
    }
}

TEST_CASE("mbox_quote ends with a newline and one blank line", "[mbox]") {
    CHECK(mbox_quote("") == "\n\n");
    CHECK(mbox_quote("\n") == "\n\n");
    CHECK(mbox_quote("abc") == "abc\n\n");
    CHECK(mbox_quote("abc\n") == "abc\n\n");
    CHECK(mbox_quote("abc\n\n") == "abc\n\n\n");
    CHECK(mbox_quote("a\0b"s) == "a\0b\n\n"s);
}

TEST_CASE("mbox_deliver appends messages to an mbox", "[mbox]") {
    test::TempDir dir;
    const std::string path = dir / "mbox";
    const std::string p1 = "Return-Path: <a@b>\n", m1 = "Subject: one\n\nFrom here\nbye";
    const std::string p2 = "", m2 = "Subject: two\n\n>From there\n";

    DeliveryResult r1 = mbox_deliver(path, "a@b", 1700000000, p1, m1);
    INFO(r1.line());
    REQUIRE(r1.ok());
    CHECK(r1.text == "delivered to mbox " + path);
    CHECK(test::file_mode(path) == 0600);
    const std::string first = "From a@b Tue Nov 14 22:13:20 2023\n"
                              "Return-Path: <a@b>\nSubject: one\n\n>From here\nbye\n\n";
    CHECK(read_file(path) == first);

    DeliveryResult r2 = mbox_deliver(path, "", 1700000001, p2, m2);
    REQUIRE(r2.ok());
    const std::string second = "From MAILER-DAEMON Tue Nov 14 22:13:21 2023\n"
                               "Subject: two\n\n>>From there\n\n";
    CHECK(read_file(path) == first + second);
}

TEST_CASE("mbox_deliver fails temporarily when it cannot open the mbox", "[mbox]") {
    test::TempDir dir;
    DeliveryResult r = mbox_deliver(dir / "no/such/dir/mbox", "a@b", 0, "", "x\n");
    CHECK(r.kind == DeliveryResult::Kind::temporary);
    CHECK(r.status == "4.2.0");

    // A symbolic link is not followed.
    REQUIRE(::symlink((dir / "target").c_str(), (dir / "link").c_str()) == 0);
    DeliveryResult l = mbox_deliver(dir / "link", "a@b", 0, "", "x\n");
    CHECK(l.kind == DeliveryResult::Kind::temporary);
    CHECK_FALSE(read_file(dir / "target").has_value());
}

TEST_CASE("mbox_deliver waits for a lock held by another process", "[mbox]") {
    test::TempDir dir;
    const std::string path = dir / "mbox";
    const auto start = std::chrono::steady_clock::now();
    LockHolder holder(path, 600);
    DeliveryResult r = mbox_deliver(path, "a@b", 0, "", "waited\n", 10);
    const double waited = seconds_since(start);
    INFO(r.line());
    CHECK(r.ok());
    CHECK(waited >= 0.5);
    CHECK(waited < 5);
    CHECK(holder.release());
    CHECK(read_file(path) == "From a@b Thu Jan  1 00:00:00 1970\nwaited\n\n");
}

TEST_CASE("mbox_deliver gives up after lock_timeout with a temporary failure", "[mbox]") {
    test::TempDir dir;
    const std::string path = dir / "mbox";
    write_file_atomic(path, "From x Thu Jan  1 00:00:00 1970\nold\n\n", 0600);
    LockHolder holder(path, -1);
    const auto start = std::chrono::steady_clock::now();
    DeliveryResult r = mbox_deliver(path, "a@b", 0, "", "never\n", 1);
    const double waited = seconds_since(start);
    CHECK(r.kind == DeliveryResult::Kind::temporary);
    CHECK(r.status == "4.2.0");
    CHECK(r.text.find("cannot lock mbox " + path) == 0);
    CHECK(waited >= 0.9);
    CHECK(waited < 5);
    CHECK(holder.release());
    CHECK(read_file(path) == "From x Thu Jan  1 00:00:00 1970\nold\n\n");
}

TEST_CASE("mbox_deliver truncates back to the old size when a write fails", "[mbox]") {
    test::TempDir dir;
    const std::string path = dir / "mbox";
    const std::string old = "From x Thu Jan  1 00:00:00 1970\nold\n\n";
    write_file_atomic(path, old, 0600);
    // In a child, so that the file size limit does not touch the test process:
    // writes past 1000 bytes fail with EFBIG after a partial write.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1000, 1000};
        if (::setrlimit(RLIMIT_FSIZE, &rl) < 0) ::_exit(2);
        DeliveryResult r = mbox_deliver(path, "a@b", 0, "", std::string(5000, 'x'), 1);
        ::_exit(r.kind == DeliveryResult::Kind::temporary && r.status == "4.2.0" ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(read_file(path) == old);
}
