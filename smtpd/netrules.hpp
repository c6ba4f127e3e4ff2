// Access rules by client address for yubin-listen (the spirit of tcprules):
//   ADDRESS:allow[,VAR="value"...]   or   ADDRESS:deny
// ADDRESS is an IPv4 or IPv6 address, a CIDR range (10.0.0.0/8, ::1/128),
// an IPv4 prefix ending in a dot (192.168.), or empty for every client.
// The most specific matching rule wins; no rule means allow.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace yubin {

struct NetRule {
    int family = 0;                    // AF_INET, AF_INET6, or 0 for "any"
    unsigned char addr[16] = {};
    int prefix = 0;                    // bits
    bool allow = true;
    std::vector<std::pair<std::string, std::string>> env;
};

// Parses the rules text; throws std::runtime_error naming the bad line.
std::vector<NetRule> parse_net_rules(std::string_view text);
// The most specific rule matching the numeric address, or nullptr.
const NetRule* match_net_rule(const std::vector<NetRule>& rules, const std::string& ip);

}  // namespace yubin
