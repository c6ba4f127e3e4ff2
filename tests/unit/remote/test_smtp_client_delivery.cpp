// remote/delivery: hosts in order, the next one after a connect failure, a
// refused greeting or a lost connection; what a server answered is final.
#include <catch2/catch.hpp>

#include <map>
#include <memory>

#include "delivery.hpp"
#include "test_smtp_client_session.hpp"

using namespace yubin;
using yubin::test::ScriptedServer;
using yubin::test::StringMessage;

namespace {

class TableDns : public DnsLookup {
public:
    std::map<std::string, AddressAnswer> addrs;
    MxAnswer mx(const std::string&) override { return {}; }
    AddressAnswer addresses(const std::string& host) override {
        auto it = addrs.find(host);
        return it == addrs.end() ? AddressAnswer{DnsStatus::nxdomain, {}, "no such host " + host} : it->second;
    }
};

AddressAnswer at(const char* ip) { return AddressAnswer{DnsStatus::ok, {*IpAddress::parse(ip)}, ""}; }

// Scripts by server address; an address without a script refuses the connection.
struct Servers {
    std::map<std::string, std::deque<std::string>> scripts;
    std::vector<std::string> tried;
    std::map<std::string, std::string> sent;
    std::vector<std::unique_ptr<ScriptedServer>> live;

    Connector connector() {
        return [this](const Hop& hop, const IpAddress& ip, std::string& error) -> std::unique_ptr<SmtpTransport> {
            std::string key = ip.str() + ":" + std::to_string(hop.port);
            tried.push_back(hop.host + "=" + key);
            auto it = scripts.find(key);
            if (it == scripts.end()) {
                error = "Connection refused";
                return nullptr;
            }
            struct Recording : SmtpTransport {
                ScriptedServer& s;
                std::string& out;
                Recording(ScriptedServer& server, std::string& o) : s(server), out(o) {}
                void send(std::string_view d) override { out += d; }
                SmtpReply read_reply() override { return s.read_reply(); }
                void set_timeout(int t) override { s.set_timeout(t); }
            };
            live.push_back(std::make_unique<ScriptedServer>(it->second));
            return std::make_unique<Recording>(*live.back(), sent[key]);
        };
    }
};

const std::string g = "220 hi\r\n", e = "250-mx\r\n250 PIPELINING\r\n", ok = "250 ok\r\n";

std::vector<RemoteResult> deliver(const RoutePlan& plan, TableDns& dns, Servers& servers,
                                  std::vector<std::string> rcpts, size_t max_connections = 20) {
    StringMessage msg("Subject: x\n\nbody\n");
    DeliveryRequest req;
    req.sender = "s@here.example";
    req.rcpts = std::move(rcpts);
    req.client.helo = "here.example";
    req.max_connections = max_connections;
    Log quiet("test", -1);
    return deliver_remote(plan, dns, servers.connector(), req, msg, quiet);
}

RoutePlan hops(std::vector<std::string> names) {
    RoutePlan p;
    for (auto& n : names) p.hops.push_back(Hop{n, std::nullopt, 25});
    return p;
}

}  // namespace

TEST_CASE("delivery: the next MX after a refused connection and a 4xx greeting", "[smtp-client]") {
    TableDns dns;
    dns.addrs = {{"mx1", at("127.0.0.2")}, {"mx2", at("127.0.0.3")}, {"mx3", at("127.0.0.4")}};
    Servers s;
    s.scripts["127.0.0.3:25"] = {"421 4.3.2 busy\r\n", "221 bye\r\n"};
    s.scripts["127.0.0.4:25"] = {g, e, ok, ok, "354 go\r\n", "250 2.0.0 taken\r\n", "221 bye\r\n"};
    auto r = deliver(hops({"mx1", "mx2", "mx3"}), dns, s, {"a@far.example"});
    CHECK(s.tried == std::vector<std::string>{"mx1=127.0.0.2:25", "mx2=127.0.0.3:25", "mx3=127.0.0.4:25"});
    REQUIRE(r.size() == 1);
    CHECK(r[0].code == 'K');
    CHECK(r[0].remote_mta == "mx3");
    CHECK(r[0].diag_type == "smtp");
    CHECK(r[0].diagnostic == "250 2.0.0 taken");
}

TEST_CASE("delivery: recipients without an answer go on, answered ones stay", "[smtp-client]") {
    TableDns dns;
    dns.addrs = {{"mx1", at("127.0.0.2")}, {"mx2", at("127.0.0.3")}};
    Servers s;
    // mx1 refuses b, then the connection is lost before DATA is answered
    s.scripts["127.0.0.2:25"] = {g, e, ok, ok, "550 5.1.1 no b\r\n", "LOST"};
    s.scripts["127.0.0.3:25"] = {g, e, ok, ok, "354 go\r\n", "250 2.0.0 mx2 took it\r\n", "221 bye\r\n"};
    auto r = deliver(hops({"mx1", "mx2"}), dns, s, {"a@far.example", "b@far.example"});
    CHECK(r[0].code == 'K');
    CHECK(r[0].remote_mta == "mx2");
    CHECK(r[1].code == 'D');
    CHECK(r[1].remote_mta == "mx1");
    CHECK(s.sent["127.0.0.3:25"].find("RCPT TO:<b@far.example>") == std::string::npos);
}

TEST_CASE("delivery: when every host fails, the last failure, temporary", "[smtp-client]") {
    TableDns dns;
    dns.addrs = {{"mx1", at("127.0.0.2")}, {"mx2", at("127.0.0.3")}};
    Servers s;
    s.scripts["127.0.0.3:25"] = {g, e, "LOST"};
    auto r = deliver(hops({"mx1", "mx2"}), dns, s, {"a@far.example"});
    CHECK(r[0].code == 'Z');
    CHECK(r[0].status == "4.4.2");
    CHECK(r[0].diag_type == "x-unix");
    CHECK_THAT(r[0].diagnostic, Catch::StartsWith("mx2 [127.0.0.3]: connection lost"));

    Servers none;
    r = deliver(hops({"mx1"}), dns, none, {"a@far.example", "b@far.example"});
    CHECK(r[0].code == 'Z');
    CHECK(r[1].status == "4.4.1");
    CHECK_THAT(r[1].diagnostic, Catch::Contains("cannot connect to mx1 [127.0.0.2]:25: Connection refused"));
}

TEST_CASE("delivery: hosts without addresses; permanent only when all are", "[smtp-client]") {
    TableDns dns;
    dns.addrs["flaky"] = AddressAnswer{DnsStatus::temporary, {}, "SERVFAIL"};
    Servers s;
    auto r = deliver(hops({"nohost1", "nohost2"}), dns, s, {"a@far.example"});
    CHECK(r[0].code == 'D');
    CHECK(r[0].status == "5.4.4");
    CHECK(s.tried.empty());
    r = deliver(hops({"nohost1", "flaky"}), dns, s, {"a@far.example"});
    CHECK(r[0].code == 'Z');
    r = deliver(hops({"flaky", "nohost1"}), dns, s, {"a@far.example"});
    CHECK(r[0].code == 'Z');
}

TEST_CASE("delivery: a routing failure applies to every recipient", "[smtp-client]") {
    TableDns dns;
    Servers s;
    RoutePlan p;
    p.failure = RouteFailure{true, "5.1.10", "the domain accepts no mail (null MX): n.example"};
    auto r = deliver(p, dns, s, {"a@n.example", "b@n.example"});
    REQUIRE(r.size() == 2);
    CHECK(r[1].code == 'D');
    CHECK(r[1].status == "5.1.10");
    CHECK(r[1].remote_mta.empty());
    p.failure = RouteFailure{false, "4.4.3", "DNS lookup failed"};
    CHECK(deliver(p, dns, s, {"a@n.example"})[0].code == 'Z');
}

TEST_CASE("delivery: at most max_connections addresses are tried", "[smtp-client]") {
    TableDns dns;
    dns.addrs["many"] = AddressAnswer{DnsStatus::ok, {}, ""};
    for (int i = 2; i < 12; ++i) dns.addrs["many"].addresses.push_back(*IpAddress::parse("127.0.0." + std::to_string(i)));
    Servers s;
    auto r = deliver(hops({"many"}), dns, s, {"a@far.example"}, 3);
    CHECK(s.tried.size() == 3);
    CHECK(r[0].code == 'Z');
    // an address literal hop connects without a lookup, on its port
    RoutePlan lit;
    lit.hops.push_back(Hop{"[127.0.0.9]", IpAddress::parse("127.0.0.9"), 2525});
    Servers s2;
    s2.scripts["127.0.0.9:2525"] = {g, e, ok, ok, "354 go\r\n", ok, "221 bye\r\n"};
    CHECK(deliver(lit, dns, s2, {"a@far.example"})[0].code == 'K');
}
