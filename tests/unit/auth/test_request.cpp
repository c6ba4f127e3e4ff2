// auth/request: the checkpassword interface's bytes.
#include "request.hpp"

#include <catch2/catch.hpp>

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
