#include "instance.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

// An instance in a temporary directory with an empty control/.
struct TestInstance {
    test::TempDir dir;
    Instance inst{dir.path()};
    TestInstance() { REQUIRE(::mkdir((dir / "control").c_str(), 0755) == 0); }
    void control(const std::string& name, const std::string& text) const {
        write_file_atomic(dir / ("control/" + name), text, 0644);
    }
};

}  // namespace

TEST_CASE("Instance paths", "[instance]") {
    Instance inst("/srv/yubin");
    CHECK(inst.root() == "/srv/yubin");
    CHECK(inst.path("users/passwd") == "/srv/yubin/users/passwd");
    CHECK(inst.control_path("me") == "/srv/yubin/control/me");
    CHECK(inst.queue_path() == "/srv/yubin/queue");
    CHECK(inst.queue_path("new/1.2.3") == "/srv/yubin/queue/new/1.2.3");
}

TEST_CASE("control_lines drops comments and blank lines and trims", "[instance]") {
    TestInstance t;
    t.control("rcpthosts", "# the domains we accept\n"
                           "\n"
                           "example.org\n"
                           "  example.net  \n"
                           "\texample.com\t\r\n"
                           "   \n"
                           "\r\n"
                           "  # an indented comment\n"
                           "with inner space \n"
                           "last.example");  // no final newline
    CHECK(t.inst.control_lines("rcpthosts") ==
          std::vector<std::string>{"example.org", "example.net", "example.com", "with inner space", "last.example"});

    t.control("crlf", "a\r\nb\r\n");
    CHECK(t.inst.control_lines("crlf") == std::vector<std::string>{"a", "b"});
    t.control("empty", "");
    CHECK(t.inst.control_lines("empty").empty());
    t.control("comments", "# one\n#two\n\n");
    CHECK(t.inst.control_lines("comments").empty());
    // A '#' after text is part of the value.
    t.control("hash", "a#b\n");
    CHECK(t.inst.control_lines("hash") == std::vector<std::string>{"a#b"});
}

TEST_CASE("control_lines: absent file is empty, other errors throw", "[instance]") {
    TestInstance t;
    CHECK(t.inst.control_lines("absent").empty());
    REQUIRE(::mkdir((t.dir / "control/adir").c_str(), 0755) == 0);
    try {
        t.inst.control_lines("adir");
        FAIL("no exception for a directory");
    } catch (const SysError& e) {
        CHECK(e.err() == EISDIR);
    }
    // An instance whose control/ is missing reads every file as absent.
    Instance none(t.dir / "nowhere");
    CHECK(none.control_lines("me").empty());
}

TEST_CASE("control_string: first line or the default", "[instance]") {
    TestInstance t;
    CHECK(t.inst.control_string("me", "localhost") == "localhost");
    CHECK(t.inst.control_string("me", "") == "");
    t.control("me", "");
    CHECK(t.inst.control_string("me", "localhost") == "localhost");
    t.control("me", "# only a comment\n\n");
    CHECK(t.inst.control_string("me", "localhost") == "localhost");
    t.control("me", "  mx.example.org \r\n");
    CHECK(t.inst.control_string("me", "localhost") == "mx.example.org");
    t.control("me", "# name\nfirst.example\nsecond.example\n");
    CHECK(t.inst.control_string("me", "localhost") == "first.example");
}

TEST_CASE("control_long: values, default and range", "[instance]") {
    TestInstance t;
    CHECK(t.inst.control_long("n", 60, 1, 86400) == 60);
    t.control("n", "");
    CHECK(t.inst.control_long("n", 60, 1, 86400) == 60);
    t.control("n", "# comment only\n");
    CHECK(t.inst.control_long("n", 60, 1, 86400) == 60);

    struct Row {
        std::string text;
        long want;
    };
    const std::vector<Row> rows = {
        {"42\n", 42},      {" 7 \r\n", 7},   {"1", 1},        {"86400\n", 86400},
        {"# c\n300\n", 300}, {"5\n6\n", 5},  {"007\n", 7},
    };
    for (const auto& r : rows) {
        INFO("file: " << r.text);
        t.control("n", r.text);
        CHECK(t.inst.control_long("n", 60, 1, 86400) == r.want);
    }
    t.control("n", "-5\n");
    CHECK(t.inst.control_long("n", 0, -10, 10) == -5);
    t.control("n", "-10\n");
    CHECK(t.inst.control_long("n", 0, -10, 10) == -10);
    t.control("n", std::to_string(LONG_MAX));
    CHECK(t.inst.control_long("n", 0, 0, LONG_MAX) == LONG_MAX);
}

TEST_CASE("control_long throws on malformed or out-of-range values", "[instance]") {
    TestInstance t;
    const std::vector<std::string> bad = {
        "0\n", "86401\n", "-1\n", "abc\n", "12abc\n", "1 2\n", "1.5\n", "0x10\n", "1e3\n",
        "99999999999999999999999\n", "-99999999999999999999999\n", "- 1\n",
    };
    for (const auto& b : bad) {
        INFO("file: " << b);
        t.control("n", b);
        CHECK_THROWS_AS(t.inst.control_long("n", 60, 1, 86400), std::runtime_error);
    }
    t.control("n", "86401\n");
    CHECK_THROWS_WITH(t.inst.control_long("n", 60, 1, 86400),
                      "control/n: not a number from 1 to 86400: 86401");
}

TEST_CASE("trim and lowercase", "[instance]") {
    CHECK(trim("") == "");
    CHECK(trim("   ") == "");
    CHECK(trim(" \t\r\n") == "");
    CHECK(trim("abc") == "abc");
    CHECK(trim("  a b  ") == "a b");
    CHECK(trim("\tx\r\n") == "x");
    CHECK(trim("\va\f") == "\va\f");  // only space, tab, CR and LF
    CHECK(trim("x\0"s) == "x\0"s);

    CHECK(lowercase("") == "");
    CHECK(lowercase("MiXeD-Case_123@Example.ORG") == "mixed-case_123@example.org");
    CHECK(lowercase("already") == "already");
    CHECK(lowercase("\xC3\x89T\xC3\x89") == "\xC3\x89t\xC3\x89");  // only ASCII letters change
    CHECK(lowercase("[\\]^_`{|}~@") == "[\\]^_`{|}~@");
}

TEST_CASE("split_words: runs of spaces and tabs", "[instance]") {
    CHECK(split_words("a.example  chain.pem\tkey.pem") == std::vector<std::string>{"a.example", "chain.pem", "key.pem"});
    CHECK(split_words(" \t lead and trail \t") == std::vector<std::string>{"lead", "and", "trail"});
    CHECK(split_words("").empty());
    CHECK(split_words(" \t ").empty());
}
