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
    return "{" + t->user + ", " + t->home + ", " + t->ext + (t->alias ? ", alias" : "") + "}";
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

TEST_CASE("apop file: parse, format, invalid lines skipped", "[users]") {
    auto e = parse_apop("alice:se:cret\n# comment\nBad Name:x\nbob:\n\ncarol:pw");
    REQUIRE(e.size() == 2);
    CHECK(e[0].name == "alice");
    CHECK(e[0].secret == "se:cret");
    CHECK(e[1].name == "carol");
    CHECK(format_apop(e) == "alice:se:cret\ncarol:pw\n");
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
    CHECK(test::file_mode(dir / "users/passwd") == 0640);  // the group: pop3d in a system instance
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
        {"postmaster", LocalTarget{"alias", dir / "alias", "postmaster", true}},
        {"PostMaster", LocalTarget{"alias", dir / "alias", "postmaster", true}},
        {"mailer-daemon", LocalTarget{"alias", dir / "alias", "mailer-daemon", true}},
        {"MAILER-DAEMON", LocalTarget{"alias", dir / "alias", "mailer-daemon", true}},
        {"root", LocalTarget{"alias", dir / "alias", "root", true}},
        // No user: the alias home, whose files decide (local-deliver).
        {"unknown", LocalTarget{"alias", dir / "alias", "unknown", true}},
        {"Unknown-Alice", LocalTarget{"alias", dir / "alias", "unknown-alice", true}},
        {"-alice", LocalTarget{"alias", dir / "alias", "-alice", true}},
        {"-", LocalTarget{"alias", dir / "alias", "-", true}},
        {"alic", LocalTarget{"alias", dir / "alias", "alic", true}},
        {"alicea", LocalTarget{"alias", dir / "alias", "alicea", true}},
        {"postmaster-x", LocalTarget{"alias", dir / "alias", "postmaster-x", true}},
        {"x.y.z", LocalTarget{"alias", dir / "alias", "x.y.z", true}},
        {"", std::nullopt},
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
        CHECK(got->alias == r.want->alias);
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
    // Without the separator in use the local part names no user: the alias home.
    CHECK(resolve_local(inst, users, "alice-tag", '+')->alias);
    CHECK(resolve_local(inst, users, "alice+tag")->alias);

    auto dot = resolve_local(inst, users, "a.b.c", '.');
    REQUIRE(dot.has_value());
    CHECK(dot->user == "a.b");
    CHECK(dot->ext == "c");
    auto dot2 = resolve_local(inst, users, "a.x.c", '.');
    REQUIRE(dot2.has_value());
    CHECK(dot2->user == "a");
    CHECK(dot2->ext == "x.c");
}

TEST_CASE("resolve_local: names in control/aliases come after users, before user-ext", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    const std::vector<UserEntry> users = {{"alice", "", "/h/alice"}, {"staff", "", "/h/staff"}};
    std::vector<std::string> asked;
    auto is_alias = [&](const std::string& name) {
        asked.push_back(name);
        return name == "alice-sales" || name == "staff" || name == "lists";
    };
    auto t = resolve_local(inst, users, "Alice-Sales", '-', is_alias);
    REQUIRE(t.has_value());
    CHECK(t->alias);
    CHECK(t->home == dir / "alias");
    CHECK(t->ext == "alice-sales");
    CHECK(asked == std::vector<std::string>{"alice-sales"});   // lower case
    // A user of the same name wins, without asking.
    asked.clear();
    t = resolve_local(inst, users, "staff", '-', is_alias);
    REQUIRE(t.has_value());
    CHECK_FALSE(t->alias);
    CHECK(t->user == "staff");
    CHECK(asked.empty());
    // Not an alias: user-ext as before.
    t = resolve_local(inst, users, "alice-other", '-', is_alias);
    REQUIRE(t.has_value());
    CHECK(t->user == "alice");
    CHECK(t->ext == "other");
    t = resolve_local(inst, users, "LISTS", '-', is_alias);
    REQUIRE(t.has_value());
    CHECK(t->alias);
    CHECK(t->ext == "lists");
}

TEST_CASE("extension_separator reads control/extseparator", "[users]") {
    test::TempDir dir;
    Instance inst(dir.path());
    REQUIRE(::mkdir((dir / "control").c_str(), 0755) == 0);
    CHECK(extension_separator(inst) == '-');
    for (const char* ok : {"+\n", "-", "_\n", "=", "# comment\n+\n"}) {
        INFO(ok);
        write_file_atomic(dir / "control/extseparator", ok);
        CHECK(extension_separator(inst) == (std::string(ok).find('+') != std::string::npos ? '+'
                                            : ok[0] == '_' ? '_' : ok[0] == '=' ? '=' : '-'));
    }
    for (const char* bad : {"ab", "a", "7", "@", ".", "/", ":", "++"}) {
        INFO(bad);
        write_file_atomic(dir / "control/extseparator", bad);
        CHECK_THROWS_AS(extension_separator(inst), std::runtime_error);
    }
}
