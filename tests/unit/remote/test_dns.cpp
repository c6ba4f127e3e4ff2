// lib/dns: addresses, control/dnsservers lines, and the ldns resolver
// against ldns-testns on loopback (no query leaves the machine).
#include "dns.hpp"

#include <catch2/catch.hpp>

#include <chrono>

#include "test_dns_server.hpp"

using namespace yubin;
using yubin::test::dns_entry;
using yubin::test::TestNameServer;

namespace {

DnsServer loopback(uint16_t port) { return DnsServer{*IpAddress::parse("127.0.0.1"), port}; }

// A UDP port on loopback where nothing listens.
uint16_t dead_port() {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    socklen_t len = sizeof sin;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    ::close(fd);
    return ntohs(sin.sin_port);
}

const std::string zone =
    dns_entry("mx.test", "MX", "NOERROR",
              {"mx.test. IN MX 20 Backup.MX.test.", "mx.test. IN MX 10 primary.mx.test."}) +
    dns_entry("nomx.test", "MX", "NOERROR") +
    dns_entry("gone.test", "MX", "NXDOMAIN") +
    dns_entry("broken.test", "MX", "SERVFAIL") +
    dns_entry("null.test", "MX", "NOERROR", {"null.test. IN MX 0 ."}) +
    dns_entry("host.test", "A", "NOERROR", {"host.test. IN A 127.0.0.2", "host.test. IN A 127.0.0.3"}) +
    dns_entry("host.test", "AAAA", "NOERROR", {"host.test. IN AAAA ::1"}) +
    dns_entry("v6only.test", "A", "NOERROR") +
    dns_entry("v6only.test", "AAAA", "NOERROR", {"v6only.test. IN AAAA 2001:db8::25"}) +
    dns_entry("noaddr.test", "A", "NOERROR") + dns_entry("noaddr.test", "AAAA", "NOERROR") +
    dns_entry("nohost.test", "A", "NXDOMAIN") +
    dns_entry("flaky.test", "A", "SERVFAIL") + dns_entry("flaky.test", "AAAA", "NOERROR");

}  // namespace

TEST_CASE("IpAddress parses and prints IPv4 and IPv6", "[dns]") {
    auto a = IpAddress::parse("192.0.2.7");
    REQUIRE(a);
    CHECK(a->family == AF_INET);
    CHECK(a->str() == "192.0.2.7");
    auto b = IpAddress::parse("2001:DB8::1");
    REQUIRE(b);
    CHECK(b->family == AF_INET6);
    CHECK(b->str() == "2001:db8::1");
    for (const char* bad : {"", "192.0.2", "192.0.2.256", "example.org", "[::1]", "1.2.3.4 "})
        CHECK_FALSE(IpAddress::parse(bad));
}

TEST_CASE("control/dnsservers lines: ip, ip:port, [ipv6]:port, bare ipv6", "[dns]") {
    auto s = parse_dns_server("127.0.0.1");
    REQUIRE(s);
    CHECK(s->port == 53);
    s = parse_dns_server("127.0.0.1:5353");
    REQUIRE(s);
    CHECK(s->ip.str() == "127.0.0.1");
    CHECK(s->port == 5353);
    s = parse_dns_server("[::1]:5300");
    REQUIRE(s);
    CHECK(s->ip.family == AF_INET6);
    CHECK(s->port == 5300);
    s = parse_dns_server("2001:db8::53");
    REQUIRE(s);
    CHECK(s->port == 53);
    for (const char* bad : {"", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "[::1",
                            "[::1]5300", "ns.example:53", "[127.0.0.1]:53x"})
        CHECK_FALSE(parse_dns_server(bad));
}

TEST_CASE("valid_dns_name", "[dns]") {
    for (const char* good : {"example.org", "a", "xn--bcher-kva.example", "_srv.example", "a-b.c"})
        CHECK(valid_dns_name(good));
    for (const char* bad : {"", ".", "a..b", ".a", "a.", "a b", "a\\b", "a;b", "a\"b"}) CHECK_FALSE(valid_dns_name(bad));
    CHECK_FALSE(valid_dns_name(std::string(64, 'a') + ".example"));
    CHECK(valid_dns_name(std::string(63, 'a') + ".example"));
}

TEST_CASE("Resolver: MX answers, no MX, NXDOMAIN, SERVFAIL, null MX", "[dns][ldns-testns]") {
    TestNameServer ns(zone);
    Resolver r({loopback(ns.port())}, 2, 1);
    MxAnswer a = r.mx("mx.test");
    REQUIRE(a.status == DnsStatus::ok);
    CHECK(a.records == std::vector<MxRecord>{{20, "backup.mx.test"}, {10, "primary.mx.test"}});
    CHECK(r.mx("MX.Test").status == DnsStatus::ok);
    CHECK(r.mx("nomx.test").status == DnsStatus::nodata);
    CHECK(r.mx("gone.test").status == DnsStatus::nxdomain);
    a = r.mx("broken.test");
    CHECK(a.status == DnsStatus::temporary);
    CHECK_THAT(a.error, Catch::Contains("SERVFAIL"));
    a = r.mx("null.test");
    REQUIRE(a.status == DnsStatus::ok);
    CHECK(a.records == std::vector<MxRecord>{{0, ""}});
    CHECK(r.mx("bad..name").status == DnsStatus::nxdomain);
}

TEST_CASE("Resolver: A and AAAA, IPv4 first; missing or failing address records", "[dns][ldns-testns]") {
    TestNameServer ns(zone);
    Resolver r({loopback(ns.port())}, 2, 1);
    AddressAnswer a = r.addresses("host.test");
    REQUIRE(a.status == DnsStatus::ok);
    REQUIRE(a.addresses.size() == 3);
    CHECK(a.addresses[0].str() == "127.0.0.2");
    CHECK(a.addresses[1].str() == "127.0.0.3");
    CHECK(a.addresses[2].str() == "::1");
    a = r.addresses("v6only.test");
    REQUIRE(a.status == DnsStatus::ok);
    CHECK(a.addresses.at(0).str() == "2001:db8::25");
    CHECK(r.addresses("noaddr.test").status == DnsStatus::nodata);
    CHECK(r.addresses("nohost.test").status == DnsStatus::nxdomain);
    CHECK(r.addresses("flaky.test").status == DnsStatus::temporary);
}

TEST_CASE("Resolver: an unanswered query times out as a temporary failure", "[dns][ldns-testns]") {
    TestNameServer ns(zone);
    Resolver r({loopback(ns.port())}, 1, 1);
    auto t0 = std::chrono::steady_clock::now();
    MxAnswer a = r.mx("silent.test");   // no entry: ldns-testns does not answer
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(a.status == DnsStatus::temporary);
    CHECK(secs < 5);
}

TEST_CASE("Resolver: the next server of control/dnsservers after a dead one", "[dns][ldns-testns]") {
    TestNameServer ns(zone);
    Resolver r({loopback(dead_port()), loopback(ns.port())}, 1, 1);
    MxAnswer a = r.mx("mx.test");
    CHECK(a.status == DnsStatus::ok);
    CHECK(a.records.size() == 2);
    Resolver only_dead({loopback(dead_port())}, 1, 1);
    CHECK(only_dead.mx("mx.test").status == DnsStatus::temporary);
}
