#include "userfile.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

using namespace yubin;

TEST_CASE("unsafe_reason: group or other write, another owner", "[dotqmail][userfile]") {
    struct stat st {};
    st.st_uid = 1000;
    st.st_mode = S_IFREG | 0644;
    CHECK_FALSE(unsafe_reason(st, 1000).has_value());
    st.st_mode = S_IFREG | 0600;
    CHECK_FALSE(unsafe_reason(st, 1000).has_value());
    st.st_mode = S_IFREG | 0664;
    CHECK(unsafe_reason(st, 1000) == std::optional<std::string>("is writable by its group (mode 0664)"));
    st.st_mode = S_IFREG | 0646;
    CHECK(unsafe_reason(st, 1000) == std::optional<std::string>("is writable by others (mode 0646)"));
    st.st_mode = S_IFREG | 0644;
    CHECK(unsafe_reason(st, 1001) ==
          std::optional<std::string>("is owned by uid 1000, not by the recipient's uid 1001"));
    CHECK_FALSE(unsafe_reason(st, 1001, false).has_value());
    st.st_uid = 0;  // root's files are trusted by everyone, unless others may write them
    CHECK_FALSE(unsafe_reason(st, 1001).has_value());
    st.st_mode = S_IFREG | 0666;
    CHECK(unsafe_reason(st, 1001) == std::optional<std::string>("is writable by others (mode 0666)"));
}

TEST_CASE("read_user_file: absent, ok, unsafe, not regular, too large", "[dotqmail][userfile]") {
    test::TempDir dir;
    const uid_t me = ::geteuid();
    CHECK(read_user_file(dir / ".qmail", me).state == UserFile::State::absent);
    CHECK(read_user_file(dir / "nodir/.qmail", me).state == UserFile::State::absent);

    write_file_atomic(dir / ".qmail", "./Maildir/\n", 0600);
    UserFile f = read_user_file(dir / ".qmail", me);
    CHECK(f.state == UserFile::State::ok);
    CHECK(f.text == "./Maildir/\n");

    REQUIRE(::chmod((dir / ".qmail").c_str(), 0620) == 0);
    f = read_user_file(dir / ".qmail", me);
    CHECK(f.state == UserFile::State::unsafe);
    CHECK(f.reason == dir / ".qmail is writable by its group (mode 0620)");
    REQUIRE(::chmod((dir / ".qmail").c_str(), 0644) == 0);
    // Another user's file is unsafe (root's would be trusted: give it away first).
    const uid_t owner = me == 0 ? 12345 : me;
    if (me == 0) REQUIRE(::chown((dir / ".qmail").c_str(), owner, owner) == 0);
    f = read_user_file(dir / ".qmail", owner + 1);
    CHECK(f.state == UserFile::State::unsafe);
    if (me == 0) REQUIRE(::chown((dir / ".qmail").c_str(), 0, 0) == 0);

    // A symbolic link is judged by its target; a dangling one is absent.
    REQUIRE(::symlink((dir / ".qmail").c_str(), (dir / ".qmail-link").c_str()) == 0);
    CHECK(read_user_file(dir / ".qmail-link", me).state == UserFile::State::ok);
    REQUIRE(::symlink((dir / "nowhere").c_str(), (dir / ".qmail-dangling").c_str()) == 0);
    CHECK(read_user_file(dir / ".qmail-dangling", me).state == UserFile::State::absent);

    REQUIRE(::mkdir((dir / ".qmail-dir").c_str(), 0700) == 0);
    CHECK(read_user_file(dir / ".qmail-dir", me).state == UserFile::State::absent);
    REQUIRE(::mkfifo((dir / ".qmail-fifo").c_str(), 0600) == 0);
    CHECK(read_user_file(dir / ".qmail-fifo", me).state == UserFile::State::absent);

    write_file_atomic(dir / "big", std::string(100, 'x'), 0600);
    f = read_user_file(dir / "big", me, 10);
    CHECK(f.state == UserFile::State::error);
    CHECK(f.reason == dir / "big is larger than 10 bytes");
}
