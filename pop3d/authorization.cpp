#include "authorization.hpp"

#include <unistd.h>

#include <openssl/rand.h>

#include <ctime>

#include "lines.hpp"
#include "sasl.hpp"
#include "transaction.hpp"

namespace yubin::pop3 {

namespace {

bool is_hex_digest(std::string_view s) {
    if (s.size() != 32) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
    return true;
}

const char* const transaction_verbs[] = {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL"};

}  // namespace

std::string make_timestamp(std::string_view host) {
    unsigned char r[8];
    std::string rnd;
    if (RAND_bytes(r, sizeof r) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned char c : r) {
            rnd += hex[c >> 4];
            rnd += hex[c & 15];
        }
    } else {
        rnd = std::to_string(std::clock());
    }
    return "<" + std::to_string(::getpid()) + "." + std::to_string(std::time(nullptr)) + "." + rnd + "@" +
           std::string(host) + ">";
}

std::string Authorization::greeting() const {
    return ok("yubin POP3 server ready" + (timestamp_.empty() ? "" : " " + timestamp_));
}

std::string Authorization::timeout_reply() const { return err("disconnected for inactivity"); }

AuthStep Authorization::error(std::string text) {
    AuthStep s{AuthStep::Action::reply, err(text)};
    if (++errors_ > max_errors) {
        s.action = AuthStep::Action::close;
        s.text += err("too many errors; closing connection");
    }
    return s;
}

AuthStep Authorization::too_long() {
    sasl_pending_ = false;
    return error("line too long");
}

AuthStep Authorization::checked(CheckResult r, std::string method, std::string user) {
    user_.reset();
    AuthStep s;
    s.method = std::move(method);
    s.user = std::move(user);
    if (r.account) {
        s.action = AuthStep::Action::login;
        s.account = std::move(*r.account);
        return s;
    }
    s.action = AuthStep::Action::fail;
    s.reason = std::move(r.reason);
    if (r.temporary) {   // not the client's fault: not counted
        s.text = err("[SYS/TEMP] cannot check the password now; try again later");
        return s;
    }
    // The same reply whether the user exists or not (RFC 3206 [AUTH]).
    s.text = err("[AUTH] authentication failed");
    if (++failures_ >= max_failures) {
        s.close = true;
        s.text += err("too many failed logins; closing connection");
    }
    return s;
}

void Authorization::tls_started() {
    options_.tls_active = true;
    user_.reset();
    sasl_pending_ = false;
}

// RFC 5034: AUTH PLAIN with the response on the line ("=" for an empty
// one) or after a "+ " continuation; "*" cancels.
AuthStep Authorization::auth(const Command& c) {
    if (c.args.empty()) return AuthStep{AuthStep::Action::reply, "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"};
    if (c.args.size() > 2) return error("syntax: AUTH mechanism [initial-response]");
    std::string mech = c.args[0];
    for (char& ch : mech)
        if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
    if (mech != "PLAIN") return error("unsupported SASL mechanism");
    user_.reset();
    if (c.args.size() == 1) {
        sasl_pending_ = true;
        return AuthStep{AuthStep::Action::reply, "+ \r\n"};
    }
    return plain_response(c.args[1] == "=" ? std::string_view() : std::string_view(c.args[1]));
}

AuthStep Authorization::plain_response(std::string_view response) {
    sasl_pending_ = false;
    if (response == "*") return error("AUTH cancelled");
    std::optional<std::string> decoded = base64_decode(response);
    if (!decoded) return error("AUTH: malformed base64");
    std::string why;
    std::optional<PlainCredentials> creds = parse_plain(*decoded, &why);
    if (!creds) return error("AUTH: " + why);
    return checked(checker_.check_password(creds->user, creds->password), "plain", creds->user);
}

AuthStep Authorization::command(std::string_view line) {
    if (sasl_pending_) return plain_response(line);   // the client's response to "+ "
    const Command c = parse_command(line);
    const bool login = c.verb == "USER" || c.verb == "PASS" || c.verb == "APOP" || c.verb == "AUTH";
    if (login && !login_allowed()) {
        user_.reset();
        return error("[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS");
    }
    if (c.verb == "STLS") {
        if (!c.args.empty()) return error("STLS takes no argument");
        if (options_.tls_active) return error("TLS is already active");
        if (!options_.tls_offered) return error("STLS is not available");
        user_.reset();
        return AuthStep{AuthStep::Action::starttls, ok("Begin TLS negotiation")};
    }
    if (c.verb == "AUTH") return auth(c);
    if (c.verb == "USER") {
        if (c.args.size() != 1) return error("syntax: USER name");
        user_ = c.args[0];
        return AuthStep{AuthStep::Action::reply, ok("send PASS")};
    }
    if (c.verb == "PASS") {
        if (!user_) return error("send USER first");
        if (line.size() < 5) return error("syntax: PASS password");
        // The whole rest of the line is the password: it may hold spaces
        // (RFC 1939 section 7).
        std::string user = *user_;
        return checked(checker_.check_password(user, c.rest), "user", user);
    }
    if (c.verb == "APOP") {
        if (timestamp_.empty()) return error("APOP is not offered here");
        if (c.args.size() != 2 || !is_hex_digest(c.args[1])) return error("syntax: APOP name digest");
        return checked(checker_.check_apop(c.args[0], timestamp_, c.args[1]), "apop", c.args[0]);
    }
    if (c.verb == "CAPA") {
        if (!c.args.empty()) return error("CAPA takes no argument");
        std::string lines;
        if (options_.tls_offered && !options_.tls_active) lines += "STLS\r\n";
        if (login_allowed()) lines += "USER\r\nSASL PLAIN\r\n";
        return AuthStep{AuthStep::Action::reply, capa_reply(false, lines)};
    }
    if (c.verb == "QUIT") {
        if (!c.args.empty()) return error("QUIT takes no argument");
        return AuthStep{AuthStep::Action::close, ok("yubin POP3 server signing off")};
    }
    for (const char* v : transaction_verbs)
        if (c.verb == v) return error("log in first");
    return error("unknown command");
}

}  // namespace yubin::pop3
