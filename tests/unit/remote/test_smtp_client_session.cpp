// The SMTP client's session logic against scripted servers.
#include <catch2/catch.hpp>

#include "test_smtp_client_session.hpp"

using namespace yubin;
using yubin::test::ScriptedServer;
using yubin::test::StringMessage;
using Kind = DeliveryResult::Kind;

namespace {

const std::string greeting = "220 mx.example ESMTP\r\n";
const std::string ehlo_pipelining = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n";
const std::string ehlo_plain = "250-mx.example\r\n250 HELP\r\n";
const std::string ok = "250 2.0.0 ok\r\n";

SessionResult run(ScriptedServer& s, const std::vector<std::string>& rcpts, const std::string& msg = "Subject: t\n\n.body\n",
                  const std::string& sender = "s@here.example") {
    StringMessage m(msg);
    ClientConfig cfg{"client.example", 7};
    return run_smtp_session(s, cfg, sender, rcpts, m);
}

}  // namespace

TEST_CASE("session: pipelined transaction with a per-recipient refusal", "[smtp-client]") {
    ScriptedServer s({greeting, ehlo_pipelining, ok, ok, "550 5.1.1 <b@far.example>: no such user\r\n",
                      "354 go\r\n", "250 2.0.0 queued as X\r\n", "221 bye\r\n"});
    SessionResult r = run(s, {"a@far.example", "b@far.example"});
    CHECK(s.sent == "EHLO client.example\r\n"
                    "MAIL FROM:<s@here.example> SIZE=21\r\nRCPT TO:<a@far.example>\r\nRCPT TO:<b@far.example>\r\nDATA\r\n"
                    "Subject: t\r\n\r\n..body\r\n.\r\nQUIT\r\n");
    CHECK_FALSE(r.failure);
    REQUIRE(r.rcpts[0]);
    CHECK(r.rcpts[0]->kind == Kind::ok);
    CHECK(r.rcpts[0]->smtp);
    CHECK(r.rcpts[0]->diagnostic == "250 2.0.0 queued as X");
    REQUIRE(r.rcpts[1]);
    CHECK(r.rcpts[1]->kind == Kind::permanent);
    CHECK(r.rcpts[1]->status == "5.1.1");
    CHECK(r.rcpts[1]->diagnostic == "550 5.1.1 <b@far.example>: no such user");
    CHECK(s.timeout == 7);      // QUIT waits quit_timeout
    CHECK(s.finished());
}

TEST_CASE("session: EHLO refused, HELO, one command at a time", "[smtp-client]") {
    ScriptedServer s({greeting, "502 what\r\n", "250 hi\r\n", ok, "451 4.2.0 later\r\n", ok, "354 go\r\n", ok,
                      "221 bye\r\n"});
    SessionResult r = run(s, {"a@far.example", "b@far.example"}, "x\n", "");
    CHECK(s.sent == "EHLO client.example\r\nHELO client.example\r\nMAIL FROM:<>\r\nRCPT TO:<a@far.example>\r\n"
                    "RCPT TO:<b@far.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
    CHECK(r.rcpts[0]->kind == Kind::temporary);
    CHECK(r.rcpts[0]->status == "4.2.0");
    CHECK(r.rcpts[1]->kind == Kind::ok);
}

TEST_CASE("session: a refused greeting, HELO or a 421 leaves the recipients for the next host", "[smtp-client]") {
    for (auto script : std::vector<std::deque<std::string>>{
             {"421 4.3.2 busy\r\n", "221 bye\r\n"},
             {"554 5.7.1 go away\r\n", "221 bye\r\n"},
             {greeting, "500 no\r\n", "501 no\r\n", "221 bye\r\n"},
             {greeting, "421 4.3.2 closing\r\n"},
             {greeting, ehlo_pipelining, "421 4.3.2 closing\r\n"},
             {greeting, ehlo_pipelining, ok, "421 4.3.2 closing\r\n"},
             {greeting, ehlo_pipelining, ok, ok, "421 4.3.2 closing\r\n"}}) {
        ScriptedServer s(script);
        SessionResult r = run(s, {"a@far.example"});
        CHECK_FALSE(r.rcpts[0]);
        REQUIRE(r.failure);
        CHECK(r.failure->kind == Kind::temporary);
        CHECK(r.failure->status[0] == '4');
        CHECK(r.failure->smtp);
    }
}

TEST_CASE("session: a lost connection before the end of data: next host; after it: temporary here", "[smtp-client]") {
    ScriptedServer before({greeting, ehlo_pipelining, ok, ok, "LOST"});
    SessionResult r = run(before, {"a@far.example"});
    CHECK_FALSE(r.rcpts[0]);
    REQUIRE(r.failure);
    CHECK(r.failure->status == "4.4.2");
    CHECK_THAT(r.failure->diagnostic, Catch::Contains("the reply to DATA"));
    CHECK_FALSE(r.failure->smtp);

    ScriptedServer after({greeting, ehlo_pipelining, ok, ok, "550 5.1.1 no\r\n", "354 go\r\n", "LOST"});
    r = run(after, {"a@far.example", "b@far.example"});
    REQUIRE(r.rcpts[0]);
    CHECK(r.rcpts[0]->kind == Kind::temporary);
    CHECK_THAT(r.rcpts[0]->diagnostic, Catch::Contains("after the end of the message"));
    CHECK(r.rcpts[1]->kind == Kind::permanent);   // what the server answered stays
    REQUIRE(r.failure);

    ScriptedServer silent({"LOST"});
    r = run(silent, {"a@far.example"});
    CHECK_FALSE(r.rcpts[0]);
    CHECK_THAT(r.failure->diagnostic, Catch::Contains("the greeting"));
}

TEST_CASE("session: MAIL and DATA refusals apply to every accepted recipient", "[smtp-client]") {
    ScriptedServer mail({greeting, ehlo_pipelining, "451 4.3.0 queue full\r\n", "503 no\r\n", "503 no\r\n",
                         "503 no\r\n", "221 bye\r\n"});
    SessionResult r = run(mail, {"a@far.example", "b@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::temporary);
    CHECK(r.rcpts[1]->kind == Kind::temporary);
    CHECK(r.rcpts[1]->diagnostic == "451 4.3.0 queue full");
    CHECK(mail.finished());

    ScriptedServer data({greeting, ehlo_plain, ok, ok, "554 5.6.0 no data today\r\n", "221 bye\r\n"});
    r = run(data, {"a@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::permanent);
    CHECK(r.rcpts[0]->status == "5.6.0");

    ScriptedServer end({greeting, ehlo_plain, ok, ok, "354 go\r\n", "552 5.3.4 too big after all\r\n", "221 bye\r\n"});
    r = run(end, {"a@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::permanent);
    CHECK(r.rcpts[0]->diagnostic == "552 5.3.4 too big after all");
}

TEST_CASE("session: no recipient accepted, yet the server wants data", "[smtp-client]") {
    ScriptedServer s({greeting, ehlo_pipelining, ok, "550 5.1.1 no\r\n", "354 go anyway\r\n",
                      "554 5.5.1 no valid recipients\r\n", "221 bye\r\n"});
    SessionResult r = run(s, {"a@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::permanent);
    CHECK(s.sent.find("DATA\r\n.\r\nQUIT\r\n") != std::string::npos);
    CHECK(s.sent.find("Subject") == std::string::npos);
}

TEST_CASE("session: 452 too many recipients go in a further transaction", "[smtp-client]") {
    ScriptedServer s({greeting, ehlo_pipelining, ok, ok, "452 4.5.3 too many recipients\r\n", "354 go\r\n",
                      "250 2.0.0 first\r\n", ok, ok, "354 go\r\n", "250 2.0.0 second\r\n", "221 bye\r\n"});
    SessionResult r = run(s, {"a@far.example", "b@far.example"}, "x\n");
    CHECK(r.rcpts[0]->diagnostic == "250 2.0.0 first");
    CHECK(r.rcpts[1]->diagnostic == "250 2.0.0 second");
    size_t first = s.sent.find("MAIL FROM");
    REQUIRE(s.sent.find("MAIL FROM", first + 1) != std::string::npos);
    CHECK(s.finished());
    // without progress the 452 is just a temporary failure
    ScriptedServer stuck({greeting, ehlo_pipelining, ok, "452 4.5.3 too many\r\n", "554 no recipients\r\n",
                          "221 bye\r\n"});
    r = run(stuck, {"a@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::temporary);
}

TEST_CASE("session: SIZE limit, 8BITMIME and SMTPUTF8", "[smtp-client]") {
    ScriptedServer big({greeting, "250-mx\r\n250 SIZE 10\r\n", "221 bye\r\n"});
    SessionResult r = run(big, {"a@far.example"}, std::string(50, 'x'));
    CHECK(r.rcpts[0]->kind == Kind::permanent);
    CHECK(r.rcpts[0]->status == "5.3.4");
    CHECK(big.sent == "EHLO client.example\r\nQUIT\r\n");

    ScriptedServer eight({greeting, ehlo_pipelining, ok, ok, "354 go\r\n", ok, "221 bye\r\n"});
    r = run(eight, {"a@far.example"}, "caf\xc3\xa9\n");
    CHECK(eight.sent.find("MAIL FROM:<s@here.example> SIZE=7 BODY=8BITMIME\r\n") != std::string::npos);

    ScriptedServer no_utf8({greeting, ehlo_pipelining, "221 bye\r\n"});
    r = run(no_utf8, {"j\xc3\xb6rg@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::permanent);
    CHECK(r.rcpts[0]->status == "5.6.7");

    ScriptedServer utf8({greeting, "250-mx\r\n250 SMTPUTF8\r\n", ok, ok, "354 go\r\n", ok, "221 bye\r\n"});
    r = run(utf8, {"j\xc3\xb6rg@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::ok);
    CHECK(utf8.sent.find("MAIL FROM:<s@here.example> SMTPUTF8\r\n") != std::string::npos);
}

TEST_CASE("session: a QUIT that is never answered changes no result", "[smtp-client]") {
    ScriptedServer s({greeting, ehlo_pipelining, ok, ok, "354 go\r\n", ok, "LOST"});
    SessionResult r = run(s, {"a@far.example"});
    CHECK(r.rcpts[0]->kind == Kind::ok);
    CHECK_FALSE(r.failure);
}
