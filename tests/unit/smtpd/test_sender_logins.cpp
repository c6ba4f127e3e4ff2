// SenderLogins (smtpd/sender_logins.hpp): control/senderlogins.
#include "sender_logins.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace yubin;

TEST_CASE("senderlogins: an address, then its domain; logins in any case", "[senderlogins]") {
    SenderLogins m = SenderLogins::parse(
        "# comment\n\n"
        "alice@example.com\talice\r\n"
        "  postmaster@example.com   alice  bob \n"
        "@example.com carol\n"
        "@Team.Example. BOB\n");
    CHECK(m.size() == 4);
    CHECK(m.may_use("alice", "alice@example.com"));
    CHECK(m.may_use("ALICE", "Alice@EXAMPLE.com"));
    CHECK_FALSE(m.may_use("bob", "alice@example.com"));
    CHECK(m.may_use("bob", "postmaster@example.com"));
    CHECK(m.may_use("alice", "postmaster@example.com"));
    // the exact address wins over the domain: carol owns the rest of example.com, not alice's
    CHECK(m.may_use("carol", "anything@example.com"));
    CHECK_FALSE(m.may_use("carol", "alice@example.com"));
    CHECK_FALSE(m.may_use("alice", "anything@example.com"));
    CHECK(m.may_use("bob", "x@team.example"));
    CHECK_FALSE(m.may_use("bob", "x@sub.team.example"));   // a domain is not its subdomains
    CHECK_FALSE(m.may_use("alice", "x@nowhere.example"));   // no owner: no one may
    CHECK(m.may_use("anyone", ""));                           // the null sender
}

TEST_CASE("senderlogins: malformed lines name their number", "[senderlogins]") {
    for (const char* bad : {"alice@example.com\n", "example.com alice\n", "ok@x alice\nnope\n"}) {
        INFO(bad);
        CHECK_THROWS_AS(SenderLogins::parse(bad), std::runtime_error);
    }
    try {
        SenderLogins::parse("ok@x alice\n\nnope\n");
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("line 3") != std::string::npos);
    }
    CHECK(SenderLogins::parse("").size() == 0);
}
