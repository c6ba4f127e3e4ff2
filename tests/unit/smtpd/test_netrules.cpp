#include <catch2/catch.hpp>

#include "netrules.hpp"

using namespace yubin;

TEST_CASE("net rules: the most specific match wins", "[netrules]") {
    auto rules = parse_net_rules(
        "# comment\n"
        ":deny\n"
        "127.:allow,RELAYCLIENT=\"\"\n"
        "127.0.0.2:deny\n"
        "10.0.0.0/8:allow,RELAYCLIENT=\"@relay\",GREETING=hi\n"
        "::1:allow,X=\"a b\"\n"
        "2001:db8::/32:deny\n");
    REQUIRE(rules.size() == 6);
    const NetRule* r = match_net_rule(rules, "127.0.0.1");
    REQUIRE(r);
    CHECK(r->allow);
    REQUIRE(r->env.size() == 1);
    CHECK(r->env[0] == std::pair<std::string, std::string>{"RELAYCLIENT", ""});
    CHECK_FALSE(match_net_rule(rules, "127.0.0.2")->allow);
    r = match_net_rule(rules, "10.200.3.4");
    REQUIRE(r);
    CHECK(r->allow);
    REQUIRE(r->env.size() == 2);
    CHECK(r->env[0].second == "@relay");
    CHECK(r->env[1] == std::pair<std::string, std::string>{"GREETING", "hi"});
    CHECK_FALSE(match_net_rule(rules, "11.0.0.1")->allow);  // the default rule
    CHECK(match_net_rule(rules, "::1")->env[0].second == "a b");
    CHECK_FALSE(match_net_rule(rules, "2001:db8::5")->allow);
    CHECK_FALSE(match_net_rule(rules, "2001:db9::5")->allow);  // default again
}

TEST_CASE("net rules: no rule means no match", "[netrules]") {
    auto rules = parse_net_rules("192.168.1.:allow\n");
    CHECK(match_net_rule(rules, "192.168.1.9"));
    CHECK_FALSE(match_net_rule(rules, "192.168.2.9"));
    CHECK_FALSE(match_net_rule(rules, "not an address"));
}

TEST_CASE("net rules: bad lines are errors", "[netrules]") {
    for (const char* bad : {"127.0.0.1", "127.0.0.1:maybe", "300.1.1.1:allow", "1.2.3.4/33:allow",
                            "1.2.3.4:allow,RELAYCLIENT", "1.2.3.4:allow,RELAY CLIENT=x",
                            "1.2.3.4:allow,X=\"unterminated", "1.2.3.4.5.:allow"}) {
        INFO(bad);
        CHECK_THROWS(parse_net_rules(bad));
    }
}
