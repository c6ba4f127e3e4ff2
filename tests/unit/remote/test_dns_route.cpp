// remote/route: control/smtproutes, MX order, implicit MX, null MX, an MX
// pointing at this host; DNS answers come from a table.
#include "route.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace yubin;

namespace {

class TableDns : public DnsLookup {
public:
    std::map<std::string, MxAnswer> mx_answers;
    std::map<std::string, AddressAnswer> addr_answers;
    std::vector<std::string> asked;

    MxAnswer mx(const std::string& domain) override {
        asked.push_back("MX " + domain);
        auto it = mx_answers.find(domain);
        if (it != mx_answers.end()) return it->second;
        return MxAnswer{DnsStatus::nxdomain, {}, "no such domain"};
    }
    AddressAnswer addresses(const std::string& host) override {
        asked.push_back("A " + host);
        auto it = addr_answers.find(host);
        if (it != addr_answers.end()) return it->second;
        return AddressAnswer{DnsStatus::nxdomain, {}, "no such host"};
    }
};

std::vector<std::string> hosts(const RoutePlan& p) {
    std::vector<std::string> out;
    for (const auto& h : p.hops) out.push_back(h.host + ":" + std::to_string(h.port));
    return out;
}

MxAnswer mx(std::vector<MxRecord> r) { return MxAnswer{DnsStatus::ok, std::move(r), ""}; }

}  // namespace

TEST_CASE("smtproutes: domain:relay[:port], smarthost, subdomains, empty relay", "[route]") {
    auto routes = parse_smtproutes({"example.com:relay.example.net", ":Smart.Example:2525",
                                    ".sub.example:[127.0.0.1]:26", "direct.example:", "v6.example:[::1]:2526",
                                    "ip.example:192.0.2.1", "Upper.Example.:relay2.example.net"});
    REQUIRE(routes.size() == 7);
    CHECK(routes[0].relay == "relay.example.net");
    CHECK(routes[0].port == 25);
    CHECK(routes[1].domain.empty());
    CHECK(routes[1].relay == "smart.example");
    CHECK(routes[1].port == 2525);
    CHECK(routes[2].relay == "[127.0.0.1]");
    CHECK(routes[2].port == 26);
    CHECK(routes[3].relay.empty());
    CHECK(routes[4].relay == "[::1]");
    CHECK(routes[6].domain == "upper.example");

    CHECK(match_smtproute(routes, "example.com") == &routes[0]);
    CHECK(match_smtproute(routes, "a.b.sub.example") == &routes[2]);
    CHECK(match_smtproute(routes, "sub.example") == &routes[1]);   // ".sub.example" is for subdomains only
    CHECK(match_smtproute(routes, "other.example") == &routes[1]);
    CHECK(match_smtproute(routes, "direct.example") == &routes[3]);
    CHECK(match_smtproute({}, "example.com") == nullptr);

    for (const char* bad : {"nocolon", "a:b:99999", "a:b:0", "a:b:x", "a:[::1", "a:[::1]x", "a:bad host", "a:[nope]"})
        CHECK_THROWS_AS(parse_smtproutes({bad}), std::runtime_error);
}

TEST_CASE("order_mx: by preference, equal preferences shuffled", "[route]") {
    std::vector<MxRecord> in = {{20, "c"}, {10, "a"}, {10, "b"}, {30, "d"}};
    std::set<std::string> firsts;
    for (unsigned seed = 0; seed < 64; ++seed) {
        std::mt19937 rng(seed);
        auto out = order_mx(in, rng);
        REQUIRE(out.size() == 4);
        CHECK(out[0].preference == 10);
        CHECK(out[1].preference == 10);
        CHECK(out[2].host == "c");
        CHECK(out[3].host == "d");
        firsts.insert(out[0].host);
    }
    CHECK(firsts == std::set<std::string>{"a", "b"});
}

TEST_CASE("plan_route: MX hosts in order, no MX means the domain itself", "[route]") {
    TableDns dns;
    std::mt19937 rng(1);
    RoutingConfig cfg;
    dns.mx_answers["example.org"] = mx({{20, "mx2.example.org"}, {10, "mx1.example.org"}, {20, "mx2.example.org"}});
    dns.mx_answers["plain.example"] = MxAnswer{DnsStatus::nodata, {}, "no MX"};
    CHECK(hosts(plan_route("example.org", cfg, dns, rng)) ==
          std::vector<std::string>{"mx1.example.org:25", "mx2.example.org:25"});
    CHECK(hosts(plan_route("plain.example", cfg, dns, rng)) == std::vector<std::string>{"plain.example:25"});
}

TEST_CASE("plan_route: NXDOMAIN and null MX fail permanently, a DNS failure temporarily", "[route]") {
    TableDns dns;
    std::mt19937 rng(1);
    RoutingConfig cfg;
    dns.mx_answers["null.example"] = mx({{0, ""}});
    dns.mx_answers["mixed.example"] = mx({{0, ""}, {10, "mx.mixed.example"}});
    dns.mx_answers["flaky.example"] = MxAnswer{DnsStatus::temporary, {}, "SERVFAIL"};
    RoutePlan p = plan_route("gone.example", cfg, dns, rng);
    REQUIRE(p.failure);
    CHECK(p.failure->permanent);
    CHECK(p.failure->status == "5.1.2");
    p = plan_route("null.example", cfg, dns, rng);
    REQUIRE(p.failure);
    CHECK(p.failure->permanent);
    CHECK(p.failure->status == "5.1.10");
    CHECK(hosts(plan_route("mixed.example", cfg, dns, rng)) == std::vector<std::string>{"mx.mixed.example:25"});
    p = plan_route("flaky.example", cfg, dns, rng);
    REQUIRE(p.failure);
    CHECK_FALSE(p.failure->permanent);
    CHECK(p.failure->status == "4.4.3");
    p = plan_route("bad..domain", cfg, dns, rng);
    REQUIRE(p.failure);
    CHECK(p.failure->permanent);
}

TEST_CASE("plan_route: an MX naming this host keeps only the better ones", "[route]") {
    TableDns dns;
    std::mt19937 rng(1);
    RoutingConfig cfg;
    cfg.self = {"me.example", "localhost"};
    dns.mx_answers["backup.example"] = mx({{10, "primary.example"}, {20, "me.example"}, {30, "third.example"}});
    dns.mx_answers["loop.example"] = mx({{10, "me.example"}, {20, "other.example"}});
    dns.mx_answers["local.example"] = mx({{10, "localhost"}});
    CHECK(hosts(plan_route("backup.example", cfg, dns, rng)) == std::vector<std::string>{"primary.example:25"});
    for (const char* d : {"loop.example", "local.example"}) {
        RoutePlan p = plan_route(d, cfg, dns, rng);
        REQUIRE(p.failure);
        CHECK_FALSE(p.failure->permanent);        // a configuration error: fixed here, then retried
        CHECK(p.failure->status == "4.3.5");
        CHECK_THAT(p.failure->text, Catch::Contains("configuration error"));
        CHECK(p.hops.empty());
    }
    // the implicit MX is checked too
    dns.mx_answers["me.example"] = MxAnswer{DnsStatus::nodata, {}, ""};
    CHECK(plan_route("me.example", cfg, dns, rng).failure);
}

TEST_CASE("plan_route: smtproutes come before DNS; address literals need no lookup", "[route]") {
    TableDns dns;
    std::mt19937 rng(1);
    RoutingConfig cfg;
    cfg.routes = parse_smtproutes({"relayed.example:relay.example.net:2525", ".lit.example:[127.0.0.5]",
                                   "mxport.example::2626"});
    dns.mx_answers["mxport.example"] = mx({{10, "mx.mxport.example"}});
    RoutePlan p = plan_route("relayed.example", cfg, dns, rng);
    CHECK(hosts(p) == std::vector<std::string>{"relay.example.net:2525"});
    CHECK_FALSE(p.hops[0].address);
    p = plan_route("a.lit.example", cfg, dns, rng);
    REQUIRE(p.hops.size() == 1);
    REQUIRE(p.hops[0].address);
    CHECK(p.hops[0].address->str() == "127.0.0.5");
    CHECK(hosts(plan_route("mxport.example", cfg, dns, rng)) == std::vector<std::string>{"mx.mxport.example:2626"});
    CHECK(dns.asked == std::vector<std::string>{"MX mxport.example"});

    p = plan_route("[192.0.2.9]", RoutingConfig{}, dns, rng);
    REQUIRE(p.hops.size() == 1);
    CHECK(p.hops[0].address->str() == "192.0.2.9");
    p = plan_route("[ipv6:2001:db8::9]", RoutingConfig{}, dns, rng);
    REQUIRE(p.hops.size() == 1);
    CHECK(p.hops[0].address->str() == "2001:db8::9");
    CHECK(plan_route("[nonsense]", RoutingConfig{}, dns, rng).failure);
}
