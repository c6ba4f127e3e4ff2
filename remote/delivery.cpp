#include "delivery.hpp"

namespace yubin {

namespace {

RemoteResult from_session(const RecipientResult& r, const Hop& hop, const IpAddress& ip) {
    RemoteResult out;
    out.code = r.kind == DeliveryResult::Kind::ok ? 'K' : r.kind == DeliveryResult::Kind::permanent ? 'D' : 'Z';
    out.status = r.status;
    out.remote_mta = hop.host;
    out.diag_type = r.smtp ? "smtp" : "x-unix";
    out.diagnostic = r.smtp ? r.diagnostic : hop.host + " [" + ip.str() + "]: " + r.diagnostic;
    return out;
}

}  // namespace

std::vector<RemoteResult> deliver_remote(const RoutePlan& plan, DnsLookup& dns, const Connector& connect,
                                         const DeliveryRequest& req, MessageData& msg, const Log& log) {
    const size_t n = req.rcpts.size();
    std::vector<std::optional<RemoteResult>> res(n);
    RemoteResult last = RemoteResult::temporary("4.4.4", "no host to try");
    bool only_permanent = true;
    if (plan.failure) {
        last = RemoteResult::temporary(plan.failure->status, plan.failure->text);
        only_permanent = plan.failure->permanent;
    }
    size_t connections = 0, open = n;
    bool stop = false;
    for (const Hop& hop : plan.hops) {
        if (stop || open == 0) break;
        std::vector<IpAddress> addrs;
        if (hop.address) {
            addrs.push_back(*hop.address);
        } else {
            AddressAnswer a;
            try {
                a = dns.addresses(hop.host);
            } catch (const std::exception& e) {
                a.status = DnsStatus::temporary;
                a.error = e.what();
            }
            if (a.status != DnsStatus::ok) {
                const bool temp = a.status == DnsStatus::temporary;
                last = RemoteResult::temporary(temp ? "4.4.3" : "5.4.4",
                                               temp ? "DNS lookup failed: " + a.error : a.error);
                only_permanent = only_permanent && !temp;
                log({{"event", "dns-failed"}, {"id", req.queue_id}, {"host", hop.host}, {"error", a.error}});
                continue;
            }
            addrs = std::move(a.addresses);
        }
        for (const IpAddress& ip : addrs) {
            if (open == 0 || stop) break;
            if (connections++ >= req.max_connections) {
                stop = true;
                break;
            }
            only_permanent = false;
            std::string error;
            std::unique_ptr<SmtpTransport> t = connect(hop, ip, error);
            const std::string where = hop.host + " [" + ip.str() + "]:" + std::to_string(hop.port);
            if (!t) {
                last = RemoteResult::temporary("4.4.1", "cannot connect to " + where + ": " + error);
                log({{"event", "connect-failed"}, {"id", req.queue_id}, {"host", where}, {"error", error}});
                continue;
            }
            std::vector<size_t> index;
            std::vector<std::string> sub;
            for (size_t i = 0; i < n; ++i) {
                if (res[i]) continue;
                index.push_back(i);
                sub.push_back(req.rcpts[i]);
            }
            SessionResult s;
            try {
                s = run_smtp_session(*t, req.client, req.sender, sub, msg);
            } catch (const std::exception& e) {
                // A local problem (the queue file cannot be read): no other host will do better.
                last = RemoteResult::temporary("4.3.0", std::string("local error: ") + e.what());
                log({{"event", "error"}, {"id", req.queue_id}, {"host", where}, {"error", e.what()}});
                stop = true;
                break;
            }
            for (size_t j = 0; j < index.size(); ++j) {
                if (!s.rcpts[j]) continue;
                res[index[j]] = from_session(*s.rcpts[j], hop, ip);
                --open;
            }
            if (s.failure) {
                last = from_session(*s.failure, hop, ip);
                log({{"event", "session-failed"}, {"id", req.queue_id}, {"host", where},
                     {"error", last.diagnostic}});
            }
        }
    }
    std::vector<RemoteResult> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        if (res[i]) {
            out.push_back(std::move(*res[i]));
            continue;
        }
        RemoteResult r = last;
        r.code = only_permanent && (plan.failure || !plan.hops.empty()) ? 'D' : 'Z';
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace yubin
