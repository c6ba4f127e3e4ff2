// lines.hpp: bounded line splitting, command parsing, numbers, replies.
#include "lines.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin::pop3;
using Kind = LineBuffer::Kind;

namespace {

// Every line and too_long marker ("<LONG>") in the order the buffer gives them.
std::vector<std::string> drain(LineBuffer& b) {
    std::vector<std::string> out;
    std::string line;
    for (;;) {
        Kind k = b.next(line);
        if (k == Kind::none) return out;
        out.push_back(k == Kind::line ? line : "<LONG>");
    }
}

}  // namespace

TEST_CASE("lines end with CRLF or a bare LF; the CR is not part of the line", "[pop3_lines]") {
    LineBuffer b;
    b.append("STAT\r\nLIST 1\nNO");
    CHECK(drain(b) == std::vector<std::string>{"STAT", "LIST 1"});
    CHECK(b.pending_size() == 2);
    b.append("OP\r");
    CHECK(drain(b).empty());
    b.append("\n");
    CHECK(drain(b) == std::vector<std::string>{"NOOP"});
    CHECK(b.pending_size() == 0);
}

TEST_CASE("a bare CR inside a line stays in the line", "[pop3_lines]") {
    LineBuffer b;
    b.append("ST\rAT\r\n");
    CHECK(drain(b) == std::vector<std::string>{"ST\rAT"});
}

TEST_CASE("the limit is 255 octets with CRLF: 253 of content pass, 254 do not", "[pop3_lines]") {
    struct Row { size_t content; const char* end; bool ok; };
    for (Row r : {Row{253, "\r\n", true}, Row{253, "\n", true}, Row{254, "\r\n", false}, Row{254, "\n", false},
                  Row{1000, "\r\n", false}, Row{0, "\r\n", true}}) {
        LineBuffer b;
        b.append(std::string(r.content, 'x') + r.end + "NOOP\r\n");
        auto got = drain(b);
        REQUIRE(got.size() == 2);
        CHECK((got[0] != "<LONG>") == r.ok);
        CHECK(got[1] == "NOOP");
    }
}

TEST_CASE("an overlong line arriving in pieces is dropped as it comes and reported once", "[pop3_lines]") {
    LineBuffer b;
    for (int i = 0; i < 100; ++i) {
        b.append(std::string(1000, 'y'));
        CHECK(drain(b).empty());
        CHECK(b.pending_size() < max_line);   // memory stays bounded
    }
    b.append("tail\r\nSTAT\r\n");
    CHECK(drain(b) == std::vector<std::string>{"<LONG>", "STAT"});
}

TEST_CASE("take_pending returns what no line was made of", "[pop3_lines]") {
    LineBuffer b;
    b.append("USER a\r\nPASS b\r\nSTAT\r\nLI");
    std::string line;
    REQUIRE(b.next(line) == Kind::line);
    REQUIRE(b.next(line) == Kind::line);
    CHECK(line == "PASS b");
    CHECK(b.take_pending() == "STAT\r\nLI");
    CHECK(b.pending_size() == 0);
    CHECK(b.next(line) == Kind::none);
}

TEST_CASE("parse_command: upper-case verb, arguments at runs of spaces, rest verbatim", "[pop3_lines]") {
    struct Row { const char* line; const char* verb; std::vector<std::string> args; const char* rest; };
    for (const Row& r : {Row{"stat", "STAT", {}, ""}, Row{"LIST 1", "LIST", {"1"}, "1"},
                         Row{"top  2   10 ", "TOP", {"2", "10"}, " 2   10 "},
                         Row{"PASS  two words ", "PASS", {"two", "words"}, " two words "},
                         Row{"PASS ", "PASS", {}, ""}, Row{"", "", {}, ""},
                         Row{"Apop alice 0123", "APOP", {"alice", "0123"}, "alice 0123"}}) {
        Command c = parse_command(r.line);
        CHECK(c.verb == r.verb);
        CHECK(c.args == r.args);
        CHECK(c.rest == r.rest);
    }
}

TEST_CASE("parse_number: digits only, bounded", "[pop3_lines]") {
    CHECK(parse_number("1") == 1u);
    CHECK(parse_number("0") == 0u);
    CHECK(parse_number("007") == 7u);
    CHECK(parse_number("999999999") == 999999999u);
    for (const char* bad : {"", "-1", "+1", "1a", " 1", "1.0", "1234567890", "99999999999999999999999"})
        CHECK_FALSE(parse_number(bad).has_value());
}

TEST_CASE("ok and err format one reply line", "[pop3_lines]") {
    CHECK(ok("") == "+OK\r\n");
    CHECK(ok("2 320") == "+OK 2 320\r\n");
    CHECK(err("no such message") == "-ERR no such message\r\n");
}

TEST_CASE("LineBuffer: the limit can be raised for a SASL response", "[pop3_lines]") {
    LineBuffer b;
    std::string line;
    b.append(std::string(600, 'A') + "\r\n");
    CHECK(b.next(line) == LineBuffer::Kind::too_long);   // a command: 255 octets
    b.set_limit(max_sasl_line);
    b.append(std::string(600, 'A') + "\r\n");
    REQUIRE(b.next(line) == LineBuffer::Kind::line);
    CHECK(line.size() == 600);
    b.append(std::string(max_sasl_line - 1, 'A') + "\r\n");
    CHECK(b.next(line) == LineBuffer::Kind::too_long);   // bounded still
    b.set_limit(max_line);
    b.append("NOOP\r\n");
    CHECK(b.next(line) == LineBuffer::Kind::line);
}
