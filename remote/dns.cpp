#include "dns.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <tuple>
#include <stdexcept>

#include "instance.hpp"

namespace yubin {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    std::string s(text);
    IpAddress a;
    if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET;
        return a;
    }
    if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET6;
        return a;
    }
    return std::nullopt;
}

std::string IpAddress::str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, bytes.data(), buf, sizeof buf);
    return buf;
}

std::optional<DnsServer> parse_dns_server(std::string_view line) {
    DnsServer s;
    std::string_view host = line, port;
    if (!line.empty() && line.front() == '[') {
        size_t close = line.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = line.substr(1, close - 1);
        std::string_view rest = line.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos &&
                                              line.find(':', colon + 1) == std::string_view::npos) {
        host = line.substr(0, colon);
        port = line.substr(colon + 1);
        if (port.empty()) return std::nullopt;
    }
    auto ip = IpAddress::parse(host);
    if (!ip) return std::nullopt;
    s.ip = *ip;
    if (!port.empty()) {
        unsigned long v = 0;
        for (char c : port) {
            if (c < '0' || c > '9' || port.size() > 5) return std::nullopt;
            v = v * 10 + static_cast<unsigned long>(c - '0');
        }
        if (v == 0 || v > 65535) return std::nullopt;
        s.port = static_cast<uint16_t>(v);
    }
    return s;
}

bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    size_t label = 0;
    for (char ch : name) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c >= 0x80;
        if (!ok || ++label > 63) return false;
    }
    return label > 0;
}

namespace {

void configure(ldns_resolver* r, int timeout, int tries) {
    ldns_resolver_set_timeout(r, timeval{timeout, 0});
    ldns_resolver_set_retry(r, static_cast<uint8_t>(tries));
    ldns_resolver_set_retrans(r, static_cast<uint8_t>(timeout));
    ldns_resolver_set_random(r, false);
    ldns_resolver_set_defnames(r, false);
    ldns_resolver_set_dnsrch(r, false);
    ldns_resolver_set_recursive(r, true);
    ldns_resolver_set_fallback(r, true);   // TCP when a UDP answer is truncated
    ldns_resolver_set_dnssec(r, false);
}

std::string rdf_text(const ldns_rdf* rdf) {
    char* s = ldns_rdf2str(rdf);
    std::string out = s ? s : "";
    std::free(s);
    return out;
}

std::string host_of(const ldns_rdf* dname) {
    std::string h = lowercase(rdf_text(dname));
    if (!h.empty() && h.back() == '.') h.pop_back();
    return h;
}

}  // namespace

Resolver::Resolver(const std::vector<DnsServer>& servers, int timeout, int tries) {
    if (servers.empty()) {
        ldns_resolver* r = nullptr;
        ldns_status st = ldns_resolver_new_frm_file(&r, nullptr);
        if (st != LDNS_STATUS_OK || !r)
            throw std::runtime_error(std::string("cannot use /etc/resolv.conf: ") + ldns_get_errorstr_by_id(st));
        resolvers_.emplace_back(r);
        configure(r, timeout, tries);
        return;
    }
    for (const DnsServer& s : servers) {
        LdnsResolverPtr r(ldns_resolver_new());
        if (!r) throw std::runtime_error("out of memory");
        LdnsRdfPtr ns(ldns_rdf_new_frm_str(s.ip.family == AF_INET ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA,
                                           s.ip.str().c_str()));
        if (!ns || ldns_resolver_push_nameserver(r.get(), ns.get()) != LDNS_STATUS_OK)
            throw std::runtime_error("bad name server " + s.ip.str());
        ldns_resolver_set_port(r.get(), s.port);
        configure(r.get(), timeout, tries);
        resolvers_.push_back(std::move(r));
    }
}

Resolver::Reply Resolver::query(const std::string& name, ldns_rr_type type) {
    Reply out;
    if (!valid_dns_name(name)) {
        out.status = DnsStatus::nxdomain;
        out.error = "not a valid domain name: " + name;
        return out;
    }
    LdnsRdfPtr dname(ldns_dname_new_frm_str((name + ".").c_str()));
    if (!dname) {
        out.status = DnsStatus::nxdomain;
        out.error = "not a valid domain name: " + name;
        return out;
    }
    out.error = "no name server answered";
    for (auto& r : resolvers_) {
        ldns_pkt* p = nullptr;
        ldns_status st = ldns_resolver_query_status(&p, r.get(), dname.get(), type, LDNS_RR_CLASS_IN, LDNS_RD);
        LdnsPktPtr pkt(p);
        if (st != LDNS_STATUS_OK || !pkt) {
            out.error = std::string("no answer from a name server: ") + ldns_get_errorstr_by_id(st);
            continue;
        }
        switch (ldns_pkt_get_rcode(pkt.get())) {
        case LDNS_RCODE_NOERROR:
            out.status = DnsStatus::ok;
            out.pkt = std::move(pkt);
            out.error.clear();
            return out;
        case LDNS_RCODE_NXDOMAIN:
            out.status = DnsStatus::nxdomain;
            out.error = "no such domain: " + name;
            return out;
        case LDNS_RCODE_SERVFAIL:
            out.error = "name server failure (SERVFAIL) for " + name;
            break;
        case LDNS_RCODE_REFUSED:
            out.error = "name server refused the query for " + name;
            break;
        default:
            out.error = "name server error " + std::to_string(ldns_pkt_get_rcode(pkt.get())) + " for " + name;
            break;
        }
    }
    out.status = DnsStatus::temporary;
    return out;
}

MxAnswer Resolver::mx(const std::string& domain) {
    MxAnswer a;
    Reply r = query(domain, LDNS_RR_TYPE_MX);
    a.status = r.status;
    a.error = r.error;
    if (r.status != DnsStatus::ok) return a;
    LdnsRrListPtr list(ldns_pkt_rr_list_by_type(r.pkt.get(), LDNS_RR_TYPE_MX, LDNS_SECTION_ANSWER));
    for (size_t i = 0; list && i < ldns_rr_list_rr_count(list.get()); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(list.get(), i);
        if (ldns_rr_rd_count(rr) != 2) continue;
        a.records.push_back(MxRecord{ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)), host_of(ldns_rr_rdf(rr, 1))});
    }
    if (a.records.empty()) {
        a.status = DnsStatus::nodata;
        a.error = "no MX record for " + domain;
    }
    return a;
}

AddressAnswer Resolver::addresses(const std::string& host) {
    AddressAnswer a;
    DnsStatus statuses[2];
    std::string errors[2];
    int n = 0;
    for (auto [type, family, size] : {std::tuple{LDNS_RR_TYPE_A, AF_INET, size_t{4}},
                                      std::tuple{LDNS_RR_TYPE_AAAA, AF_INET6, size_t{16}}}) {
        Reply r = query(host, type);
        statuses[n] = r.status;
        errors[n] = r.error;
        ++n;
        if (r.status == DnsStatus::nxdomain) break;   // AAAA cannot exist either
        if (r.status != DnsStatus::ok) continue;
        LdnsRrListPtr list(ldns_pkt_rr_list_by_type(r.pkt.get(), type, LDNS_SECTION_ANSWER));
        for (size_t i = 0; list && i < ldns_rr_list_rr_count(list.get()); ++i) {
            const ldns_rdf* rdf = ldns_rr_rdf(ldns_rr_list_rr(list.get(), i), 0);
            if (!rdf || ldns_rdf_size(rdf) != size) continue;
            IpAddress ip;
            ip.family = family;
            std::memcpy(ip.bytes.data(), ldns_rdf_data(rdf), size);
            a.addresses.push_back(ip);
        }
    }
    if (!a.addresses.empty()) {
        a.status = DnsStatus::ok;
        return a;
    }
    a.status = DnsStatus::nodata;
    a.error = "no address (A or AAAA) for " + host;
    for (int i = 0; i < n; ++i) {
        if (statuses[i] == DnsStatus::temporary) {
            a.status = DnsStatus::temporary;
            a.error = errors[i];
            return a;
        }
    }
    if (statuses[0] == DnsStatus::nxdomain) {
        a.status = DnsStatus::nxdomain;
        a.error = errors[0];
    }
    return a;
}

}  // namespace yubin
