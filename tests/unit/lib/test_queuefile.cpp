#include "queuefile.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

// Writes data to a new file in dir and opens it for reading.
Fd file_with(const test::TempDir& dir, const std::string& name, const std::string& data) {
    const std::string path = dir / name;
    write_file_atomic(path, data, 0600);
    return open_or_throw(path, O_RDONLY);
}

}  // namespace

// --- qmail-queue envelope (fd 1 of queue-inject)

TEST_CASE("encode_qmail_envelope writes F, T items and the final NUL", "[queuefile]") {
    CHECK(encode_qmail_envelope({"a@b.example", {"c@d.example", "e@f.example"}}) ==
          "Fa@b.example\0Tc@d.example\0Te@f.example\0\0"s);
    CHECK(encode_qmail_envelope({"", {"x@y"}}) == "F\0Tx@y\0\0"s);
    CHECK(encode_qmail_envelope({"s@t", {}}) == "Fs@t\0\0"s);
}

TEST_CASE("parse_qmail_envelope reads back what encode wrote", "[queuefile]") {
    const std::vector<Envelope> cases = {
        {"a@b.example", {"c@d.example"}},
        {"", {"postmaster@example.org"}},  // null sender
        {"s@t", {"1@x", "2@x", "3@x", "1@x"}},
        {"s@t", {}},                       // no recipients: well-formed, queue-inject refuses it
    };
    for (const auto& env : cases) {
        std::string why = "untouched";
        auto got = parse_qmail_envelope(encode_qmail_envelope(env), &why);
        REQUIRE(got.has_value());
        CHECK(got->sender == env.sender);
        CHECK(got->recipients == env.recipients);
        CHECK(why == "untouched");
    }
}

TEST_CASE("parse_qmail_envelope rejects format errors with a reason", "[queuefile]") {
    struct Bad {
        std::string bytes;
        std::string why;
    };
    const std::vector<Bad> bad = {
        {""s, "envelope not terminated"},
        {"Fa@b"s, "envelope not terminated"},
        {"Fa@b\0Tc@d"s, "envelope not terminated"},
        {"Fa@b\0Tc@d\0"s, "envelope not terminated"},          // missing the final NUL
        {"Fa@b\0Tc@d\0\0x"s, "bytes after the end of the envelope"},
        {"Fa@b\0Tc@d\0\0\0"s, "bytes after the end of the envelope"},
        {"Fa@b\0\0Tc@d\0\0"s, "bytes after the end of the envelope"},
        {"\0"s, "envelope has no sender"},
        {"Ta@b\0\0"s, "envelope does not start with F"},
        {"Xa@b\0Tc@d\0\0"s, "envelope does not start with F"},
        {"Fa@b\0Xc@d\0\0"s, "envelope item is not T"},
        {"Fa@b\0Fc@d\0\0"s, "envelope item is not T"},
        {"Fa@b\0Tc@d\0tx\0\0"s, "envelope item is not T"},
    };
    for (const auto& b : bad) {
        INFO("envelope bytes: " << b.bytes.size());
        std::string why;
        CHECK_FALSE(parse_qmail_envelope(b.bytes, &why).has_value());
        CHECK(why == b.why);
        CHECK_FALSE(parse_qmail_envelope(b.bytes).has_value());  // why is optional
    }
}

// --- queue file header

TEST_CASE("encode_queue_header lays out Y, F, T lines and a blank line", "[queuefile]") {
    CHECK(encode_queue_header(1700000000, 1000, {"a@b", {"c@d", "e@f"}}) ==
          "Y 1700000000 1000\nFa@b\nTc@d\nTe@f\n\n");
    CHECK(encode_queue_header(0, 0, {"", {"x@y"}}) == "Y 0 0\nF\nTx@y\n\n");
}

TEST_CASE("parse_queue_header round trip and message_offset", "[queuefile]") {
    const Envelope env{"sender@example.org", {"r1@example.org", "r2@example.net"}};
    const std::string header = encode_queue_header(1700000123, 4242, env);
    const std::string message = "Received: from x\nSubject: hi\n\nbody\n\n";
    const std::string file = header + message;

    auto h = parse_queue_header(file);
    REQUIRE(h.has_value());
    CHECK(h->birth == 1700000123);
    CHECK(h->uid == 4242u);
    CHECK(h->envelope.sender == env.sender);
    CHECK(h->envelope.recipients == env.recipients);
    CHECK(h->message_offset == header.size());
    CHECK(file.substr(h->message_offset) == message);

    SECTION("null sender") {
        auto n = parse_queue_header(encode_queue_header(5, 6, {"", {"a@b"}}) + "msg");
        REQUIRE(n.has_value());
        CHECK(n->envelope.sender.empty());
        CHECK(n->envelope.recipients == std::vector<std::string>{"a@b"});
        CHECK(n->message_offset == "Y 5 6\nF\nTa@b\n\n"s.size());
    }
    SECTION("empty message") {
        auto n = parse_queue_header(header);
        REQUIRE(n.has_value());
        CHECK(n->message_offset == header.size());
    }
}

TEST_CASE("parse_queue_header rejects malformed headers", "[queuefile]") {
    const std::vector<std::string> bad = {
        "",
        "Y 1 2",                       // no newline at all
        "Y 1 2\nFa\nTb\n",             // no blank line yet
        "Y 1 2\nFa\nTb",
        "X 1 2\nFa\nTb\n\n",
        "Y1 2\nFa\nTb\n\n",
        "Y  1 2\nFa\nTb\n\n",
        "Y 1\nFa\nTb\n\n",             // no uid
        "Y 1 \nFa\nTb\n\n",
        "Y a 2\nFa\nTb\n\n",
        "Y 1 2x\nFa\nTb\n\n",
        "Y 1 2 3\nFa\nTb\n\n",
        "Y -1 2\nFa\nTb\n\n",
        "Y 99999999999999999999 2\nFa\nTb\n\n",
        "Y 1 2\n\n",                   // no sender
        "Y 1 2\nFa\n\n",               // no recipients
        "Y 1 2\nTb\n\n",               // recipient before sender
        "Y 1 2\nFa\nFb\n\n",
        "Y 1 2\nFa\nXb\n\n",
        "\nY 1 2\nFa\nTb\n\n",
    };
    for (const auto& b : bad) {
        INFO("header: " << b);
        CHECK_FALSE(parse_queue_header(b).has_value());
    }
}

TEST_CASE("read_queue_header reads past the first chunk of a real file", "[queuefile]") {
    test::TempDir dir;
    Envelope env{"big@example.org", {}};
    for (int i = 0; i < 2000; ++i) env.recipients.push_back("recipient" + std::to_string(i) + "@example.org");
    const std::string header = encode_queue_header(1700000000, 77, env);
    REQUIRE(header.size() > 3 * 16384);
    const std::string message = "Subject: many\n\n" + std::string(100000, 'm') + "\n";

    Fd fd = file_with(dir, "big", header + message);
    auto h = read_queue_header(fd.get());
    REQUIRE(h.has_value());
    CHECK(h->birth == 1700000000);
    CHECK(h->uid == 77u);
    CHECK(h->envelope.sender == env.sender);
    CHECK(h->envelope.recipients == env.recipients);
    CHECK(h->message_offset == header.size());
    // pread: the file offset is untouched.
    CHECK(::lseek(fd.get(), 0, SEEK_CUR) == 0);
}

TEST_CASE("read_queue_header finds a blank line split across two reads", "[queuefile]") {
    test::TempDir dir;
    // Make the header exactly 16385 bytes, so that its final "\n\n" straddles
    // the boundary of the first 16384-byte read.
    Envelope env{"s@example.org", {"a@example.org"}};
    const size_t base = encode_queue_header(1, 2, env).size();
    env.recipients.push_back(std::string(16385 - base - 2, 'r'));  // "T" + name + "\n"
    const std::string header = encode_queue_header(1, 2, env);
    REQUIRE(header.size() == 16385);
    REQUIRE(header.substr(16383) == "\n\n");

    Fd fd = file_with(dir, "split", header + "message\n");
    auto h = read_queue_header(fd.get());
    REQUIRE(h.has_value());
    CHECK(h->envelope.recipients == env.recipients);
    CHECK(h->message_offset == 16385);
}

TEST_CASE("read_queue_header gives nullopt for empty, torn and bad files", "[queuefile]") {
    test::TempDir dir;
    {
        Fd fd = file_with(dir, "empty", "");
        CHECK_FALSE(read_queue_header(fd.get()).has_value());
    }
    {
        const std::string torn = encode_queue_header(1, 2, {"s", {"r"}});
        Fd fd = file_with(dir, "torn", torn.substr(0, torn.size() - 1));
        CHECK_FALSE(read_queue_header(fd.get()).has_value());
    }
    {
        Fd fd = file_with(dir, "bad", "Y 1 2\nFs\n\nmessage\n");  // no recipient
        CHECK_FALSE(read_queue_header(fd.get()).has_value());
    }
    CHECK_THROWS_AS(read_queue_header(-1), SysError);
}

// --- queue ids

TEST_CASE("make_queue_id is SECONDS.MICROSECONDS.PID", "[queuefile]") {
    const time_t before = ::time(nullptr);
    const std::string id = make_queue_id(4242);
    const time_t after = ::time(nullptr);
    CHECK(valid_queue_id(id));
    size_t d1 = id.find('.'), d2 = id.rfind('.');
    REQUIRE(d1 != std::string::npos);
    REQUIRE(d2 != d1);
    const long long sec = std::stoll(id.substr(0, d1));
    const long long usec = std::stoll(id.substr(d1 + 1, d2 - d1 - 1));
    CHECK(sec >= before);
    CHECK(sec <= after);
    CHECK(usec >= 0);
    CHECK(usec < 1000000);
    CHECK(id.substr(d2 + 1) == "4242");
}

TEST_CASE("valid_queue_id accepts three decimal parts only", "[queuefile]") {
    CHECK(valid_queue_id("1.2.3"));
    CHECK(valid_queue_id("1700000000.123456.4242"));
    const std::vector<std::string> bad = {"", "1", "1.2", "1.2.3.4", ".1.2", "1.2.", "1..2", "1.a.3",
                                          "1.2.-3", "../1.2", "1/2.3.4", "1.2.3\n", " 1.2.3",
                                          "1." + std::string(62, '2') + ".3"};
    for (const auto& b : bad) {
        INFO("id: " << b);
        CHECK_FALSE(valid_queue_id(b));
    }
    CHECK(valid_queue_id("1." + std::string(60, '2') + ".3"));  // 64 characters
}

// --- info lines

TEST_CASE("encode_info_line formats D and P lines", "[queuefile]") {
    CHECK(encode_info_line({'D', 3, "", ""}) == "D 3\n");
    CHECK(encode_info_line({'D', 0, "ignored", "ignored"}) == "D 0\n");
    CHECK(encode_info_line({'P', 1, "5.1.1", "no mailbox here"}) == "P 1 5.1.1 no mailbox here\n");
    CHECK(encode_info_line({'P', 2, "", "x"}) == "P 2 5.0.0 x\n");
    CHECK(encode_info_line({'P', 4, "5.2.2", "line1\r\nline2\0end"s}) == "P 4 5.2.2 line1  line2 end\n");
}

TEST_CASE("parse_info reads back encoded lines", "[queuefile]") {
    const std::vector<InfoLine> lines = {
        {'D', 0, "", ""},
        {'P', 1, "5.1.1", "no mailbox here by that name"},
        {'D', 12345, "", ""},
        {'P', 2, "5.4.7", ""},
    };
    std::string text;
    for (const auto& l : lines) text += encode_info_line(l);
    auto got = parse_info(text);
    REQUIRE(got.size() == lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
        CHECK(got[i].kind == lines[i].kind);
        CHECK(got[i].index == lines[i].index);
        CHECK(got[i].status == lines[i].status);
        CHECK(got[i].text == lines[i].text);
    }

    // CR and LF in the text come back as spaces, on one line.
    auto scrubbed = parse_info(encode_info_line({'P', 7, "5.0.0", "a\nb\rc"}));
    REQUIRE(scrubbed.size() == 1);
    CHECK(scrubbed[0].index == 7);
    CHECK(scrubbed[0].text == "a b c");
}

TEST_CASE("parse_info ignores a torn last line and malformed lines", "[queuefile]") {
    const std::string text = "D 0\n"
                             "P 1 5.1.1 gone\n"
                             "X 2\n"
                             "D\n"
                             "D \n"
                             "D x\n"
                             "D 1 extra\n"
                             "D -1\n"
                             "d 3\n"
                             "P 3\n"
                             "\n"
                             "D 2\n"
                             "D 9";  // torn: the write did not complete
    auto got = parse_info(text);
    REQUIRE(got.size() == 3);
    CHECK(got[0].kind == 'D');
    CHECK(got[0].index == 0);
    CHECK(got[1].kind == 'P');
    CHECK(got[1].index == 1);
    CHECK(got[1].status == "5.1.1");
    CHECK(got[1].text == "gone");
    CHECK(got[2].kind == 'D');
    CHECK(got[2].index == 2);

    CHECK(parse_info("").empty());
    CHECK(parse_info("P 1 5.1.1 torn").empty());
}
