// encode.hpp: CRLF conversion, byte-stuffing, TOP, and sizes that
// match what is sent.
#include "encode.hpp"

#include "maildir.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string>

using namespace yubin::pop3;

namespace {

std::string encode(std::string_view msg, std::optional<uint64_t> top = std::nullopt, size_t piece = 0) {
    Encoder e(top);
    std::string out;
    if (piece == 0) piece = msg.size() + 1;
    for (size_t pos = 0; pos < msg.size(); pos += piece)
        if (!e.add(msg.substr(pos, piece), out)) break;
    e.finish(out);
    return out;
}

// What a client makes of a multi-line response: the terminator removed,
// then the byte-stuffing (RFC 1939 section 3).
std::string unstuff(const std::string& wire) {
    REQUIRE(wire.size() >= 3);
    REQUIRE(wire.substr(wire.size() - 3) == ".\r\n");
    std::string body = wire.substr(0, wire.size() - 3), out;
    bool start = true;
    for (size_t i = 0; i < body.size(); ++i) {
        if (start && body[i] == '.') {
            start = false;
            continue;
        }
        out += body[i];
        start = body[i] == '\n';
    }
    return out;
}

class StringReader : public ByteReader {
public:
    explicit StringReader(std::string s, size_t piece) : s_(std::move(s)), piece_(piece) {}
    size_t read(char* buf, size_t n) override {
        size_t k = std::min({n, piece_, s_.size() - pos_});
        s_.copy(buf, k, pos_);
        pos_ += k;
        return k;
    }
private:
    std::string s_;
    size_t piece_, pos_ = 0;
};

}  // namespace

TEST_CASE("RETR: LF becomes CRLF, dots are stuffed, the end is .CRLF", "[pop3_encode]") {
    struct Row { const char* in; const char* out; };
    for (Row r : {Row{"", ".\r\n"}, Row{"a\n", "a\r\n.\r\n"}, Row{"a", "a\r\n.\r\n"},
                  Row{"S: x\n\n.\n..x\n.y\n", "S: x\r\n\r\n..\r\n...x\r\n..y\r\n.\r\n"},
                  Row{"crlf\r\nkept\r\n", "crlf\r\nkept\r\n.\r\n"}, Row{"bare\rcr\n", "bare\rcr\r\n.\r\n"},
                  Row{"ends in cr\r", "ends in cr\r\n.\r\n"}, Row{"\n\n", "\r\n\r\n.\r\n"},
                  Row{"a.b\n x.\n", "a.b\r\n x.\r\n.\r\n"}}) {
        INFO(r.in);
        CHECK(encode(r.in) == r.out);
        for (size_t piece : {1, 2, 3}) CHECK(encode(r.in, std::nullopt, piece) == r.out);
    }
}

TEST_CASE("TOP: the header, the empty line, then n body lines", "[pop3_encode]") {
    const std::string msg = "A: 1\nB: 2\n\nline1\n.line2\nline3\n";
    CHECK(encode(msg, 0) == "A: 1\r\nB: 2\r\n\r\n.\r\n");
    CHECK(encode(msg, 1) == "A: 1\r\nB: 2\r\n\r\nline1\r\n.\r\n");
    CHECK(encode(msg, 2) == "A: 1\r\nB: 2\r\n\r\nline1\r\n..line2\r\n.\r\n");
    CHECK(encode(msg, 99) == encode(msg));
    // an empty line written as CRLF ends the header too
    CHECK(encode("A: 1\r\n\r\nbody\r\n", 0) == "A: 1\r\n\r\n.\r\n");
    // no empty line: the whole message is header
    CHECK(encode("A: 1\nB: 2", 0) == "A: 1\r\nB: 2\r\n.\r\n");
    for (size_t piece : {1, 2, 5}) CHECK(encode(msg, 1, piece) == encode(msg, 1));
}

TEST_CASE("the size is what the client receives, for any bytes in any pieces", "[pop3_encode]") {
    std::mt19937 rng(42);
    const char alphabet[] = {'a', '.', '\r', '\n', '\n', ' '};
    for (int round = 0; round < 2000; ++round) {
        std::string msg;
        size_t len = rng() % 40;
        for (size_t i = 0; i < len; ++i) msg += alphabet[rng() % sizeof alphabet];
        const std::string received = unstuff(encode(msg));
        INFO("message: " << msg);
        CHECK(yubin::crlf_size(msg) == received.size());
        yubin::CrlfSizeCounter c;
        size_t piece = 1 + rng() % 4;
        for (size_t pos = 0; pos < msg.size(); pos += piece) c.add(std::string_view(msg).substr(pos, piece));
        CHECK(c.total() == received.size());
        // the CRLF version of the message: every line ends with CRLF, the
        // bytes are otherwise the same
        const bool ends_crlf = received.empty() || received.substr(received.size() - 2) == "\r\n";
        CHECK(ends_crlf);
    }
}

TEST_CASE("a Transfer streams the reply in pieces and ends with the terminator", "[pop3_encode]") {
    std::string msg;
    for (int i = 0; i < 20000; ++i) msg += i % 7 ? "line of text\n" : ".dotted\n";
    std::string expected = encode(msg);
    for (size_t piece : {size_t(1) << 20, size_t(4096), size_t(1)}) {
        if (piece == 1) msg.resize(2000), expected = encode(msg);
        Transfer t(std::make_unique<StringReader>(msg, piece), std::nullopt);
        std::string out;
        int calls = 0;
        while (t.fill(out)) ++calls;
        CHECK(out == expected);
        CHECK(calls > 0);
    }
    Transfer top(std::make_unique<StringReader>("H: v\n\nb1\nb2\n", 3), 1);
    std::string out;
    while (top.fill(out)) {
    }
    CHECK(out == "H: v\r\n\r\nb1\r\n.\r\n");
}
