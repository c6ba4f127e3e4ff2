#include "password.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;

namespace {
// Small iteration counts keep the tests fast; the format is the same.
constexpr int iters = 1000;
// PBKDF2-HMAC-SHA256("password", "salt") test vectors.
const std::string salt_hex = "73616c74";  // "salt"
const std::string vec1 = "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b";
const std::string vec2 = "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43";
const std::string vec4096 = "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a";
}  // namespace

TEST_CASE("hash_password: $pbkdf2-sha256$ITER$SALT_HEX$HASH_HEX", "[password]") {
    const std::string h = hash_password("correct horse", iters);
    INFO(h);
    const std::string head = "$pbkdf2-sha256$1000$";
    REQUIRE(h.size() == head.size() + 32 + 1 + 64);
    CHECK(h.substr(0, head.size()) == head);
    const std::string salt = h.substr(head.size(), 32), hash = h.substr(head.size() + 33);
    CHECK(h[head.size() + 32] == '$');
    CHECK(salt.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(hash.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(password_iterations == 100000);
    CHECK(hash_password("x", 1).rfind("$pbkdf2-sha256$1$", 0) == 0);
}

TEST_CASE("verify_password accepts the right password only", "[password]") {
    const std::string h = hash_password("correct horse", iters);
    CHECK(verify_password("correct horse", h));
    CHECK_FALSE(verify_password("correct horsE", h));
    CHECK_FALSE(verify_password("correct horse ", h));
    CHECK_FALSE(verify_password("correct hors", h));
    CHECK_FALSE(verify_password("", h));

    const std::string empty = hash_password("", iters);
    CHECK(verify_password("", empty));
    CHECK_FALSE(verify_password(" ", empty));

    const std::string binary = hash_password(std::string("a\0b", 3), iters);
    CHECK(verify_password(std::string("a\0b", 3), binary));
    CHECK_FALSE(verify_password("a", binary));
}

TEST_CASE("two hashes of one password differ in salt and hash", "[password]") {
    const std::string a = hash_password("secret", iters);
    const std::string b = hash_password("secret", iters);
    CHECK(a != b);
    // The salts themselves differ, not just the hashes.
    CHECK(a.substr(0, a.rfind('$')) != b.substr(0, b.rfind('$')));
    CHECK(verify_password("secret", a));
    CHECK(verify_password("secret", b));
}

TEST_CASE("verify_password agrees with the PBKDF2-HMAC-SHA256 test vectors", "[password]") {
    CHECK(verify_password("password", "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1));
    CHECK(verify_password("password", "$pbkdf2-sha256$2$" + salt_hex + "$" + vec2));
    CHECK(verify_password("password", "$pbkdf2-sha256$4096$" + salt_hex + "$" + vec4096));
    // A shorter stored hash compares that many bytes.
    CHECK(verify_password("password", "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1.substr(0, 32)));

    CHECK_FALSE(verify_password("passwordx", "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1));
    CHECK_FALSE(verify_password("password", "$pbkdf2-sha256$2$" + salt_hex + "$" + vec1));  // wrong count
    CHECK_FALSE(verify_password("password", "$pbkdf2-sha256$1$73616c75$" + vec1));          // other salt
    std::string flipped = vec1;
    flipped[63] = flipped[63] == 'b' ? 'c' : 'b';
    CHECK_FALSE(verify_password("password", "$pbkdf2-sha256$1$" + salt_hex + "$" + flipped));
}

TEST_CASE("verify_password rejects malformed stored strings", "[password]") {
    const std::string good_hash = "$" + vec1;
    const std::vector<std::string> bad = {
        "",
        "password",
        "$pbkdf2-sha256$",
        "$pbkdf2-sha256$1",
        "$pbkdf2-sha256$1$",
        "$pbkdf2-sha256$1$" + salt_hex,
        "$pbkdf2-sha256$1$" + salt_hex + "$",                        // empty hash
        "$pbkdf2-sha1$1$" + salt_hex + good_hash,                     // other algorithm
        "$PBKDF2-SHA256$1$" + salt_hex + good_hash,
        "pbkdf2-sha256$1$" + salt_hex + good_hash,
        " $pbkdf2-sha256$1$" + salt_hex + good_hash,
        "$pbkdf2-sha256$$" + salt_hex + good_hash,                    // no count
        "$pbkdf2-sha256$0$" + salt_hex + good_hash,                   // zero count
        "$pbkdf2-sha256$-1$" + salt_hex + good_hash,
        "$pbkdf2-sha256$1x$" + salt_hex + good_hash,
        "$pbkdf2-sha256$ 1$" + salt_hex + good_hash,
        "$pbkdf2-sha256$999999999999$" + salt_hex + good_hash,        // absurd count
        "$pbkdf2-sha256$1$73616c7$" + vec1,                           // odd salt hex
        "$pbkdf2-sha256$1$73616C74$" + vec1,                          // upper case hex
        "$pbkdf2-sha256$1$7361zz74$" + vec1,
        "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1.substr(1),        // odd hash hex
        "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1 + "$",            // extra field
        "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1 + "$00",
        "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1 + vec1 + "00",    // hash over 64 bytes
        "$pbkdf2-sha256$1$" + salt_hex + "$" + vec1 + "\n",
    };
    for (const auto& s : bad) {
        INFO("stored: " << s);
        CHECK_FALSE(verify_password("password", s));
    }
}

TEST_CASE("digest_hex: lower-case hex of a known digest", "[password]") {
    // RFC 1321 and FIPS 180-2 test vectors
    CHECK(digest_hex("md5", "abc") == "900150983cd24fb0d6963f7d28e17f72");
    CHECK(digest_hex("sha256", "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(digest_hex("md5", "") == "d41d8cd98f00b204e9800998ecf8427e");
    CHECK_THROWS_AS(digest_hex("no-such-digest", "x"), std::invalid_argument);
}
