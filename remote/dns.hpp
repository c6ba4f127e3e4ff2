// DNS for remote delivery, on ldns: MX and address (A, AAAA) lookups whose
// answers say whether a failure is permanent (NXDOMAIN, no such record) or
// temporary (SERVFAIL, timeout, no answer at all). The interface DnsLookup
// lets routing (remote/route.hpp) be tested without a name server.
#pragma once
// ldns/common.h defines bool, true and false as macros unless stdbool.h came first.
#include <stdbool.h>
// keep the order: stdbool.h before ldns.h
#include <ldns/ldns.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

struct LdnsResolverDeleter { void operator()(ldns_resolver* r) const { ldns_resolver_deep_free(r); } };
struct LdnsPktDeleter { void operator()(ldns_pkt* p) const { ldns_pkt_free(p); } };
struct LdnsRdfDeleter { void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); } };
struct LdnsRrListDeleter { void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); } };
using LdnsResolverPtr = std::unique_ptr<ldns_resolver, LdnsResolverDeleter>;
using LdnsPktPtr = std::unique_ptr<ldns_pkt, LdnsPktDeleter>;
using LdnsRdfPtr = std::unique_ptr<ldns_rdf, LdnsRdfDeleter>;
using LdnsRrListPtr = std::unique_ptr<ldns_rr_list, LdnsRrListDeleter>;

// An IPv4 or IPv6 address.
struct IpAddress {
    int family = AF_INET;                 // AF_INET or AF_INET6
    std::array<unsigned char, 16> bytes{};  // the first 4 for IPv4

    // A dotted quad or an IPv6 address in text form; nullopt otherwise.
    static std::optional<IpAddress> parse(std::string_view text);
    std::string str() const;
    bool operator==(const IpAddress&) const = default;
};

// A line of control/dnsservers: "ip", "ip:port", "[ipv6]:port" or a bare IPv6 address.
struct DnsServer {
    IpAddress ip;
    uint16_t port = 53;
};
std::optional<DnsServer> parse_dns_server(std::string_view line);

enum class DnsStatus {
    ok,          // records found
    nodata,      // the name exists but has no record of that type
    nxdomain,    // the name does not exist
    temporary,   // SERVFAIL, REFUSED, a timeout, no server answered
};

struct MxRecord {
    unsigned preference = 0;
    std::string host;      // lower case, no final dot; "" for the root (a null MX)
    bool operator==(const MxRecord&) const = default;
};

struct MxAnswer {
    DnsStatus status = DnsStatus::temporary;
    std::vector<MxRecord> records;
    std::string error;     // why, for a status other than ok
};

struct AddressAnswer {
    DnsStatus status = DnsStatus::temporary;
    std::vector<IpAddress> addresses;   // IPv4 first, then IPv6, each in answer order
    std::string error;
};

class DnsLookup {
public:
    virtual ~DnsLookup() = default;
    virtual MxAnswer mx(const std::string& domain) = 0;
    // A and AAAA; ok when either gave an address.
    virtual AddressAnswer addresses(const std::string& host) = 0;
};

// A name valid to look up: labels of letters, digits, '-', '_' and octets
// >= 0x80, at most 63 octets each and 253 in all, no empty label.
bool valid_dns_name(std::string_view name);

// ldns resolvers: one per server of control/dnsservers, tried in order
// (another server is asked after a timeout, SERVFAIL or REFUSED), or the
// servers of /etc/resolv.conf when the list is empty. Every query is for an
// absolute name (no search list), with recursion desired.
class Resolver : public DnsLookup {
public:
    // timeout: seconds to wait for one answer; tries: sends per server.
    // Throws std::runtime_error if /etc/resolv.conf cannot be used.
    Resolver(const std::vector<DnsServer>& servers, int timeout, int tries);
    MxAnswer mx(const std::string& domain) override;
    AddressAnswer addresses(const std::string& host) override;

private:
    struct Reply {
        DnsStatus status = DnsStatus::temporary;
        LdnsPktPtr pkt;
        std::string error;
    };
    Reply query(const std::string& name, ldns_rr_type type);

    std::vector<LdnsResolverPtr> resolvers_;
};

}  // namespace yubin
