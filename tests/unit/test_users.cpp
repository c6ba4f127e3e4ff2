#include "users.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

using namespace yubin;

namespace {

bool same(const std::vector<UserEntry>& a, const std::vector<UserEntry>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].name != b[i].name || a[i].hash != b[i].hash || a[i].home != b[i].home) return false;
    return true;
}

std::string describe(const std::optional<LocalTarget>& t) {
    if (!t) return "nullopt";
    return "{" + t->user + ", " + t->home + ", " + t->ext + "}";
}

}  // namespace

TEST_CASE("parse_passwd reads NAME:HASH:HOME lines", "[users]") {
    const std::string text = "alice:$pbkdf2-sha256$1000$00$11:/srv/yubin/home/alice\n"
                             "bob.smith::/srv/yubin/home/bob.smith\n"
                             "c_3:x:/home/with:colon\n";
    auto users = parse_passwd(text);
    REQUIRE(users.size() == 3);
    CHECK(users[0].name == "alice");
    CHECK(users[0].hash == "$pbkdf2-sha256$1000$00$11");
    CHECK(users[0].home == "/srv/yubin/home/alice");
    CHECK(users[1].name == "bob.smith");
    CHECK(users[1].hash == "");
    CHECK(users[2].name == "c_3");
    CHECK(users[2].hash == "x");
    CHECK(users[2].home == "/home/with:colon");

    CHECK(format_passwd(users) == text);
    CHECK(format_passwd({}) == "");
    // The last line does not need a newline.
    auto last = parse_passwd("dave:h:/d");
    REQUIRE(last.size() == 1);
    CHECK(last[0].home == "/d");
}

TEST_CASE("format_passwd and parse_passwd round trip", "[users]") {
    const std::vector<UserEntry> users = {
        {"alice", "$pbkdf2-sha256$100000$0011$2233", "/i/home/alice"},
        {"b", "", "/i/home/b"},
        {"x.y_z9", "hash", "/"},
    };
    CHECK(format_passwd(users) ==
          "alice:$pbkdf2-sha256$100000$0011$2233:/i/home/alice\nb::/i/home/b\nx.y_z9:hash:/\n");
    CHECK(same(parse_passwd(format_passwd(users)), users));
}

TEST_CASE("parse_passwd skips bad lines", "[users]") {
    const std::string text = "# a comment\n"
                             "\n"
                             "good:h:/home/good\n"
                             "nocolon\n"
                             "one:colon\n"
                             "Upper:h:/home/upper\n"
                             "dash-name:h:/home/dash\n"
                             ".dot:h:/home/dot\n"
                             ":h:/home/empty-name\n"
                             "relative:h:home/relative\n"
                             "nohome:h:\n"
                             "sp ace:h:/x\n"
                             + std::string(33, 'a') + ":h:/long\n"
                             + std::string(32, 'b') + ":h:/long-ok\n"
                             "also.good:h2:/home/also\n";
    auto users = parse_passwd(text);
    REQUIRE(users.size() == 3);
    CHECK(users[0].name == "good");
    CHECK(users[1].name == std::string(32, 'b'));
    CHECK(users[2].name == "also.good");
    CHECK(users[2].hash == "h2");
}

TEST_CASE("valid_user_name", "[users]") {
    for (const char* ok : {"a", "alice", "bob.smith", "c_3", "0", "a.", "a..b", "_x"}) {
        INFO(ok);
        CHECK(valid_user_name(ok));
    }
    CHECK(valid_user_name(std::string(32, 'z')));
    for (const char* bad : {"", ".a", ".", "Alice", "a-b", "a+b", "a b", "a/b", "a:b", "a@b", "é", "a\n"}) {
        INFO(bad);
        CHECK_FALSE(valid_user_name(bad));
    }
    CHECK_FALSE(valid_user_name(std::string(33, 'z')));
}

TEST_CASE("load_users and save_users use INSTANCE/users/passwd", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    REQUIRE(::mkdir((dir / "users").c_str(), 0700) == 0);
    CHECK(load_users(inst).empty());  // no file yet

    const std::vector<UserEntry> users = {{"alice", "h1", dir / "home/alice"}, {"bob", "h2", dir / "home/bob"}};
    save_users(inst, users);
    CHECK(read_file(dir / "users/passwd") == format_passwd(users));
    CHECK(test::file_mode(dir / "users/passwd") == 0600);
    CHECK(same(load_users(inst), users));
    CHECK(test::dir_entries(dir / "users") == std::vector<std::string>{"passwd"});
}

TEST_CASE("resolve_local maps local parts to users", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    // resolve_local takes the list as given; "a-b" could not come from
    // users/passwd, but it shows that the longest prefix wins.
    const std::vector<UserEntry> users = {
        {"alice", "", "/h/alice"},
        {"a", "", "/h/a"},
        {"a-b", "", "/h/a-b"},
        {"bob.smith", "", "/h/bob.smith"},
        {"x.y", "", "/h/x.y"},
        {"x", "", "/h/x"},
    };
    struct Row {
        const char* local;
        std::optional<LocalTarget> want;
    };
    const std::vector<Row> rows = {
        {"alice", LocalTarget{"alice", "/h/alice", ""}},
        {"ALICE", LocalTarget{"alice", "/h/alice", ""}},
        {"AlIcE", LocalTarget{"alice", "/h/alice", ""}},
        {"bob.smith", LocalTarget{"bob.smith", "/h/bob.smith", ""}},
        {"alice-lists", LocalTarget{"alice", "/h/alice", "lists"}},
        {"Alice-Lists-Yubin", LocalTarget{"alice", "/h/alice", "lists-yubin"}},
        {"alice-", LocalTarget{"alice", "/h/alice", ""}},
        {"a", LocalTarget{"a", "/h/a", ""}},
        {"a-b", LocalTarget{"a-b", "/h/a-b", ""}},
        {"a-b-c", LocalTarget{"a-b", "/h/a-b", "c"}},
        {"a-b-c-d", LocalTarget{"a-b", "/h/a-b", "c-d"}},
        {"a-c", LocalTarget{"a", "/h/a", "c"}},
        {"a-c-b", LocalTarget{"a", "/h/a", "c-b"}},
        {"a--b", LocalTarget{"a", "/h/a", "-b"}},
        {"x.y-z", LocalTarget{"x.y", "/h/x.y", "z"}},
        {"postmaster", LocalTarget{"alias", dir / "alias", "postmaster"}},
        {"PostMaster", LocalTarget{"alias", dir / "alias", "postmaster"}},
        {"mailer-daemon", LocalTarget{"alias", dir / "alias", "mailer-daemon"}},
        {"MAILER-DAEMON", LocalTarget{"alias", dir / "alias", "mailer-daemon"}},
        {"root", LocalTarget{"alias", dir / "alias", "root"}},
        {"unknown", std::nullopt},
        {"unknown-alice", std::nullopt},
        {"-alice", std::nullopt},
        {"", std::nullopt},
        {"-", std::nullopt},
        {"alic", std::nullopt},
        {"alicea", std::nullopt},
        {"postmaster-x", std::nullopt},
        {"x.y.z", std::nullopt},
    };
    for (const auto& r : rows) {
        INFO("local part: \"" << r.local << "\"");
        auto got = resolve_local(inst, users, r.local);
        INFO("got " << describe(got) << ", want " << describe(r.want));
        REQUIRE(got.has_value() == r.want.has_value());
        if (!got) continue;
        CHECK(got->user == r.want->user);
        CHECK(got->home == r.want->home);
        CHECK(got->ext == r.want->ext);
    }
}

TEST_CASE("resolve_local: a real user named like an alias wins", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    const std::vector<UserEntry> users = {{"postmaster", "", "/h/pm"}};
    auto t = resolve_local(inst, users, "Postmaster");
    REQUIRE(t.has_value());
    CHECK(t->user == "postmaster");
    CHECK(t->home == "/h/pm");
    CHECK(t->ext == "");
    auto root = resolve_local(inst, users, "root");
    REQUIRE(root.has_value());
    CHECK(root->user == "alias");
}

TEST_CASE("resolve_local with another separator", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    const std::vector<UserEntry> users = {{"alice", "", "/h/alice"}, {"a.b", "", "/h/a.b"}, {"a", "", "/h/a"}};

    auto plus = resolve_local(inst, users, "alice+tag", '+');
    REQUIRE(plus.has_value());
    CHECK(plus->user == "alice");
    CHECK(plus->ext == "tag");
    CHECK_FALSE(resolve_local(inst, users, "alice-tag", '+').has_value());
    CHECK_FALSE(resolve_local(inst, users, "alice+tag").has_value());

    auto dot = resolve_local(inst, users, "a.b.c", '.');
    REQUIRE(dot.has_value());
    CHECK(dot->user == "a.b");
    CHECK(dot->ext == "c");
    auto dot2 = resolve_local(inst, users, "a.x.c", '.');
    REQUIRE(dot2.has_value());
    CHECK(dot2->user == "a");
    CHECK(dot2->ext == "x.c");
}
