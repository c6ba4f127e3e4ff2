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
    };
    Action action = Action::reply;
    std::string text;
    bool close = false;       // fail: end the connection after text
    Account account;          // login
    std::string method;       // fail, login: "user" or "apop"
    std::string user;         // fail, login: the name the client gave
    std::string reason;       // fail: why, for the log only
};

class Authorization {
public:
    static constexpr unsigned max_failures = 3;   // failed logins before the connection ends
    static constexpr unsigned max_errors = 20;    // other bad commands before it ends

    // timestamp: the APOP timestamp "<...>" for the greeting; empty when
    // APOP is not offered.
    Authorization(CredentialChecker& checker, std::string timestamp)
        : checker_(checker), timestamp_(std::move(timestamp)) {}
    std::string greeting() const;
    AuthStep command(std::string_view line);
    AuthStep too_long();
    std::string timeout_reply() const;

private:
    AuthStep error(std::string text);
    AuthStep checked(CheckResult r, std::string method, std::string user);

    CredentialChecker& checker_;
    std::string timestamp_;
    std::optional<std::string> user_;   // after a USER command
    unsigned failures_ = 0, errors_ = 0;
};

// A fresh APOP timestamp: <PID.SECONDS.RANDOM@host> (RFC 1939 section 7).
std::string make_timestamp(std::string_view host);

}  // namespace yubin::pop3
