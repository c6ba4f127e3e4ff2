// pop3d's settings (control files, read once per connection) and what it
// knows of the client.
#pragma once
#include <string>

#include "instance.hpp"

namespace yubin::pop3d {

// pop3d's exit statuses (pop3d(8)).
namespace exit_status {
inline constexpr int ok = 0;            // the session ended (QUIT, drop, timeout, [IN-USE] ...)
inline constexpr int temporary = 111;   // no instance, a bad control file, a mailbox that cannot be read
}  // namespace exit_status

struct Config {
    std::string me;             // control/me: the host in the APOP timestamp
    long timeout = 600;         // control/timeoutpop3d, seconds
    long fail_delay_ms = 2000;  // control/pop3faildelay, milliseconds
    std::string remote;         // the client's address, for the logs
    bool implicit_tls = false;  // -T: TLS from the first byte (port 995, RFC 8314)
    bool plaintext_ok = true;   // logins without TLS: control/pop3plaintext and the client's address
};

// Throws std::runtime_error for a malformed control file.
Config load_config(const Instance& inst);

// Writes a reply before any event loop runs (configuration errors).
void say(const std::string& reply);

}  // namespace yubin::pop3d
