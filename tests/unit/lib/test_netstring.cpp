#include "netstring.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {
// Every netstring in bytes, fed one byte at a time.
std::vector<std::string> read_bytewise(const std::string& bytes, size_t max) {
    NetstringReader r(max);
    std::vector<std::string> out;
    for (char c : bytes) {
        r.feed(std::string_view(&c, 1));
        while (auto s = r.next()) out.push_back(*s);
    }
    CHECK(r.buffered() == 0);
    return out;
}
}  // namespace

TEST_CASE("NetstringReader yields each netstring, whole or in pieces", "[netstring]") {
    const std::vector<std::string> in = {"hello", "", "a,b:c\0d"s, std::string(70000, 'x'), "0:,"};
    std::string bytes;
    for (const auto& s : in) bytes += encode_netstring(s);
    CHECK(read_bytewise(bytes, 70000) == in);

    NetstringReader whole(70000);
    std::vector<std::string> out;
    for (size_t pos = 0; pos < bytes.size();) {
        size_t n = std::min(whole.room(), bytes.size() - pos);
        REQUIRE(n > 0);
        whole.feed(std::string_view(bytes).substr(pos, n));
        pos += n;
        while (auto s = whole.next()) out.push_back(*s);
    }
    CHECK(out == in);
}

TEST_CASE("NetstringReader waits for an incomplete netstring", "[netstring]") {
    for (std::string part : {"", "5", "5:", "5:hell", "5:hello", "12"}) {
        NetstringReader r(100);
        r.feed(part);
        CHECK_FALSE(r.next());
        CHECK(r.buffered() == part.size());
    }
}

TEST_CASE("NetstringReader refuses bad input as soon as it sees it", "[netstring]") {
    const std::vector<std::string> bad = {
        "x",            // not a digit
        ":",            // no length
        "5x",           // a letter in the length
        "-1:",          // a sign
        " 5:hello,",    // a space
        "05:hello,",    // leading zero
        "00:,",         // leading zero
        "5:hello;",     // no comma
        "5:hello,x",    // the second one is bad
        "11:",          // over the limit of 10
        "99999999999999999999999:",  // far over it
        "GET / HTTP/1.0\r\n",
    };
    for (const auto& b : bad) {
        NetstringReader r(10);
        r.feed(b);
        auto take_all = [&] {
            while (r.next()) {}
        };
        CHECK_THROWS_AS(take_all(), NetstringError);
    }
}

TEST_CASE("NetstringReader holds at most its limit plus the framing", "[netstring]") {
    NetstringReader r(10);
    const size_t room = r.room();
    CHECK(room == 10 + 22);
    CHECK_THROWS_AS(r.feed(std::string(room + 1, '1')), NetstringError);
    r.feed("10:0123456789,3:ab");
    CHECK(r.next() == "0123456789");
    CHECK_FALSE(r.next());
    r.feed("c,");
    CHECK(r.next() == "abc");
    CHECK(r.room() == room);

    // A lower limit for what follows (queue-injectd: 1 MiB envelope, then 64 KiB pieces).
    r.set_max(3);
    r.feed("3:abc,4:");
    CHECK(r.next() == "abc");
    CHECK_THROWS_AS(r.next(), NetstringError);
}
