#include "session.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "connection.hpp"
#include "maildir_reader.hpp"
#include "transaction.hpp"

namespace yubin::pop3d {

namespace {

// The Maildrop of a Maildir, as scanned when the session started: mail
// that arrives later is not seen, and the UPDATE state touches only the
// messages of this list.
class MaildirDrop : public pop3::Maildrop {
public:
    MaildirDrop(std::string maildir, std::vector<MaildirMessage> msgs, std::optional<MaildirLock> lock)
        : maildir_(std::move(maildir)), msgs_(std::move(msgs)), lock_(std::move(lock)) {
        for (const auto& m : msgs_) list_.push_back({m.uidl, m.size});
    }
    const std::vector<pop3::DropMessage>& messages() const override { return list_; }
    std::unique_ptr<pop3::ByteReader> open(size_t i) override {
        Fd fd = maildir_open(maildir_, msgs_[i]);
        if (!fd) return nullptr;
        return std::make_unique<pop3::FdReader>(fd.release());
    }
    bool update(const std::vector<bool>& deleted) override {
        result_ = maildir_update(maildir_, msgs_, deleted);
        // Released before the reply to QUIT, so that a client that connects
        // again at once does not find the mailbox still in use.
        lock_.reset();
        return result_.failed == 0;
    }
    const MaildirUpdate& result() const { return result_; }

private:
    std::string maildir_;
    std::vector<MaildirMessage> msgs_;
    std::vector<pop3::DropMessage> list_;
    std::optional<MaildirLock> lock_;
    MaildirUpdate result_;
};

class SessionHandler : public Handler {
public:
    explicit SessionHandler(pop3::Transaction& t) : t_(t) {}
    Step line(std::string_view line) override { return convert(t_.command(line)); }
    Step too_long() override { return convert(t_.too_long()); }
    std::string timeout_reply() override { return t_.timeout_reply(); }

private:
    static Step convert(pop3::Reply r) {
        Step s;
        s.text = std::move(r.text);
        s.body = std::move(r.body);
        s.close = r.close;
        return s;
    }
    pop3::Transaction& t_;
};

// What the front end read beyond the login: fd 3 (a memory file), to its
// end; nothing when fd 3 is not open or not a regular file.
std::string read_pending() {
    struct stat st;
    if (::fstat(3, &st) < 0) return {};
    std::string out;
    if (S_ISREG(st.st_mode)) {
        try {
            out = read_all(3, 1 << 20);
        } catch (const SysError&) {
            out.clear();
        }
    }
    ::close(3);
    return out;
}

// A reply that ends the connection before the TRANSACTION state.
int refuse(const Config& cfg, const std::string& reply, int status) {
    struct Nothing : Handler {
        Step line(std::string_view) override { return {}; }
        Step too_long() override { return {}; }
        std::string timeout_reply() override { return {}; }
    } nothing;
    Connection conn(nothing, cfg.timeout);
    conn.send_and_close(reply);
    return status;
}

}  // namespace

int run_session(const Config& cfg, const std::string& maildir, const Log& log) {
    const std::string pending = read_pending();
    const char* u = std::getenv("USER");
    const std::string user = u ? u : "";
    std::optional<MaildirLock> lock;
    std::vector<MaildirMessage> msgs;
    try {
        lock = MaildirLock::try_lock(maildir);
        if (!lock) {
            log({{"event", "in-use"}, {"user", user}, {"remote", cfg.remote}});
            return refuse(cfg, pop3::err("[IN-USE] the mailbox is in use by another POP3 session"),
                          exit_status::ok);
        }
        msgs = maildir_scan(maildir);
    } catch (const std::exception& e) {
        log({{"event", "error"}, {"user", user}, {"error", e.what()}});
        return refuse(cfg, pop3::err("[SYS/TEMP] cannot open the mailbox; try again later"),
                      exit_status::temporary);
    }
    MaildirDrop drop(maildir, std::move(msgs), std::move(lock));
    pop3::Transaction transaction(drop);
    SessionHandler handler(transaction);
    uint64_t octets = 0;
    for (const auto& m : drop.messages()) octets += m.size;
    log({{"event", "session"}, {"user", user}, {"messages", std::to_string(drop.messages().size())},
         {"octets", std::to_string(octets)}});
    Connection conn(handler, cfg.timeout);
    End end = conn.run(transaction.opening(), pending);
    const auto& r = drop.result();
    const std::string reason = transaction.updated() ? "quit" : end_name(end);
    log({{"event", "end"}, {"user", user}, {"reason", reason},
         {"retrieved", std::to_string(transaction.retrieved())}, {"deleted", std::to_string(r.deleted)},
         {"delete-failed", std::to_string(r.failed)}, {"moved", std::to_string(r.moved)},
         {"sent", std::to_string(conn.bytes_out())}});
    if (end == End::error) log({{"event", "error"}, {"user", user}, {"error", conn.error()}});
    return exit_status::ok;
}

}  // namespace yubin::pop3d
