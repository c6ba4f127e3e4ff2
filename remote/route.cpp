#include "route.hpp"

#include <algorithm>
#include <stdexcept>

#include "address.hpp"
#include "instance.hpp"

namespace yubin {

std::optional<IpAddress> address_literal(std::string_view text, bool bare_allowed) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        std::string_view inner = text.substr(1, text.size() - 2);
        if (inner.size() > 5 && lowercase(inner.substr(0, 5)) == "ipv6:") {
            auto ip = IpAddress::parse(inner.substr(5));
            return ip && ip->family == AF_INET6 ? ip : std::nullopt;
        }
        auto ip = IpAddress::parse(inner);
        if (ip && ip->family == AF_INET) return ip;
        if (ip && bare_allowed) return ip;       // a relay may be written [::1]
        return std::nullopt;
    }
    if (!bare_allowed) return std::nullopt;
    auto ip = IpAddress::parse(text);
    return ip && ip->family == AF_INET ? ip : std::nullopt;
}

std::vector<SmtpRoute> parse_smtproutes(const std::vector<std::string>& lines) {
    std::vector<SmtpRoute> out;
    for (const std::string& line : lines) {
        auto bad = [&](const char* why) {
            return std::runtime_error("control/smtproutes: " + std::string(why) + ": " + line);
        };
        size_t colon = line.find(':');
        if (colon == std::string::npos) throw bad("no colon");
        SmtpRoute r;
        r.domain = normalize_domain(line.substr(0, colon));
        std::string rest = line.substr(colon + 1);
        std::string port;
        if (!rest.empty() && rest.front() == '[') {
            size_t close = rest.find(']');
            if (close == std::string::npos) throw bad("unclosed [");
            r.relay = rest.substr(0, close + 1);
            rest = rest.substr(close + 1);
            if (!rest.empty() && rest.front() != ':') throw bad("junk after ]");
            if (!rest.empty()) port = rest.substr(1);
            if (!address_literal(r.relay, true)) throw bad("bad address");
        } else {
            size_t c2 = rest.find(':');
            r.relay = rest.substr(0, c2);
            if (c2 != std::string::npos) port = rest.substr(c2 + 1);
            if (!r.relay.empty() && !address_literal(r.relay, true) && !valid_dns_name(r.relay))
                throw bad("bad relay host");
            r.relay = lowercase(r.relay);
        }
        if (!port.empty()) {
            if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad("bad port");
            unsigned long v = std::stoul(port);
            if (v == 0 || v > 65535) throw bad("bad port");
            r.port = static_cast<uint16_t>(v);
        }
        out.push_back(std::move(r));
    }
    return out;
}

const SmtpRoute* match_smtproute(const std::vector<SmtpRoute>& routes, std::string_view domain) {
    auto find = [&](std::string_view key) -> const SmtpRoute* {
        for (const auto& r : routes)
            if (r.domain == key) return &r;
        return nullptr;
    };
    if (const SmtpRoute* r = find(domain)) return r;
    for (size_t dot = domain.find('.'); dot != std::string_view::npos; dot = domain.find('.', dot + 1))
        if (const SmtpRoute* r = find(domain.substr(dot))) return r;
    return find("");
}

std::vector<MxRecord> order_mx(std::vector<MxRecord> records, std::mt19937& rng) {
    std::shuffle(records.begin(), records.end(), rng);
    std::stable_sort(records.begin(), records.end(),
                     [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
    return records;
}

namespace {

RoutePlan fail(bool permanent, const char* status, std::string text) {
    RoutePlan p;
    p.failure = RouteFailure{permanent, status, std::move(text)};
    return p;
}

}  // namespace

RoutePlan plan_route(const std::string& domain, const RoutingConfig& cfg, DnsLookup& dns, std::mt19937& rng) {
    RoutePlan plan;
    uint16_t port = 25;
    if (const SmtpRoute* r = match_smtproute(cfg.routes, domain)) {
        port = r->port;
        if (!r->relay.empty()) {
            plan.hops.push_back(Hop{r->relay, address_literal(r->relay, true), r->port});
            return plan;
        }
    }
    if (!domain.empty() && domain.front() == '[') {
        auto ip = address_literal(domain, false);
        if (!ip) return fail(true, "5.1.2", "bad address literal: " + domain);
        plan.hops.push_back(Hop{domain, ip, port});
        return plan;
    }
    if (!valid_dns_name(domain)) return fail(true, "5.1.2", "bad destination domain: " + domain);

    MxAnswer mx = dns.mx(domain);
    std::vector<MxRecord> records;
    switch (mx.status) {
    case DnsStatus::nxdomain:
        return fail(true, "5.1.2", "domain not found (NXDOMAIN): " + domain);
    case DnsStatus::temporary:
        return fail(false, "4.4.3", "DNS lookup failed: " + mx.error);
    case DnsStatus::nodata:
        records.push_back(MxRecord{0, domain});   // the implicit MX (RFC 5321 section 5.1)
        break;
    case DnsStatus::ok:
        for (auto& r : mx.records)
            if (!r.host.empty()) records.push_back(std::move(r));
        // RFC 7505: a null MX (".") alone means the domain accepts no mail.
        if (records.empty()) return fail(true, "5.1.10", "the domain accepts no mail (null MX): " + domain);
        records = order_mx(std::move(records), rng);
        break;
    }
    // An MX naming this host: only the better ones may be used (RFC 5321 5.1).
    for (size_t i = 0; i < records.size(); ++i) {
        if (!cfg.self.count(records[i].host)) continue;
        const unsigned ours = records[i].preference;
        const std::string self = records[i].host;
        std::erase_if(records, [&](const MxRecord& r) { return r.preference >= ours; });
        if (records.empty())
            return fail(false, "4.3.5",
                        "configuration error: the MX for " + domain + " points to this host (" + self +
                            ") but " + domain + " is not in control/locals or control/virtualdomains");
        break;
    }
    std::set<std::string> seen;
    for (const auto& r : records)
        if (seen.insert(r.host).second) plan.hops.push_back(Hop{r.host, std::nullopt, port});
    return plan;
}

}  // namespace yubin
