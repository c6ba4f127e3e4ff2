// transaction.hpp: the TRANSACTION and UPDATE states over a fake
// Maildrop: every command, every error path, and that errors change nothing.
#include "transaction.hpp"

#include "maildir.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin::pop3;

namespace {

class StringReader : public ByteReader {
public:
    explicit StringReader(std::string s) : s_(std::move(s)) {}
    size_t read(char* buf, size_t n) override {
        size_t k = std::min(n, s_.size() - pos_);
        s_.copy(buf, k, pos_);
        pos_ += k;
        return k;
    }
private:
    std::string s_;
    size_t pos_ = 0;
};

class FakeDrop : public Maildrop {
public:
    explicit FakeDrop(std::vector<std::string> bodies) : bodies_(std::move(bodies)) {
        for (size_t i = 0; i < bodies_.size(); ++i) list_.push_back({"uid" + std::to_string(i + 1), yubin::crlf_size(bodies_[i])});
    }
    const std::vector<DropMessage>& messages() const override { return list_; }
    std::unique_ptr<ByteReader> open(size_t i) override {
        if (gone.size() > i && gone[i]) return nullptr;
        return std::make_unique<StringReader>(bodies_[i]);
    }
    bool update(const std::vector<bool>& deleted) override {
        ++updates;
        last_deleted = deleted;
        return !fail_update;
    }
    std::vector<bool> gone, last_deleted;
    int updates = 0;
    bool fail_update = false;

private:
    std::vector<std::string> bodies_;
    std::vector<DropMessage> list_;
};

// The whole reply to one command, the body included.
std::string say(Transaction& t, std::string_view line, bool* close = nullptr) {
    Reply r = t.command(line);
    std::string out = r.text;
    if (r.body)
        while (r.body->fill(out)) {
        }
    if (close) *close = r.close;
    return out;
}

const std::vector<std::string> three = {"Subject: one\n\nbody 1\n", "Subject: two\n\n.dot\nx\ny\n", "S: 3\n\n3\n"};

}  // namespace

TEST_CASE("opening, STAT and LIST count octets as sent", "[pop3_transaction]") {
    FakeDrop d(three);
    Transaction t(d);
    CHECK(t.opening() == "+OK maildrop has 3 messages (" + std::to_string(24 + 28 + 11) + " octets)\r\n");
    CHECK(say(t, "STAT") == "+OK 3 63\r\n");
    CHECK(say(t, "LIST") == "+OK 3 messages (63 octets)\r\n1 24\r\n2 28\r\n3 11\r\n.\r\n");
    CHECK(say(t, "list 2") == "+OK 2 28\r\n");
    CHECK(say(t, "UIDL") == "+OK unique-id listing follows\r\n1 uid1\r\n2 uid2\r\n3 uid3\r\n.\r\n");
    CHECK(say(t, "UIDL 3") == "+OK 3 uid3\r\n");
}

TEST_CASE("RETR and TOP send the message; RETR counts", "[pop3_transaction]") {
    FakeDrop d(three);
    Transaction t(d);
    CHECK(say(t, "RETR 2") == "+OK 28 octets\r\nSubject: two\r\n\r\n..dot\r\nx\r\ny\r\n.\r\n");
    CHECK(say(t, "TOP 2 1") == "+OK top of message follows\r\nSubject: two\r\n\r\n..dot\r\n.\r\n");
    CHECK(say(t, "TOP 2 0") == "+OK top of message follows\r\nSubject: two\r\n\r\n.\r\n");
    CHECK(t.retrieved() == 1);
}

TEST_CASE("DELE hides a message until RSET; QUIT runs UPDATE with the flags", "[pop3_transaction]") {
    FakeDrop d(three);
    Transaction t(d);
    CHECK(say(t, "DELE 1") == "+OK message 1 deleted\r\n");
    CHECK(say(t, "STAT") == "+OK 2 39\r\n");
    CHECK(say(t, "LIST") == "+OK 2 messages (39 octets)\r\n2 28\r\n3 11\r\n.\r\n");
    CHECK(say(t, "UIDL") == "+OK unique-id listing follows\r\n2 uid2\r\n3 uid3\r\n.\r\n");
    for (const char* c : {"DELE 1", "RETR 1", "TOP 1 0", "LIST 1", "UIDL 1"})
        CHECK(say(t, c) == "-ERR message 1 already deleted\r\n");
    CHECK(say(t, "RSET") == "+OK maildrop has 3 messages (63 octets)\r\n");
    CHECK(say(t, "DELE 3") == "+OK message 3 deleted\r\n");
    CHECK(d.updates == 0);   // nothing happens before QUIT
    bool close = false;
    CHECK(say(t, "QUIT", &close) == "+OK yubin POP3 server signing off (1 message deleted)\r\n");
    CHECK(close);
    CHECK(d.updates == 1);
    CHECK(d.last_deleted == std::vector<bool>{false, false, true});
    CHECK(t.updated());
}

TEST_CASE("a failed UPDATE answers -ERR and still closes", "[pop3_transaction]") {
    FakeDrop d(three);
    d.fail_update = true;
    Transaction t(d);
    say(t, "DELE 2");
    bool close = false;
    CHECK(say(t, "QUIT", &close) == "-ERR [SYS/TEMP] some deleted messages were not removed\r\n");
    CHECK(close);
}

TEST_CASE("bad commands get -ERR and change nothing", "[pop3_transaction]") {
    struct Row { const char* line; const char* reply; };
    for (Row r : {Row{"RETR", "-ERR syntax: RETR msg"}, Row{"RETR 1 2", "-ERR syntax: RETR msg"},
                  Row{"RETR x", "-ERR invalid message number"}, Row{"RETR -1", "-ERR invalid message number"},
                  Row{"RETR 0", "-ERR no such message"}, Row{"RETR 4", "-ERR no such message"},
                  Row{"RETR 99999999999", "-ERR invalid message number"},
                  Row{"DELE", "-ERR syntax: DELE msg"}, Row{"DELE 4", "-ERR no such message"},
                  Row{"TOP 1", "-ERR syntax: TOP msg n"}, Row{"TOP 1 x", "-ERR invalid number of lines"},
                  Row{"TOP 1 -1", "-ERR invalid number of lines"}, Row{"TOP 9 1", "-ERR no such message"},
                  Row{"LIST 1 2", "-ERR syntax: LIST [msg]"}, Row{"LIST 0", "-ERR no such message"},
                  Row{"UIDL a", "-ERR invalid message number"}, Row{"STAT 1", "-ERR STAT takes no argument"},
                  Row{"NOOP x", "-ERR NOOP takes no argument"}, Row{"RSET x", "-ERR RSET takes no argument"},
                  Row{"QUIT now", "-ERR QUIT takes no argument"}, Row{"CAPA x", "-ERR CAPA takes no argument"},
                  Row{"USER alice", "-ERR already authenticated"}, Row{"PASS x", "-ERR already authenticated"},
                  Row{"APOP a b", "-ERR already authenticated"}, Row{"LAST", "-ERR unknown command"},
                  Row{"", "-ERR unknown command"}, Row{"STLS", "-ERR unknown command"}}) {
        FakeDrop d(three);
        Transaction t(d);
        say(t, "DELE 3");
        INFO(r.line);
        bool close = true;
        CHECK(say(t, r.line, &close) == std::string(r.reply) + "\r\n");
        CHECK_FALSE(close);
        CHECK(say(t, "STAT") == "+OK 2 52\r\n");
        CHECK(d.updates == 0);
    }
}

TEST_CASE("NOOP, CAPA, too long lines", "[pop3_transaction]") {
    FakeDrop d(three);
    Transaction t(d);
    CHECK(say(t, "NOOP") == "+OK\r\n");
    const std::string capa = say(t, "CAPA");
    CHECK(capa.rfind("+OK", 0) == 0);
    for (const char* cap : {"\r\nTOP\r\n", "\r\nUIDL\r\n", "\r\nRESP-CODES\r\n", "\r\nPIPELINING\r\n",
                            "\r\nIMPLEMENTATION yubin\r\n"})
        CHECK(capa.find(cap) != std::string::npos);
    CHECK(capa.find("\r\nUSER\r\n") == std::string::npos);
    CHECK(capa.substr(capa.size() - 5) == "\r\n.\r\n");
    CHECK(t.too_long().text == "-ERR line too long\r\n");
}

TEST_CASE("a message removed by another program gives -ERR, not a broken reply", "[pop3_transaction]") {
    FakeDrop d(three);
    d.gone = {false, true, false};
    Transaction t(d);
    CHECK(say(t, "RETR 2") == "-ERR [SYS/PERM] message 2 was removed by another program\r\n");
    CHECK(say(t, "RETR 3").rfind("+OK 11 octets\r\n", 0) == 0);
}

TEST_CASE("the 21st error closes the connection", "[pop3_transaction]") {
    FakeDrop d(three);
    Transaction t(d);
    for (unsigned i = 0; i < Transaction::max_errors; ++i) CHECK_FALSE(t.command("BOGUS").close);
    Reply r = t.command("BOGUS");
    CHECK(r.close);
    CHECK(r.text == "-ERR unknown command\r\n-ERR too many errors; closing connection\r\n");
    CHECK(d.updates == 0);
}

TEST_CASE("an empty maildrop", "[pop3_transaction]") {
    FakeDrop d({});
    Transaction t(d);
    CHECK(t.opening() == "+OK maildrop has 0 messages (0 octets)\r\n");
    CHECK(say(t, "LIST") == "+OK 0 messages (0 octets)\r\n.\r\n");
    CHECK(say(t, "RETR 1") == "-ERR no such message\r\n");
    CHECK(say(t, "QUIT") == "+OK yubin POP3 server signing off (0 messages deleted)\r\n");
}
