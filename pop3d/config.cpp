#include "config.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "sasl.hpp"

namespace yubin::pop3d {

namespace {

// TCPREMOTEIP (tcpserver, yubin-listen), else the socket on fd 0 (inetd),
// else "local" (a pipe).
std::string remote_address() {
    if (const char* ip = std::getenv("TCPREMOTEIP"); ip && *ip) return ip;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST];
    if (::getpeername(0, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
        ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0)
        return host;
    return "local";
}

}  // namespace

Config load_config(const Instance& inst) {
    Config c;
    c.me = inst.control_string("me", "localhost");
    c.timeout = inst.control_long("timeoutpop3d", 600, 1, 86400);
    c.fail_delay_ms = inst.control_long("pop3faildelay", 2000, 0, 60000);
    c.remote = remote_address();
    // Passwords in clear text only where they cannot be overheard, unless
    // the administrator says otherwise (Dovecot's disable_plaintext_auth).
    try {
        c.plaintext_ok = plaintext_allowed(lowercase(inst.control_string("pop3plaintext", "loopback")), c.remote);
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(std::string("control/pop3plaintext: ") + e.what());
    }
    return c;
}

void say(const std::string& reply) {
    ssize_t n = ::write(1, reply.data(), reply.size());
    (void)n;
}

}  // namespace yubin::pop3d
