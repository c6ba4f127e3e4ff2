// authorization.hpp: the AUTHORIZATION state with a fake checker.
#include "authorization.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace yubin::pop3;
using Action = AuthStep::Action;

namespace {

class FakeChecker : public CredentialChecker {
public:
    CheckResult check_password(std::string_view user, std::string_view password) override {
        calls += "P(" + std::string(user) + "," + std::string(password) + ")";
        if (user == "alice" && password == "pass word") return {Account{"alice", "/home/alice"}, ""};
        return {std::nullopt, "bad"};
    }
    CheckResult check_apop(std::string_view user, std::string_view ts, std::string_view digest) override {
        calls += "A(" + std::string(user) + "," + std::string(ts) + "," + std::string(digest) + ")";
        if (user == "alice" && digest == std::string(32, 'a')) return {Account{"alice", "/home/alice"}, ""};
        return {std::nullopt, "bad"};
    }
    std::string calls;
};

const std::string ts = "<1.2.3@host>";

}  // namespace

TEST_CASE("greeting carries the APOP timestamp only when APOP is offered", "[pop3_authorization]") {
    FakeChecker c;
    CHECK(Authorization(c, ts).greeting() == "+OK yubin POP3 server ready <1.2.3@host>\r\n");
    CHECK(Authorization(c, "").greeting() == "+OK yubin POP3 server ready\r\n");
    std::string t = make_timestamp("mail.example");
    CHECK(t.front() == '<');
    CHECK(t.back() == '>');
    CHECK(t.find("@mail.example>") != std::string::npos);
    CHECK(make_timestamp("x") != make_timestamp("x"));
}

TEST_CASE("USER then PASS logs in; the password is the rest of the line", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, ts);
    AuthStep s = a.command("USER alice");
    CHECK(s.action == Action::reply);
    CHECK(s.text == "+OK send PASS\r\n");
    s = a.command("PASS pass word");
    CHECK(s.action == Action::login);
    CHECK(s.account.name == "alice");
    CHECK(s.account.home == "/home/alice");
    CHECK(s.method == "user");
    CHECK(c.calls == "P(alice,pass word)");
}

TEST_CASE("a failed login: the same reply for unknown users, and USER again", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, ts);
    a.command("USER nobody");
    AuthStep s1 = a.command("PASS pass word");
    CHECK(s1.action == Action::fail);
    CHECK(s1.text == "-ERR [AUTH] authentication failed\r\n");
    CHECK(s1.reason == "bad");
    CHECK(s1.user == "nobody");
    CHECK_FALSE(s1.close);
    // the USER is forgotten after a failure
    CHECK(a.command("PASS pass word").text == "-ERR send USER first\r\n");
    a.command("USER alice");
    AuthStep s2 = a.command("PASS wrong");
    CHECK(s2.text == s1.text);
    CHECK_FALSE(s2.close);
    a.command("USER alice");
    AuthStep s3 = a.command("PASS wrong");
    CHECK(s3.action == Action::fail);
    CHECK(s3.close);   // the third failure ends the connection
}

TEST_CASE("APOP", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, ts);
    AuthStep s = a.command("APOP alice " + std::string(32, 'a'));
    CHECK(s.action == Action::login);
    CHECK(s.method == "apop");
    CHECK(c.calls == "A(alice,<1.2.3@host>," + std::string(32, 'a') + ")");
    AuthStep f = a.command("APOP alice " + std::string(32, 'b'));
    CHECK(f.action == Action::fail);
    CHECK(f.text == "-ERR [AUTH] authentication failed\r\n");

    FakeChecker c2;
    Authorization none(c2, "");
    CHECK(none.command("APOP alice " + std::string(32, 'a')).text == "-ERR APOP is not offered here\r\n");
    CHECK(c2.calls.empty());
}

TEST_CASE("syntax and state errors in AUTHORIZATION", "[pop3_authorization]") {
    struct Row { const char* line; const char* reply; };
    for (Row r : {Row{"USER", "-ERR syntax: USER name"}, Row{"USER a b", "-ERR syntax: USER name"},
                  Row{"PASS x", "-ERR send USER first"}, Row{"APOP alice", "-ERR syntax: APOP name digest"},
                  Row{"APOP alice xyz", "-ERR syntax: APOP name digest"},
                  Row{"APOP alice 0123456789abcdef0123456789abcdeg", "-ERR syntax: APOP name digest"},
                  Row{"STAT", "-ERR log in first"}, Row{"LIST", "-ERR log in first"},
                  Row{"RETR 1", "-ERR log in first"}, Row{"DELE 1", "-ERR log in first"},
                  Row{"NOOP", "-ERR log in first"}, Row{"RSET", "-ERR log in first"},
                  Row{"TOP 1 1", "-ERR log in first"}, Row{"UIDL", "-ERR log in first"},
                  Row{"HELO x", "-ERR unknown command"}, Row{"CAPA x", "-ERR CAPA takes no argument"},
                  Row{"QUIT x", "-ERR QUIT takes no argument"}}) {
        FakeChecker c;
        Authorization a(c, ts);
        INFO(r.line);
        AuthStep s = a.command(r.line);
        CHECK(s.action == Action::reply);
        CHECK(s.text == std::string(r.reply) + "\r\n");
        CHECK(c.calls.empty());
    }
    FakeChecker c;
    Authorization a(c, ts);
    CHECK(a.command("USER alice").action == Action::reply);
    CHECK(a.command("PASS").text == "-ERR syntax: PASS password\r\n");
    CHECK(a.too_long().text == "-ERR line too long\r\n");
}

TEST_CASE("CAPA before login lists USER, QUIT closes, errors are bounded", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, ts);
    AuthStep capa = a.command("CAPA");
    CHECK(capa.text.find("\r\nUSER\r\n") != std::string::npos);
    CHECK(capa.text.find("IMPLEMENTATION") == std::string::npos);
    AuthStep q = a.command("QUIT");
    CHECK(q.action == Action::close);
    CHECK(q.text == "+OK yubin POP3 server signing off\r\n");

    Authorization b(c, ts);
    for (unsigned i = 0; i < Authorization::max_errors; ++i) CHECK(b.command("X").action == Action::reply);
    CHECK(b.command("X").action == Action::close);
}

// --- STLS (RFC 2595) and AUTH PLAIN (RFC 5034)

TEST_CASE("STLS: offered before TLS only; afterwards the state is fresh", "[pop3_authorization][tls]") {
    FakeChecker c;
    Authorization none(c, "");
    CHECK(none.command("CAPA").text.find("STLS") == std::string::npos);
    CHECK(none.command("STLS").text == "-ERR STLS is not available\r\n");

    Authorization a(c, "", AuthOptions{true, false, false});
    AuthStep capa = a.command("CAPA");
    CHECK(capa.text.find("\r\nSTLS\r\n") != std::string::npos);
    CHECK(capa.text.find("USER") == std::string::npos);   // no login in clear text here
    CHECK(capa.text.find("SASL") == std::string::npos);
    for (const char* login : {"USER alice", "PASS pass word", "APOP alice aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                              "AUTH PLAIN AGFsaWNlAHBhc3Mgd29yZA=="}) {
        AuthStep s = a.command(login);
        CHECK(s.action == Action::reply);
        CHECK(s.text.rfind("-ERR [AUTH] Plaintext authentication disallowed", 0) == 0);
    }
    CHECK(c.calls.empty());
    CHECK(a.command("STLS x").text == "-ERR STLS takes no argument\r\n");
    AuthStep stls = a.command("STLS");
    CHECK(stls.action == Action::starttls);
    CHECK(stls.text == "+OK Begin TLS negotiation\r\n");
    a.tls_started();
    capa = a.command("CAPA");
    CHECK(capa.text.find("STLS") == std::string::npos);
    CHECK(capa.text.find("\r\nUSER\r\nSASL PLAIN\r\n") != std::string::npos);
    CHECK(a.command("STLS").text == "-ERR TLS is already active\r\n");
    CHECK(a.command("USER alice").action == Action::reply);
    CHECK(a.command("PASS pass word").action == Action::login);
}

TEST_CASE("STLS after USER forgets the user", "[pop3_authorization][tls]") {
    FakeChecker c;
    Authorization a(c, "", AuthOptions{true, false, true});
    CHECK(a.command("USER alice").text == "+OK send PASS\r\n");
    CHECK(a.command("STLS").action == Action::starttls);
    a.tls_started();
    CHECK(a.command("PASS pass word").text == "-ERR send USER first\r\n");
}

TEST_CASE("AUTH PLAIN: initial response, continuation, cancel, and bad input", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, "", AuthOptions{false, true, true});
    CHECK(a.command("AUTH").text == "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n");
    // "\0alice\0pass word"
    AuthStep ok = a.command("AUTH PLAIN AGFsaWNlAHBhc3Mgd29yZA==");
    CHECK(ok.action == Action::login);
    CHECK(ok.method == "plain");
    CHECK(ok.account.name == "alice");

    Authorization b(c, "", AuthOptions{false, true, true});
    CHECK(b.command("auth plain").text == "+ \r\n");
    CHECK(b.command("AGFsaWNlAHBhc3Mgd29yZA==").action == Action::login);

    Authorization d(c, "", AuthOptions{false, true, true});
    CHECK(d.command("AUTH PLAIN").text == "+ \r\n");
    CHECK(d.command("*").text == "-ERR AUTH cancelled\r\n");
    CHECK(d.command("AGFsaWNlAHBhc3Mgd29yZA==").text == "-ERR unknown command\r\n");   // no longer a response
    CHECK(d.command("AUTH CRAM-MD5").text == "-ERR unsupported SASL mechanism\r\n");
    CHECK(d.command("AUTH PLAIN !!!!").text == "-ERR AUTH: malformed base64\r\n");
    CHECK(d.command("AUTH PLAIN AGFsaWNlAHBhc3Mgd29yZA").text == "-ERR AUTH: malformed base64\r\n");
    // "bob\0alice\0pw": another authorization identity
    CHECK(d.command("AUTH PLAIN Ym9iAGFsaWNlAHB3").text ==
          "-ERR AUTH: authorization identity differs from the user\r\n");
    CHECK(d.command("AUTH PLAIN YWxpY2U=").text.rfind("-ERR AUTH: no NUL", 0) == 0);
    CHECK(d.command("AUTH PLAIN =").text.rfind("-ERR AUTH: no NUL", 0) == 0);
    CHECK(d.command("AUTH PLAIN").text == "+ \r\n");
    CHECK(d.too_long().text == "-ERR line too long\r\n");
    CHECK(d.command("QUIT").action == Action::close);
    // a wrong password is a login failure (delayed, counted), like PASS
    Authorization e(c, "", AuthOptions{false, true, true});
    AuthStep bad = e.command("AUTH PLAIN AGFsaWNlAHdyb25n");
    CHECK(bad.action == Action::fail);
    CHECK(bad.text == "-ERR [AUTH] authentication failed\r\n");
    CHECK(bad.user == "alice");
}

TEST_CASE("AUTH PLAIN: the response after \"+ \" may be longer than a command", "[pop3_authorization]") {
    FakeChecker c;
    Authorization a(c, "", AuthOptions{false, true, true});
    CHECK_FALSE(a.awaiting_response());
    CHECK(a.command("AUTH PLAIN").text == "+ \r\n");
    CHECK(a.awaiting_response());   // the front end takes a line of max_sasl_line then
    a.command("*");
    CHECK_FALSE(a.awaiting_response());
    CHECK(a.command("AUTH PLAIN").text == "+ \r\n");
    a.too_long();
    CHECK_FALSE(a.awaiting_response());
}
