#include "bounce.hpp"
#include "datetime.hpp"
#include "header.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

namespace {

std::vector<std::string> lines_of(std::string_view s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string_view::npos) nl = s.size();
        out.emplace_back(s.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

std::string field(const HeaderBlock& h, std::string_view name) {
    const HeaderField* f = h.find(name);
    return f ? unfold(f->value) : "<missing " + std::string(name) + ">";
}

struct Part {
    HeaderBlock headers;
    std::string body;
};

// A bounce taken apart the way a mail reader would.
struct Parsed {
    HeaderBlock headers;
    std::string boundary;
    std::vector<Part> parts;
};

Parsed parse_bounce(const std::string& msg) {
    Parsed p;
    size_t off = 0;
    p.headers = HeaderBlock::parse(msg, off);
    std::string ct = field(p.headers, "Content-Type");
    size_t b = ct.find("boundary=\"");
    REQUIRE(b != std::string::npos);
    b += 10;
    size_t e = ct.find('"', b);
    REQUIRE(e != std::string::npos);
    p.boundary = ct.substr(b, e - b);
    REQUIRE(!p.boundary.empty());
    REQUIRE(p.boundary.size() <= 70);

    const std::string delim = "--" + p.boundary;
    const auto lines = lines_of(std::string_view(msg).substr(off));
    int opens = 0, closes = 0;
    bool closed = false;
    std::string current;
    bool in_part = false;
    for (const auto& line : lines) {
        INFO(line);
        CHECK_FALSE(closed);  // nothing after the close delimiter
        if (line == delim || line == delim + "--") {
            if (in_part) {
                if (!current.empty()) current.pop_back();  // the LF before a delimiter is the delimiter's
                Part part;
                size_t body_off = 0;
                part.headers = HeaderBlock::parse(current, body_off);
                part.body = current.substr(body_off);
                p.parts.push_back(std::move(part));
            }
            current.clear();
            in_part = true;
            if (line == delim) ++opens;
            else { ++closes; closed = true; }
            continue;
        }
        // no other line may even start with the delimiter
        CHECK(line.rfind(delim, 0) == std::string::npos);
        if (in_part) current += line + "\n";
    }
    CHECK(opens == 3);
    CHECK(closes == 1);
    CHECK(closed);
    return p;
}

// The groups of the delivery-status body, separated by empty lines.
std::vector<HeaderBlock> status_groups(const std::string& body) {
    std::vector<HeaderBlock> groups;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t off = 0;
        groups.push_back(HeaderBlock::parse(std::string_view(body).substr(pos), off));
        REQUIRE(off > 0);
        pos += off;
    }
    return groups;
}

const std::string original_message =
    "Received: from client by host.example.com\n"
    "From: Sender <sender@example.com>\n"
    "To: a@example.org, b@example.net\n"
    "Subject: quarterly numbers\n"
    " (folded)\n"
    "Message-ID: <orig@example.com>\n"
    "\n"
    "BODY-SECRET-LINE 1\n"
    "BODY-SECRET-LINE 2\n";

BounceInput sample_input() {
    BounceInput in;
    in.reporting_mta = "host.example.com";
    in.queue_id = "1700000000.123456.42";
    in.original_sender = "sender@example.com";
    in.bounce_from = "MAILER-DAEMON@host.example.com";
    in.bounce_to = "sender@example.com";
    in.arrival = 1700000000;
    in.now = 1700003600;
    in.message_id = "1700003600.1.99@host.example.com";
    in.original = original_message;

    FailedRecipient a;
    a.address = "a@example.org";
    a.status = "5.1.1";
    a.diagnostic = "550 5.1.1 <a@example.org>: no such user";
    a.diagnostic_type = "smtp";
    a.remote_mta = "mx.example.org";
    a.last_attempt = 1700003500;
    FailedRecipient b;
    b.address = "b@example.net";
    b.diagnostic = "mailbox quota exceeded";
    in.recipients = {a, b};
    return in;
}

bool all_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

TEST_CASE("compose_bounce: a multipart/report with three parts", "[bounce]") {
    BounceInput in = sample_input();
    const std::string msg = compose_bounce(in);
    CHECK(msg.find('\r') == std::string::npos);
    Parsed p = parse_bounce(msg);

    CHECK(field(p.headers, "From") == "MAILER-DAEMON@host.example.com");
    CHECK(field(p.headers, "To") == "sender@example.com");
    CHECK(field(p.headers, "Subject") == "Undelivered Mail Returned to Sender");
    CHECK(field(p.headers, "Date") == rfc5322_date(in.now));
    CHECK(field(p.headers, "Message-ID") == "<1700003600.1.99@host.example.com>");
    CHECK(field(p.headers, "Auto-Submitted") == "auto-replied");
    CHECK(field(p.headers, "MIME-Version") == "1.0");
    std::string ct = field(p.headers, "Content-Type");
    CHECK(ct.rfind("multipart/report;", 0) == 0);
    CHECK(ct.find("report-type=delivery-status") != std::string::npos);

    REQUIRE(p.parts.size() == 3);
    CHECK(field(p.parts[0].headers, "Content-Type") == "text/plain; charset=us-ascii");
    CHECK(field(p.parts[1].headers, "Content-Type") == "message/delivery-status");
    CHECK(field(p.parts[2].headers, "Content-Type") == "text/rfc822-headers");

    // human part: ASCII, names the host and every recipient with its diagnostic
    const std::string& human = p.parts[0].body;
    CHECK(all_ascii(human));
    CHECK(human.find("host.example.com") != std::string::npos);
    CHECK(human.find("<a@example.org>") != std::string::npos);
    CHECK(human.find("550 5.1.1 <a@example.org>: no such user") != std::string::npos);
    CHECK(human.find("mx.example.org") != std::string::npos);
    CHECK(human.find("<b@example.net>") != std::string::npos);
    CHECK(human.find("mailbox quota exceeded") != std::string::npos);
    CHECK(human.find("permanent") != std::string::npos);
    CHECK(human.find("1700000000.123456.42") != std::string::npos);

    // delivery status
    auto groups = status_groups(p.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(field(groups[0], "Reporting-MTA") == "dns; host.example.com");
    CHECK(field(groups[0], "X-Yubin-Queue-ID") == "1700000000.123456.42");
    CHECK(field(groups[0], "Arrival-Date") == rfc5322_date(in.arrival));
    CHECK_FALSE(groups[0].has("Final-Recipient"));

    CHECK(field(groups[1], "Final-Recipient") == "rfc822; a@example.org");
    CHECK(field(groups[1], "Action") == "failed");
    CHECK(field(groups[1], "Status") == "5.1.1");
    CHECK(field(groups[1], "Remote-MTA") == "dns; mx.example.org");
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 550 5.1.1 <a@example.org>: no such user");
    CHECK(field(groups[1], "Last-Attempt-Date") == rfc5322_date(1700003500));

    CHECK(field(groups[2], "Final-Recipient") == "rfc822; b@example.net");
    CHECK(field(groups[2], "Action") == "failed");
    CHECK(field(groups[2], "Status") == "5.0.0");  // the default for an empty status
    CHECK_FALSE(groups[2].has("Remote-MTA"));
    CHECK(field(groups[2], "Diagnostic-Code") == "x-unix; mailbox quota exceeded");
    CHECK_FALSE(groups[2].has("Last-Attempt-Date"));

    // the original's header section, and nothing of its body
    size_t off = 0;
    CHECK(p.parts[2].body == HeaderBlock::parse(original_message, off).serialize());
    CHECK(p.parts[2].body.find("Subject: quarterly numbers\n (folded)\n") != std::string::npos);
    CHECK(msg.find("BODY-SECRET-LINE") == std::string::npos);
}

TEST_CASE("compose_bounce: delayed recipients", "[bounce]") {
    BounceInput in = sample_input();
    for (auto& r : in.recipients) {
        r.action = "delayed";
        r.status = "";
    }
    in.recipients[1].status = "not a status";
    Parsed p = parse_bounce(compose_bounce(in));
    CHECK(field(p.headers, "Subject") == "Delayed Mail (still being retried)");
    auto groups = status_groups(p.parts[1].body);
    REQUIRE(groups.size() == 3);
    for (size_t i = 1; i < 3; ++i) {
        CHECK(field(groups[i], "Action") == "delayed");
        CHECK(field(groups[i], "Status") == "4.0.0");
    }
    CHECK(p.parts[0].body.find("still trying") != std::string::npos);
    CHECK(p.parts[0].body.find("permanent") == std::string::npos);

    // one failed and one delayed: undelivered
    in.recipients[0].action = "failed";
    p = parse_bounce(compose_bounce(in));
    CHECK(field(p.headers, "Subject") == "Undelivered Mail Returned to Sender");
    CHECK(p.parts[0].body.find("still trying") != std::string::npos);
    CHECK(p.parts[0].body.find("permanent") != std::string::npos);
}

TEST_CASE("compose_bounce: the boundary never occurs in the original", "[bounce]") {
    BounceInput in = sample_input();
    const std::string plain_boundary = parse_bounce(compose_bounce(in)).boundary;
    // the original contains the would-be boundary, and the next candidates
    // (a field name may hold every character of the boundary)
    const std::string trap_headers = "Subject: trap\n--" + plain_boundary + ": x\n--" + plain_boundary + ".1=: y\n";
    const std::string original = trap_headers + "\n--" + plain_boundary + "\n--" + plain_boundary + ".2\n" +
                                 plain_boundary + ".3=--\n";
    in.original = original;
    const std::string msg = compose_bounce(in);
    Parsed p = parse_bounce(msg);
    INFO(p.boundary);
    CHECK(p.boundary != plain_boundary);
    CHECK(original.find(p.boundary) == std::string::npos);
    REQUIRE(p.parts.size() == 3);
    CHECK(p.parts[2].body == trap_headers);
    CHECK(msg.find(plain_boundary + ".3=--") == std::string::npos);  // body not included

    // a remote server's reply that tries the same
    in.original = original_message;
    in.recipients[0].diagnostic = "550 --" + plain_boundary + "-- gotcha";
    p = parse_bounce(compose_bounce(in));
    CHECK(p.boundary != plain_boundary);
    CHECK(p.parts.size() == 3);
}

TEST_CASE("compose_bounce scrubs control characters from every input", "[bounce]") {
    BounceInput in = sample_input();
    in.reporting_mta = "host\r\nX-Injected-1: yes";
    in.queue_id = "q\nX-Injected-2: yes";
    in.bounce_to = "sender@example.com\nBcc: victim@example.net";
    in.message_id = "id\r\n@host";
    in.recipients[0].address = "a@example.org\r\nX-Injected-3: yes";
    in.recipients[0].remote_mta = "mx\nX-Injected-4: yes";
    in.recipients[0].diagnostic = "550 bad\r\nX-Injected-5: yes\0after"s + "\x01\x7f";
    in.recipients[1].diagnostic_type = "smtp\nX-Injected-6: yes";
    const std::string msg = compose_bounce(in);
    CHECK(msg.find('\r') == std::string::npos);
    CHECK(msg.find('\0') == std::string::npos);
    CHECK(msg.find('\x01') == std::string::npos);
    CHECK(msg.find('\x7f') == std::string::npos);
    for (const auto& line : lines_of(msg)) {
        INFO(line);
        CHECK(line.rfind("X-Injected", 0) == std::string::npos);
        CHECK(line.rfind("Bcc:", 0) == std::string::npos);
    }
    Parsed p = parse_bounce(msg);
    auto groups = status_groups(p.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(field(groups[1], "Final-Recipient") == "rfc822; a@example.org  X-Injected-3: yes");
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 550 bad  X-Injected-5: yes after");
    CHECK(field(groups[2], "Diagnostic-Code").rfind("x-unix; ", 0) == 0);  // bad type replaced
}

TEST_CASE("compose_bounce: 8-bit input", "[bounce]") {
    BounceInput in = sample_input();
    std::string original = "Subject: caf\xc3\xa9\nFrom: x@example.com\n\nbody \xc3\xa9\n";
    in.original = original;
    in.recipients[0].address = "j\xc3\xb6rg+x@example.org";
    in.recipients[0].diagnostic = "550 unknown user j\xc3\xb6rg";
    Parsed p = parse_bounce(compose_bounce(in));
    CHECK(all_ascii(p.parts[0].body));
    CHECK(all_ascii(p.parts[1].body));
    CHECK(p.parts[2].body == "Subject: caf\xc3\xa9\nFrom: x@example.com\n");  // not re-encoded
    auto groups = status_groups(p.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(field(groups[1], "Final-Recipient") == "utf-8; j\\x{F6}rg\\x{2B}x@example.org");
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 550 unknown user j??rg");
    CHECK(p.parts[0].body.find("<j\\x{F6}rg\\x{2B}x@example.org>") != std::string::npos);
}

TEST_CASE("compose_bounce folds long diagnostics", "[bounce]") {
    BounceInput in = sample_input();
    std::string diag = "550-5.7.1 This message was rejected because";
    for (int i = 0; i < 40; ++i) diag += " reason" + std::to_string(i);
    std::string huge_word(5000, 'w');
    in.recipients[0].diagnostic = diag;
    in.recipients[1].diagnostic = huge_word;
    const std::string msg = compose_bounce(in);
    for (const auto& line : lines_of(msg)) {
        INFO(line);
        CHECK(line.size() <= 998);
    }
    Parsed p = parse_bounce(msg);
    auto groups = status_groups(p.parts[1].body);
    REQUIRE(groups.size() == 3);
    const HeaderField* f = groups[1].find("Diagnostic-Code");
    REQUIRE(f != nullptr);
    CHECK(f->value.find('\n') != std::string::npos);  // it was folded
    for (const auto& line : lines_of("Diagnostic-Code:" + f->value)) CHECK(line.size() <= 78);
    CHECK(unfold(f->value) == "smtp; " + diag);
    // the long one is cut, not dropped
    CHECK(field(groups[2], "Diagnostic-Code").rfind("x-unix; wwww", 0) == 0);
    for (const auto& line : lines_of(p.parts[0].body)) CHECK(line.size() <= 998);
}

TEST_CASE("compose_bounce: message without a header or body", "[bounce]") {
    BounceInput in = sample_input();
    in.original = "just text, no header\n";
    Parsed p = parse_bounce(compose_bounce(in));
    REQUIRE(p.parts.size() == 3);
    CHECK(p.parts[2].body.empty());
    in.original = "";
    p = parse_bounce(compose_bounce(in));
    REQUIRE(p.parts.size() == 3);
    CHECK(p.parts[2].body.empty());
}
