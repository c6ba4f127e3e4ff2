// The SMTP client's TCP side: a connect with a time limit, and an
// SmtpTransport on a socket. remote-deliver talks to one server at a time,
// so this is sequential code on a non-blocking socket with poll(2) and a
// deadline for every step, not an event loop (see docs/ARCHITECTURE.md).
#pragma once
#include <cstdint>
#include <string>

#include "dns.hpp"
#include "io.hpp"
#include "smtp_client.hpp"

namespace yubin {

// A connected TCP socket (non-blocking, close-on-exec, TCP_NODELAY), or an
// invalid Fd with the reason in error.
Fd connect_tcp(const IpAddress& ip, uint16_t port, int timeout_seconds, std::string& error);

class SocketTransport : public SmtpTransport {
public:
    // timeout: seconds for a whole reply to arrive, and for each step of progress in sending.
    SocketTransport(Fd fd, int timeout_seconds) : fd_(std::move(fd)), timeout_(timeout_seconds) {}
    void send(std::string_view data) override;
    SmtpReply read_reply() override;
    void set_timeout(int seconds) override { timeout_ = seconds; }

private:
    void flush();
    void read_some();   // one read into the reply reader; throws TransportError at EOF

    Fd fd_;
    int timeout_;
    std::string out_;
    ReplyReader reader_;
};

}  // namespace yubin
