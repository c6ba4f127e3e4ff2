// auth/request: the checkpassword interface's bytes.
#include "request.hpp"

#include "password.hpp"
#include "temp_dir.hpp"
#include "users.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

using namespace yubin;
using namespace std::string_literals;

TEST_CASE("parse_request: two or three fields, each ended by a NUL, 512 bytes at most", "[request]") {
    auto r = parse_request("alice\0pw\0"s);
    REQUIRE(r);
    CHECK(r->user == "alice");
    CHECK(r->password == "pw");
    CHECK(r->timestamp.empty());
    r = parse_request("alice\0d1g3st\0<1.2@h>\0"s);
    REQUIRE(r);
    CHECK(r->timestamp == "<1.2@h>");
    auto empty_pw = parse_request("alice\0\0"s);   // an empty password is a question, the answer is no
    REQUIRE(empty_pw);
    CHECK(empty_pw->password.empty());
    for (const std::string& bad : {""s, "alice"s, "alice\0pw"s, "\0pw\0"s, "a\0b\0c\0d\0"s, "alice\0pw\0x"s}) {
        INFO(bad.size());
        CHECK_FALSE(parse_request(bad));
    }
    std::string at_limit = "alice\0"s + std::string(512 - 7, 'x') + '\0';
    CHECK(at_limit.size() == 512);
    CHECK(parse_request(at_limit));
    CHECK_FALSE(parse_request("alice\0"s + std::string(512 - 6, 'x') + '\0'));
}

TEST_CASE("verify_request: a timestamp means APOP only for a digest of a user with APOP on", "[request]") {
    test::TempDir dir;
    for (const char* sub : {"users", "home"}) REQUIRE(::mkdir((dir / sub).c_str(), 0700) == 0);
    Instance inst(dir.path());
    save_users(inst, {{"alice", hash_password("pw-alice", 1000), dir / "home/alice"},
                      {"bob", hash_password("pw-bob", 1000), dir / "home/bob"}});
    save_apop(inst, {{"bob", "pw-bob"}});
    auto ask = [&](std::string bytes) { return verify_request(inst, *parse_request(bytes)).user.has_value(); };
    CHECK(ask("alice\0pw-alice\0"s));
    CHECK(ask("alice\0pw-alice\0<1.2@h>\0"s));   // qmail-popup: the timestamp comes with USER/PASS too
    CHECK(ask("alice\0pw-alice\0\0"s));          // Dovecot: an empty one
    CHECK_FALSE(ask("alice\0wrong\0<1.2@h>\0"s));
    const std::string digest = apop_digest("<1.2@h>", "pw-bob");
    CHECK(ask("bob\0"s + digest + "\0<1.2@h>\0"s));
    CHECK_FALSE(ask("bob\0"s + digest + "\0<other@h>\0"s));
    CHECK(ask("bob\0pw-bob\0<1.2@h>\0"s));   // not a digest: a password
    CHECK_FALSE(ask("alice\0"s + apop_digest("<1.2@h>", "pw-alice") + "\0<1.2@h>\0"s));   // APOP off for alice
}
