// One POP3 connection on fds 0 and 1, driven by libevent: lines in, replies
// and message bodies out, with flow control (a client that pipelines many
// RETRs never makes pop3d buffer more than about high_water octets), the
// idle timeout, and a delay before a reply (failed logins).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "encode.hpp"
#include "event.hpp"
#include "tls.hpp"
#include "lines.hpp"

namespace yubin::pop3d {

// What to do with one command's reply.
struct Step {
    std::string text;
    std::unique_ptr<pop3::Transfer> body;   // sent after text
    long delay_ms = 0;      // send text only after this delay, reading nothing meanwhile
    bool close = false;     // end the connection once everything is sent
    bool handoff = false;   // stop once everything is sent: the caller takes the connection over
    bool start_tls = false; // stop once everything is sent: the caller does the TLS handshake (STLS);
                            // bytes the client pipelined behind the command end the connection instead
};

class Handler {
public:
    virtual ~Handler() = default;
    virtual Step line(std::string_view line) = 0;
    virtual Step too_long() = 0;
    virtual std::string timeout_reply() = 0;
    // The longest line the handler takes next, CRLF included.
    virtual size_t line_limit() const { return pop3::max_line; }
};

enum class End {
    closed,        // a Step with close (QUIT, too many errors ...)
    handoff,       // a Step with handoff (a successful login)
    starttls,      // a Step with start_tls, nothing pipelined behind it
    dropped,       // the client closed the connection or a read failed
    timeout,       // idle for the timeout
    write_failed,  // a reply could not be written (error, or the client stopped reading)
    error,         // a message could not be read in the middle of a reply
};
const char* end_name(End e);

class Connection {
public:
    static constexpr size_t high_water = 128 * 1024;

    Connection(Handler& handler, long timeout_seconds);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends `first`, takes `input` as already received from the client, and
    // serves the client until the connection ends.
    End run(std::string first, std::string input);
    // Sends text and ends the connection (a refusal before any command).
    End send_and_close(std::string text);
    // From now on, bytes in and out go through TLS (after the handshake).
    // Also after End::starttls, before the next run().
    void use_tls(std::unique_ptr<TlsStream> tls) {
        tls_ = std::move(tls);
        closing_ = false;
        closing_end_ = End::closed;
    }
    std::unique_ptr<TlsStream> take_tls() { return std::move(tls_); }
    // The client's bytes that no line was made of yet (after a handoff).
    std::string take_pending() { return in_.take_pending(); }
    uint64_t bytes_out() const { return bytes_out_; }
    const std::string& error() const { return error_; }

private:
    static void on_read(evutil_socket_t, short what, void* arg);
    static void on_write(evutil_socket_t, short what, void* arg);
    static void on_delay(evutil_socket_t, short what, void* arg);
    void advance();           // produce and write until blocked or done
    void produce();
    void apply(Step s);
    bool write_some();        // false when blocked or ended
    void read_some();
    void finish(End e);
    void guarded(void (Connection::*fn)());

    Handler& handler_;
    timeval timeout_;
    EventBasePtr base_;
    EventPtr rd_, wr_, timer_;
    pop3::LineBuffer in_;
    std::string out_;
    size_t out_pos_ = 0;
    uint64_t bytes_out_ = 0;
    std::unique_ptr<pop3::Transfer> body_;
    Step delayed_;
    bool delaying_ = false;
    bool closing_ = false;
    End closing_end_ = End::closed;
    bool ended_ = false;
    std::unique_ptr<TlsStream> tls_;
    bool read_wants_write_ = false;   // TLS: a read waits for the socket to take bytes
    End end_ = End::closed;
    std::string error_;
};

}  // namespace yubin::pop3d
