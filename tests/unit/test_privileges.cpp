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

TEST_CASE("system_instance_as_root: the queue's owner decides", "[privileges]") {
    test::TempDir dir;
    std::string queue = dir / "queue";
    REQUIRE(::mkdir(queue.c_str(), 0700) == 0);
    if (::geteuid() != 0) {
        CHECK_FALSE(system_instance_as_root(queue));
    } else {
        CHECK_FALSE(system_instance_as_root(queue));  // root's own single-user instance
        REQUIRE(::chown(queue.c_str(), 65534, 65534) == 0);
        CHECK(system_instance_as_root(queue));
        CHECK_THROWS_AS(system_instance_as_root(dir / "absent"), SysError);
    }
}

TEST_CASE("give_owner_of: a file takes its directory's owner when root writes it", "[privileges]") {
    test::TempDir dir;
    std::string sub = dir / "users";
    REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
    std::string file = sub + "/passwd";
    write_file_atomic(file, "x\n", 0600);
    struct stat st;
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK(st.st_uid == ::geteuid());
    if (::geteuid() == 0) {
        REQUIRE(::chown(sub.c_str(), 65534, 65534) == 0);
        write_file_atomic(file, "y\n", 0600);  // write_file_atomic: as root, the directory's owner
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK(st.st_uid == 65534);
        CHECK(st.st_gid == 65534);
        CHECK((st.st_mode & 07777) == 0600);
        std::string other = dir / "other";
        write_file_atomic(other, "", 0644);
        give_owner_of(sub, other);
        REQUIRE(::stat(other.c_str(), &st) == 0);
        CHECK(st.st_uid == 65534);
    }
}
