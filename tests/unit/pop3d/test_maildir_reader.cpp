// maildir_reader.hpp: scanning, unique ids, sizes, opening moved messages,
// UPDATE, and the session lock.
#include "maildir_reader.hpp"

#include "io.hpp"
#include "maildir.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

using namespace yubin;
using yubin::test::TempDir;
using yubin::test::dir_entries;
using yubin::test::file_mode;

namespace {

void put(const std::string& path, const std::string& content) {
    Fd fd = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write_all(fd.get(), content);
}

struct Box {
    TempDir tmp;
    std::string md = tmp / "Maildir";
    Box() { maildir_create(md); }
};

}  // namespace

TEST_CASE("base names, fields and unique ids", "[pop3_maildir]") {
    CHECK(maildir_base("123.M1P2Q3.host,S=10:2,S") == "123.M1P2Q3.host,S=10");
    CHECK(maildir_base("123.M1P2Q3.host") == "123.M1P2Q3.host");
    CHECK(maildir_field("1.M1.host,S=4096,W=4200", 'S') == 4096u);
    CHECK(maildir_field("1.M1.host,S=4096,W=4200", 'W') == 4200u);
    CHECK_FALSE(maildir_field("1.M1.host,S=4096", 'W'));
    CHECK_FALSE(maildir_field("1.M1.host,S=", 'S'));
    CHECK(pop3_uidl("1700000000.M1P2Q3.test.example,S=30") == "1700000000.M1P2Q3.test.example,S=30");
    // RFC 1939: 1 to 70 characters from 0x21 to 0x7E; others become a hash
    const std::string long_name(71, 'a');
    for (const std::string& bad : {long_name, std::string("a b"), std::string("caf\xc3\xa9")}) {
        std::string u = pop3_uidl(bad);
        CHECK(u.size() <= 70);
        CHECK(u.size() == 65);
        CHECK(u[0] == 'x');
        CHECK(u == pop3_uidl(bad));   // stable
    }
    CHECK(pop3_uidl(long_name) != pop3_uidl(long_name + "b"));
    CHECK(pop3_uidl(std::string(70, 'a')) == std::string(70, 'a'));
}

TEST_CASE("scan: new and cur, oldest first, sizes as POP3 sends them", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1700000002.M1P1Q1.h,S=6", "b\nc\nd\n");
    put(b.md + "/cur/1700000001.M1P1Q1.h,S=3:2,S", "a\n.");
    put(b.md + "/new/900000000.M1P1Q1.h", "old\n");          // fewer digits, still oldest
    put(b.md + "/new/.hidden", "x\n");                         // skipped
    put(b.md + "/tmp/1700000003.M1P1Q1.h", "in delivery\n");   // skipped: tmp/
    ::mkdir((b.md + "/new/1700000004.dir").c_str(), 0700);     // not a file
    auto m = maildir_scan(b.md);
    REQUIRE(m.size() == 3);
    CHECK(m[0].name == "900000000.M1P1Q1.h");
    CHECK(m[0].dir == "new");
    CHECK(m[0].size == 5);
    CHECK(m[1].name == "1700000001.M1P1Q1.h,S=3:2,S");
    CHECK(m[1].dir == "cur");
    CHECK(m[1].uidl == "1700000001.M1P1Q1.h,S=3");
    CHECK(m[1].size == crlf_size("a\n."));
    CHECK(m[2].size == 9);
}

TEST_CASE("scan trusts W= only when S= is the file's size", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1.M1.h,S=4,W=999", "abc\n");   // S matches: W is taken
    put(b.md + "/new/2.M1.h,S=5,W=999", "abc\n");   // S does not: counted
    put(b.md + "/new/3.M1.h,W=999", "abc\n");       // no S: counted
    auto m = maildir_scan(b.md);
    REQUIRE(m.size() == 3);
    CHECK(m[0].size == 999);
    CHECK(m[1].size == 5);
    CHECK(m[2].size == 5);
}

TEST_CASE("a base name seen twice is listed once", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1.M1.h", "x\n");
    put(b.md + "/cur/1.M1.h:2,S", "x\n");
    auto m = maildir_scan(b.md);
    REQUIRE(m.size() == 1);
    CHECK(m[0].dir == "cur");
}

TEST_CASE("open follows a message that another program moved to cur/", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1.M1.h", "moved\n");
    auto m = maildir_scan(b.md);
    REQUIRE(m.size() == 1);
    REQUIRE(::rename((b.md + "/new/1.M1.h").c_str(), (b.md + "/cur/1.M1.h:2,RS").c_str()) == 0);
    Fd fd = maildir_open(b.md, m[0]);
    REQUIRE(fd);
    CHECK(read_all(fd.get()) == "moved\n");
    CHECK(m[0].dir == "cur");
    CHECK(m[0].name == "1.M1.h:2,RS");
    REQUIRE(::unlink((b.md + "/cur/1.M1.h:2,RS").c_str()) == 0);
    CHECK_FALSE(maildir_open(b.md, m[0]));
}

TEST_CASE("update deletes the flagged, moves the rest of new/ to cur/ with the same base", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1.M1.h", "1\n");
    put(b.md + "/new/2.M1.h", "2\n");
    put(b.md + "/cur/3.M1.h:2,S", "3\n");
    put(b.md + "/new/4.M1.h", "4\n");
    auto m = maildir_scan(b.md);
    REQUIRE(m.size() == 4);
    put(b.md + "/new/5.M1.h", "arrived during the session\n");
    MaildirUpdate r = maildir_update(b.md, m, {true, false, true, false});
    CHECK(r.deleted == 2);
    CHECK(r.failed == 0);
    CHECK(r.moved == 2);
    CHECK(dir_entries(b.md + "/new") == std::vector<std::string>{"5.M1.h"});
    CHECK(dir_entries(b.md + "/cur") == std::vector<std::string>{"2.M1.h:2,", "4.M1.h:2,"});
    auto again = maildir_scan(b.md);
    REQUIRE(again.size() == 3);
    CHECK(again[0].uidl == "2.M1.h");
    CHECK(again[1].uidl == "4.M1.h");
}

TEST_CASE("update deletes a message moved meanwhile, and counts one already gone", "[pop3_maildir]") {
    Box b;
    put(b.md + "/new/1.M1.h", "1\n");
    put(b.md + "/new/2.M1.h", "2\n");
    auto m = maildir_scan(b.md);
    REQUIRE(::rename((b.md + "/new/1.M1.h").c_str(), (b.md + "/cur/1.M1.h:2,S").c_str()) == 0);
    REQUIRE(::unlink((b.md + "/new/2.M1.h").c_str()) == 0);
    MaildirUpdate r = maildir_update(b.md, m, {true, true});
    CHECK(r.deleted == 2);
    CHECK(r.failed == 0);
    CHECK(dir_entries(b.md + "/cur").empty());
}

TEST_CASE("the lock admits one holder at a time, across processes", "[pop3_maildir]") {
    Box b;
    {
        auto first = MaildirLock::try_lock(b.md);
        REQUIRE(first);
        pid_t pid = ::fork();
        if (pid == 0) {
            auto other = MaildirLock::try_lock(b.md);
            ::_exit(other ? 1 : 0);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WEXITSTATUS(status) == 0);   // refused while held
    }
    CHECK(MaildirLock::try_lock(b.md));    // free again once released
    CHECK(file_mode(b.md + "/yubin-pop3d.lock") == 0600);
}

TEST_CASE("scan of a Maildir that is not there throws", "[pop3_maildir]") {
    TempDir t;
    CHECK_THROWS_AS(maildir_scan(t / "nope"), SysError);
}
