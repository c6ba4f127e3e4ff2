// remote/: reading replies, encoding DATA, the result lines of remote-deliver.
#include <catch2/catch.hpp>

#include "remote_result.hpp"
#include "smtp_client.hpp"
#include "smtp_reply.hpp"

using namespace yubin;

namespace {

std::vector<SmtpReply> read_all(std::string_view bytes) {
    ReplyReader r;
    r.feed(bytes);
    std::vector<SmtpReply> out;
    while (auto x = r.next()) out.push_back(*x);
    return out;
}

}  // namespace

TEST_CASE("replies: single and multi-line, split anywhere", "[smtp-client]") {
    const std::string in = "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n250\r\n";
    auto all = read_all(in);
    REQUIRE(all.size() == 3);
    CHECK(all[0].code == 220);
    CHECK(all[1].lines == std::vector<std::string>{"mx.example", "PIPELINING", "SIZE 1000"});
    CHECK(all[2].code == 250);
    CHECK(all[2].lines == std::vector<std::string>{""});
    // byte by byte gives the same
    ReplyReader r;
    std::vector<SmtpReply> bytewise;
    for (char c : in) {
        r.feed(std::string_view(&c, 1));
        while (auto x = r.next()) bytewise.push_back(*x);
    }
    REQUIRE(bytewise.size() == 3);
    CHECK(bytewise[1].lines == all[1].lines);
    CHECK(r.empty());
}

TEST_CASE("replies: status codes and one-line text", "[smtp-client]") {
    auto r = read_all("550-5.1.1 no such\r\n550-5.1.1 user here\r\n550 see https://x\r\n");
    REQUIRE(r.size() == 1);
    CHECK(r[0].status() == "5.1.1");
    CHECK(r[0].text() == "550 5.1.1 no such user here see https://x");
    CHECK(read_all("451 4.3.0 try later\r\n")[0].status() == "4.3.0");
    CHECK(read_all("451 5.3.0 wrong class\r\n")[0].status() == "4.0.0");
    CHECK(read_all("250 ok\r\n")[0].status() == "2.0.0");
    CHECK(read_all("250 2.1.5\r\n")[0].status() == "2.1.5");
    CHECK(read_all("554 no\x01service\r\n")[0].text() == "554 no service");
    std::string longtext = "250 " + std::string(3000, 'x') + "\r\n";
    CHECK(read_all(longtext)[0].text(100).size() == 100);
}

TEST_CASE("replies: malformed or unbounded input is an error, not a hang or crash", "[smtp-client]") {
    for (const char* bad : {"250 ok\n", "250 o\rk\r\n", "25\r\n", "abc ok\r\n", "250x\r\n", "150 no\r\n",
                            "650 no\r\n", "250-a\r\n251 b\r\n", "\r\n"}) {
        INFO(bad);
        CHECK_THROWS_AS(read_all(bad), SmtpProtocolError);
    }
    CHECK_THROWS_AS(read_all(std::string(ReplyReader::max_line, 'x')), SmtpProtocolError);
    std::string endless;
    for (size_t i = 0; i <= ReplyReader::max_lines; ++i) endless += "250-more\r\n";
    CHECK_THROWS_AS(read_all(endless), SmtpProtocolError);
    ReplyReader r;
    CHECK_THROWS_AS(r.feed(std::string(ReplyReader::max_buffer + 1, 'x')), SmtpProtocolError);
    // an incomplete reply is no reply yet
    ReplyReader partial;
    partial.feed("250-first\r\n250 sec");
    CHECK_FALSE(partial.next());
}

TEST_CASE("DataEncoder: CRLF, dot-stuffing, stray CR, final line end and dot", "[smtp-client]") {
    auto enc = [](std::string_view raw) {
        DataEncoder e;
        std::string out = e.encode(raw);
        return out + e.finish();
    };
    CHECK(enc("a\nb\n") == "a\r\nb\r\n.\r\n");
    CHECK(enc(".x\n..y\nz.\n.\n") == "..x\r\n...y\r\nz.\r\n..\r\n.\r\n");
    CHECK(enc("no end") == "no end\r\n.\r\n");
    CHECK(enc("") == ".\r\n");
    CHECK(enc("crlf\r\nkept\r\n") == "crlf\r\nkept\r\n.\r\n");
    CHECK(enc("bare\rcr\n\r.x\n") == "bare cr\r\n .x\r\n.\r\n");
    CHECK(enc("trailing\r") == "trailing \r\n.\r\n");
    CHECK(enc("\n.\n") == "\r\n..\r\n.\r\n");
    // pieces split anywhere give the same bytes
    const std::string msg = "Subject: x\n\n.dot\r\nline\rcr\n..\nend";
    for (size_t cut = 0; cut <= msg.size(); ++cut) {
        DataEncoder e;
        std::string out = e.encode(std::string_view(msg).substr(0, cut));
        out += e.encode(std::string_view(msg).substr(cut));
        out += e.finish();
        CHECK(out == enc(msg));
    }
}

TEST_CASE("remote-deliver result lines round-trip and are checked", "[smtp-client]") {
    RemoteResult r{'D', "5.1.1", "mx.example.org", "smtp", "550 5.1.1 no such user"};
    std::string line = format_result_line(r);
    CHECK(line == "D 5.1.1 mx.example.org smtp; 550 5.1.1 no such user\n");
    auto back = parse_result_line(std::string_view(line).substr(0, line.size() - 1));
    REQUIRE(back);
    CHECK(back->code == 'D');
    CHECK(back->remote_mta == "mx.example.org");
    CHECK(back->diag_type == "smtp");
    CHECK(back->diagnostic == "550 5.1.1 no such user");
    // no MTA, control characters, a status of the wrong class
    line = format_result_line(RemoteResult{'Z', "5.4.4", "", "x-unix", "a\nb\rc"});
    CHECK(line == "Z 4.4.4 - x-unix; a b c\n");
    back = parse_result_line(std::string_view(line).substr(0, line.size() - 1));
    REQUIRE(back);
    CHECK(back->remote_mta.empty());
    CHECK(format_result_line(RemoteResult{'K', "", "h", "smtp", "250 ok"}) == "K 2.0.0 h smtp; 250 ok\n");
    for (const char* bad : {"", "X 2.0.0 h smtp; ok", "K 5.0.0 h smtp; x", "K 2.0 h smtp; x", "K 2.0.0 h", "K 2.0.0 h smtp x",
                            "D 5.1.1 h sm tp; x", "Z 4.0.0  smtp; x", "K 2.0.0 h smtp; a\tb"})
        CHECK_FALSE(parse_result_line(bad));
}

TEST_CASE("MAIL FROM path: null sender and the double-bounce sender are <>", "[smtp-client]") {
    CHECK(mail_from_path("") == "<>");
    CHECK(mail_from_path("#@[]") == "<>");
    CHECK(mail_from_path("a@b.example") == "<a@b.example>");
}
