#include "packet.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

TEST_CASE("encode_netstring writes length, colon, bytes, comma", "[packet]") {
    CHECK(encode_netstring("hello") == "5:hello,");
    CHECK(encode_netstring("") == "0:,");
    CHECK(encode_netstring("a,b:c\0d"s) == "7:a,b:c\0d,"s);
    CHECK(encode_netstring(std::string(1234, 'x')) == "1234:" + std::string(1234, 'x') + ",");
}

TEST_CASE("encode_packet nests netstrings", "[packet]") {
    CHECK(encode_packet({"hello", "abcd"}) == "15:5:hello,4:abcd,,");
    CHECK(encode_packet({}) == "0:,");
    CHECK(encode_packet({""}) == "3:0:,,");
    CHECK(encode_packet({"", ""}) == "6:0:,0:,,");
}

TEST_CASE("decode_packet_payload inverts encode_packet", "[packet]") {
    const std::vector<Packet> cases = {
        {},
        {""},
        {"hello", "abcd"},
        {"17", "1700000000.123456.42", "123", "", "user@example.org"},
        {"with\0nul"s, "comma,colon:", "9:nested,", std::string(70000, 'z')},
    };
    for (const auto& p : cases) {
        std::string rec = encode_packet(p);
        // Strip the outer netstring by hand: "LEN:" ... ","
        size_t colon = rec.find(':');
        REQUIRE(colon != std::string::npos);
        REQUIRE(rec.back() == ',');
        std::string payload = rec.substr(colon + 1, rec.size() - colon - 2);
        CHECK(decode_packet_payload(payload) == p);
    }
}

TEST_CASE("decode_packet_payload demands exact, well-formed fields", "[packet]") {
    CHECK(decode_packet_payload("") == Packet{});
    CHECK(decode_packet_payload("0:,") == Packet{""});
    CHECK(decode_packet_payload("1:a,2:bc,") == Packet{"a", "bc"});

    const std::vector<std::string> bad = {
        "5:hello",       // no comma
        "5:hell,",       // the comma is taken as data: truncated
        "5:hello;",      // wrong terminator
        "5:hello,x",     // trailing garbage
        "5:hello,3:ab",  // truncated second field
        "5:hello,3",     // truncated length
        "05:hello,",     // leading zero
        "00:,",          // leading zero on an empty field
        ":,",            // no digits
        "-1:,",          // sign
        " 1:a,",         // white space
        "1 :a,",
        "a:b,",
        "6:hello,",      // length beyond the payload
        "99999999999999999999999:x,",
    };
    for (const auto& b : bad) {
        INFO("payload: " << b);
        CHECK_THROWS_AS(decode_packet_payload(b), PacketError);
    }
}

TEST_CASE("PacketReader yields one record and consumes it exactly", "[packet]") {
    PacketReader r;
    CHECK(r.empty());
    CHECK_FALSE(r.next().has_value());
    r.feed(encode_packet({"1", "K", "delivered"}));
    CHECK_FALSE(r.empty());
    auto p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == Packet{"1", "K", "delivered"});
    CHECK(r.empty());
    CHECK_FALSE(r.next().has_value());
}

TEST_CASE("PacketReader reassembles a record split at every byte", "[packet]") {
    const Packet want = {"42", "1700000000.5.99", "88", "", "bob@example.org"};
    const std::string rec = encode_packet(want);
    for (size_t cut = 0; cut <= rec.size(); ++cut) {
        INFO("cut at " << cut);
        PacketReader r;
        r.feed(rec.substr(0, cut));
        if (cut < rec.size()) {
            CHECK_FALSE(r.next().has_value());
            r.feed(rec.substr(cut));
        }
        auto p = r.next();
        REQUIRE(p.has_value());
        CHECK(*p == want);
        CHECK(r.empty());
    }

    // And fed one byte at a time: nothing until the very last byte.
    PacketReader r;
    for (size_t i = 0; i + 1 < rec.size(); ++i) {
        r.feed(rec.substr(i, 1));
        REQUIRE_FALSE(r.next().has_value());
    }
    r.feed(rec.substr(rec.size() - 1));
    auto p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == want);
}

TEST_CASE("PacketReader returns many records from one feed, in order", "[packet]") {
    std::string all;
    for (int i = 0; i < 500; ++i) all += encode_packet({std::to_string(i), std::string(static_cast<size_t>(i % 7), 'a')});
    // A partial record at the end stays pending.
    const std::string last = encode_packet({"last", "record"});
    all += last.substr(0, 5);

    PacketReader r;
    r.feed(all);
    for (int i = 0; i < 500; ++i) {
        auto p = r.next();
        REQUIRE(p.has_value());
        REQUIRE(p->size() == 2);
        CHECK((*p)[0] == std::to_string(i));
        CHECK((*p)[1] == std::string(static_cast<size_t>(i % 7), 'a'));
    }
    CHECK_FALSE(r.next().has_value());
    CHECK_FALSE(r.empty());
    r.feed(last.substr(5));
    auto p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == Packet{"last", "record"});
    CHECK(r.empty());
}

TEST_CASE("PacketReader keeps a pending record intact when it compacts its buffer", "[packet]") {
    // Two big records push the read position past the compaction point while
    // a third is still incomplete.
    const Packet a = {"a", std::string(40000, 'A')};
    const Packet b = {"b", std::string(40000, 'B')};
    const Packet c = {"c", std::string(30000, 'C')};
    const std::string rc = encode_packet(c);
    PacketReader r;
    r.feed(encode_packet(a) + encode_packet(b) + rc.substr(0, 1000));
    auto p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == a);
    p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == b);
    CHECK_FALSE(r.next().has_value());
    r.feed(rc.substr(1000));
    p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == c);
    CHECK(r.empty());
}

TEST_CASE("PacketReader throws on malformed records", "[packet]") {
    const std::vector<std::string> bad = {
        "\n",
        "x",
        ":",
        "-3:abc,",
        "01:a,",               // leading zero
        "00:,",
        "5:0:,ab;",            // outer terminator is not a comma
        "3:abc,",              // payload is not netstrings
        "5:1:a,x,",            // payload has trailing bytes
        "6:5:abc,,",           // inner field truncated
        "3:0:,,garbage",       // first record fine, then garbage (checked below)
    };
    for (size_t i = 0; i + 1 < bad.size(); ++i) {
        INFO("input: " << bad[i]);
        PacketReader r;
        r.feed(bad[i]);
        CHECK_THROWS_AS(r.next(), PacketError);
    }
    PacketReader r;
    r.feed(bad.back());
    auto p = r.next();
    REQUIRE(p.has_value());
    CHECK(*p == Packet{""});
    CHECK_THROWS_AS(r.next(), PacketError);
}

TEST_CASE("PacketReader detects a leading zero even across feeds", "[packet]") {
    PacketReader r;
    r.feed("0");
    CHECK_FALSE(r.next().has_value());  // "0:," would be a valid empty record
    r.feed("1");
    CHECK_THROWS_AS(r.next(), PacketError);

    PacketReader ok;
    ok.feed("0");
    CHECK_FALSE(ok.next().has_value());
    ok.feed(":,");
    auto p = ok.next();
    REQUIRE(p.has_value());
    CHECK(p->empty());
}

TEST_CASE("PacketReader refuses records over its limit", "[packet]") {
    // Exactly at the limit is fine.
    const std::string payload10 = encode_netstring("1234567");  // "7:1234567," is 10 bytes
    REQUIRE(payload10.size() == 10);
    PacketReader at(10);
    at.feed(encode_netstring(payload10));
    auto p = at.next();
    REQUIRE(p.has_value());
    CHECK(*p == Packet{"1234567"});

    PacketReader over(10);
    over.feed("11:");
    CHECK_THROWS_AS(over.next(), PacketError);

    // The length alone is enough: no need to wait for the payload.
    PacketReader digits(10);
    digits.feed("123");
    CHECK_THROWS_AS(digits.next(), PacketError);

    PacketReader huge;
    huge.feed("99999999999999999999999999");
    CHECK_THROWS_AS(huge.next(), PacketError);
}

TEST_CASE("packet_number accepts plain decimals only", "[packet]") {
    CHECK(packet_number("0") == 0);
    CHECK(packet_number("42") == 42);
    CHECK(packet_number("1700000000") == 1700000000ULL);
    CHECK(packet_number("9999999999999999999") == 9999999999999999999ULL);

    const std::vector<std::string> bad = {"", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.5",
                                          "99999999999999999999", "18446744073709551616"};
    for (const auto& b : bad) {
        INFO("field: " << b);
        CHECK_THROWS_AS(packet_number(b), PacketError);
    }
}
