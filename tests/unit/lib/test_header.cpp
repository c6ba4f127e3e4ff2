#include "header.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos) nl = s.size();
        out.push_back(s.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("parse splits fields, continuation lines and the body", "[header]") {
    const std::string msg = "From: a@example.com\nSubject: hello\n there\n\tand here\nX-Empty:\nTo:b\n\nbody line\n";
    size_t off = 99;
    HeaderBlock h = HeaderBlock::parse(msg, off);
    REQUIRE(h.fields().size() == 4);
    CHECK(h.fields()[0].name == "From");
    CHECK(h.fields()[0].value == " a@example.com");
    CHECK(h.fields()[1].name == "Subject");
    CHECK(h.fields()[1].value == " hello\n there\n\tand here");
    CHECK(h.fields()[2].name == "X-Empty");
    CHECK(h.fields()[2].value == "");
    CHECK(h.fields()[3].value == "b");
    CHECK(msg.substr(off) == "body line\n");
    // exact round trip of the header section
    CHECK(h.serialize() == msg.substr(0, msg.find("\n\n") + 1));
}

TEST_CASE("parse accepts CRLF and drops the CR before LF", "[header]") {
    const std::string msg = "From: a\r\nSubject: x\r\n  y\r\n\r\nbody\r\n";
    size_t off = 0;
    HeaderBlock h = HeaderBlock::parse(msg, off);
    REQUIRE(h.fields().size() == 2);
    CHECK(h.fields()[1].value == " x\n  y");
    CHECK(msg.substr(off) == "body\r\n");
    CHECK(h.serialize() == "From: a\nSubject: x\n  y\n");
    // a CR that is not before LF stays in the value
    h = HeaderBlock::parse("A: b\rc\n\n", off);
    REQUIRE(h.fields().size() == 1);
    CHECK(h.fields()[0].value == " b\rc");
}

TEST_CASE("parse where the header section ends", "[header]") {
    struct Case { std::string msg; size_t fields; size_t body_offset; };
    const std::vector<Case> cases = {
        {"A: 1\nB: 2\n", 2, 10},                       // header without body or blank line
        {"A: 1\nB: 2", 2, 9},                          // last line without LF
        {"A: 1\n", 1, 5},
        {"", 0, 0},
        {"\nbody\n", 0, 1},                            // empty header section
        {"A: 1\nnot a header\nC: 3\n", 1, 5},          // a non-header line ends it
        {"A: 1\nB 2: x\n\nbody", 1, 5},                // space in a name: not a field
        {"A: 1\n: no name\n", 1, 5},
        {"From sender@x Mon Jan 1 00:00:00 2026\nA: 1\n", 0, 0},  // mbox From_ line
        {" continuation of nothing\nA: 1\n", 0, 0},
        {"no colon at all\n", 0, 0},
        {"A: 1\n\xc3\xa9t\xc3\xa9: 8bit name\n", 1, 5},
        {"A: 1\r\n\r\n", 1, 8},
        {"A: 1\n \nB: 2\n", 2, 12},                    // whitespace-only continuation is not empty
    };
    for (const auto& c : cases) {
        INFO(c.msg);
        size_t off = 12345;
        HeaderBlock h = HeaderBlock::parse(c.msg, off);
        CHECK(h.fields().size() == c.fields);
        CHECK(off == c.body_offset);
    }
}

TEST_CASE("parse is linear on many continuation lines", "[header]") {
    std::string msg = "X-Long: start\n";
    for (int i = 0; i < 200000; ++i) msg += " w\n";
    msg += "\nbody";
    size_t off = 0;
    HeaderBlock h = HeaderBlock::parse(msg, off);
    REQUIRE(h.fields().size() == 1);
    CHECK(h.fields()[0].value.size() == 6 + 200000 * 3);
    CHECK(msg.substr(off) == "body");
}

TEST_CASE("find, find_all and has ignore case", "[header]") {
    size_t off = 0;
    HeaderBlock h = HeaderBlock::parse("Received: one\nSubject: s\nRECEIVED: two\nreceived: three\n\n", off);
    REQUIRE(h.find("subject") != nullptr);
    CHECK(h.find("SUBJECT")->value == " s");
    CHECK(h.find("received")->value == " one");
    auto all = h.find_all("ReCeIvEd");
    REQUIRE(all.size() == 3);
    CHECK(all[1]->value == " two");
    CHECK(all[2]->value == " three");
    CHECK(h.has("subject"));
    CHECK_FALSE(h.has("subjec"));
    CHECK_FALSE(h.has("subjects"));
    CHECK(h.find("To") == nullptr);
    CHECK(h.find_all("To").empty());
}

TEST_CASE("remove_all, append and prepend", "[header]") {
    size_t off = 0;
    HeaderBlock h = HeaderBlock::parse("Bcc: a\nSubject: s\nbcc: b\n c\nTo: t\nBCC: d\n\n", off);
    h.remove_all("BcC");
    CHECK_FALSE(h.has("bcc"));
    CHECK(h.fields().size() == 2);
    h.append("X-Last", "value");
    h.prepend("Return-Path", "<a@b>");
    h.append("X-Empty", "");
    CHECK(h.serialize() == "Return-Path: <a@b>\nSubject: s\nTo: t\nX-Last: value\nX-Empty:\n");
    h.remove_all("nothing");
    CHECK(h.fields().size() == 5);
}

TEST_CASE("unfold removes line ends before WSP and trims", "[header]") {
    struct Case { std::string in, out; };
    const std::vector<Case> cases = {
        {" hello\n world", "hello world"},
        {" a\r\n\tb", "a\tb"},
        {"  a  \n   b  ", "a     b"},
        {"a\nb", "a\nb"},          // a line end not followed by WSP is not a fold
        {"\t", ""},
        {"", ""},
        {"x\n ", "x"},
        {"\n y", "y"},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        CHECK(unfold(c.in) == c.out);
    }
}

TEST_CASE("fold_header folds at WSP within the width", "[header]") {
    CHECK(fold_header("Subject", "short") == "Subject: short\n");
    CHECK(fold_header("X-Empty", "") == "X-Empty:\n");
    CHECK(fold_header("X-Empty", " \t ") == "X-Empty:\n");
    CHECK(fold_header("A", "one two three", 9) == "A: one\n two\n three\n");
    CHECK(fold_header("A", "one\ttwo", 7) == "A: one\n\ttwo\n");       // the original WSP starts the line
    CHECK(fold_header("A", "one  two", 7) == "A: one\n  two\n");       // the whole run moves
    CHECK(fold_header("Subject", "averyveryverylongword next", 10) == "Subject: averyveryverylongword\n next\n");
    CHECK(fold_header("A", "x\r\nBcc: evil") == "A: x  Bcc: evil\n");  // never more than one field
    CHECK(fold_header("A", "x\n") == "A: x\n");
    CHECK(fold_header("A", std::string("x\0y", 3)) == "A: x y\n");
}

TEST_CASE("fold_header and unfold round trip", "[header]") {
    std::string many;
    for (int i = 0; i < 60; ++i) many += "word" + std::to_string(i) + (i % 7 == 0 ? "\t " : " ");
    many += "end";
    const std::vector<std::string> values = {
        "a",
        many,
        "550 5.1.1 <someone@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
        std::string(200, 'x') + " " + std::string(100, 'y') + " z",
        " leading and trailing ",
        "already\n folded\n\tvalue",
        "multipart/report; report-type=delivery-status; boundary=\"=_1700000000.123.456.host.example.com\"",
    };
    for (size_t width : {20u, 40u, 78u, 200u}) {
        for (const auto& v : values) {
            INFO("width " << width << " value " << v);
            std::string folded = fold_header("X-Test", v, width);
            REQUIRE(folded.back() == '\n');
            // exactly one field, parsed back to the same value
            size_t off = 0;
            HeaderBlock h = HeaderBlock::parse(folded, off);
            REQUIRE(h.fields().size() == 1);
            CHECK(off == folded.size());
            CHECK(h.fields()[0].name == "X-Test");
            CHECK(unfold(h.fields()[0].value) == unfold(v));
            CHECK(h.serialize() == folded);
            auto lines = lines_of(folded);
            for (size_t i = 0; i < lines.size(); ++i) {
                INFO(lines[i]);
                if (i > 0) CHECK((lines[i][0] == ' ' || lines[i][0] == '\t'));
                CHECK(lines[i].find_first_not_of(" \t") != std::string::npos);  // no blank line
                // a line may only be too long when it holds a single word
                std::string body = i == 0 ? lines[i].substr(8) : lines[i];
                size_t start = body.find_first_not_of(" \t");
                if (lines[i].size() > width) CHECK(body.find_first_of(" \t", start) == std::string::npos);
            }
        }
    }
}
