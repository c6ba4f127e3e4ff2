// One message to the recipients at one destination: the hosts of a
// RoutePlan in order, each of their addresses, an SMTP session with each
// server reached, until every recipient has an answer. Recipients without
// one after a connect failure, a greeting or HELO refused, a 421 or a lost
// connection go on to the next address; what a server answered is final.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns.hpp"
#include "log.hpp"
#include "remote_result.hpp"
#include "route.hpp"
#include "smtp_client.hpp"

namespace yubin {

// A connection to ip on hop.port, or nullptr with the reason in error.
using Connector = std::function<std::unique_ptr<SmtpTransport>(const Hop& hop, const IpAddress& ip, std::string& error)>;

struct DeliveryRequest {
    std::string sender;
    std::vector<std::string> rcpts;
    ClientConfig client;
    size_t max_connections = 20;   // addresses tried at most, over all hosts
    std::string queue_id;          // for the log only
};

// One result per recipient, in order. When no host gave an answer, the
// recipients get the last failure: permanent only when every host failed
// permanently (no address: NXDOMAIN or no A/AAAA record), else temporary.
std::vector<RemoteResult> deliver_remote(const RoutePlan& plan, DnsLookup& dns, const Connector& connect,
                                         const DeliveryRequest& req, MessageData& msg, const Log& log);

}  // namespace yubin
