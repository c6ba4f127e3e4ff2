// The TRANSACTION and UPDATE states of a POP3 session (RFC 1939 sections 5
// and 6, CAPA from RFC 2449) as a state machine: command lines in, replies
// out. The mailbox is behind the Maildrop interface, so every rule is
// testable without sockets or files.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "encode.hpp"

namespace yubin::pop3 {

struct DropMessage {
    std::string uidl;
    uint64_t size = 0;    // octets as RETR sends the message (encode.hpp)
};

class Maildrop {
public:
    virtual ~Maildrop() = default;
    // The messages as of the start of the session; numbered from 1 in order.
    virtual const std::vector<DropMessage>& messages() const = 0;
    // The message's bytes; nullptr when it is no longer there. May throw SysError.
    virtual std::unique_ptr<ByteReader> open(size_t index) = 0;
    // The UPDATE state: remove each message whose flag is set. False when
    // some of them could not be removed.
    virtual bool update(const std::vector<bool>& deleted) = 0;
};

// A reply, and what the connection does after sending it.
struct Reply {
    std::string text;
    std::unique_ptr<Transfer> body;   // RETR and TOP: the message, after text
    bool close = false;               // end the connection once all is sent
};

class Transaction {
public:
    static constexpr unsigned max_errors = 20;

    explicit Transaction(Maildrop& drop);
    // The reply that ends AUTHORIZATION: "+OK maildrop has N messages (M octets)".
    std::string opening() const;
    Reply command(std::string_view line);
    Reply too_long();                 // a line over pop3::max_line
    std::string timeout_reply() const;

    bool updated() const { return updated_; }           // QUIT ran the UPDATE state
    size_t retrieved() const { return retrieved_; }     // RETR commands answered +OK
    size_t deleted_count() const;

private:
    Reply error(std::string text);
    // The message numbered by arg, or an error reply in `bad`.
    bool message_arg(std::string_view arg, size_t& index, Reply& bad);
    std::string summary() const;      // "N messages (M octets)"
    Reply retrieve(size_t index, std::optional<uint64_t> body_lines);
    Reply list(const std::vector<std::string>& args, bool uidl);
    Reply quit();

    Maildrop& drop_;
    std::vector<bool> deleted_;
    unsigned errors_ = 0;
    bool updated_ = false;
    size_t retrieved_ = 0;
};

// The CAPA reply (RFC 2449): in TRANSACTION (login_lines empty), or in
// AUTHORIZATION with the lines that say how to log in there ("USER\r\n",
// "SASL PLAIN\r\n", "STLS\r\n").
std::string capa_reply(bool authorized, std::string_view login_lines = {});

}  // namespace yubin::pop3
