#include "transaction.hpp"

#include "lines.hpp"

namespace yubin::pop3 {

std::string capa_reply(bool authorized, std::string_view login_lines) {
    std::string r = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
    // The ways to log in before login only; the implementation only to a
    // logged-in client (RFC 2449 section 6.9 leaves that to the server).
    if (authorized) r += "IMPLEMENTATION yubin\r\n";
    else r += login_lines;
    return r + ".\r\n";
}

Transaction::Transaction(Maildrop& drop) : drop_(drop), deleted_(drop.messages().size(), false) {}

size_t Transaction::deleted_count() const {
    size_t n = 0;
    for (bool d : deleted_) n += d;
    return n;
}

std::string Transaction::summary() const {
    uint64_t n = 0, octets = 0;
    const auto& msgs = drop_.messages();
    for (size_t i = 0; i < msgs.size(); ++i) {
        if (deleted_[i]) continue;
        ++n;
        octets += msgs[i].size;
    }
    return std::to_string(n) + " message" + (n == 1 ? "" : "s") + " (" + std::to_string(octets) + " octets)";
}

std::string Transaction::opening() const { return ok("maildrop has " + summary()); }

std::string Transaction::timeout_reply() const { return err("disconnected for inactivity"); }

Reply Transaction::error(std::string text) {
    if (++errors_ > max_errors) return Reply{err(text) + err("too many errors; closing connection"), nullptr, true};
    return Reply{err(text)};
}

Reply Transaction::too_long() { return error("line too long"); }

bool Transaction::message_arg(std::string_view arg, size_t& index, Reply& bad) {
    auto n = parse_number(arg);
    if (!n) {
        bad = error("invalid message number");
        return false;
    }
    if (*n < 1 || *n > deleted_.size()) {
        bad = error("no such message");
        return false;
    }
    index = static_cast<size_t>(*n - 1);
    if (deleted_[index]) {
        bad = error("message " + std::to_string(*n) + " already deleted");
        return false;
    }
    return true;
}

Reply Transaction::retrieve(size_t index, std::optional<uint64_t> body_lines) {
    std::unique_ptr<ByteReader> in = drop_.open(index);
    if (!in) return error("[SYS/PERM] message " + std::to_string(index + 1) + " was removed by another program");
    const uint64_t size = drop_.messages()[index].size;
    if (!body_lines) ++retrieved_;
    return Reply{ok(body_lines ? "top of message follows" : std::to_string(size) + " octets"),
                 std::make_unique<Transfer>(std::move(in), body_lines)};
}

Reply Transaction::list(const std::vector<std::string>& args, bool uidl) {
    const auto& msgs = drop_.messages();
    auto value = [&](size_t i) { return uidl ? msgs[i].uidl : std::to_string(msgs[i].size); };
    if (args.size() > 1) return error(uidl ? "syntax: UIDL [msg]" : "syntax: LIST [msg]");
    if (args.size() == 1) {
        size_t i;
        Reply bad;
        if (!message_arg(args[0], i, bad)) return bad;
        return Reply{ok(std::to_string(i + 1) + " " + value(i))};
    }
    std::string r = uidl ? ok("unique-id listing follows") : ok(summary());
    for (size_t i = 0; i < msgs.size(); ++i)
        if (!deleted_[i]) r += std::to_string(i + 1) + " " + value(i) + "\r\n";
    return Reply{r + ".\r\n"};
}

Reply Transaction::quit() {
    const size_t n = deleted_count();
    updated_ = true;
    if (!drop_.update(deleted_)) return Reply{err("[SYS/TEMP] some deleted messages were not removed"), nullptr, true};
    return Reply{ok("yubin POP3 server signing off (" + std::to_string(n) + " message" + (n == 1 ? "" : "s") +
                    " deleted)"),
                 nullptr, true};
}

Reply Transaction::command(std::string_view line) {
    const Command c = parse_command(line);
    const auto& a = c.args;
    auto no_args = [&](const char* verb) -> std::optional<Reply> {
        if (a.empty()) return std::nullopt;
        return error(std::string(verb) + " takes no argument");
    };
    if (c.verb == "STAT") {
        if (auto bad = no_args("STAT")) return std::move(*bad);
        uint64_t n = 0, octets = 0;
        for (size_t i = 0; i < deleted_.size(); ++i)
            if (!deleted_[i]) ++n, octets += drop_.messages()[i].size;
        return Reply{ok(std::to_string(n) + " " + std::to_string(octets))};
    }
    if (c.verb == "LIST" || c.verb == "UIDL") return list(a, c.verb == "UIDL");
    if (c.verb == "RETR" || c.verb == "DELE") {
        if (a.size() != 1) return error("syntax: " + c.verb + " msg");
        size_t i;
        Reply bad;
        if (!message_arg(a[0], i, bad)) return bad;
        if (c.verb == "RETR") return retrieve(i, std::nullopt);
        deleted_[i] = true;
        return Reply{ok("message " + std::to_string(i + 1) + " deleted")};
    }
    if (c.verb == "TOP") {
        if (a.size() != 2) return error("syntax: TOP msg n");
        auto lines = parse_number(a[1]);
        if (!lines) return error("invalid number of lines");
        size_t i;
        Reply bad;
        if (!message_arg(a[0], i, bad)) return bad;
        return retrieve(i, *lines);
    }
    if (c.verb == "NOOP") {
        if (auto bad = no_args("NOOP")) return std::move(*bad);
        return Reply{ok("")};
    }
    if (c.verb == "RSET") {
        if (auto bad = no_args("RSET")) return std::move(*bad);
        deleted_.assign(deleted_.size(), false);
        return Reply{ok("maildrop has " + summary())};
    }
    if (c.verb == "QUIT") {
        if (auto bad = no_args("QUIT")) return std::move(*bad);
        return quit();
    }
    if (c.verb == "CAPA") {
        if (auto bad = no_args("CAPA")) return std::move(*bad);
        return Reply{capa_reply(true)};
    }
    if (c.verb == "USER" || c.verb == "PASS" || c.verb == "APOP") return error("already authenticated");
    return error("unknown command");
}

}  // namespace yubin::pop3
