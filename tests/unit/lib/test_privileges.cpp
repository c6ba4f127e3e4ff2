#include "privileges.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace yubin;

TEST_CASE("lookup_user: root and a name that does not exist", "[privileges]") {
    auto root = lookup_user("root");
    REQUIRE(root.has_value());
    CHECK(root->uid == 0);
    CHECK(root->gid == 0);
    CHECK_FALSE(lookup_user("no-such-user-yubin").has_value());
    CHECK_FALSE(lookup_user("").has_value());
}

// In a child, since there is no way back.
TEST_CASE("become: uid, gid, no supplementary groups, no way back to root", "[privileges]") {
    if (::geteuid() != 0) SUCCEED("not root: nothing to give up");
    else {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int ok = become(Ids{65534, 65533}) == 0 && ::getuid() == 65534 && ::geteuid() == 65534 &&
                     ::getgid() == 65533 && ::getegid() == 65533 && ::getgroups(0, nullptr) == 0 &&
                     ::setuid(0) < 0 && ::setgid(0) < 0;
            std::_Exit(ok ? 0 : 1);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}

TEST_CASE("system_queue_owner: queue/ belongs to the queue user", "[privileges]") {
    test::TempDir dir;
    std::string queue = dir / "queue";
    REQUIRE(::mkdir(queue.c_str(), 0700) == 0);
    CHECK_FALSE(system_queue_owner(queue, "nobody"));  // ours: root's own single-user instance, or not root
    if (::geteuid() == 0) {
        auto nobody = lookup_user("nobody");
        REQUIRE(nobody.has_value());
        REQUIRE(::chown(queue.c_str(), nobody->uid, nobody->gid) == 0);
        auto owner = system_queue_owner(queue, "nobody");
        REQUIRE(owner.has_value());
        CHECK(owner->uid == nobody->uid);
        CHECK(owner->gid == nobody->gid);
        // Another user's single-user instance, started by root, is not a system instance.
        CHECK_FALSE(system_queue_owner(queue, "no-such-user-yubin"));
        CHECK_FALSE(system_queue_owner(queue, "root"));
        CHECK_THROWS_AS(system_queue_owner(dir / "absent"), SysError);
    }
}

TEST_CASE("ActAsOwnerOf: root makes things in another user's directory as that user", "[privileges]") {
    test::TempDir dir;
    std::string sub = dir / "home";
    REQUIRE(::mkdir(sub.c_str(), 0755) == 0);
    if (::geteuid() != 0) {
        ActAsOwnerOf as(sub);  // not root: nothing changes
        CHECK(::geteuid() == ::getuid());
    } else {
        REQUIRE(::chmod((dir / ".").c_str(), 0755) == 0);  // the owner must reach it
        REQUIRE(::chown(sub.c_str(), 65534, 65534) == 0);
        REQUIRE(::symlink("/etc", (sub + "/evil").c_str()) == 0);
        {
            ActAsOwnerOf as(sub);
            CHECK(::geteuid() == 65534);
            CHECK(::getegid() == 65534);
            REQUIRE(::mkdir((sub + "/made").c_str(), 0700) == 0);
            // Through a planted link root could write /etc; the owner cannot.
            CHECK(::mkdir((sub + "/evil/yubin-must-not-exist").c_str(), 0700) < 0);
        }
        CHECK(::geteuid() == 0);
        CHECK(::getegid() == 0);
        struct stat st;
        REQUIRE(::stat((sub + "/made").c_str(), &st) == 0);
        CHECK(st.st_uid == 65534);
        CHECK(::access("/etc/yubin-must-not-exist", F_OK) < 0);
        {
            ActAsOwnerOf as(dir / ".");  // a directory of root's: nothing changes
            CHECK(::geteuid() == 0);
        }
        CHECK_THROWS_AS(ActAsOwnerOf(sub + "/evil"), SysError);  // a link is not a directory to act for
    }
}

TEST_CASE("write_file_atomic: as root the file takes its directory's owner; a planted link is replaced",
          "[privileges][io]") {
    test::TempDir dir;
    std::string sub = dir / "users";
    REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
    std::string file = sub + "/passwd";
    write_file_atomic(file, "x\n", 0640);
    struct stat st;
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK(st.st_uid == ::geteuid());
    CHECK((st.st_mode & 07777) == 0640);
    // A link planted at the temporary name is removed, never written through.
    std::string victim = dir / "victim";
    write_file_atomic(victim, "untouched", 0600);
    REQUIRE(::symlink(victim.c_str(), (file + ".tmp").c_str()) == 0);
    write_file_atomic(file, "y\n", 0640);
    CHECK(read_file(victim) == std::optional<std::string>("untouched"));
    CHECK(read_file(file) == std::optional<std::string>("y\n"));
    if (::geteuid() == 0) {
        REQUIRE(::chown(sub.c_str(), 0, 65534) == 0);
        write_file_atomic(file, "z\n", 0640);
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK(st.st_uid == 0);
        CHECK(st.st_gid == 65534);
        CHECK((st.st_mode & 07777) == 0640);
    }
}
