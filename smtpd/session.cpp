#include "session.hpp"

#include <ctime>

#include "address.hpp"
#include "datetime.hpp"
#include "exitcodes.hpp"
#include "instance.hpp"
#include "sasl.hpp"

namespace yubin {

namespace {

constexpr std::string_view crlf = "\r\n";

std::string reply(std::string_view code_and_text) { return std::string(code_and_text) + "\r\n"; }

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        char a = s[i], b = prefix[i];
        if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 32);
        if (b >= 'a' && b <= 'z') b = static_cast<char>(b - 32);
        if (a != b) return false;
    }
    return true;
}

std::string_view skip_spaces(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    return s;
}

// For the Received: line: printable ASCII only, no parentheses games, bounded.
std::string clean(std::string_view s, size_t max = 200) {
    std::string out;
    for (unsigned char c : s.substr(0, max))
        out += (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != ';' && c != '\\') ? static_cast<char>(c) : '_';
    return out;
}

bool has_non_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return true;
    return false;
}

// ESMTP parameters after the path: "KEY=VALUE KEY ..."
std::vector<std::pair<std::string, std::string>> parse_params(std::string_view s, bool& ok) {
    std::vector<std::pair<std::string, std::string>> out;
    ok = true;
    s = skip_spaces(s);
    while (!s.empty()) {
        size_t sp = s.find(' ');
        std::string_view word = s.substr(0, sp);
        s = sp == std::string_view::npos ? std::string_view() : skip_spaces(s.substr(sp));
        size_t eq = word.find('=');
        std::string key = lowercase(word.substr(0, eq));
        if (key.empty()) {
            ok = false;
            return out;
        }
        out.emplace_back(key, eq == std::string_view::npos ? "" : std::string(word.substr(eq + 1)));
    }
    return out;
}

}  // namespace

SmtpSession::SmtpSession(SmtpConfig cfg, MessageSink& sink, Authenticator* auth)
    : cfg_(std::move(cfg)), sink_(sink), auth_(auth) {}

std::string SmtpSession::greeting() const { return reply("220 " + cfg_.me + " ESMTP yubin"); }

std::string SmtpSession::timeout_reply() {
    mode_ = Mode::closed;
    if (in_sink_) sink_.abort();
    in_sink_ = false;
    return reply("421 4.4.2 " + cfg_.me + " Timeout; closing connection");
}

std::string SmtpSession::error(std::string r) {
    if (++errors_ > cfg_.max_errors) {
        reset_transaction();
        mode_ = Mode::closed;
        return r + reply("421 4.7.0 " + cfg_.me + " Too many errors; closing connection");
    }
    return r;
}

std::string SmtpSession::feed(std::string_view bytes) {
    in_.append(bytes);
    std::string out;
    size_t pos = 0;
    while (mode_ != Mode::closed) {
        if (mode_ == Mode::bdat) {
            in_.erase(0, pos);
            pos = 0;
            out += feed_bdat();
            if (mode_ == Mode::bdat) break;  // need more bytes
            continue;
        }
        size_t end = in_.find(crlf, pos);
        const size_t limit = mode_ == Mode::data ? max_text_line : max_command_line;
        if (end == std::string::npos) {
            // No complete line. Past the limit, what we have is part of an
            // overlong line: drop it (keeping a final CR that may start CRLF).
            // discarding_ marks that the next CRLF ends that line, in DATA
            // too, so its tail is never taken for "." or for a line.
            if (in_.size() - pos > limit) {
                discarding_ = true;
                if (mode_ == Mode::data) {
                    too_long_ = true;
                    std::string_view part(in_.data() + pos, in_.size() - pos);
                    if (part.find('\n') != std::string_view::npos ||
                        part.substr(0, part.size() - 1).find('\r') != std::string_view::npos)
                        bad_line_end_ = true;
                }
                pos = in_.back() == '\r' ? in_.size() - 1 : in_.size();
            }
            break;
        }
        std::string_view line(in_.data() + pos, end - pos);
        pos = end + 2;
        if (mode_ == Mode::auth) {
            // RFC 4954 section 4: a response that cannot be read ends the exchange with 501.
            if (discarding_ || line.size() + 2 > max_command_line) {
                discarding_ = false;
                out += auth_abort("501 5.5.2 Line too long");
            } else if (line.find_first_of("\r\n") != std::string_view::npos) {
                out += auth_abort("501 5.5.2 Bare CR or LF in a response");
            } else {
                out += auth_response(line);
            }
        } else if (mode_ == Mode::command) {
            if (discarding_) {
                discarding_ = false;
                out += error(reply("500 5.5.2 Line too long"));
            } else if (line.find_first_of("\r\n") != std::string_view::npos) {
                out += error(reply("500 5.5.2 Bare CR or LF in a command; lines end with CRLF"));
            } else if (line.size() + 2 > max_command_line) {
                out += error(reply("500 5.5.2 Line too long"));
            } else {
                const size_t before = out.size();
                out += command(line);
                if (start_tls_) {
                    if (pos < in_.size()) {   // pipelined behind STARTTLS: never run as if sent under TLS
                        out.resize(before);
                        out += reply("554 5.5.0 Commands pipelined after STARTTLS; closing connection");
                        start_tls_ = false;
                        reset_transaction();
                        mode_ = Mode::closed;
                    }
                    break;   // nothing more in clear text
                }
            }
        } else {  // DATA
            if (discarding_) {  // the tail of an overlong line (too_long_ is set)
                discarding_ = false;
                if (line.find_first_of("\r\n") != std::string_view::npos) bad_line_end_ = true;
                continue;
            }
            if (line == ".") {
                out += end_message();
                continue;
            }
            if (line.find_first_of("\r\n") != std::string_view::npos) bad_line_end_ = true;
            if (line.size() + 2 > max_text_line) too_long_ = true;
            if (!line.empty() && line.front() == '.') line.remove_prefix(1);
            message_line(line);
        }
    }
    in_.erase(0, pos);
    if (mode_ == Mode::closed) in_.clear();
    return out;
}

std::string SmtpSession::command(std::string_view line) {
    size_t sp = line.find(' ');
    std::string verb = lowercase(line.substr(0, sp));
    std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (verb == "ehlo") return cmd_helo(arg, true);
    if (verb == "helo") return cmd_helo(arg, false);
    if (verb == "mail") return cmd_mail(arg);
    if (verb == "rcpt") return cmd_rcpt(arg);
    if (verb == "data") return cmd_data(arg);
    if (verb == "bdat") return cmd_bdat(arg);
    if (verb == "rset") {
        if (!arg.empty()) return error(reply("501 5.5.4 RSET takes no argument"));
        reset_transaction();
        return reply("250 2.0.0 Ok");
    }
    if (verb == "noop") return reply("250 2.0.0 Ok");
    if (verb == "quit") {
        reset_transaction();
        mode_ = Mode::closed;
        return reply("221 2.0.0 " + cfg_.me + " closing connection");
    }
    if (verb == "help")
        return reply("214-2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP") +
               reply("214 2.0.0 See smtpd(8)");
    if (verb == "vrfy") return reply("252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery");
    if (verb == "expn") return error(reply("502 5.7.0 EXPN is refused"));
    if (verb == "starttls") return cmd_starttls(arg);
    if (verb == "auth") return cmd_auth(arg);
    if (verb == "turn" || verb == "etrn" || verb == "send" ||
        verb == "saml" || verb == "soml")
        return error(reply("502 5.5.1 " + lowercase(verb) + " is not implemented"));
    return error(reply("500 5.5.2 Unknown command"));
}

std::string SmtpSession::cmd_helo(std::string_view arg, bool extended) {
    arg = skip_spaces(arg);
    while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
    if (arg.empty()) return error(reply(std::string("501 5.5.4 Syntax: ") + (extended ? "EHLO" : "HELO") + " hostname"));
    reset_transaction();
    hello_ = extended ? Hello::ehlo : Hello::helo;
    helo_name_ = clean(arg, 255);
    std::string who = cfg_.remote_ip.empty() ? "local" : "[" + cfg_.remote_ip + "]";
    if (!extended) return reply("250 " + cfg_.me + " Hello " + who);
    std::string r = "250-" + cfg_.me + " Hello " + who + "\r\n";
    r += "250-PIPELINING\r\n";
    r += "250-8BITMIME\r\n";
    r += "250-SIZE " + std::to_string(cfg_.databytes) + "\r\n";
    r += "250-ENHANCEDSTATUSCODES\r\n";
    r += "250-SMTPUTF8\r\n";
    if (cfg_.tls_offered && !tls_active()) r += "250-STARTTLS\r\n";
    if (offers_auth() && auth_user_.empty()) r += "250-AUTH PLAIN LOGIN\r\n";
    r += "250 CHUNKING\r\n";
    return r;
}

std::string SmtpSession::cmd_starttls(std::string_view arg) {
    if (!arg.empty()) return error(reply("501 5.5.4 STARTTLS takes no argument"));
    if (tls_active()) return error(reply("503 5.5.1 TLS is already active"));
    if (!cfg_.tls_offered) return error(reply("502 5.5.1 STARTTLS is not available"));
    if (have_mail_) return error(reply("503 5.5.1 STARTTLS inside a mail transaction"));
    start_tls_ = true;
    return reply("220 2.0.0 Ready to start TLS");
}

// AUTH mechanism [initial-response] (RFC 4954 section 4).
std::string SmtpSession::cmd_auth(std::string_view arg) {
    if (!cfg_.auth_offered || !auth_) return error(reply("502 5.5.1 AUTH is not available"));
    if (hello_ != Hello::ehlo) return error(reply("503 5.5.1 Send EHLO first"));
    if (!auth_user_.empty()) return error(reply("503 5.5.1 Already authenticated"));
    if (have_mail_) return error(reply("503 5.5.1 AUTH not permitted during a mail transaction"));
    if (!tls_active() && !cfg_.auth_plaintext_ok)
        return error(reply("538 5.7.11 Encryption required for requested authentication mechanism"));
    size_t sp = arg.find(' ');
    std::string mech(arg.substr(0, sp));
    for (char& ch : mech) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);   // upper case
    std::string_view initial = sp == std::string_view::npos ? std::string_view() : arg.substr(sp + 1);
    if (mech.empty()) return error(reply("501 5.5.4 Syntax: AUTH mechanism [initial-response]"));
    if (mech != "PLAIN" && mech != "LOGIN") return error(reply("504 5.5.4 Unrecognized authentication type"));
    if (initial.find(' ') != std::string_view::npos) return error(reply("501 5.5.4 Syntax: AUTH mechanism [initial-response]"));
    auth_mech_ = mech;
    login_user_.clear();
    mode_ = Mode::auth;
    if (initial.empty()) return reply(mech == "PLAIN" ? "334 " : "334 VXNlcm5hbWU6");   // "Username:"
    return auth_response(initial == "=" ? std::string_view() : initial);   // "=": an empty initial response
}

std::string SmtpSession::auth_abort(std::string r) {
    mode_ = Mode::command;
    auth_mech_.clear();
    wipe(login_user_);
    return error(reply(r));
}

std::string SmtpSession::auth_response(std::string_view line) {
    if (line == "*") return auth_abort("501 5.0.0 Authentication cancelled");
    std::optional<std::string> decoded = base64_decode(line);
    if (!decoded) return auth_abort("501 5.5.2 Cannot decode response");
    WipeOnExit wiped{*decoded};
    if (auth_mech_ == "PLAIN") {
        std::string why;
        std::optional<PlainCredentials> c = parse_plain(*decoded, &why);
        if (!c) return auth_abort("501 5.5.2 Invalid PLAIN response: " + why);
        return auth_finish(std::move(c->user), std::move(c->password));
    }
    // LOGIN: the user name, then the password
    if (!valid_login_field(*decoded) || decoded->empty()) return auth_abort("501 5.5.2 Invalid LOGIN response");
    if (login_user_.empty()) {
        login_user_ = *decoded;
        return reply("334 UGFzc3dvcmQ6");   // "Password:"
    }
    return auth_finish(std::exchange(login_user_, std::string()), *decoded);
}

std::string SmtpSession::auth_finish(std::string user, std::string password) {
    mode_ = Mode::command;
    const std::string mech = std::exchange(auth_mech_, std::string());
    AuthCheck c = auth_->check(mech, user, password);
    wipe(password);
    switch (c.result) {
    case AuthCheck::Result::ok:
        auth_user_ = c.user.empty() ? user : c.user;
        return reply("235 2.7.0 Authentication successful");
    case AuthCheck::Result::temporary:
        return reply("454 4.7.0 Temporary authentication failure; try again later");
    case AuthCheck::Result::refused: break;
    }
    // The same reply for an unknown user and a wrong password; slower each time.
    ++auth_failures_;
    delay_ms_ = (auth_failures_ - 1) * cfg_.auth_fail_delay_ms;
    std::string r = reply("535 5.7.8 Authentication credentials invalid");
    if (auth_failures_ >= cfg_.max_auth_failures) {
        reset_transaction();
        mode_ = Mode::closed;
        return r + reply("421 4.7.0 " + cfg_.me + " Too many failed authentications; closing connection");
    }
    return error(r);
}

void SmtpSession::tls_started(std::string comment) {
    reset_transaction();
    start_tls_ = false;
    hello_ = Hello::none;
    helo_name_.clear();
    in_.clear();
    discarding_ = false;
    tls_comment_ = comment.empty() ? "(using TLS)" : std::move(comment);
    auth_user_.clear();   // RFC 3207 4.2: nothing learned before TLS counts after it (the failure count stays)
    auth_mech_.clear();
    wipe(login_user_);
}

std::string SmtpSession::cmd_mail(std::string_view arg) {
    if (hello_ == Hello::none) return error(reply("503 5.5.1 Send HELO or EHLO first"));
    if (have_mail_) return error(reply("503 5.5.1 Nested MAIL command"));
    if (cfg_.submission && auth_user_.empty()) return error(reply("530 5.7.0 Authentication required"));
    if (!iequals_prefix(arg, "FROM:")) return error(reply("501 5.5.4 Syntax: MAIL FROM:<address>"));
    std::string_view rest = skip_spaces(arg.substr(5));
    PathResult p = parse_smtp_path(rest, true, true);
    if (!p.ok) return error(reply("501 5.1.7 Bad sender address: " + p.error));
    bool ok;
    auto params = parse_params(rest.substr(p.consumed), ok);
    if (!ok || (p.consumed < rest.size() && rest[p.consumed] != ' '))
        return error(reply("501 5.5.4 Bad MAIL parameters"));
    bool utf8 = false;
    for (const auto& [key, value] : params) {
        if (hello_ != Hello::ehlo) return error(reply("555 5.5.4 MAIL parameters need EHLO"));
        if (key == "size") {
            // RFC 1870: up to 20 digits; anything over 18 is over any limit we can have.
            if (value.empty() || value.size() > 20 || value.find_first_not_of("0123456789") != std::string::npos)
                return error(reply("501 5.5.4 Bad SIZE parameter"));
            if (cfg_.databytes && (value.size() > 18 || std::stoull(value) > cfg_.databytes))
                return reply("552 5.3.4 Message size exceeds fixed maximum message size");
        } else if (key == "body") {
            std::string v = lowercase(value);
            if (v != "7bit" && v != "8bitmime") return error(reply("555 5.5.4 Unsupported BODY type"));
        } else if (key == "smtputf8" && value.empty()) {
            utf8 = true;
        } else if (key == "auth" && !value.empty() && offers_auth()) {
            // RFC 4954 section 5: accepted where AUTH is advertised; the identity is not passed on
        } else {
            return error(reply("555 5.5.4 Unsupported MAIL parameter " + clean(key, 40)));
        }
    }
    if (!utf8 && has_non_ascii(p.address)) return error(reply("553 5.6.7 Non-ASCII address needs SMTPUTF8"));
    if (!auth_user_.empty() && cfg_.sender_logins && !cfg_.sender_logins->may_use(auth_user_, p.address))
        return error(reply("553 5.7.1 Sender address <" + clean(p.address, 300) + "> is not owned by user " +
                           clean(auth_user_, 100)));
    have_mail_ = true;
    smtputf8_ = utf8;
    env_.sender = p.address;
    env_.recipients.clear();
    return reply("250 2.1.0 Sender ok");
}

bool SmtpSession::accepts_domain(std::string_view domain_in) const {
    std::string domain = normalize_domain(domain_in);
    for (const auto& h : cfg_.rcpthosts) {
        std::string host = normalize_domain(h);
        if (host.empty()) continue;
        if (host[0] == '.') {
            if (domain.size() > host.size() && domain.compare(domain.size() - host.size(), host.size(), host) == 0)
                return true;
        } else if (domain == host) {
            return true;
        }
    }
    return false;
}

std::string SmtpSession::cmd_rcpt(std::string_view arg) {
    if (!have_mail_) return error(reply("503 5.5.1 Need MAIL before RCPT"));
    // The message has begun, and its Received: line (with "for <rcpt>" when
    // there was one recipient) is written: recipients come before the data
    // (RFC 3030 section 3); the transaction goes on without this one.
    if (bdat_used_) return error(reply("503 5.5.1 RCPT after BDAT"));
    if (!iequals_prefix(arg, "TO:")) return error(reply("501 5.5.4 Syntax: RCPT TO:<address>"));
    std::string_view rest = skip_spaces(arg.substr(3));
    PathResult p = parse_smtp_path(rest, false, true);
    if (!p.ok) return error(reply("501 5.1.3 Bad recipient address: " + p.error));
    // RFC 6531 section 3.7.4.1: as for the sender.
    if (!smtputf8_ && has_non_ascii(p.address)) return error(reply("553 5.6.7 Non-ASCII address needs SMTPUTF8"));
    bool ok;
    auto params = parse_params(rest.substr(p.consumed), ok);
    if (!ok || (p.consumed < rest.size() && rest[p.consumed] != ' '))
        return error(reply("501 5.5.4 Bad RCPT parameters"));
    if (!params.empty()) return error(reply("555 5.5.4 Unsupported RCPT parameter " + clean(params[0].first, 40)));
    if (env_.recipients.size() >= cfg_.max_rcpts) return reply("452 4.5.3 Too many recipients");
    AddressParts parts = split_address(p.address);
    // A bare <postmaster> is always ours (RFC 5321 4.5.1).
    const bool may_relay = cfg_.relay_allowed || !auth_user_.empty();
    if (!parts.domain.empty() && !may_relay && !accepts_domain(parts.domain))
        return error(reply("553 5.7.1 Relaying denied: " + normalize_domain(parts.domain) + " is not a local domain"));
    env_.recipients.push_back(p.address + (cfg_.relay_allowed ? cfg_.relay_suffix : ""));
    return reply("250 2.1.5 Recipient ok");
}

std::string SmtpSession::queue_failure(int code) {
    if (inject_exit::is_permanent(code)) return std::string("554 5.3.0 Message refused: ") + inject_exit::describe(code);
    return std::string("451 4.3.0 Queue temporarily unavailable: ") + inject_exit::describe(code);
}

std::string SmtpSession::begin_message() {
    if (int code = sink_.begin(env_, queue_id_)) return queue_failure(code);
    in_sink_ = true;
    in_header_ = true;
    saw_date_ = saw_message_id_ = false;
    bad_line_end_ = too_long_ = too_big_ = false;
    hops_ = 0;
    size_ = 0;
    // RFC 3848: ESMTPS under TLS, ESMTPA after AUTH (both extensions of
    // ESMTP, so a later HELO does not make them SMTPS); RFC 6531: UTF8SMTP.
    std::string proto = hello_ == Hello::ehlo || tls_active() || !auth_user_.empty() ? "ESMTP" : "SMTP";
    if (smtputf8_) proto = "UTF8SMTP";
    if (tls_active()) proto += "S";
    if (!auth_user_.empty()) proto += "A";
    std::string from = cfg_.remote_ip.empty()
                           ? helo_name_ + " (uid " + cfg_.local_uid + ")"
                           : helo_name_ + " (" + (cfg_.remote_host.empty() ? "unknown" : clean(cfg_.remote_host)) +
                                 " [" + clean(cfg_.remote_ip, 64) + "])";
    std::string received = "Received: from " + from + (tls_active() ? "\n\t" + tls_comment_ : "") + "\n\tby " + cfg_.me + " (yubin) with " + proto + " id " +
                           queue_id_;
    if (env_.recipients.size() == 1) received += "\n\tfor <" + clean(env_.recipients[0], 300) + ">";
    received += "; " + rfc5322_date(::time(nullptr)) + "\n";
    sink_.write(received);
    return "";
}

std::string SmtpSession::cmd_data(std::string_view arg) {
    if (!arg.empty()) return error(reply("501 5.5.4 DATA takes no argument"));
    if (!have_mail_) return error(reply("503 5.5.1 Need MAIL before DATA"));
    if (env_.recipients.empty()) return error(reply("503 5.5.1 Need RCPT before DATA"));
    if (bdat_used_) return error(reply("503 5.5.1 DATA after BDAT"));
    if (std::string failure = begin_message(); !failure.empty()) {
        reset_transaction();
        return reply(failure);
    }
    mode_ = Mode::data;
    return reply("354 End data with <CR><LF>.<CR><LF>");
}

std::string SmtpSession::cmd_bdat(std::string_view arg) {
    // BDAT size [LAST]
    size_t sp = arg.find(' ');
    std::string_view num = arg.substr(0, sp);
    std::string last = sp == std::string_view::npos ? "" : lowercase(arg.substr(sp + 1));
    if (num.empty() || num.size() > 18 || num.find_first_not_of("0123456789") != std::string_view::npos ||
        (!last.empty() && last != "last")) {
        // The client will send the chunk anyway; we cannot know its size: close.
        reset_transaction();
        mode_ = Mode::closed;
        return reply("501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
    }
    bdat_remaining_ = std::stoull(std::string(num));
    bdat_last_ = !last.empty();
    std::string failure;
    if (!have_mail_) failure = "503 5.5.1 Need MAIL before BDAT";
    else if (env_.recipients.empty()) failure = "503 5.5.1 Need RCPT before BDAT";
    else if (!in_sink_) failure = begin_message();
    if (!failure.empty()) {
        // Swallow the chunk without storing it, then give the reply.
        reset_transaction();
        queue_id_ = failure;
    } else {
        bdat_used_ = true;
    }
    mode_ = Mode::bdat;
    return {};
}

std::string SmtpSession::feed_bdat() {
    size_t take = std::min(bdat_remaining_, in_.size());
    std::string_view chunk(in_.data(), take);
    bdat_remaining_ -= take;
    if (in_sink_) {
        // Lines across chunks: only CRLF ends one; a CR at the end of a chunk waits for the next.
        bdat_line_.append(chunk);
        size_t pos = 0;
        for (;;) {
            size_t end = bdat_line_.find(crlf, pos);
            if (end == std::string::npos) break;
            std::string_view line(bdat_line_.data() + pos, end - pos);
            if (line.find_first_of("\r\n") != std::string_view::npos) bad_line_end_ = true;
            if (line.size() + 2 > max_text_line) too_long_ = true;
            message_line(line);
            pos = end + 2;
        }
        bdat_line_.erase(0, pos);
        if (bdat_line_.size() > max_text_line) {
            too_long_ = true;
            bdat_line_.erase(0, bdat_line_.size() - 1);
        }
    }
    in_.erase(0, take);
    if (bdat_remaining_ > 0) return {};
    mode_ = Mode::command;
    if (!in_sink_) {
        std::string failure = queue_id_.empty() ? "503 5.5.1 Need MAIL before BDAT" : queue_id_;
        queue_id_.clear();
        return error(reply(failure));
    }
    if (!bdat_last_) return reply("250 2.0.0 Chunk received");
    if (!bdat_line_.empty()) {  // a last line without CRLF
        if (bdat_line_.find_first_of("\r\n") != std::string::npos) bad_line_end_ = true;
        // It is stored, and counted in the size, as a line with its end: it
        // has the same limit as every other line (else it would leave as
        // 1001 or 1002 octets when relayed).
        if (bdat_line_.size() + 2 > max_text_line) too_long_ = true;
        message_line(bdat_line_);
        bdat_line_.clear();
    }
    return end_message();
}

void SmtpSession::message_line(std::string_view line) {
    size_ += line.size() + 2;
    if (cfg_.databytes && size_ > cfg_.databytes) too_big_ = true;
    if (in_header_) {
        if (line.empty()) {
            in_header_ = false;
            add_submission_fields();
        } else if (iequals_prefix(line, "Received:") || iequals_prefix(line, "Delivered-To:")) {
            ++hops_;
        } else if (iequals_prefix(line, "Date:")) {
            saw_date_ = true;
        } else if (iequals_prefix(line, "Message-ID:")) {
            saw_message_id_ = true;
        }
    }
    if (too_big_ || bad_line_end_ || too_long_) return;  // refused at the end; stop storing
    std::string l(line);
    l += '\n';
    sink_.write(l);
}

// RFC 6409 section 8: a submission server may add what the client left out.
void SmtpSession::add_submission_fields() {
    if (!cfg_.submission || too_big_ || bad_line_end_ || too_long_) return;
    const time_t now = ::time(nullptr);
    if (!saw_date_) sink_.write("Date: " + rfc5322_date(now) + "\n");
    if (!saw_message_id_) sink_.write("Message-ID: <" + std::to_string(now) + "." + queue_id_ + "@" + cfg_.me + ">\n");
    saw_date_ = saw_message_id_ = true;
}

std::string SmtpSession::end_message() {
    mode_ = Mode::command;
    if (in_header_) add_submission_fields();   // a message that is all header
    std::string r;
    if (bad_line_end_) r = "554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF";
    else if (too_long_) r = "554 5.6.0 Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)";
    else if (too_big_) r = "552 5.3.4 Message size exceeds fixed maximum message size";
    else if (hops_ > cfg_.maxhops) r = "554 5.4.6 Too many hops: mail loop?";
    if (!r.empty()) {
        sink_.abort();
        in_sink_ = false;
        reset_transaction();
        return reply(r);
    }
    int code = sink_.commit();
    in_sink_ = false;
    std::string id = queue_id_;
    reset_transaction();
    if (code == inject_exit::ok) return reply("250 2.0.0 Ok: queued as " + id);
    return reply(queue_failure(code));
}

void SmtpSession::reset_transaction() {
    if (in_sink_) sink_.abort();
    in_sink_ = false;
    have_mail_ = false;
    smtputf8_ = false;
    bdat_used_ = false;
    env_ = Envelope{};
    bdat_line_.clear();
    queue_id_.clear();
}

}  // namespace yubin
