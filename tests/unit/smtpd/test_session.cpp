// SmtpSession (smtpd/session.hpp): the SMTP server state machine, driven with
// bytes and a fake MessageSink; no sockets, no queue.
#include "session.hpp"

#include "exitcodes.hpp"
#include "instance.hpp"
#include "sasl.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

// Records what the session does with a message. log gets one letter per call:
// B begin (also when it fails), C commit, A abort; writes are not logged.
class FakeSink : public MessageSink {
public:
    bool fail_begin = false;
    int begin_code = inject_exit::cannot_create;  // why begin() fails (temporary)
    int commit_code = inject_exit::ok;
    std::string id = "QUEUEID";

    std::string log;
    bool open = false;
    std::string current;                  // the message being written
    std::vector<std::string> messages;    // what each commit() had received
    std::vector<Envelope> envelopes;      // each commit()'s envelope
    Envelope begun;                       // the envelope given to begin()

    int begin(const Envelope& env, std::string& queue_id) override {
        log += 'B';
        CHECK_FALSE(open);
        if (fail_begin) return begin_code;
        open = true;
        current.clear();
        begun = env;
        queue_id = id;
        return inject_exit::ok;
    }
    void write(std::string_view data) override {
        CHECK(open);
        current.append(data);
    }
    int commit() override {
        log += 'C';
        CHECK(open);
        open = false;
        messages.push_back(current);
        envelopes.push_back(begun);
        return commit_code;
    }
    void abort() override {
        log += 'A';
        CHECK(open);
        open = false;
    }
    size_t commits() const { return messages.size(); }
};

SmtpConfig test_config() {
    SmtpConfig c;
    c.me = "mx.local.example";
    c.rcpthosts = {"local.example", ".sub.example"};
    c.databytes = 10000;
    c.max_rcpts = 3;
    c.maxhops = 5;
    c.max_errors = 5;
    c.remote_ip = "192.0.2.7";
    c.remote_host = "client.example";
    return c;
}

// A session and its sink (the sink first: the session refers to it).
struct Smtp {
    FakeSink sink;
    SmtpSession session;
    explicit Smtp(SmtpConfig cfg = test_config()) : session(std::move(cfg), sink) {}
    std::string feed(std::string_view bytes) { return session.feed(bytes); }
    std::string cmd(std::string_view line) { return session.feed(std::string(line) + "\r\n"); }
    std::string feed_bytewise(std::string_view bytes) {
        std::string out;
        for (char ch : bytes) out += session.feed(std::string_view(&ch, 1));
        return out;
    }
};

// The reply lines of a feed() result; each must end with CRLF and hold no
// other CR or LF.
std::vector<std::string> reply_lines(std::string_view out) {
    std::vector<std::string> lines;
    while (!out.empty()) {
        size_t end = out.find("\r\n");
        REQUIRE(end != std::string_view::npos);
        std::string_view line = out.substr(0, end);
        CHECK(line.find_first_of("\r\n") == std::string_view::npos);
        lines.emplace_back(line);
        out.remove_prefix(end + 2);
    }
    return lines;
}

// "553 5.7.1 Relaying denied" -> "553 5.7.1"; "354 End data" -> "354";
// "250-PIPELINING" -> "250".
std::string head(std::string_view line) {
    REQUIRE(line.size() >= 3);
    std::string code(line.substr(0, 3));
    if (line.size() > 6 && (line[3] == ' ' || line[3] == '-') && std::isdigit(static_cast<unsigned char>(line[4])) &&
        line[5] == '.') {
        size_t sp = line.find(' ', 4);
        return code + " " + std::string(line.substr(4, sp == std::string_view::npos ? sp : sp - 4));
    }
    return code;
}

std::vector<std::string> heads(std::string_view out) {
    std::vector<std::string> h;
    for (const auto& l : reply_lines(out)) h.push_back(head(l));
    return h;
}

// The head of a feed() result that must be exactly one reply line.
std::string one(std::string_view out) {
    auto lines = reply_lines(out);
    REQUIRE(lines.size() == 1);
    return head(lines[0]);
}

// The Received: block at the start of a message: up to the first LF that is
// not followed by a TAB (a continuation line).
size_t received_end(const std::string& msg) {
    REQUIRE(msg.rfind("Received: ", 0) == 0);
    size_t i = 0;
    for (;;) {
        i = msg.find('\n', i);
        REQUIRE(i != std::string::npos);
        if (i + 1 >= msg.size() || msg[i + 1] != '\t') return i + 1;
        ++i;
    }
}
std::string body_of(const std::string& msg) { return msg.substr(received_end(msg)); }
// The message with the date of its Received: line removed (it is the clock).
std::string without_date(const std::string& msg) {
    size_t end = received_end(msg);
    size_t semi = msg.rfind("; ", end);
    REQUIRE(semi != std::string::npos);
    return msg.substr(0, semi) + msg.substr(end - 1);
}

// For INFO: CR and LF made visible.
std::string escaped(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch == '\r') out += "\\r";
        else if (ch == '\n') out += "\\n";
        else out += ch;
    }
    return out;
}

std::string bdat(std::string_view chunk, bool last = false) {
    return "BDAT " + std::to_string(chunk.size()) + (last ? " LAST" : "") + "\r\n" + std::string(chunk);
}

const std::string ehlo = "EHLO client.example\r\n";
const std::string mail = "MAIL FROM:<a@b.example>\r\n";
const std::string rcpt = "RCPT TO:<u@local.example>\r\n";

// EHLO, MAIL, RCPT done; the next thing is DATA or BDAT.
void start_transaction(Smtp& s) {
    REQUIRE(reply_lines(s.feed(ehlo)).size() == 7);
    REQUIRE(one(s.feed(mail)) == "250 2.1.0");
    REQUIRE(one(s.feed(rcpt)) == "250 2.1.5");
}

// ... and DATA accepted.
void start_data(Smtp& s) {
    start_transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
}

}  // namespace

// --- greeting, HELO, EHLO

TEST_CASE("smtp: greeting is 220 with the host name", "[smtp]") {
    Smtp s;
    CHECK(s.session.greeting() == "220 mx.local.example ESMTP yubin\r\n");
    CHECK_FALSE(s.session.closed());
}

TEST_CASE("smtp: EHLO lists every extension in a multi-line 250", "[smtp]") {
    Smtp s;
    CHECK(s.feed(ehlo) ==
          "250-mx.local.example Hello [192.0.2.7]\r\n"
          "250-PIPELINING\r\n"
          "250-8BITMIME\r\n"
          "250-SIZE 10000\r\n"
          "250-ENHANCEDSTATUSCODES\r\n"
          "250-SMTPUTF8\r\n"
          "250 CHUNKING\r\n");
}

TEST_CASE("smtp: HELO is one line; a local session greets 'local'", "[smtp]") {
    Smtp s;
    CHECK(s.cmd("HELO client.example") == "250 mx.local.example Hello [192.0.2.7]\r\n");
    SmtpConfig cfg = test_config();
    cfg.remote_ip.clear();
    cfg.local_uid = "1000";
    cfg.databytes = 0;
    Smtp local(cfg);
    CHECK(local.cmd("helo x") == "250 mx.local.example Hello local\r\n");
    auto lines = reply_lines(local.cmd("ehlo x"));
    REQUIRE(lines.size() == 7);
    CHECK(lines[0] == "250-mx.local.example Hello local");
    CHECK(lines[3] == "250-SIZE 0");
}

TEST_CASE("smtp: HELO and EHLO without a name are 501", "[smtp]") {
    for (const char* line : {"HELO", "HELO ", "EHLO", "EHLO   ", "ehlo"}) {
        INFO(line);
        Smtp s;
        std::string r = s.cmd(line);
        CHECK(one(r) == "501 5.5.4");
        // and MAIL still needs a greeting
        CHECK(one(s.feed(mail)) == "503 5.5.1");
    }
}

TEST_CASE("smtp: commands out of sequence are 503 5.5.1", "[smtp]") {
    struct Case {
        std::vector<std::string> lines;
        std::vector<std::string> expected;
    };
    const std::vector<Case> cases = {
        {{"MAIL FROM:<a@b.example>"}, {"503 5.5.1"}},
        {{"RCPT TO:<u@local.example>"}, {"503 5.5.1"}},
        {{"DATA"}, {"503 5.5.1"}},
        {{"EHLO c", "RCPT TO:<u@local.example>"}, {"250", "503 5.5.1"}},
        {{"EHLO c", "DATA"}, {"250", "503 5.5.1"}},
        {{"EHLO c", "MAIL FROM:<a@b.example>", "DATA"}, {"250", "250 2.1.0", "503 5.5.1"}},
        {{"EHLO c", "MAIL FROM:<a@b.example>", "MAIL FROM:<c@d.example>"}, {"250", "250 2.1.0", "503 5.5.1"}},
        {{"HELO c", "MAIL FROM:<a@b.example>", "MAIL FROM:<>"}, {"250", "250 2.1.0", "503 5.5.1"}},
        // a failed MAIL leaves no transaction behind
        {{"EHLO c", "MAIL FROM:bad", "RCPT TO:<u@local.example>"}, {"250", "501 5.1.7", "503 5.5.1"}},
        // DATA takes no argument
        {{"EHLO c", "MAIL FROM:<a@b.example>", "RCPT TO:<u@local.example>", "DATA x"},
         {"250", "250 2.1.0", "250 2.1.5", "501 5.5.4"}},
    };
    for (const auto& c : cases) {
        Smtp s;
        std::vector<std::string> got;
        for (const auto& l : c.lines) {
            INFO(l);
            auto h = heads(s.cmd(l));
            REQUIRE_FALSE(h.empty());
            got.push_back(h.back());
        }
        CHECK(got == c.expected);
        CHECK(s.sink.log.empty());
    }
}

TEST_CASE("smtp: RSET ends the transaction and keeps the greeting", "[smtp]") {
    Smtp s;
    start_transaction(s);
    CHECK(s.cmd("RSET") == "250 2.0.0 Ok\r\n");
    CHECK(one(s.cmd("RCPT TO:<u@local.example>")) == "503 5.5.1");
    CHECK(one(s.cmd("DATA")) == "503 5.5.1");
    CHECK(one(s.feed(mail)) == "250 2.1.0");  // not nested, and no new HELO needed
    CHECK(one(s.cmd("RSET now")) == "501 5.5.4");
    CHECK(one(s.cmd("rset")) == "250 2.0.0");
    CHECK(s.sink.log.empty());
}

TEST_CASE("smtp: other commands and their replies", "[smtp]") {
    struct Case {
        std::string line;
        std::vector<std::string> expected;
    };
    const std::vector<Case> cases = {
        {"NOOP", {"250 2.0.0"}},
        {"noop with an argument", {"250 2.0.0"}},
        {"HELP", {"214 2.0.0", "214 2.0.0"}},
        {"help mail", {"214 2.0.0", "214 2.0.0"}},
        {"VRFY postmaster", {"252 2.5.2"}},
        {"EXPN staff", {"502 5.7.0"}},
        {"FOO", {"500 5.5.2"}},
        {"", {"500 5.5.2"}},
        {"MAILFROM:<a@b.example>", {"500 5.5.2"}},
        {"STARTTLS", {"502 5.5.1"}},
        {"AUTH PLAIN AGFAYg==", {"502 5.5.1"}},
        {"starttls", {"502 5.5.1"}},
        {"TURN", {"502 5.5.1"}},
        {"ETRN example.com", {"502 5.5.1"}},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        Smtp s;
        s.feed(ehlo);
        std::string r = s.cmd(c.line);
        CHECK(heads(r) == c.expected);
        CHECK_FALSE(s.session.closed());
    }
    Smtp s;
    auto help = reply_lines(s.cmd("HELP"));
    REQUIRE(help.size() == 2);
    CHECK(help[0].rfind("214-2.0.0 ", 0) == 0);
    CHECK(help[1].rfind("214 2.0.0 ", 0) == 0);
}

TEST_CASE("smtp: QUIT is 221 and closes; nothing after it is read", "[smtp]") {
    Smtp s;
    CHECK(s.cmd("QUIT") == "221 2.0.0 mx.local.example closing connection\r\n");
    CHECK(s.session.closed());
    CHECK(s.feed(ehlo) == "");
    CHECK(s.session.closed());

    // pipelined: the commands after QUIT in the same read are ignored
    Smtp p;
    CHECK(heads(p.feed("NOOP\r\nquit\r\nNOOP\r\n")) == std::vector<std::string>{"250 2.0.0", "221 2.0.0"});
    CHECK(p.session.closed());
}

// --- MAIL

TEST_CASE("smtp: MAIL FROM syntax and parameters after EHLO", "[smtp]") {
    struct Case {
        std::string line;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"MAIL FROM:<a@b.example>", "250 2.1.0"},
        {"mail from:<a@b.example>", "250 2.1.0"},
        {"MAIL FROM: <a@b.example>", "250 2.1.0"},
        {"mail from:   <a@b.example>", "250 2.1.0"},
        {"MAIL FROM:<>", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> ", "250 2.1.0"},
        {"MAIL FROM:<@relay.example:a@b.example>", "250 2.1.0"},
        {"MAIL FROM:a@b.example", "501 5.1.7"},
        {"MAIL FROM:<a@b.example", "501 5.1.7"},
        {"MAIL FROM:<a b@b.example>", "501 5.1.7"},
        {"MAIL FROM:<a@>", "501 5.1.7"},
        {"MAIL FROM:", "501 5.1.7"},
        {"MAIL TO:<a@b.example>", "501 5.5.4"},
        {"MAIL", "501 5.5.4"},
        {"MAIL FROM <a@b.example>", "501 5.5.4"},
        {"MAIL  FROM:<a@b.example>", "501 5.5.4"},
        {"MAIL FROM:<a@b.example>SIZE=10", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> =x", "501 5.5.4"},
        // SIZE (databytes is 10000)
        {"MAIL FROM:<a@b.example> SIZE=10000", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> size=0", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> SIZE=10001", "552 5.3.4"},
        {"MAIL FROM:<a@b.example> SIZE=999999999999999999", "552 5.3.4"},
        {"MAIL FROM:<a@b.example> SIZE=abc", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=1e3", "501 5.5.4"},
        // BODY
        {"MAIL FROM:<a@b.example> BODY=8BITMIME", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> body=8bitmime", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> BODY=7BIT", "250 2.1.0"},
        {"MAIL FROM:<a@b.example> BODY=BINARYMIME", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> BODY=", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8", "250 2.1.0"},
        {"MAIL FROM:<a@b.example>  SIZE=100   BODY=8BITMIME", "250 2.1.0"},
        // unknown parameters
        {"MAIL FROM:<a@b.example> FOO=BAR", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> RET=HDRS", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> SMTPUTF8=yes", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4"},
        // non-ASCII senders need SMTPUTF8
        {"MAIL FROM:<j\xc3\xb6rg@b.example>", "553 5.6.7"},
        {"MAIL FROM:<jorg@b\xc3\xbc.example>", "553 5.6.7"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> BODY=8BITMIME", "553 5.6.7"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", "250 2.1.0"},
        {"MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc.example> smtputf8 BODY=8BITMIME", "250 2.1.0"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> FOO", "555 5.5.4"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        Smtp s;
        s.feed(ehlo);
        CHECK(one(s.cmd(c.line)) == c.expected);
        // a refused MAIL leaves no transaction: another MAIL is not nested
        if (c.expected != "250 2.1.0") CHECK(one(s.feed(mail)) == "250 2.1.0");
    }
}

TEST_CASE("smtp: MAIL parameters need EHLO; after HELO they are 555", "[smtp]") {
    const std::vector<std::string> params = {"SIZE=10", "BODY=8BITMIME", "SMTPUTF8", "SIZE=x", "FOO"};
    for (const auto& p : params) {
        INFO(p);
        Smtp s;
        s.cmd("HELO client.example");
        CHECK(one(s.cmd("MAIL FROM:<a@b.example> " + p)) == "555 5.5.4");
        CHECK(one(s.feed(mail)) == "250 2.1.0");
    }
}

TEST_CASE("smtp: the sender reaches the envelope", "[smtp]") {
    struct Case {
        std::string line, sender;
    };
    const std::vector<Case> cases = {
        {"MAIL FROM:<a@B.Example>", "a@b.example"},
        {"MAIL FROM:<>", ""},
        {"MAIL FROM:<\"joe\"@b.example>", "joe@b.example"},
        {"MAIL FROM:<@r.example,@s.example:a@b.example>", "a@b.example"},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", "j\xc3\xb6rg@b.example"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        Smtp s;
        s.feed(ehlo);
        REQUIRE(one(s.cmd(c.line)) == "250 2.1.0");
        REQUIRE(one(s.feed(rcpt)) == "250 2.1.5");
        REQUIRE(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
        REQUIRE(s.sink.envelopes.size() == 1);
        CHECK(s.sink.envelopes[0].sender == c.sender);
    }
}

// --- RCPT

TEST_CASE("smtp: RCPT accepts local domains only and never relays", "[smtp]") {
    struct Case {
        std::string arg;       // after "RCPT TO:"
        std::string expected;  // reply head
        std::string stored;    // the envelope recipient when accepted; the refused domain otherwise
    };
    const std::vector<Case> cases = {
        {"<u@local.example>", "250 2.1.5", "u@local.example"},
        {" <u@local.example>", "250 2.1.5", "u@local.example"},
        {"<u@LOCAL.Example>", "250 2.1.5", "u@local.example"},
        {"<u@local.example.>", "250 2.1.5", "u@local.example"},
        {"<U.Ser@Local.Example.>", "250 2.1.5", "U.Ser@local.example"},
        {"<u@a.sub.example>", "250 2.1.5", "u@a.sub.example"},
        {"<u@A.B.SUB.example.>", "250 2.1.5", "u@a.b.sub.example"},
        // ".sub.example" is for subdomains only, and matches at a dot
        {"<u@sub.example>", "553 5.7.1", "sub.example"},
        {"<u@xsub.example>", "553 5.7.1", "xsub.example"},
        {"<u@other.org>", "553 5.7.1", "other.org"},
        {"<u@local.example.org>", "553 5.7.1", "local.example.org"},
        {"<u@xlocal.example>", "553 5.7.1", "xlocal.example"},
        {"<u@[192.0.2.1]>", "553 5.7.1", "[192.0.2.1]"},
        // RFC 5321 4.5.1: <postmaster> without a domain
        {"<postmaster>", "250 2.1.5", "postmaster"},
        {"<PostMaster>", "250 2.1.5", "postmaster"},
        {"<postmaster@local.example>", "250 2.1.5", "postmaster@local.example"},
        {"<postmaster@other.org>", "553 5.7.1", "other.org"},
        // percent hack and bang paths: the domain is what follows the last @
        {"<user%other.org@local.example>", "250 2.1.5", "user%other.org@local.example"},
        {"<user%other.org@LOCAL.example.>", "250 2.1.5", "user%other.org@local.example"},
        {"<other.org!user@local.example>", "250 2.1.5", "other.org!user@local.example"},
        {"<user%local.example@other.org>", "553 5.7.1", "other.org"},
        {"<local.example!user@other.org>", "553 5.7.1", "other.org"},
        // source routes are discarded; the mailbox's domain decides
        {"<@relay.org:user@other.org>", "553 5.7.1", "other.org"},
        {"<@local.example:user@other.org>", "553 5.7.1", "other.org"},
        {"<@local.example,@a.sub.example:user@other.org>", "553 5.7.1", "other.org"},
        {"<@other.org:user@local.example>", "250 2.1.5", "user@local.example"},
        // quoted local parts: an @ or % inside them is not a domain
        {"<\"a@other.org\"@local.example>", "250 2.1.5", "\"a@other.org\"@local.example"},
        {"<\"a%other.org\"@local.example>", "250 2.1.5", "a%other.org@local.example"},  // % is atext
        {"<\"user@local.example\"@other.org>", "553 5.7.1", "other.org"},
        {"<\"u\"@local.example>", "250 2.1.5", "u@local.example"},
        // syntax
        {"<user>", "501 5.1.3", ""},
        {"<>", "501 5.1.3", ""},
        {"u@local.example", "501 5.1.3", ""},
        {"<u@local.example", "501 5.1.3", ""},
        {"<u@local.example>x", "501 5.5.4", ""},
        {"<u@@local.example>", "501 5.1.3", ""},
        {"<\"a@other.org@local.example>", "501 5.1.3", ""},
        {"<u\xc3\xbc@local.example>", "553 5.6.7", ""},  // needs SMTPUTF8 in MAIL (RFC 6531 3.7.4.1)
        // RCPT parameters are not supported
        {"<u@local.example> NOTIFY=NEVER", "555 5.5.4", ""},
        {"<u@local.example> ORCPT=rfc822;u@local.example", "555 5.5.4", ""},
        {"<u@local.example> FOO", "555 5.5.4", ""},
    };
    for (const auto& c : cases) {
        INFO("RCPT TO:" + c.arg);
        Smtp s;
        s.feed(ehlo);
        s.feed(mail);
        std::string r = s.cmd("RCPT TO:" + c.arg);
        CHECK(one(r) == c.expected);
        if (c.expected == "553 5.7.1") {
            CHECK(r == "553 5.7.1 Relaying denied: " + c.stored + " is not a local domain\r\n");
        }
        if (c.expected == "250 2.1.5") {
            REQUIRE(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
            REQUIRE(s.sink.envelopes.size() == 1);
            CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{c.stored});
        } else {
            CHECK(one(s.cmd("DATA")) == "503 5.5.1");
        }
    }
    // "TO:" itself
    Smtp s;
    s.feed(ehlo);
    s.feed(mail);
    CHECK(one(s.cmd("RCPT FROM:<u@local.example>")) == "501 5.5.4");
    CHECK(one(s.cmd("RCPT")) == "501 5.5.4");
    CHECK(one(s.cmd("rcpt to:<u@local.example>")) == "250 2.1.5");
}

TEST_CASE("smtp: UTF-8 recipients with SMTPUTF8; without it 553 5.6.7, as for the sender", "[smtp]") {
    struct Case {
        const char* rcpt;
        const char* with_utf8;
        const char* without;
    };
    const Case cases[] = {
        {"<\xc3\xbc@local.example>", "250 2.1.5", "553 5.6.7"},
        {"<\xc3\xbc@\xc3\xbc.example>", "553 5.7.1", "553 5.6.7"},  // and never a relay
        {"<u@\xc3\xbc.example>", "553 5.7.1", "553 5.6.7"},
        {"<\xff@local.example>", "501 5.1.3", "501 5.1.3"},  // not UTF-8 at all
        {"<u@local.example>", "250 2.1.5", "250 2.1.5"},
    };
    for (const Case& c : cases) {
        INFO(c.rcpt);
        for (bool utf8 : {true, false}) {
            Smtp s;
            s.feed(ehlo);
            REQUIRE(one(s.cmd(utf8 ? "MAIL FROM:<a@b.example> SMTPUTF8" : "MAIL FROM:<a@b.example>")) == "250 2.1.0");
            CHECK(one(s.cmd(std::string("RCPT TO:") + c.rcpt)) == (utf8 ? c.with_utf8 : c.without));
        }
    }
}

TEST_CASE("smtp: RELAYCLIENT accepts any domain and appends its value", "[smtp]") {
    struct Case {
        std::string suffix, arg, stored;
    };
    const std::vector<Case> cases = {
        {"", "<u@other.org>", "u@other.org"},
        {"", "<u@local.example>", "u@local.example"},
        {"", "<@relay.org:user@other.org>", "user@other.org"},
        {"", "<postmaster>", "postmaster"},
        {".relay", "<u@other.org>", "u@other.org.relay"},
        {".relay", "<u@local.example>", "u@local.example.relay"},
    };
    for (const auto& c : cases) {
        INFO(c.suffix + " " + c.arg);
        SmtpConfig cfg = test_config();
        cfg.relay_allowed = true;
        cfg.relay_suffix = c.suffix;
        Smtp s(cfg);
        s.feed(ehlo);
        s.feed(mail);
        CHECK(one(s.cmd("RCPT TO:" + c.arg)) == "250 2.1.5");
        REQUIRE(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
        REQUIRE(s.sink.envelopes.size() == 1);
        CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{c.stored});
    }
}

TEST_CASE("smtp: more than max_rcpts recipients is 452 4.5.3", "[smtp]") {
    Smtp s;  // max_rcpts 3
    s.feed(ehlo);
    s.feed(mail);
    CHECK(one(s.cmd("RCPT TO:<a@local.example>")) == "250 2.1.5");
    CHECK(one(s.cmd("RCPT TO:<b@local.example>")) == "250 2.1.5");
    CHECK(one(s.cmd("RCPT TO:<c@local.example>")) == "250 2.1.5");
    CHECK(one(s.cmd("RCPT TO:<d@local.example>")) == "452 4.5.3");
    CHECK(one(s.cmd("RCPT TO:<e@other.org>")) == "452 4.5.3");
    CHECK(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
    REQUIRE(s.sink.envelopes.size() == 1);
    CHECK(s.sink.envelopes[0].recipients ==
          std::vector<std::string>{"a@local.example", "b@local.example", "c@local.example"});
    // the count starts again with the next transaction
    s.feed(mail);
    CHECK(one(s.cmd("RCPT TO:<a@local.example>")) == "250 2.1.5");
}

// --- DATA

TEST_CASE("smtp: DATA stores the message with LF line ends, unstuffed, after a Received line", "[smtp]") {
    Smtp s;
    start_transaction(s);
    CHECK(s.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK(s.sink.log == "B");
    CHECK(s.feed("Subject: hi\r\n\r\nbody\r\n..leading dot\r\n...two\r\n.\r\n") ==
          "250 2.0.0 Ok: queued as QUEUEID\r\n");
    CHECK(s.sink.log == "BC");
    REQUIRE(s.sink.commits() == 1);
    CHECK(body_of(s.sink.messages[0]) == "Subject: hi\n\nbody\n.leading dot\n..two\n");
    CHECK(s.sink.envelopes[0].sender == "a@b.example");
    CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{"u@local.example"});
    // the transaction is over
    CHECK(one(s.cmd("RCPT TO:<u@local.example>")) == "503 5.5.1");
    CHECK(one(s.feed(mail)) == "250 2.1.0");
}

TEST_CASE("smtp: DATA edge cases of the body", "[smtp]") {
    struct Case {
        std::string data;  // after 354, up to and including the final CRLF.CRLF
        std::string body;  // what the sink gets after the Received: line
    };
    const std::vector<Case> cases = {
        {".\r\n", ""},
        {"\r\n.\r\n", "\n"},
        {"..\r\n.\r\n", ".\n"},
        {". \r\n.\r\n", " \n"},
        {"a.\r\n.\r\n", "a.\n"},
        {"x\r\n.\r\n", "x\n"},
        {"x\r\n\r\n\r\ny\r\n.\r\n", "x\n\n\ny\n"},
        {"8bit \xc3\xa4\r\n.\r\n", "8bit \xc3\xa4\n"},
        {"nul\0byte\r\n.\r\n"s, "nul\0byte\n"s},
        {std::string(998, 'x') + "\r\n.\r\n", std::string(998, 'x') + "\n"},
    };
    for (const auto& c : cases) {
        INFO(c.data);
        for (bool bytewise : {false, true}) {
            Smtp s;
            start_data(s);
            std::string r = bytewise ? s.feed_bytewise(c.data) : s.feed(c.data);
            CHECK(one(r) == "250 2.0.0");
            REQUIRE(s.sink.commits() == 1);
            CHECK(body_of(s.sink.messages[0]) == c.body);
        }
    }
}

TEST_CASE("smtp: the Received line", "[smtp]") {
    struct Case {
        std::string name;
        bool local, no_host;
        std::string hello, mail;
        std::vector<std::string> rcpts;
        std::string expected;  // up to the "; " before the date
    };
    const std::vector<Case> cases = {
        {"ESMTP, one recipient", false, false, "EHLO helo.example", "MAIL FROM:<a@b.example>", {"u@local.example"},
         "Received: from helo.example (client.example [192.0.2.7])\n\tby mx.local.example (yubin) with ESMTP id "
         "QUEUEID\n\tfor <u@local.example>"},
        {"SMTP", false, false, "HELO helo.example", "MAIL FROM:<a@b.example>", {"u@local.example"},
         "Received: from helo.example (client.example [192.0.2.7])\n\tby mx.local.example (yubin) with SMTP id "
         "QUEUEID\n\tfor <u@local.example>"},
        {"UTF8SMTP", false, false, "EHLO helo.example", "MAIL FROM:<a@b.example> SMTPUTF8", {"u@local.example"},
         "Received: from helo.example (client.example [192.0.2.7])\n\tby mx.local.example (yubin) with UTF8SMTP id "
         "QUEUEID\n\tfor <u@local.example>"},
        {"two recipients: no for", false, false, "EHLO helo.example", "MAIL FROM:<a@b.example>",
         {"u@local.example", "v@local.example"},
         "Received: from helo.example (client.example [192.0.2.7])\n\tby mx.local.example (yubin) with ESMTP id "
         "QUEUEID"},
        {"no reverse name", false, true, "EHLO helo.example", "MAIL FROM:<a@b.example>", {"u@local.example"},
         "Received: from helo.example (unknown [192.0.2.7])\n\tby mx.local.example (yubin) with ESMTP id "
         "QUEUEID\n\tfor <u@local.example>"},
        {"local session", true, false, "EHLO helo.example", "MAIL FROM:<a@b.example>", {"u@local.example"},
         "Received: from helo.example (uid 1000)\n\tby mx.local.example (yubin) with ESMTP id QUEUEID\n\tfor "
         "<u@local.example>"},
        {"HELO name is cleaned", false, false, "EHLO bad(name);x\\y", "MAIL FROM:<a@b.example>", {"u@local.example"},
         "Received: from bad_name__x_y (client.example [192.0.2.7])\n\tby mx.local.example (yubin) with ESMTP id "
         "QUEUEID\n\tfor <u@local.example>"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        SmtpConfig cfg = test_config();
        if (c.local) {
            cfg.remote_ip.clear();
            cfg.remote_host.clear();
            cfg.local_uid = "1000";
        }
        if (c.no_host) cfg.remote_host.clear();
        Smtp s(cfg);
        REQUIRE(head(reply_lines(s.cmd(c.hello)).back()) == "250");
        REQUIRE(one(s.cmd(c.mail)) == "250 2.1.0");
        for (const auto& r : c.rcpts) REQUIRE(one(s.cmd("RCPT TO:<" + r + ">")) == "250 2.1.5");
        REQUIRE(heads(s.feed("DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")) ==
                std::vector<std::string>{"354", "250 2.0.0"});
        REQUIRE(s.sink.commits() == 1);
        const std::string& msg = s.sink.messages[0];
        size_t end = received_end(msg);
        std::string received = msg.substr(0, end);
        CHECK(received.rfind(c.expected + "; ", 0) == 0);
        std::string date = received.substr(c.expected.size() + 2);
        CHECK(date.size() > 20);
        CHECK(date.back() == '\n');
        CHECK(date.find('\n') == date.size() - 1);
        CHECK(msg.substr(end) == "Subject: x\n\nbody\n");
    }
}

TEST_CASE("smtp: the reply after DATA follows the sink's commit", "[smtp]") {
    struct Case {
        int code;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {inject_exit::ok, "250 2.0.0"},
        {inject_exit::write_error, "451 4.3.0"},   // 53
        {inject_exit::cannot_create, "451 4.3.0"},
        {inject_exit::internal, "451 4.3.0"},
        {inject_exit::refused, "554 5.3.0"},       // 31
        {inject_exit::bad_address, "554 5.3.0"},
    };
    for (const auto& c : cases) {
        INFO(c.code);
        Smtp s;
        s.sink.commit_code = c.code;
        start_data(s);
        std::string r = s.feed("x\r\n.\r\n");
        CHECK(one(r) == c.expected);
        if (c.code != inject_exit::ok) {
            CHECK(r.find(inject_exit::describe(c.code)) != std::string::npos);
            CHECK(r.find("QUEUEID") == std::string::npos);
        }
        CHECK(s.sink.log == "BC");
        // either way the transaction is over and a new one can start
        CHECK(one(s.cmd("DATA")) == "503 5.5.1");
        CHECK(one(s.feed(mail)) == "250 2.1.0");
    }
}

TEST_CASE("smtp: a sink that cannot begin makes DATA 451", "[smtp]") {
    Smtp s;
    s.sink.fail_begin = true;
    start_transaction(s);
    CHECK(one(s.cmd("DATA")) == "451 4.3.0");
    CHECK(s.sink.log == "B");
    // no data mode: the next line is a command, and the transaction is gone
    CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
    CHECK(one(s.cmd("RCPT TO:<u@local.example>")) == "503 5.5.1");
    s.sink.fail_begin = false;
    s.feed(mail);
    s.feed(rcpt);
    CHECK(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
    CHECK(s.sink.log == "BBC");
}

// --- SMTP smuggling and line ends

TEST_CASE("smtp: no smuggling variant splits one message into two", "[smtp]") {
    const std::vector<std::string> variants = {"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\r\n", "\n.\r"};
    for (const auto& v : variants) {
        const std::string data = "Subject: first\r\n\r\nbody" + v +
                                 "MAIL FROM:<evil@other.org>\r\nRCPT TO:<victim@local.example>\r\nDATA\r\n"
                                 "Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n";
        INFO("variant " << escaped(v));
        // all at once, in two pieces at every boundary, and one byte at a time
        for (size_t cut = 0; cut <= data.size() + 1; ++cut) {
            INFO("cut " << cut);
            Smtp s;
            start_data(s);
            std::string r;
            if (cut <= data.size()) {
                r = s.feed(data.substr(0, cut));
                r += s.feed(data.substr(cut));
            } else {
                r = s.feed_bytewise(data);
            }
            CHECK(r == "554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF\r\n");
            CHECK(s.sink.log == "BA");
            CHECK(s.sink.commits() == 0);
            // the session is back in command mode, with no transaction
            CHECK(one(s.cmd("RCPT TO:<u@local.example>")) == "503 5.5.1");
            CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
        }
    }
}

TEST_CASE("smtp: a bare CR or LF in a command line is 500 5.5.2", "[smtp]") {
    const std::vector<std::string> inputs = {
        "NOOP\nRSET\r\n",
        "NOOP\rRSET\r\n",
        "MAIL FROM:<a@b.example>\nRCPT TO:<u@local.example>\r\n",
        "MAIL FROM:<a@b.example>\r\r\n",
        "\nMAIL FROM:<a@b.example>\r\n",
        "\r\r\n",
        "\n\r\n",
    };
    for (const auto& in : inputs) {
        INFO(escaped(in));
        Smtp s;
        s.feed(ehlo);
        CHECK(s.feed(in) == "500 5.5.2 Bare CR or LF in a command; lines end with CRLF\r\n");
        CHECK_FALSE(s.session.closed());
        // nothing in it was executed: MAIL is not nested
        CHECK(one(s.feed(mail)) == "250 2.1.0");
    }
    // a bare LF never ends a command line by itself
    Smtp s;
    CHECK(s.feed("NOOP\n") == "");
    CHECK(one(s.feed("\r\n")) == "500 5.5.2");
}

TEST_CASE("smtp: command lines longer than 2048 octets are 500 5.5.2 and the session recovers", "[smtp]") {
    const std::string fits = "NOOP " + std::string(SmtpSession::max_command_line - 7, 'x');  // 2046 + CRLF
    const std::string over = fits + "x";
    REQUIRE(fits.size() + 2 == SmtpSession::max_command_line);
    struct Case {
        std::string line;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {fits, "250 2.0.0"},
        {over, "500 5.5.2"},
        {over + "x", "500 5.5.2"},
        {"NOOP " + std::string(10000, 'y'), "500 5.5.2"},
        {"MAIL FROM:<a@b.example> " + std::string(5000, 'z'), "500 5.5.2"},
    };
    for (const auto& c : cases) {
        INFO(c.line.size());
        for (size_t piece : {size_t{0}, size_t{1}, size_t{100}, size_t{2047}, size_t{2048}, size_t{2049}}) {
            INFO("piece " << piece);
            Smtp s;
            s.feed(ehlo);
            std::string in = c.line + "\r\n";
            std::string r;
            if (piece == 0) {
                r = s.feed(in);
            } else {
                for (size_t i = 0; i < in.size(); i += piece) r += s.feed(in.substr(i, piece));
            }
            CHECK(one(r) == c.expected);
            if (c.expected == "500 5.5.2") CHECK(r == "500 5.5.2 Line too long\r\n");
            CHECK(one(s.feed(mail)) == "250 2.1.0");  // recovered, and the long MAIL did nothing
        }
    }
}

TEST_CASE("smtp: a text line longer than 1000 octets refuses the message at the end", "[smtp]") {
    struct Case {
        size_t length;  // of the line without CRLF
        std::string expected;
    };
    const std::vector<Case> cases = {
        {998, "250 2.0.0"},
        {999, "554 5.6.0"},
        {1000, "554 5.6.0"},
        {1001, "554 5.6.0"},
        {5000, "554 5.6.0"},
    };
    for (const auto& c : cases) {
        INFO(c.length);
        for (size_t piece : {size_t{0}, size_t{1}, size_t{999}, size_t{1000}, size_t{1001}, size_t{1002}}) {
            INFO("piece " << piece);
            Smtp s;
            start_data(s);
            const std::string in = "Subject: x\r\n\r\n" + std::string(c.length, 'a') + "\r\nmore\r\n.\r\n";
            std::string r;
            if (piece == 0) {
                r = s.feed(in);
            } else {
                for (size_t i = 0; i < in.size(); i += piece) r += s.feed(in.substr(i, piece));
            }
            CHECK(one(r) == c.expected);
            if (c.expected == "554 5.6.0") {
                CHECK(r == "554 5.6.0 Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)\r\n");
                CHECK(s.sink.log == "BA");
            } else {
                CHECK(s.sink.log == "BC");
            }
            CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
        }
    }
}

TEST_CASE("smtp: the end of an overlong text line never ends DATA, however the input is split", "[smtp]") {
    // The start of an overlong line is dropped as it arrives; what is left of
    // it must not be taken for a line of its own (".", or a dot-stuffed line).
    for (size_t length : {size_t{1001}, size_t{1002}, size_t{2000}, size_t{4096}}) {
        INFO(length);
        const std::string head_part = "Subject: x\r\n\r\n" + std::string(length, 'a');
        const std::string rest = ".\r\nMAIL FROM:<evil@other.org>\r\nRCPT TO:<victim@local.example>\r\nDATA\r\n"
                                 "smuggled\r\n.\r\n";
        Smtp s;
        start_data(s);
        std::string r = s.feed(head_part);
        r += s.feed(rest);
        CHECK(r == "554 5.6.0 Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)\r\n");
        CHECK(s.sink.log == "BA");
        CHECK(s.sink.commits() == 0);
        CHECK(one(s.cmd("RCPT TO:<u@local.example>")) == "503 5.5.1");
    }
}

TEST_CASE("smtp: a message over databytes is 552 5.3.4", "[smtp]") {
    SmtpConfig cfg = test_config();
    cfg.databytes = 200;
    const std::string line48 = std::string(48, 'x') + "\r\n";  // 50 octets
    struct Case {
        std::string data;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {line48 + line48 + line48 + line48, "250 2.0.0"},           // exactly 200
        {line48 + line48 + line48 + line48 + "\r\n", "552 5.3.4"},  // 202
        {line48 + line48 + line48 + line48 + line48, "552 5.3.4"},
        {std::string(20, 'y') + "\r\n" + line48 + line48 + line48 + line48, "552 5.3.4"},
        // dot-stuffing does not count
        {"." + line48 + "." + line48 + "." + line48 + "." + line48, "250 2.0.0"},
    };
    for (const auto& c : cases) {
        INFO(c.data.size());
        Smtp s(cfg);
        start_data(s);
        std::string r = s.feed(c.data + ".\r\n");
        CHECK(one(r) == c.expected);
        if (c.expected == "552 5.3.4") {
            CHECK(s.sink.log == "BA");
        } else {
            CHECK(s.sink.log == "BC");
        }
        CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
    }
    // and at MAIL
    Smtp s(cfg);
    s.feed(ehlo);
    CHECK(one(s.cmd("MAIL FROM:<a@b.example> SIZE=200")) == "250 2.1.0");
    s.cmd("RSET");
    CHECK(one(s.cmd("MAIL FROM:<a@b.example> SIZE=201")) == "552 5.3.4");
}

TEST_CASE("smtp: more than maxhops Received/Delivered-To header lines is 554 5.4.6", "[smtp]") {
    struct Case {
        std::string name, data;
        std::string expected;
    };
    const std::string r = "Received: from a by b; Thu, 1 Jan 2024 00:00:00 +0000\r\n";
    const std::string d = "Delivered-To: u@local.example\r\n";
    const std::vector<Case> cases = {  // maxhops 5
        {"five", r + r + r + d + d + "\r\nbody\r\n", "250 2.0.0"},
        {"six", r + r + r + d + d + r + "\r\nbody\r\n", "554 5.4.6"},
        {"six, any case", "received: x\r\nRECEIVED: x\r\nReceived:x\r\ndelivered-to: x\r\nDELIVERED-TO: x\r\n" + d,
         "554 5.4.6"},
        {"six, no body", r + r + r + r + r + r, "554 5.4.6"},
        {"folded lines count once", r + "\tmore\r\n" + r + " more\r\n" + r + r + r + "Subject: x\r\n\r\n",
         "250 2.0.0"},
        {"in the body they do not count", r + r + "Subject: x\r\n\r\n" + r + r + r + r + d + d + d, "250 2.0.0"},
        {"X-Received is not a hop", r + r + r + r + r + "X-Received: x\r\nX-Delivered-To: y\r\n", "250 2.0.0"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        Smtp s;
        start_data(s);
        CHECK(one(s.feed(c.data + ".\r\n")) == c.expected);
        CHECK(s.sink.log == (c.expected == "250 2.0.0" ? "BC" : "BA"));
    }
}

// --- PIPELINING and input boundaries

TEST_CASE("smtp: pipelined commands get all their replies in order", "[smtp]") {
    Smtp s;
    std::string r = s.feed(
        "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@local.example>\r\nRCPT TO:<x@other.org>\r\n"
        "RCPT TO:<v@a.sub.example>\r\nDATA\r\n");
    CHECK(heads(r) == std::vector<std::string>{"250", "250", "250", "250", "250", "250", "250", "250 2.1.0",
                                               "250 2.1.5", "553 5.7.1", "250 2.1.5", "354"});
    r = s.feed(
        "Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\nsecond\r\n.\r\n"
        "NOOP\r\nQUIT\r\nNOOP\r\n");
    CHECK(heads(r) == std::vector<std::string>{"250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                                               "250 2.0.0", "221 2.0.0"});
    CHECK(s.session.closed());
    CHECK(s.sink.log == "BCBC");
    REQUIRE(s.sink.commits() == 2);
    CHECK(body_of(s.sink.messages[0]) == "Subject: one\n\nfirst\n");
    CHECK(body_of(s.sink.messages[1]) == "second\n");
    CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{"u@local.example", "v@a.sub.example"});
    CHECK(s.sink.envelopes[1].sender == "");
    CHECK(s.sink.envelopes[1].recipients == std::vector<std::string>{"postmaster"});
}

namespace {

struct Outcome {
    std::string replies;
    std::string log;
    std::vector<std::string> messages;  // without the Received date
    std::vector<std::string> envelopes;
    bool closed = false;
};

// Feeds input cut at the given positions (ascending).
Outcome run(const std::string& input, const std::vector<size_t>& cuts) {
    Smtp s;
    Outcome o;
    size_t from = 0;
    for (size_t cut : cuts) {
        o.replies += s.feed(input.substr(from, cut - from));
        from = cut;
    }
    o.replies += s.feed(input.substr(from));
    o.log = s.sink.log;
    for (const auto& m : s.sink.messages) o.messages.push_back(without_date(m));
    for (const auto& e : s.sink.envelopes) {
        std::string t = "<" + e.sender + ">";
        for (const auto& rc : e.recipients) t += " <" + rc + ">";
        o.envelopes.push_back(t);
    }
    o.closed = s.session.closed();
    return o;
}

void check_same(const Outcome& a, const Outcome& b) {
    CHECK(a.replies == b.replies);
    CHECK(a.log == b.log);
    CHECK(a.messages == b.messages);
    CHECK(a.envelopes == b.envelopes);
    CHECK(a.closed == b.closed);
}

}  // namespace

TEST_CASE("smtp: any split of the input gives the same replies and messages", "[smtp]") {
    struct Script {
        std::string name, input;
    };
    const std::vector<Script> scripts = {
        {"a full session",
         ehlo + "MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n" + rcpt + "RCPT TO:<x@other.org>\r\n" +
             "DATA\r\nReceived: from x\r\nSubject: test\r\n\r\n..dot\r\nline\r\n\r\n.\r\n" + "NOOP\r\nFOO\r\n" +
             "MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\n" + bdat("ab\r\ncd\r") + bdat("\nef\r\n", true) + "RSET\r\n" +
             mail + rcpt + "DATA\r\nbad\nline\r\n.\r\n" + "VRFY x\r\n" + "NOOP " + std::string(3000, 'x') +
             "\r\nNOOP\r\n" + "QUIT\r\n"},
        {"an overlong text line ending in a dot",
         ehlo + mail + rcpt + "DATA\r\n" + std::string(1001, 'A') + ".\r\n" +
             "MAIL FROM:<evil@other.org>\r\nRCPT TO:<victim@local.example>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n"},
        {"an overlong text line ending in CR CR LF",
         ehlo + mail + rcpt + "DATA\r\n" + std::string(1001, 'A') + "\r\r\n.\r\nNOOP\r\n"},
        {"an overlong header line, then an empty line, then hops", ehlo + mail + rcpt + "DATA\r\n" +
                                                                      std::string(1200, 'H') +
                                                                      "\r\nReceived: x\r\n.\r\nNOOP\r\n"},
        {"BDAT with lines across chunks", ehlo + mail + rcpt + bdat("Subject: x\r") + bdat("\n\r\nhello\r") +
                                              bdat("\nworld\r\n") + bdat("", true) + "QUIT\r\n"},
        {"BDAT with a bare LF", ehlo + mail + rcpt + bdat("a\r") + bdat("\nb\nc\r\n", true) + "NOOP\r\n"},
    };
    for (const auto& sc : scripts) {
        INFO(sc.name);
        const Outcome whole = run(sc.input, {});
        // one byte at a time
        std::vector<size_t> every;
        for (size_t i = 1; i < sc.input.size(); ++i) every.push_back(i);
        check_same(whole, run(sc.input, every));
        // two pieces, cut at every position
        for (size_t cut = 1; cut < sc.input.size(); ++cut) {
            INFO("cut " << cut);
            check_same(whole, run(sc.input, {cut}));
        }
    }
    // and what "all at once" gives is right
    const Outcome full = run(scripts[0].input, {});
    CHECK(heads(full.replies) ==
          std::vector<std::string>{"250", "250", "250", "250", "250", "250", "250",  // EHLO
                                   "250 2.1.0", "250 2.1.5", "553 5.7.1", "354", "250 2.0.0",
                                   "250 2.0.0", "500 5.5.2",                       // NOOP, FOO
                                   "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0",  // BDAT
                                   "250 2.0.0",                                     // RSET
                                   "250 2.1.0", "250 2.1.5", "354", "554 5.6.0",   // bare LF
                                   "252 2.5.2", "500 5.5.2", "250 2.0.0", "221 2.0.0"});
    CHECK(full.log == "BCBCBA");
    REQUIRE(full.messages.size() == 2);
    CHECK(body_of(full.messages[0]) == "Received: from x\nSubject: test\n\n.dot\nline\n\n");
    CHECK(body_of(full.messages[1]) == "ab\ncd\nef\n");
    CHECK(full.envelopes == std::vector<std::string>{"<a@b.example> <u@local.example>", "<> <postmaster>"});
    CHECK(full.closed);
    const Outcome smuggle = run(scripts[1].input, {});
    CHECK(heads(smuggle.replies) == std::vector<std::string>{"250", "250", "250", "250", "250", "250", "250",
                                                             "250 2.1.0", "250 2.1.5", "354", "554 5.6.0",
                                                             "221 2.0.0"});
    CHECK(smuggle.log == "BA");
}

// --- BDAT (CHUNKING)

TEST_CASE("smtp: BDAT chunks make one message; CRLF may be split across chunks", "[smtp]") {
    Smtp s;
    start_transaction(s);
    CHECK(s.feed(bdat("Subject: x\r")) == "250 2.0.0 Chunk received\r\n");
    CHECK(s.feed(bdat("\n\r\nhello\r")) == "250 2.0.0 Chunk received\r\n");
    CHECK(s.sink.log == "B");
    CHECK(s.feed(bdat("\nworld\r\n..not stuffed\r\n.\r\nend", true)) == "250 2.0.0 Ok: queued as QUEUEID\r\n");
    CHECK(s.sink.log == "BC");
    REQUIRE(s.sink.commits() == 1);
    // no dot-stuffing in BDAT; a last line without CRLF is kept
    CHECK(body_of(s.sink.messages[0]) == "Subject: x\n\nhello\nworld\n..not stuffed\n.\nend\n");
    CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{"u@local.example"});
    // the transaction is over
    CHECK(one(s.feed(bdat("x", true))) == "503 5.5.1");
    CHECK(one(s.feed(mail)) == "250 2.1.0");
}

TEST_CASE("smtp: BDAT chunk sizes and LAST", "[smtp]") {
    struct Case {
        std::string name;
        std::vector<std::string> input;  // fed one after the other
        std::vector<std::string> expected;
        std::string body;  // of the one committed message
    };
    const std::vector<Case> cases = {
        {"BDAT 0 LAST alone", {"BDAT 0 LAST\r\n"}, {"250 2.0.0"}, ""},
        {"bdat 0 last, lower case", {"bdat 0 last\r\n"}, {"250 2.0.0"}, ""},
        {"chunks then BDAT 0 LAST", {bdat("a\r\n"), bdat("b\r\n"), "BDAT 0 LAST\r\n"},
         {"250 2.0.0", "250 2.0.0", "250 2.0.0"}, "a\nb\n"},
        {"empty chunks", {"BDAT 0\r\n", bdat("a\r\n"), "BDAT 0\r\n", bdat("", true)},
         {"250 2.0.0", "250 2.0.0", "250 2.0.0", "250 2.0.0"}, "a\n"},
        {"chunk and next command in one read", {bdat("a\r\nb", true) + "NOOP\r\n"}, {"250 2.0.0", "250 2.0.0"},
         "a\nb\n"},
        {"chunk sent in pieces", {"BDAT 10 LAST\r\nab", "c\r", "\nde", "f\r\n", "NOOP\r\n"},
         {"250 2.0.0", "250 2.0.0"}, "abc\ndef\n"},
        {"command words inside a chunk are data", {bdat("QUIT\r\nRSET\r\n", true)}, {"250 2.0.0"}, "QUIT\nRSET\n"},
        {"leading zeros", {"BDAT 003 LAST\r\nabc"}, {"250 2.0.0"}, "abc\n"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        Smtp s;
        start_transaction(s);
        std::vector<std::string> got;
        for (const auto& in : c.input)
            for (const auto& h : heads(s.feed(in))) got.push_back(h);
        CHECK(got == c.expected);
        CHECK(s.sink.log == "BC");
        REQUIRE(s.sink.commits() == 1);
        CHECK(body_of(s.sink.messages[0]) == c.body);
        CHECK_FALSE(s.session.closed());
    }
}

TEST_CASE("smtp: DATA after BDAT is 503; the BDAT transaction goes on", "[smtp]") {
    Smtp s;
    start_transaction(s);
    CHECK(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
    CHECK(one(s.cmd("DATA")) == "503 5.5.1");
    CHECK(one(s.feed(bdat("b\r\n", true))) == "250 2.0.0");
    REQUIRE(s.sink.commits() == 1);
    CHECK(body_of(s.sink.messages[0]) == "a\nb\n");
}

TEST_CASE("smtp: RCPT after BDAT is 503; the message keeps its recipients and its Received line", "[smtp]") {
    Smtp s;
    start_transaction(s);
    CHECK(one(s.feed(bdat("Subject: x\r\n"))) == "250 2.0.0");
    // the Received: line already says "for <u@local.example>": another
    // recipient would receive it too (a Bcc made visible)
    CHECK(s.cmd("RCPT TO:<other@local.example>") == "503 5.5.1 RCPT after BDAT\r\n");
    CHECK(one(s.feed(bdat("\r\nbody\r\n", true))) == "250 2.0.0");
    REQUIRE(s.sink.commits() == 1);
    CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{"u@local.example"});
    CHECK(s.sink.messages[0].find("\tfor <u@local.example>;") != std::string::npos);
    CHECK(body_of(s.sink.messages[0]) == "Subject: x\n\nbody\n");
    // a new transaction takes recipients again, and RSET ends a BDAT one
    CHECK(one(s.feed(mail)) == "250 2.1.0");
    CHECK(one(s.feed(rcpt)) == "250 2.1.5");
    CHECK(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    CHECK(one(s.feed(mail)) == "250 2.1.0");
    CHECK(one(s.feed(rcpt)) == "250 2.1.5");
    CHECK(s.sink.log == "BCBA");
}

TEST_CASE("smtp: BDAT outside a transaction swallows the chunk, then 503", "[smtp]") {
    Smtp s;
    s.feed(ehlo);
    CHECK(heads(s.feed(bdat("MAIL FROM:<e@other.org>\r\n") + "NOOP\r\n")) ==
          std::vector<std::string>{"503 5.5.1", "250 2.0.0"});
    CHECK(heads(s.feed(bdat("x\r\n", true))) == std::vector<std::string>{"503 5.5.1"});
    s.feed(mail);
    CHECK(heads(s.feed(bdat("RCPT TO:<v@local.example>\r\n", true))) == std::vector<std::string>{"503 5.5.1"});
    CHECK(s.sink.log.empty());
    // the failed BDATs leave nothing behind: a DATA transaction works
    CHECK(one(s.feed(mail)) == "250 2.1.0");
    CHECK(one(s.feed(rcpt)) == "250 2.1.5");
    CHECK(heads(s.feed("DATA\r\nx\r\n.\r\n")) == std::vector<std::string>{"354", "250 2.0.0"});
    CHECK(s.sink.log == "BC");
    // before HELO too
    Smtp t;
    CHECK(one(t.feed(bdat("abc", true))) == "503 5.5.1");
    CHECK(one(t.cmd("NOOP")) == "250 2.0.0");
}

TEST_CASE("smtp: a sink that refuses the envelope for good makes DATA and BDAT 554", "[smtp]") {
    Smtp s;
    s.sink.fail_begin = true;
    s.sink.begin_code = inject_exit::bad_address;
    start_transaction(s);
    CHECK(s.cmd("DATA") == std::string("554 5.3.0 Message refused: ") +
                               inject_exit::describe(inject_exit::bad_address) + "\r\n");
    s.feed(mail);
    s.feed(rcpt);
    CHECK(one(s.feed(bdat("x\r\n", true))) == "554 5.3.0");
    CHECK(s.sink.log == "BB");
    CHECK(s.sink.commits() == 0);
    CHECK_FALSE(s.session.closed());
}

TEST_CASE("smtp: BDAT when the sink cannot begin is 451 after the chunk", "[smtp]") {
    Smtp s;
    s.sink.fail_begin = true;
    start_transaction(s);
    CHECK(s.feed(bdat("QUIT\r\n", true) + "NOOP\r\n") ==
          std::string("451 4.3.0 Queue temporarily unavailable: ") + inject_exit::describe(inject_exit::cannot_create) +
              "\r\n250 2.0.0 Ok\r\n");
    CHECK(s.sink.log == "B");
    CHECK_FALSE(s.session.closed());
    s.sink.fail_begin = false;
    s.feed(mail);
    s.feed(rcpt);
    CHECK(one(s.feed(bdat("y\r\n", true))) == "250 2.0.0");
    CHECK(s.sink.log == "BBC");
}

TEST_CASE("smtp: a last BDAT line without CRLF has the 1000-octet limit of every line", "[smtp]") {
    // stored with a line end, it must fit in 1000 octets with its CRLF, as in DATA
    for (size_t n : {997, 998, 999, 1000}) {
        INFO(n);
        Smtp s;
        start_transaction(s);
        if (n <= 998) {
            CHECK(one(s.feed(bdat(std::string(n, 'x'), true))) == "250 2.0.0");
            REQUIRE(s.sink.commits() == 1);
            CHECK(body_of(s.sink.messages[0]) == std::string(n, 'x') + "\n");
        } else {
            CHECK(s.feed(bdat(std::string(n, 'x'), true)) ==
                  "554 5.6.0 Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)\r\n");
            CHECK(s.sink.log == "BA");
        }
    }
    // the same line split over chunks
    Smtp s;
    start_transaction(s);
    CHECK(one(s.feed(bdat(std::string(500, 'x')))) == "250 2.0.0");
    CHECK(one(s.feed(bdat(std::string(499, 'x'), true))) == "554 5.6.0");
    CHECK(s.sink.log == "BA");
}

TEST_CASE("smtp: BDAT data is checked like DATA", "[smtp]") {
    SmtpConfig cfg = test_config();
    cfg.databytes = 100;
    struct Case {
        std::string name;
        std::vector<std::string> chunks;  // the last one is sent with LAST
        std::string expected;
    };
    const std::string r = "Received: x\r\n";
    const std::vector<Case> cases = {
        {"bare LF", {"hello\nworld\r\n"}, "554 5.6.0"},
        {"bare CR", {"hello\rworld\r\n"}, "554 5.6.0"},
        {"CR at the end of a chunk, no LF next", {"a\r", "b\r\n"}, "554 5.6.0"},
        {"LF at the start of a chunk after LF", {"a\n", "\nb\r\n"}, "554 5.6.0"},
        {"bare CR at the very end", {"a\r\nb\r"}, "554 5.6.0"},
        {"smuggling dot", {"a\n.\nMAIL FROM:<e@other.org>\r\n"}, "554 5.6.0"},
        {"long line", {std::string(999, 'x') + "\r\n"}, "554 5.6.0"},
        {"long line across chunks", {std::string(600, 'x'), std::string(600, 'x') + "\r\n"}, "554 5.6.0"},
        {"long last line without CRLF", {std::string(1001, 'x')}, "554 5.6.0"},
        {"a line across chunks", {std::string(50, 'x'), std::string(48, 'x') + "\r\n"}, "250 2.0.0"},
        {"over databytes", {std::string(60, 'x') + "\r\n", std::string(60, 'x') + "\r\n"}, "552 5.3.4"},
        {"too many hops", {r + r + r, r + r + r + "\r\n"}, "554 5.4.6"},
        {"hops in the body", {r + r + "\r\n" + r + r + r + r}, "250 2.0.0"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        Smtp s(cfg);
        start_transaction(s);
        std::string out;
        for (size_t i = 0; i < c.chunks.size(); ++i) out += s.feed(bdat(c.chunks[i], i + 1 == c.chunks.size()));
        auto h = heads(out);
        REQUIRE(h.size() == c.chunks.size());
        for (size_t i = 0; i + 1 < h.size(); ++i) CHECK(h[i] == "250 2.0.0");
        CHECK(h.back() == c.expected);
        CHECK(s.sink.log == (c.expected == "250 2.0.0" ? "BC" : "BA"));
        CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
    }
}

TEST_CASE("smtp: bad BDAT syntax is 501 and closes the connection", "[smtp]") {
    const std::vector<std::string> lines = {"BDAT",        "BDAT ",          "BDAT x",        "BDAT -1",
                                            "BDAT 5 FIRST", "BDAT 5 LAST x", "BDAT 5  LAST",  "BDAT  5",
                                            "BDAT 0x10",   "BDAT 1000000000000000000000", "BDAT LAST"};
    for (const auto& l : lines) {
        INFO(l);
        for (bool in_transaction : {false, true}) {
            Smtp s;
            start_transaction(s);
            if (in_transaction) REQUIRE(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
            std::string r = s.cmd(l);
            CHECK(r == "501 5.5.4 Syntax: BDAT size [LAST]; closing connection\r\n");
            CHECK(s.session.closed());
            CHECK(s.feed("hello\r\nNOOP\r\n") == "");
            // a message in progress is dropped
            CHECK(s.sink.log == (in_transaction ? "BA" : ""));
            CHECK_FALSE(s.sink.open);
        }
    }
}

// --- ending the session

TEST_CASE("smtp: too many errors is 421 4.7.0 and closes", "[smtp]") {
    const std::vector<std::string> bad = {
        "FOO",                              // 500
        "EXPN x",                           // 502
        "DATA",                             // 503
        "MAIL FROM:bad",                    // 501
        "STARTTLS",                         // 502
        "HELO",                             // 501
        "NOOP\nx",                          // 500 bare LF
        std::string(3000, 'z'),             // 500 too long
    };
    for (size_t first = 0; first < bad.size(); ++first) {
        Smtp s;  // max_errors 5
        s.feed(ehlo);
        for (size_t i = 0; i < 5; ++i) {
            const std::string& l = bad[(first + i) % bad.size()];
            INFO(l);
            auto lines = reply_lines(s.cmd(l));
            CHECK(lines.size() == 1);
            CHECK_FALSE(s.session.closed());
        }
        CHECK(one(s.cmd("NOOP")) == "250 2.0.0");  // good commands do not reset the count
        const std::string& last = bad[(first + 5) % bad.size()];
        INFO(last);
        auto lines = reply_lines(s.cmd(last));
        REQUIRE(lines.size() == 2);
        CHECK(lines[1] == "421 4.7.0 mx.local.example Too many errors; closing connection");
        CHECK(s.session.closed());
        CHECK(s.feed("NOOP\r\n") == "");
    }
}

TEST_CASE("smtp: too many errors during a BDAT transaction drops the message", "[smtp]") {
    Smtp s;
    start_transaction(s);
    REQUIRE(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
    std::string out;
    for (int i = 0; i < 6; ++i) out += s.cmd("FOO");
    CHECK(heads(out).back() == "421 4.7.0");
    CHECK(s.session.closed());
    CHECK(s.sink.log == "BA");
    CHECK_FALSE(s.sink.open);
}

TEST_CASE("smtp: QUIT during a BDAT transaction drops the message", "[smtp]") {
    Smtp s;
    start_transaction(s);
    REQUIRE(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
    CHECK(one(s.cmd("QUIT")) == "221 2.0.0");
    CHECK(s.session.closed());
    CHECK(s.sink.log == "BA");
}

TEST_CASE("smtp: EHLO and RSET during a BDAT transaction drop the message", "[smtp]") {
    for (const char* line : {"RSET", "EHLO again.example", "HELO again.example"}) {
        INFO(line);
        Smtp s;
        start_transaction(s);
        REQUIRE(one(s.feed(bdat("a\r\n"))) == "250 2.0.0");
        CHECK(head(reply_lines(s.cmd(line)).back()).substr(0, 3) == "250");
        CHECK(s.sink.log == "BA");
        CHECK(one(s.feed(bdat("b\r\n", true))) == "503 5.5.1");
        CHECK(s.sink.log == "BA");
    }
}

TEST_CASE("smtp: timeout_reply is 421 4.4.2, closes and drops a message in progress", "[smtp]") {
    const std::string expected = "421 4.4.2 mx.local.example Timeout; closing connection\r\n";
    struct Case {
        std::string name, input, log;
    };
    const std::vector<Case> cases = {
        {"before anything", "", ""},
        {"in a command line", ehlo + "MAIL FROM:<a@", ""},
        {"in a transaction", ehlo + mail + rcpt, ""},
        {"in DATA", ehlo + mail + rcpt + "DATA\r\nSubject: x\r\n\r\npart", "BA"},
        {"in DATA, before the final CRLF", ehlo + mail + rcpt + "DATA\r\nx\r\n.\r", "BA"},
        {"between BDAT chunks", ehlo + mail + rcpt + bdat("a\r\n"), "BA"},
        {"inside a BDAT chunk", ehlo + mail + rcpt + "BDAT 100 LAST\r\nabc", "BA"},
        {"after a message", ehlo + mail + rcpt + "DATA\r\nx\r\n.\r\n", "BC"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        Smtp s;
        s.feed(c.input);
        CHECK(s.session.timeout_reply() == expected);
        CHECK(s.session.closed());
        CHECK(s.sink.log == c.log);
        CHECK_FALSE(s.sink.open);
        CHECK(s.feed("\r\n.\r\nQUIT\r\n") == "");
        CHECK(s.sink.log == c.log);
    }
}

// --- STARTTLS (RFC 3207)

namespace {
SmtpConfig tls_config() {
    SmtpConfig c = test_config();
    c.tls_offered = true;
    return c;
}
}  // namespace

TEST_CASE("smtp: STARTTLS is advertised only with a certificate and before TLS", "[smtp][tls]") {
    Smtp plain;
    CHECK(plain.feed(ehlo).find("STARTTLS") == std::string::npos);
    CHECK(one(plain.cmd("STARTTLS")) == "502 5.5.1");
    CHECK_FALSE(plain.session.wants_tls());

    Smtp s(tls_config());
    CHECK(s.feed(ehlo).find("250-STARTTLS\r\n") != std::string::npos);
    CHECK(one(s.cmd("STARTTLS now")) == "501 5.5.4");
    CHECK(one(s.feed(mail)) == "250 2.1.0");
    CHECK(one(s.cmd("STARTTLS")) == "503 5.5.1");   // inside a transaction
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    CHECK(one(s.cmd("STARTTLS")) == "220 2.0.0");
    CHECK(s.session.wants_tls());
    s.session.tls_started("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))");
    CHECK_FALSE(s.session.wants_tls());
    CHECK(s.session.tls_active());
    // the state is reset: the client must EHLO again, and STARTTLS is gone
    CHECK(one(s.feed(mail)) == "503 5.5.1");
    std::string list = s.feed(ehlo);
    CHECK(list.find("STARTTLS") == std::string::npos);
    CHECK(list.find("250-PIPELINING") != std::string::npos);
    CHECK(one(s.cmd("STARTTLS")) == "503 5.5.1");
}

TEST_CASE("smtp: bytes pipelined behind STARTTLS end the session, never run as commands", "[smtp][tls]") {
    for (std::string tail : {"RSET\r\n", "MAIL FROM:<evil@x.example>\r\n", "\x16\x03\x01", "\r\n"}) {
        Smtp s(tls_config());
        s.feed(ehlo);
        std::string out = s.feed("STARTTLS\r\n" + tail);
        INFO(escaped(out));
        CHECK(one(out) == "554 5.5.0");
        CHECK_FALSE(s.session.wants_tls());
        CHECK(s.session.closed());
        CHECK(s.sink.log.empty());
    }
    // a whole transaction pipelined: nothing of it reaches the queue
    Smtp s(tls_config());
    std::string out = s.feed(ehlo + "STARTTLS\r\n" + mail + rcpt + "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    CHECK(heads(out).back() == "554 5.5.0");
    CHECK(s.sink.log.empty());
    CHECK(s.session.closed());
}

TEST_CASE("smtp: under TLS the Received line says ESMTPS and names the cipher", "[smtp][tls]") {
    Smtp s(tls_config());
    s.feed(ehlo);
    REQUIRE(one(s.cmd("STARTTLS")) == "220 2.0.0");
    s.session.tls_started("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))");
    start_transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("Subject: t\r\n\r\nbody\r\n.\r\n")) == "250 2.0.0");
    REQUIRE(s.sink.commits() == 1);
    const std::string& m = s.sink.messages[0];
    std::string received = m.substr(0, received_end(m));
    INFO(received);
    CHECK(received.find("\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n\tby mx.local.example") !=
          std::string::npos);
    CHECK(received.find(" with ESMTPS id ") != std::string::npos);
}

// --- AUTH (RFC 4954) and submission (RFC 6409)

namespace {

// Knows one user, alice with the password "secret" (login name "alice"
// whatever the case); records every check.
class FakeAuth : public Authenticator {
public:
    bool temporary = false;
    std::vector<std::string> checks;   // "MECH user password"
    AuthCheck check(std::string_view mech, std::string_view user, std::string_view password) override {
        checks.push_back(std::string(mech) + " " + std::string(user) + " " + std::string(password));
        AuthCheck c;
        if (temporary) return c;
        c.result = lowercase(user) == "alice" && password == "secret" ? AuthCheck::Result::ok : AuthCheck::Result::refused;
        if (c.result == AuthCheck::Result::ok) c.user = "alice";
        return c;
    }
};

SmtpConfig auth_config() {
    SmtpConfig c = test_config();
    c.tls_offered = true;
    c.auth_offered = true;
    return c;
}

struct AuthSmtp {
    FakeSink sink;
    FakeAuth auth;
    SmtpSession session;
    explicit AuthSmtp(SmtpConfig cfg = auth_config(), bool tls = true) : session(std::move(cfg), sink, &auth) {
        if (tls) {
            session.feed(ehlo);
            REQUIRE(session.feed("STARTTLS\r\n").rfind("220 ", 0) == 0);
            session.tls_started("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))");
        }
    }
    std::string feed(std::string_view bytes) { return session.feed(bytes); }
    std::string cmd(std::string_view line) { return session.feed(std::string(line) + "\r\n"); }
};

const std::string plain_ok = "AGFsaWNlAHNlY3JldA==";   // "\0alice\0secret"
std::string b64(std::string_view s) { return base64_encode(s); }

void transaction(AuthSmtp& s) {
    REQUIRE(one(s.feed(mail)) == "250 2.1.0");
    REQUIRE(one(s.feed(rcpt)) == "250 2.1.5");
}

}  // namespace

TEST_CASE("smtp auth: offered and accepted only under TLS, 538 before", "[smtp][auth]") {
    AuthSmtp clear(auth_config(), false);
    std::string list = clear.feed(ehlo);
    CHECK(list.find("250-STARTTLS\r\n") != std::string::npos);
    CHECK(list.find("AUTH") == std::string::npos);
    CHECK(one(clear.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "538 5.7.11");
    CHECK(clear.auth.checks.empty());

    AuthSmtp s;
    list = s.feed(ehlo);
    CHECK(list.find("250-AUTH PLAIN LOGIN\r\n") != std::string::npos);
    CHECK(list.find("STARTTLS") == std::string::npos);

    // a control file may allow it for loopback clients: smtpd sets auth_plaintext_ok
    SmtpConfig loop = auth_config();
    loop.auth_plaintext_ok = true;
    AuthSmtp lo(loop, false);
    CHECK(lo.feed(ehlo).find("250-AUTH PLAIN LOGIN\r\n") != std::string::npos);
    CHECK(one(lo.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");

    // no checker: neither offered nor accepted
    SmtpConfig none = auth_config();
    none.auth_offered = false;
    AuthSmtp n(none);
    CHECK(n.feed(ehlo).find("AUTH") == std::string::npos);
    CHECK(one(n.cmd("AUTH PLAIN")) == "502 5.5.1");
}

TEST_CASE("smtp auth: PLAIN with an initial response, after 334, and LOGIN", "[smtp][auth]") {
    {
        AuthSmtp s;
        s.feed(ehlo);
        CHECK(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
        CHECK(s.session.auth_user() == "alice");
        CHECK(s.auth.checks == std::vector<std::string>{"PLAIN alice secret"});
        CHECK(s.feed(ehlo).find("AUTH") == std::string::npos);   // not again
        CHECK(one(s.cmd("AUTH PLAIN")) == "503 5.5.1");
    }
    {
        AuthSmtp s;
        s.feed(ehlo);
        CHECK(s.cmd("auth plain") == "334 \r\n");
        CHECK(one(s.cmd(b64(std::string("alice\0alice\0secret", 18)))) == "235 2.7.0");   // authzid = authcid
    }
    {
        AuthSmtp s;
        s.feed(ehlo);
        CHECK(s.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n");
        CHECK(s.cmd(b64("ALICE")) == "334 UGFzc3dvcmQ6\r\n");
        CHECK(one(s.cmd(b64("secret"))) == "235 2.7.0");
        CHECK(s.session.auth_user() == "alice");   // the checker's name for the user
        CHECK(s.auth.checks == std::vector<std::string>{"LOGIN ALICE secret"});
    }
    {
        AuthSmtp s;   // LOGIN with the user name as initial response
        s.feed(ehlo);
        CHECK(s.cmd("AUTH LOGIN " + b64("alice")) == "334 UGFzc3dvcmQ6\r\n");
        CHECK(one(s.cmd(b64("secret"))) == "235 2.7.0");
    }
    {
        AuthSmtp s;   // "=": an empty initial response, which PLAIN cannot use
        s.feed(ehlo);
        CHECK(one(s.cmd("AUTH PLAIN =")) == "501 5.5.2");
        CHECK(s.auth.checks.empty());
    }
}

TEST_CASE("smtp auth: after AUTH the client may relay and Received says ESMTPSA", "[smtp][auth]") {
    AuthSmtp s;
    s.feed(ehlo);
    CHECK(one(s.cmd("MAIL FROM:<a@b.example>")) == "250 2.1.0");
    CHECK(one(s.cmd("RCPT TO:<x@elsewhere.example>")) == "553 5.7.1");   // no relaying yet
    CHECK(one(s.cmd("AUTH PLAIN " + plain_ok)) == "503 5.5.1");          // not inside a transaction
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    REQUIRE(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
    CHECK(one(s.cmd("MAIL FROM:<alice@local.example> AUTH=<>")) == "250 2.1.0");   // RFC 4954 section 5
    CHECK(one(s.cmd("RCPT TO:<x@elsewhere.example>")) == "250 2.1.5");
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("Subject: t\r\n\r\nbody\r\n.\r\n")) == "250 2.0.0");
    REQUIRE(s.sink.commits() == 1);
    CHECK(s.sink.envelopes[0].recipients == std::vector<std::string>{"x@elsewhere.example"});
    CHECK(s.sink.messages[0].find(" with ESMTPSA id ") != std::string::npos);
}

TEST_CASE("smtp auth: failures are 535 alike, slowed, then 421", "[smtp][auth]") {
    SmtpConfig cfg = auth_config();
    cfg.auth_fail_delay_ms = 500;
    AuthSmtp s(cfg);
    s.feed(ehlo);
    // unknown user and wrong password: the same reply
    CHECK(s.cmd("AUTH PLAIN " + b64(std::string("\0nobody\0secret", 14))) ==
          "535 5.7.8 Authentication credentials invalid\r\n");
    CHECK(s.session.take_delay_ms() == 0);   // the first failure is not delayed
    CHECK(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0wrong", 12))) ==
          "535 5.7.8 Authentication credentials invalid\r\n");
    CHECK(s.session.take_delay_ms() == 500);
    CHECK(s.session.take_delay_ms() == 0);   // taken
    CHECK(s.cmd("AUTH LOGIN " + b64("alice")) == "334 UGFzc3dvcmQ6\r\n");
    CHECK(heads(s.cmd(b64("wrong"))) == std::vector<std::string>{"535 5.7.8", "421 4.7.0"});
    CHECK(s.session.take_delay_ms() == 1000);
    CHECK(s.session.closed());
    CHECK(s.session.auth_user().empty());
}

TEST_CASE("smtp auth: a checker that cannot answer is 454 and not counted", "[smtp][auth]") {
    AuthSmtp s;
    s.auth.temporary = true;
    s.feed(ehlo);
    for (int i = 0; i < 5; ++i) CHECK(one(s.cmd("AUTH PLAIN " + plain_ok)) == "454 4.7.0");
    CHECK_FALSE(s.session.closed());
    s.auth.temporary = false;
    CHECK(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
}

TEST_CASE("smtp auth: bad responses are 501 and never reach the checker", "[smtp][auth]") {
    const std::vector<std::string> bad = {
        "AGFsaWNlAHNlY3JldA",                          // no padding
        "AGFsaWNl\tAHNlY3JldA==",                       // white space
        "!!!!",                                         // not base64
        b64(std::string("alice\0secret", 12)),          // one NUL
        b64(std::string("\0alice\0secret\0", 14)),      // three
        b64(std::string("bob\0alice\0secret", 17)),     // authzid is not the user
        b64(std::string("\0\0secret", 8)),              // no user
        b64(std::string("\0alice\0", 7)),               // no password
    };
    for (const auto& r : bad) {
        AuthSmtp s;
        s.feed(ehlo);
        INFO(r);
        CHECK(one(s.cmd("AUTH PLAIN " + r)) == "501 5.5.2");
        CHECK(s.cmd("AUTH PLAIN") == "334 \r\n");
        CHECK(one(s.cmd(r)) == "501 5.5.2");
        CHECK(s.auth.checks.empty());
        CHECK(one(s.cmd("NOOP")) == "250 2.0.0");   // back to commands
    }
    SmtpConfig patient = auth_config();
    patient.max_errors = 20;   // each 501 below counts as an error
    AuthSmtp s(patient);
    s.feed(ehlo);
    CHECK(one(s.cmd("AUTH CRAM-MD5")) == "504 5.5.4");
    CHECK(one(s.cmd("AUTH")) == "501 5.5.4");
    CHECK(s.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n");
    CHECK(one(s.cmd("*")) == "501 5.0.0");   // cancelled
    CHECK(s.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n");
    CHECK(one(s.cmd(b64(std::string("al\0ice", 6)))) == "501 5.5.2");   // a NUL in a LOGIN name
    CHECK(s.cmd("AUTH PLAIN") == "334 \r\n");
    CHECK(one(s.feed(std::string(5000, 'A') + "\r\n")) == "501 5.5.2");   // overlong
    CHECK(one(s.cmd("NOOP")) == "250 2.0.0");
    CHECK(s.cmd("AUTH PLAIN") == "334 \r\n");
    CHECK(one(s.feed("AGFsaWNlAHNlY3JldA==\nx\r\n")) == "501 5.5.2");   // bare LF
    CHECK(one(s.cmd("AUTH PLAIN AGFsaWNl AHNlY3JldA==")) == "501 5.5.4");   // two words
    CHECK(s.auth.checks.empty());
    AuthSmtp helo(auth_config(), false);
    helo.cmd("HELO client.example");
    CHECK(one(helo.cmd("AUTH PLAIN " + plain_ok)) == "503 5.5.1");
}

TEST_CASE("submission: MAIL needs AUTH; Date and Message-ID are added when missing", "[smtp][auth]") {
    SmtpConfig cfg = auth_config();
    cfg.submission = true;
    cfg.relay_allowed = true;   // even RELAYCLIENT does not stand in for AUTH here
    AuthSmtp s(cfg);
    s.feed(ehlo);
    CHECK(one(s.cmd("MAIL FROM:<alice@local.example>")) == "530 5.7.0");
    REQUIRE(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
    transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("Subject: t\r\n\r\nbody\r\n.\r\n")) == "250 2.0.0");
    const std::string& m = s.sink.messages.at(0);
    size_t date = m.find("\nDate: "), id = m.find("\nMessage-ID: <"), blank = m.find("\n\n");
    INFO(m);
    CHECK(date != std::string::npos);
    CHECK(id != std::string::npos);
    CHECK(m.find("@mx.local.example>\n") != std::string::npos);
    CHECK(date < blank);
    CHECK(id < blank);
    CHECK(m.substr(blank) == "\n\nbody\n");

    // present: left alone, whatever their case
    transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMESSAGE-ID: <x@y>\r\n\r\nb\r\n.\r\n")) == "250 2.0.0");
    const std::string& m2 = s.sink.messages.at(1);
    CHECK(m2.find("Date: ") == std::string::npos);
    CHECK(m2.find("Message-ID: ") == std::string::npos);

    // a message that is all header still gets them, in its header
    transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("Subject: only\r\n.\r\n")) == "250 2.0.0");
    const std::string& m3 = s.sink.messages.at(2);
    CHECK(m3.find("Subject: only\nDate: ") != std::string::npos);

    // not in submission mode: never added
    AuthSmtp mx;
    mx.feed(ehlo);
    transaction(mx);
    REQUIRE(one(mx.cmd("DATA")) == "354");
    REQUIRE(one(mx.feed("Subject: t\r\n\r\nbody\r\n.\r\n")) == "250 2.0.0");
    CHECK(mx.sink.messages.at(0).find("Message-ID") == std::string::npos);
}

TEST_CASE("submission: control/senderlogins says which senders a login may use", "[smtp][auth]") {
    SmtpConfig cfg = auth_config();
    cfg.submission = true;
    cfg.sender_logins = SenderLogins::parse("# who sends as whom\nalice@local.example alice\n@team.example bob ALICE\n");
    AuthSmtp s(cfg);
    s.feed(ehlo);
    REQUIRE(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
    CHECK(one(s.cmd("MAIL FROM:<bob@local.example>")) == "553 5.7.1");
    CHECK(one(s.cmd("MAIL FROM:<nobody@nowhere.example>")) == "553 5.7.1");   // no owner: no one's
    CHECK(one(s.cmd("MAIL FROM:<Alice@LOCAL.example>")) == "250 2.1.0");
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    CHECK(one(s.cmd("MAIL FROM:<any@team.example>")) == "250 2.1.0");
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    CHECK(one(s.cmd("MAIL FROM:<>")) == "250 2.1.0");   // bounces belong to everyone
}

TEST_CASE("smtp auth: a login in clear text does not survive STARTTLS; HELO keeps ESMTPSA", "[smtp][auth]") {
    SmtpConfig cfg = auth_config();
    cfg.auth_plaintext_ok = true;
    AuthSmtp s(cfg, false);
    s.feed(ehlo);
    REQUIRE(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
    REQUIRE(one(s.cmd("STARTTLS")) == "220 2.0.0");
    s.session.tls_started("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))");
    CHECK(s.session.auth_user().empty());   // RFC 3207 section 4.2
    s.feed(ehlo);
    CHECK(one(s.cmd("RCPT TO:<x@elsewhere.example>")) == "503 5.5.1");
    CHECK(one(s.cmd("MAIL FROM:<a@b.example>")) == "250 2.1.0");
    CHECK(one(s.cmd("RCPT TO:<x@elsewhere.example>")) == "553 5.7.1");   // no relaying any more
    CHECK(one(s.cmd("RSET")) == "250 2.0.0");
    REQUIRE(one(s.cmd("AUTH PLAIN " + b64(std::string("\0alice\0secret", 13)))) == "235 2.7.0");
    s.cmd("HELO client.example");
    transaction(s);
    REQUIRE(one(s.cmd("DATA")) == "354");
    REQUIRE(one(s.feed("Subject: t\r\n\r\nbody\r\n.\r\n")) == "250 2.0.0");
    CHECK(s.sink.messages.at(0).find(" with ESMTPSA id ") != std::string::npos);
}
