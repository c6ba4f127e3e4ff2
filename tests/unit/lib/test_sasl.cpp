#include "sasl.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace yubin;
using namespace std::string_literals;

TEST_CASE("base64 round trips and matches RFC 4648's vectors", "[sasl]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (size_t n = 0; n <= all.size(); n += 7) CHECK(base64_decode(base64_encode(all.substr(0, n))) == all.substr(0, n));
    CHECK(base64_decode("Zm9vYmE=") == "fooba");
    CHECK(base64_decode("AHVzZXIAcGFzcw==") == "\0user\0pass"s);
}

TEST_CASE("base64 refuses anything that is not canonical", "[sasl]") {
    for (const char* bad : {"Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm 9v", "Zm9v\r\n", "Zm9v=", "Zh==",
                            "Zm9=", "Zm-v", "Zm_v", "=Zm9", "Zm=v", "\xc3\xa9\xc3\xa9"})
        CHECK_FALSE(base64_decode(bad).has_value());
    CHECK(base64_decode("").value() == "");
}

TEST_CASE("PLAIN messages: user and password, authzid only if the same", "[sasl]") {
    auto ok = parse_plain("\0alice\0secret word"s);
    REQUIRE(ok);
    CHECK(ok->user == "alice");
    CHECK(ok->password == "secret word");
    CHECK(parse_plain("alice\0alice\0pw"s)->user == "alice");
    std::string why;
    CHECK_FALSE(parse_plain("bob\0alice\0pw"s, &why));
    CHECK(why.find("authorization") != std::string::npos);
    CHECK_FALSE(parse_plain("alice\0pw"s));          // one NUL
    CHECK_FALSE(parse_plain("alicepw"s));            // none
    CHECK_FALSE(parse_plain("\0alice\0p\0w"s));      // a NUL in the password
    CHECK_FALSE(parse_plain("\0\0pw"s));             // no user
    CHECK_FALSE(parse_plain("\0alice\0"s));          // no password
    CHECK_FALSE(parse_plain("\0ali\nce\0pw"s));      // a line end inside
    CHECK(valid_login_field("alice"));
    CHECK_FALSE(valid_login_field("a\0b"s));
    CHECK_FALSE(valid_login_field("a\rb"));
}
