// The SMTP server side of one connection (RFC 5321 with PIPELINING, SIZE,
// 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING) as a state machine:
// bytes in, replies out. No sockets here, so every path is testable.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "queuefile.hpp"
#include "sender_logins.hpp"

namespace yubin {

struct SmtpConfig {
    std::string me;                          // greeting and Received: host name
    std::vector<std::string> rcpthosts;      // "example.com", ".example.com" for subdomains
    bool relay_allowed = false;              // RELAYCLIENT is set
    std::string relay_suffix;                // RELAYCLIENT's value, appended to recipients
    size_t databytes = 0;                    // largest message; 0 = no limit
    size_t max_rcpts = 100;
    unsigned maxhops = 100;
    unsigned max_errors = 20;
    std::string remote_ip, remote_host;      // empty when local (sendmail -bs)
    std::string local_uid;                   // for a local session's Received: line
    bool tls_offered = false;                // a certificate is configured: STARTTLS is advertised
    bool auth_offered = false;               // passwords can be checked: AUTH PLAIN LOGIN (RFC 4954)
    bool auth_plaintext_ok = false;          // AUTH without TLS (control/smtpplaintext)
    bool submission = false;                 // RFC 6409: MAIL needs AUTH; Date: and Message-ID: added
    unsigned auth_fail_delay_ms = 1000;      // control/smtpfaildelay: the step of the growing delay
    unsigned max_auth_failures = 3;          // then 421
    std::optional<SenderLogins> sender_logins;   // control/senderlogins: who may use which sender
};

// Checks a user name and password (yubin-checkpassword in smtpd, a fake in tests).
struct AuthCheck {
    enum class Result { ok, refused, temporary };
    Result result = Result::temporary;
    std::string user;   // ok: the canonical login name
};

class Authenticator {
public:
    virtual ~Authenticator() = default;
    virtual AuthCheck check(std::string_view mechanism, std::string_view user, std::string_view password) = 0;
};

// Where an accepted message goes (queue-inject in smtpd; a fake in tests).
class MessageSink {
public:
    virtual ~MessageSink() = default;
    // The envelope is complete when the message begins (DATA, first BDAT).
    // inject_exit::ok, or why nothing can be queued (temporary or permanent).
    virtual int begin(const Envelope& env, std::string& queue_id) = 0;
    virtual void write(std::string_view data) = 0;
    virtual int commit() = 0;                         // inject_exit code
    virtual void abort() = 0;
};

class SmtpSession {
public:
    static constexpr size_t max_command_line = 2048;  // RFC 5321 says 512; ESMTP parameters need more
    static constexpr size_t max_text_line = 1000;     // RFC 5321 4.5.3.1.6, CRLF included

    SmtpSession(SmtpConfig cfg, MessageSink& sink, Authenticator* auth = nullptr);
    std::string greeting() const;
    // Everything the client sent; returns the replies to send (CRLF lines).
    std::string feed(std::string_view bytes);
    std::string timeout_reply();                      // 421 and close
    bool closed() const { return mode_ == Mode::closed; }
    // STARTTLS (RFC 3207) was answered with 220: the caller sends the
    // replies, then does the TLS handshake and calls tls_started(), or ends
    // the session when the handshake fails. Bytes the client sent behind
    // STARTTLS end the session instead (CVE-2011-0411), so nothing read in
    // clear text is ever taken as a command sent under TLS.
    bool wants_tls() const { return start_tls_; }
    // TLS is on (after STARTTLS, or from the first byte): the session starts
    // afresh (RFC 3207 section 4.2: the client must EHLO again). comment is
    // the Received: line's "(using TLSv1.3 with cipher ...)" text.
    void tls_started(std::string comment);
    bool tls_active() const { return !tls_comment_.empty(); }
    // The login name after a successful AUTH, else "".
    const std::string& auth_user() const { return auth_user_; }
    // How long the replies just returned should wait before they are sent
    // (a failed AUTH after the first); taking it resets it.
    unsigned take_delay_ms() { return std::exchange(delay_ms_, 0u); }

private:
    enum class Mode { command, auth, data, bdat, closed };
    enum class Hello { none, helo, ehlo };

    std::string command(std::string_view line);
    std::string cmd_helo(std::string_view arg, bool extended);
    std::string cmd_mail(std::string_view arg);
    std::string cmd_rcpt(std::string_view arg);
    std::string cmd_data(std::string_view arg);
    std::string cmd_bdat(std::string_view arg);
    std::string cmd_starttls(std::string_view arg);
    std::string cmd_auth(std::string_view arg);
    std::string auth_response(std::string_view line);   // a line of the AUTH exchange
    std::string auth_finish(std::string user, std::string password);
    std::string auth_abort(std::string reply);           // ends the exchange with this error
    bool offers_auth() const { return cfg_.auth_offered && auth_ && (tls_active() || cfg_.auth_plaintext_ok); }
    void add_submission_fields();                        // Date: and Message-ID: when missing
    std::string error(std::string reply);             // counts errors, closes past the limit
    std::string begin_message();                      // "" or the failure reply
    void message_line(std::string_view line);         // one line, without its line end
    std::string end_message();
    static std::string queue_failure(int code);       // the reply for an inject_exit code
    void reset_transaction();
    bool accepts_domain(std::string_view domain) const;
    std::string feed_bdat();

    SmtpConfig cfg_;
    MessageSink& sink_;
    Mode mode_ = Mode::command;
    Hello hello_ = Hello::none;
    std::string helo_name_;
    std::string in_;                 // unprocessed input
    bool discarding_ = false;        // inside an overlong line (command or DATA)
    unsigned errors_ = 0;
    bool start_tls_ = false;         // 220 to STARTTLS sent: the handshake comes next
    std::string tls_comment_;        // set once TLS is on
    Authenticator* auth_;
    std::string auth_user_;          // set once AUTH succeeded
    std::string auth_mech_;          // "PLAIN" or "LOGIN" while Mode::auth
    std::string login_user_;         // LOGIN: the user name, before the password
    unsigned auth_failures_ = 0;
    unsigned delay_ms_ = 0;

    // the transaction
    bool have_mail_ = false;
    bool smtputf8_ = false;
    bool bdat_used_ = false;
    Envelope env_;
    // the message being received
    bool in_sink_ = false;
    bool in_header_ = true;
    bool saw_date_ = false, saw_message_id_ = false;
    bool bad_line_end_ = false, too_long_ = false, too_big_ = false;
    unsigned hops_ = 0;
    size_t size_ = 0;
    size_t bdat_remaining_ = 0;
    bool bdat_last_ = false;
    std::string bdat_line_;          // partial line across BDAT chunks
    std::string queue_id_;
};

}  // namespace yubin
