#include "smtp_client.hpp"

#include <algorithm>

namespace yubin {

namespace {

using Kind = DeliveryResult::Kind;

// The session ended early (421, or a greeting or HELO refused): the
// recipients without an answer may go to the next host.
struct SessionEnded {};

RecipientResult from_reply(const SmtpReply& r) {
    RecipientResult x;
    x.kind = r.kind() == 2 ? Kind::ok : r.kind() == 5 ? Kind::permanent : Kind::temporary;
    x.status = r.kind() == 3 ? "4.5.0" : r.status();   // 3xx where it makes no sense
    x.diagnostic = r.text();
    x.smtp = true;
    return x;
}

RecipientResult ours(Kind kind, std::string status, std::string text) {
    return RecipientResult{kind, std::move(status), std::move(text), false};
}

bool non_ascii(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

struct Extensions {
    bool pipelining = false, eightbitmime = false, smtputf8 = false, size = false;
    unsigned long long size_max = 0;   // 0: no fixed limit announced
};

Extensions parse_ehlo(const SmtpReply& r) {
    Extensions e;
    for (size_t i = 1; i < r.lines.size(); ++i) {
        std::string_view l = r.lines[i];
        size_t sp = l.find(' ');
        std::string key;
        for (char c : l.substr(0, sp)) key += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
        if (key == "PIPELINING") e.pipelining = true;
        else if (key == "8BITMIME") e.eightbitmime = true;
        else if (key == "SMTPUTF8") e.smtputf8 = true;
        else if (key == "SIZE") e.size = true;
        if (key == "SIZE" && sp != std::string_view::npos) {
            std::string_view v = l.substr(sp + 1);
            unsigned long long n = 0;
            bool ok = !v.empty() && v.size() <= 18;
            for (char c : v) ok = ok && c >= '0' && c <= '9', n = n * 10 + static_cast<unsigned>(c - '0');
            if (ok) e.size_max = n;
        }
    }
    return e;
}

class Session {
public:
    Session(SmtpTransport& t, const ClientConfig& cfg, const std::string& sender,
            const std::vector<std::string>& rcpts, MessageData& msg)
        : t_(t), cfg_(cfg), sender_(sender), rcpts_(rcpts), msg_(msg) {
        out_.rcpts.resize(rcpts.size());
    }

    SessionResult run() {
        try {
            stage_ = "the greeting";
            SmtpReply g = t_.read_reply();
            if (g.kind() != 2) end(g);
            hello();
            std::vector<size_t> pending(rcpts_.size());
            for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
            while (!pending.empty()) pending = transaction(pending);
            quit();
        } catch (const SessionEnded&) {
            quit();
        } catch (const TransportError& e) {
            lost(e.what());
        }
        return std::move(out_);
    }

private:
    [[noreturn]] void end(const SmtpReply& r) {
        RecipientResult f = from_reply(r);
        f.kind = Kind::temporary;
        f.status[0] = '4';
        out_.failure = f;
        throw SessionEnded{};
    }

    void lost(const std::string& why) {
        out_.failure = ours(Kind::temporary, "4.4.2", "connection lost while waiting for " + stage_ + ": " + why);
        if (dot_sent_) {
            // The server may have taken the message: no other host now.
            for (size_t i : accepted_)
                if (!out_.rcpts[i])
                    out_.rcpts[i] = ours(Kind::temporary, "4.4.2",
                                         "connection lost after the end of the message was sent: " + why);
        }
    }

    void hello() {
        stage_ = "the reply to EHLO";
        t_.send("EHLO " + cfg_.helo + "\r\n");
        SmtpReply r = t_.read_reply();
        if (r.kind() == 2) {
            ext_ = parse_ehlo(r);
            return;
        }
        if (r.code == 421) end(r);
        stage_ = "the reply to HELO";
        t_.send("HELO " + cfg_.helo + "\r\n");
        r = t_.read_reply();
        if (r.kind() != 2) end(r);
        ext_ = Extensions{};
    }

    // One transaction for batch; returns the recipients to send again in a
    // further transaction (452 while others were delivered).
    std::vector<size_t> transaction(const std::vector<size_t>& batch) {
        accepted_.clear();
        deferred_.clear();
        if (ext_.size_max && msg_.size() > ext_.size_max) {
            for (size_t i : batch)
                out_.rcpts[i] = ours(Kind::permanent, "5.3.4",
                                     "message too big for the server: " + std::to_string(msg_.size()) +
                                         " octets, it takes at most " + std::to_string(ext_.size_max));
            return {};
        }
        bool utf8 = non_ascii(sender_);
        for (size_t i : batch) utf8 = utf8 || non_ascii(rcpts_[i]);
        if (utf8 && !ext_.smtputf8) {
            for (size_t i : batch)
                out_.rcpts[i] = ours(Kind::permanent, "5.6.7",
                                     "the addresses need SMTPUTF8, which the server does not offer");
            return {};
        }
        std::string mail = "MAIL FROM:" + mail_from_path(sender_);
        if (ext_.size) mail += " SIZE=" + std::to_string(msg_.size());
        if (ext_.eightbitmime && msg_.eight_bit()) mail += " BODY=8BITMIME";
        if (utf8) mail += " SMTPUTF8";
        mail += "\r\n";

        SmtpReply data;
        if (ext_.pipelining) {
            t_.send(mail);
            for (size_t i : batch) t_.send("RCPT TO:<" + rcpts_[i] + ">\r\n");
            t_.send("DATA\r\n");
            stage_ = "the reply to MAIL";
            bool mail_ok = mail_reply(t_.read_reply(), batch);
            stage_ = "the reply to RCPT";
            for (size_t i : batch) {
                SmtpReply r = t_.read_reply();
                if (mail_ok) rcpt_reply(i, r);
            }
            stage_ = "the reply to DATA";
            data = t_.read_reply();
            if (!mail_ok || accepted_.empty()) {
                if (data.kind() == 3) {  // a server that wants data for no recipient: an empty end
                    t_.send(".\r\n");
                    stage_ = "the reply to an empty DATA";
                    t_.read_reply();
                }
                return {};
            }
        } else {
            t_.send(mail);
            stage_ = "the reply to MAIL";
            if (!mail_reply(t_.read_reply(), batch)) return {};
            stage_ = "the reply to RCPT";
            for (size_t i : batch) {
                t_.send("RCPT TO:<" + rcpts_[i] + ">\r\n");
                rcpt_reply(i, t_.read_reply());
            }
            if (accepted_.empty()) return {};
            t_.send("DATA\r\n");
            stage_ = "the reply to DATA";
            data = t_.read_reply();
        }
        if (data.code == 421) end(data);
        if (data.kind() != 3) {
            for (size_t i : accepted_) out_.rcpts[i] = from_reply(data);
            return {};
        }
        send_message();
        stage_ = "the reply to the end of the message";
        SmtpReply r = t_.read_reply();
        dot_sent_ = false;
        for (size_t i : accepted_) {
            out_.rcpts[i] = from_reply(r);
            if (r.kind() == 3) out_.rcpts[i]->kind = Kind::temporary;
        }
        if (r.kind() != 2) return {};
        for (size_t i : deferred_) out_.rcpts[i].reset();
        return deferred_;
    }

    bool mail_reply(const SmtpReply& r, const std::vector<size_t>& batch) {
        if (r.kind() == 2) return true;
        if (r.code == 421) end(r);
        for (size_t i : batch) out_.rcpts[i] = from_reply(r);
        return false;
    }

    void rcpt_reply(size_t i, const SmtpReply& r) {
        if (r.kind() == 2) {
            accepted_.push_back(i);
            return;
        }
        if (r.code == 421) end(r);
        out_.rcpts[i] = from_reply(r);
        if (r.code == 452) deferred_.push_back(i);
    }

    void send_message() {
        stage_ = "the server to take the message";
        msg_.rewind();
        DataEncoder enc;
        for (std::string_view piece = msg_.read(); !piece.empty(); piece = msg_.read()) t_.send(enc.encode(piece));
        t_.send(enc.finish());
        dot_sent_ = true;
    }

    void quit() {
        try {
            t_.set_timeout(cfg_.quit_timeout);
            t_.send("QUIT\r\n");
            t_.read_reply();
        } catch (const TransportError&) {
            // The results are in; a server that does not answer QUIT changes nothing.
        }
    }

    SmtpTransport& t_;
    const ClientConfig& cfg_;
    const std::string& sender_;
    const std::vector<std::string>& rcpts_;
    MessageData& msg_;
    SessionResult out_;
    Extensions ext_;
    std::string stage_;
    std::vector<size_t> accepted_, deferred_;
    bool dot_sent_ = false;
};

}  // namespace

std::string DataEncoder::encode(std::string_view raw) {
    std::string out;
    out.reserve(raw.size() + raw.size() / 16 + 8);
    for (char c : raw) {
        if (pending_cr_) {
            pending_cr_ = false;
            if (c == '\n') {
                out += "\r\n";
                line_start_ = true;
                continue;
            }
            out += ' ';
            line_start_ = false;
        }
        if (c == '\r') {
            pending_cr_ = true;
        } else if (c == '\n') {
            out += "\r\n";
            line_start_ = true;
        } else {
            if (line_start_ && c == '.') out += '.';
            out += c;
            line_start_ = false;
        }
    }
    return out;
}

std::string DataEncoder::finish() {
    std::string out;
    if (pending_cr_) {
        out += ' ';
        pending_cr_ = false;
        line_start_ = false;
    }
    if (!line_start_) out += "\r\n";
    out += ".\r\n";
    line_start_ = true;
    return out;
}

std::string mail_from_path(const std::string& sender) {
    if (sender.empty() || sender == "#@[]") return "<>";
    return "<" + sender + ">";
}

SessionResult run_smtp_session(SmtpTransport& t, const ClientConfig& cfg, const std::string& sender,
                               const std::vector<std::string>& rcpts, MessageData& msg) {
    return Session(t, cfg, sender, rcpts, msg).run();
}

}  // namespace yubin
