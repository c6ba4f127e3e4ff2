// remote-deliver: sends one message to the recipients at one domain by SMTP
// and prints one result line per recipient. See remote-deliver(8).
//   remote-deliver [-i QUEUE-ID] DOMAIN SENDER RCPT...
// The message is on descriptor 0 (a queue file positioned at the message).
#include <signal.h>
#include <unistd.h>

#include <random>

#include "address.hpp"
#include "delivery.hpp"
#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "message_file.hpp"
#include "smtp_socket.hpp"

using namespace yubin;

namespace {

struct Settings {
    RoutingConfig routing;
    std::vector<DnsServer> dns_servers;
    std::string helo;
    int timeout_connect = 60;
    int timeout_remote = 1200;
    int timeout_dns = 5;
};

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0 || !buf[0]) return "localhost";
    return buf;
}

Settings load(const Instance& inst) {
    Settings s;
    std::string me = inst.control_string("me", hostname());
    s.routing.self.insert(normalize_domain(me));
    for (const auto& l : inst.control_lines("locals")) s.routing.self.insert(normalize_domain(l));
    s.routing.routes = parse_smtproutes(inst.control_lines("smtproutes"));
    for (const auto& l : inst.control_lines("dnsservers")) {
        auto server = parse_dns_server(l);
        if (!server) throw std::runtime_error("control/dnsservers: not an address[:port]: " + l);
        s.dns_servers.push_back(*server);
    }
    s.helo = inst.control_string("helohost", me);
    s.timeout_connect = static_cast<int>(inst.control_long("timeoutconnect", 60, 1, 86400));
    s.timeout_remote = static_cast<int>(inst.control_long("timeoutremote", 1200, 1, 86400));
    s.timeout_dns = static_cast<int>(inst.control_long("timeoutdns", 5, 1, 255));
    return s;
}

// The resolver is made at the first lookup: a route to an address needs none.
class LazyResolver : public DnsLookup {
public:
    LazyResolver(std::vector<DnsServer> servers, int timeout) : servers_(std::move(servers)), timeout_(timeout) {}
    MxAnswer mx(const std::string& domain) override { return get().mx(domain); }
    AddressAnswer addresses(const std::string& host) override { return get().addresses(host); }

private:
    Resolver& get() {
        if (!r_) r_.emplace(servers_, timeout_, 2);
        return *r_;
    }
    std::vector<DnsServer> servers_;
    int timeout_;
    std::optional<Resolver> r_;
};

[[noreturn]] void usage() {
    const char text[] = "usage: remote-deliver [-i QUEUE-ID] DOMAIN SENDER RCPT...\n";
    ssize_t n = ::write(2, text, sizeof text - 1);
    (void)n;
    std::_Exit(deliver_exit::permanent);
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    Log log("remote-deliver");
    int i = 1;
    DeliveryRequest req;
    if (i + 1 < argc && std::string_view(argv[i]) == "-i") {
        req.queue_id = argv[i + 1];
        i += 2;
    }
    if (argc - i < 3) usage();
    const std::string domain = normalize_domain(argv[i]);
    req.sender = argv[i + 1];
    for (int k = i + 2; k < argc; ++k) req.rcpts.emplace_back(argv[k]);

    std::vector<RemoteResult> results;
    try {
        Instance inst = Instance::of_this_program();
        Settings s = load(inst);
        FileMessage msg(0);
        LazyResolver dns(s.dns_servers, s.timeout_dns);
        std::mt19937 rng(std::random_device{}());
        RoutePlan plan = plan_route(domain, s.routing, dns, rng);
        req.client.helo = s.helo;
        Connector connect = [&s](const Hop& hop, const IpAddress& ip,
                                 std::string& error) -> std::unique_ptr<SmtpTransport> {
            Fd fd = connect_tcp(ip, hop.port, s.timeout_connect, error);
            if (!fd) return nullptr;
            return std::make_unique<SocketTransport>(std::move(fd), s.timeout_remote);
        };
        results = deliver_remote(plan, dns, connect, req, msg, log);
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"id", req.queue_id}, {"error", e.what()}});
        results.assign(req.rcpts.size(), RemoteResult::temporary("4.3.0", e.what()));
    }
    std::string out;
    for (const auto& r : results) out += format_result_line(r);
    try {
        write_all(1, out);
    } catch (const SysError&) {
        return deliver_exit::temporary;
    }
    return deliver_exit::ok;
}
