// The client side of one SMTP session (RFC 5321): greeting, EHLO (HELO when
// EHLO is refused), then transactions with PIPELINING (RFC 2920), SIZE
// (RFC 1870), 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531) when offered, and
// QUIT. It runs over an SmtpTransport, so tests drive it without sockets.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "smtp_reply.hpp"

namespace yubin {

// A lost connection, a timeout, or a malformed reply.
class TransportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class SmtpTransport {
public:
    virtual ~SmtpTransport() = default;
    // Queue bytes to send; may send some (throws TransportError).
    virtual void send(std::string_view data) = 0;
    // Send everything queued, then read one complete reply (throws TransportError).
    virtual SmtpReply read_reply() = 0;
    // How long read_reply waits from now on, in seconds.
    virtual void set_timeout(int seconds) = 0;
};

// The message as stored in the queue (LF line ends), read in pieces.
class MessageData {
public:
    virtual ~MessageData() = default;
    virtual size_t size() const = 0;       // octets with CRLF line ends (for SIZE=)
    virtual bool eight_bit() const = 0;    // any octet >= 0x80
    virtual void rewind() = 0;             // back to the first octet
    virtual std::string_view read() = 0;   // the next piece; empty at the end
};

// LF text to the SMTP wire: CRLF line ends (a CR before LF is kept as part
// of the line end), a stray CR sent as a space (never a line end at the
// server: no SMTP smuggling), leading dots doubled, and the final
// ".\r\n" (after a CRLF if the message does not end in a line end).
class DataEncoder {
public:
    std::string encode(std::string_view raw);
    std::string finish();
private:
    bool line_start_ = true;
    bool pending_cr_ = false;
};

struct RecipientResult {
    DeliveryResult::Kind kind = DeliveryResult::Kind::temporary;
    std::string status;        // enhanced status code
    std::string diagnostic;    // the server's reply when smtp, else our text
    bool smtp = false;
};

struct SessionResult {
    // One per recipient: nullopt when this server gave no final answer (the
    // session failed first), so the recipient may be tried at the next host.
    std::vector<std::optional<RecipientResult>> rcpts;
    // Why the session failed, when some recipient has no answer (temporary).
    std::optional<RecipientResult> failure;
};

struct ClientConfig {
    std::string helo;          // the name in EHLO/HELO
    int quit_timeout = 10;     // seconds to wait for the reply to QUIT
};

// Recipients whose RCPT got 452 (too many recipients) go in a further
// transaction in the same session, as long as each transaction delivers.
SessionResult run_smtp_session(SmtpTransport& t, const ClientConfig& cfg, const std::string& sender,
                               const std::vector<std::string>& rcpts, MessageData& msg);

// The sender as written in MAIL FROM: <> for the null sender and for the
// internal double-bounce sender #@[].
std::string mail_from_path(const std::string& sender);

}  // namespace yubin
