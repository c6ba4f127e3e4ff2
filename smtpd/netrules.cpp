#include "netrules.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

#include "instance.hpp"

namespace yubin {

namespace {

bool parse_address(std::string_view s, NetRule& r) {
    std::string a(s);
    int prefix = -1;
    if (size_t slash = a.find('/'); slash != std::string::npos) {
        std::string p = a.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) return false;
        prefix = std::stoi(p);
        a.resize(slash);
    } else if (!a.empty() && a.back() == '.') {  // "192.168." -> 192.168.0.0/16
        int dots = 0;
        for (char c : a) dots += c == '.';
        if (dots > 3) return false;
        prefix = 8 * dots;
        while (dots++ < 4) a += dots < 4 ? "0." : "0";
    }
    if (::inet_pton(AF_INET, a.c_str(), r.addr) == 1) {
        r.family = AF_INET;
        r.prefix = prefix < 0 ? 32 : prefix;
        return r.prefix <= 32;
    }
    if (::inet_pton(AF_INET6, a.c_str(), r.addr) == 1) {
        r.family = AF_INET6;
        r.prefix = prefix < 0 ? 128 : prefix;
        return r.prefix <= 128;
    }
    return false;
}

bool prefix_equal(const unsigned char* a, const unsigned char* b, int bits) {
    int bytes = bits / 8, rest = bits % 8;
    if (std::memcmp(a, b, static_cast<size_t>(bytes)) != 0) return false;
    if (!rest) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

std::vector<NetRule> parse_net_rules(std::string_view text) {
    std::vector<NetRule> rules;
    size_t pos = 0;
    int lineno = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string line = trim(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++lineno;
        if (line.empty() || line[0] == '#') continue;
        auto bad = [&](const char* why) {
            return std::runtime_error("rules line " + std::to_string(lineno) + ": " + why + ": " + line);
        };
        // The address part ends at the last ':' before the instruction (IPv6 has colons).
        size_t colon = line.find(":allow");
        if (colon == std::string::npos) colon = line.find(":deny");
        if (colon == std::string::npos) throw bad("expected ADDRESS:allow or ADDRESS:deny");
        NetRule r;
        std::string addr = trim(line.substr(0, colon));
        if (!addr.empty() && !parse_address(addr, r)) throw bad("bad address");
        std::string rest = line.substr(colon + 1);
        size_t comma = rest.find(',');
        std::string verb = rest.substr(0, comma);
        if (verb != "allow" && verb != "deny") throw bad("expected allow or deny");
        r.allow = verb == "allow";
        while (comma != std::string::npos) {
            size_t next = comma + 1;
            size_t eq = rest.find('=', next);
            if (eq == std::string::npos) throw bad("expected VAR=\"value\"");
            std::string var = trim(rest.substr(next, eq - next));
            if (var.empty() || var.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                                   std::string::npos)
                throw bad("bad variable name");
            std::string value;
            size_t after;
            if (eq + 1 < rest.size() && rest[eq + 1] == '"') {
                size_t close = rest.find('"', eq + 2);
                if (close == std::string::npos) throw bad("unterminated quote");
                value = rest.substr(eq + 2, close - eq - 2);
                after = close + 1;
            } else {
                after = rest.find(',', eq + 1);
                value = rest.substr(eq + 1, after == std::string::npos ? std::string::npos : after - eq - 1);
                if (after == std::string::npos) after = rest.size();
            }
            r.env.emplace_back(var, value);
            if (after < rest.size() && rest[after] != ',') throw bad("expected ','");
            comma = after < rest.size() ? after : std::string::npos;
        }
        rules.push_back(std::move(r));
    }
    return rules;
}

const NetRule* match_net_rule(const std::vector<NetRule>& rules, const std::string& ip) {
    unsigned char addr[16] = {};
    int family = 0;
    if (::inet_pton(AF_INET, ip.c_str(), addr) == 1) family = AF_INET;
    else if (::inet_pton(AF_INET6, ip.c_str(), addr) == 1) family = AF_INET6;
    const NetRule* best = nullptr;
    for (const auto& r : rules) {
        bool hit = r.family == 0 || (r.family == family && prefix_equal(r.addr, addr, r.prefix));
        if (hit && (!best || (best->family == 0 && r.family != 0) || (r.family != 0 && r.prefix > best->prefix)))
            best = &r;
    }
    return best;
}

}  // namespace yubin
