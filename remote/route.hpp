// Where a domain's mail goes: control/smtproutes first, then the domain's MX
// records (RFC 5321 section 5.1, null MX of RFC 7505), as an ordered list of
// hosts to try. The DNS is reached through DnsLookup, so this is testable
// without a name server.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dns.hpp"

namespace yubin {

// A line of control/smtproutes: DOMAIN:RELAY[:PORT].
struct SmtpRoute {
    std::string domain;   // normalized; "" for every domain (a smarthost); ".x" for the subdomains of x
    std::string relay;    // host name, IPv4 address or [IPv6 address]; "" = the domain's MX as usual
    uint16_t port = 25;
};

// Parses the lines of control/smtproutes (comments already removed);
// throws std::runtime_error naming a malformed line.
std::vector<SmtpRoute> parse_smtproutes(const std::vector<std::string>& lines);
// The route for a normalized domain: an exact line first, then the longest
// ".suffix" line, then the "" line; nullptr when none applies.
const SmtpRoute* match_smtproute(const std::vector<SmtpRoute>& routes, std::string_view domain);

// MX records in the order to try them: lowest preference first, records of
// equal preference shuffled with rng.
std::vector<MxRecord> order_mx(std::vector<MxRecord> records, std::mt19937& rng);

// One host to try.
struct Hop {
    std::string host;                  // the name reported as Remote-MTA, e.g. "mx1.example.org"
    std::optional<IpAddress> address;  // an address literal: connect to it without a lookup
    uint16_t port = 25;
};

// Why there is no host to try.
struct RouteFailure {
    bool permanent = false;
    std::string status;                // enhanced status code
    std::string text;
};

struct RoutePlan {
    std::vector<Hop> hops;                 // in the order to try them
    std::optional<RouteFailure> failure;   // set when hops is empty
};

struct RoutingConfig {
    std::vector<SmtpRoute> routes;         // control/smtproutes
    std::set<std::string> self;            // control/me and control/locals, normalized
};

// The hosts for mail to domain (normalized, or an address literal such as
// "[192.0.2.1]"). An MX that names this host (a name in cfg.self) removes it
// and every MX of equal or lower preference (higher number); when nothing is
// left, that is a configuration error (temporary, 4.3.5), never a loop.
RoutePlan plan_route(const std::string& domain, const RoutingConfig& cfg, DnsLookup& dns, std::mt19937& rng);

// "[192.0.2.1]", "[IPv6:2001:db8::1]", and for relays also "192.0.2.1": the address.
std::optional<IpAddress> address_literal(std::string_view text, bool bare_allowed);

}  // namespace yubin
