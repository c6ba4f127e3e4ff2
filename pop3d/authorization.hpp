// The AUTHORIZATION state of a POP3 session (RFC 1939 section 4, APOP from
// section 7, CAPA and response codes from RFC 2449 and RFC 3206) as a state
// machine: command lines in, steps out. The credentials are checked behind
// the CredentialChecker interface; this part never sees a mailbox.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace yubin::pop3 {

struct Account {
    std::string name;
    std::string home;
};

struct CheckResult {
    std::optional<Account> account;   // set when the credentials are right
    std::string reason;               // for the log when they are not
    bool temporary = false;           // they could not be checked now
};

class CredentialChecker {
public:
    virtual ~CredentialChecker() = default;
    virtual CheckResult check_password(std::string_view user, std::string_view password) = 0;
    // digest: what the client sent, MD5(timestamp + secret) in hex.
    virtual CheckResult check_apop(std::string_view user, std::string_view timestamp, std::string_view digest) = 0;
};

struct AuthStep {
    enum class Action {
        reply,   // send text, stay in AUTHORIZATION
        fail,    // credentials refused: send text after the failure delay
        login,   // credentials accepted: the mailbox session takes over
        close,   // send text and end the connection
        starttls,   // send text, then the TLS handshake (STLS), then tls_started()
    };
    Action action = Action::reply;
    std::string text;
    bool close = false;       // fail: end the connection after text
    Account account;          // login
    std::string method;       // fail, login: "user", "apop" or "plain"
    std::string user;         // fail, login: the name the client gave
    std::string reason;       // fail: why, for the log only
};

struct Command;

// TLS and the rules for logging in without it.
struct AuthOptions {
    bool tls_offered = false;    // STLS is available (a certificate is configured)
    bool tls_active = false;     // TLS is on (after STLS, or from the first byte)
    bool plaintext_ok = true;    // logins are allowed without TLS (loopback, control/pop3plaintext)
};

class Authorization {
public:
    static constexpr unsigned max_failures = 3;   // failed logins before the connection ends
    static constexpr unsigned max_errors = 20;    // other bad commands before it ends

    // timestamp: the APOP timestamp "<...>" for the greeting; empty when
    // APOP is not offered.
    Authorization(CredentialChecker& checker, std::string timestamp, AuthOptions options = {})
        : checker_(checker), timestamp_(std::move(timestamp)), options_(options) {}
    std::string greeting() const;
    AuthStep command(std::string_view line);
    AuthStep too_long();
    std::string timeout_reply() const;
    // The TLS handshake after STLS succeeded: the state starts afresh (RFC 2595 section 4).
    void tls_started();

private:
    AuthStep error(std::string text);
    AuthStep checked(CheckResult r, std::string method, std::string user);
    AuthStep auth(const Command& c);
    AuthStep plain_response(std::string_view response);
    bool login_allowed() const { return options_.tls_active || options_.plaintext_ok; }

public:
    // After "+ ": the next line is a SASL response, not a command.
    bool awaiting_response() const { return sasl_pending_; }

private:

    CredentialChecker& checker_;
    std::string timestamp_;
    AuthOptions options_;
    std::optional<std::string> user_;   // after a USER command
    bool sasl_pending_ = false;         // after "AUTH PLAIN" without an initial response
    unsigned failures_ = 0, errors_ = 0;
};

// A fresh APOP timestamp: <PID.SECONDS.RANDOM@host> (RFC 1939 section 7).
std::string make_timestamp(std::string_view host);

}  // namespace yubin::pop3
