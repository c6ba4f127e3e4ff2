// queue-manager's settings (control files) and the local/remote decision.
#include <unistd.h>

#include "address.hpp"
#include "scheduler.hpp"
#include "users.hpp"

namespace yubin {

namespace {

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0) return "localhost";
    return buf;
}

}  // namespace

Config Config::load(const Instance& inst) {
    Config c;
    c.me = inst.control_string("me", hostname());
    for (const auto& d : inst.control_lines("locals")) c.locals.insert(normalize_domain(d));
    if (c.locals.empty()) c.locals.insert(normalize_domain(c.me));
    for (const auto& line : inst.control_lines("virtualdomains")) {
        size_t colon = line.find(':');
        if (colon == std::string::npos || colon == 0) continue;
        c.virtualdomains.emplace_back(normalize_domain(line.substr(0, colon)), line.substr(colon + 1));
    }
    c.backoff.min_backoff = inst.control_long("minbackoff", 60, 1, 86400);
    c.backoff.max_backoff = inst.control_long("maxbackoff", 3600, 1, 7 * 86400);
    c.backoff.lifetime = inst.control_long("queuelifetime", 604800, 1, 365L * 86400);
    c.concurrency_local = inst.control_long("concurrencylocal", 10, 1, 1000);
    c.concurrency_remote = inst.control_long("concurrencyremote", 20, 1, 1000);
    c.doublebounceto = inst.control_string("doublebounceto", "postmaster");
    c.bouncefrom = inst.control_string("bouncefrom", "MAILER-DAEMON");
    c.separator = extension_separator(inst);
    return c;
}

Route route_recipient(const Config& cfg, const std::string& recipient) {
    AddressParts parts = split_address(recipient);
    Route r;
    r.domain = normalize_domain(parts.domain.empty() ? cfg.me : parts.domain);
    std::string local = unquote_local_part(parts.local);
    if (cfg.locals.count(r.domain)) {
        r.local = true;
        r.local_part = local;
        return r;
    }
    // virtualdomains: an exact domain wins over the longest ".suffix" match.
    const std::pair<std::string, std::string>* best = nullptr;
    for (const auto& vd : cfg.virtualdomains) {
        if (vd.first == r.domain) { best = &vd; break; }
        if (vd.first.size() > 1 && vd.first[0] == '.' && r.domain.size() > vd.first.size() &&
            r.domain.compare(r.domain.size() - vd.first.size(), vd.first.size(), vd.first) == 0 &&
            (!best || best->first.size() < vd.first.size()))
            best = &vd;
    }
    if (best) {
        r.local = true;
        r.local_part = best->second.empty() ? local : best->second + cfg.separator + local;
    }
    return r;
}

}  // namespace yubin
