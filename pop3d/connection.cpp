#include "connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "io.hpp"

namespace yubin::pop3d {

const char* end_name(End e) {
    switch (e) {
    case End::closed: return "closed";
    case End::handoff: return "login";
    case End::starttls: return "starttls";
    case End::dropped: return "dropped";
    case End::timeout: return "timeout";
    case End::write_failed: return "write-failed";
    case End::error: return "error";
    }
    return "?";
}

Connection::Connection(Handler& handler, long timeout_seconds)
    : handler_(handler), timeout_(seconds(static_cast<double>(timeout_seconds))) {
    // poll(2), not epoll: fd 0 may be a regular file (pop3d < dialog).
    event_config* cfg = event_config_new();
    event_config_avoid_method(cfg, "epoll");
    base_.reset(event_base_new_with_config(cfg));
    event_config_free(cfg);
    if (!base_) throw std::runtime_error("cannot create an event base");
    set_nonblock(0);
    set_nonblock(1);
    // Replies go out in large writes already; without Nagle the last
    // partial segment of one is not held back waiting for the client's
    // delayed ACK, which stalls a pipelining client. (Not a socket: ignored.)
    int one = 1;
    ::setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rd_ = make_event(base_.get(), 0, EV_READ, on_read, this);
    wr_ = make_event(base_.get(), 1, EV_WRITE, on_write, this);
    timer_ = make_event(base_.get(), -1, 0, on_delay, this);
}

Connection::~Connection() = default;

End Connection::run(std::string first, std::string input) {
    ended_ = false;
    out_ = std::move(first);
    out_pos_ = 0;
    in_.append(input);
    guarded(&Connection::advance);
    if (!ended_) event_base_dispatch(base_.get());
    return end_;
}

End Connection::send_and_close(std::string text) {
    closing_ = true;
    return run(std::move(text), "");
}

void Connection::finish(End e) {
    if (ended_) return;
    ended_ = true;
    end_ = e;
    event_del(rd_.get());
    event_del(wr_.get());
    event_del(timer_.get());
    event_base_loopbreak(base_.get());
}

// A reply that cannot be completed (a message file that fails mid-read)
// ends the connection: the client sees it as a dropped one.
void Connection::guarded(void (Connection::*fn)()) {
    try {
        (this->*fn)();
    } catch (const std::exception& e) {
        error_ = e.what();
        finish(End::error);
    }
}

void Connection::apply(Step s) {
    if (s.delay_ms > 0) {
        delaying_ = true;
        const long ms = s.delay_ms;
        s.delay_ms = 0;
        delayed_ = std::move(s);
        timeval tv{ms / 1000, (ms % 1000) * 1000};
        event_add(timer_.get(), &tv);
        return;
    }
    if (s.start_tls && in_.pending_size() > 0) {
        // What was pipelined behind STLS came in clear text: it must never
        // be taken as sent under TLS (the CVE-2011-0411 class).
        out_ += pop3::err("commands pipelined after STLS; closing connection");
        closing_ = true;
        closing_end_ = End::closed;
        return;
    }
    out_ += s.text;
    body_ = std::move(s.body);
    if (s.close || s.handoff || s.start_tls) {
        closing_ = true;
        closing_end_ = s.handoff ? End::handoff : s.start_tls ? End::starttls : End::closed;
    }
}

void Connection::produce() {
    std::string line;
    while (!ended_ && out_.size() - out_pos_ < high_water) {
        if (body_) {
            if (!body_->fill(out_)) body_.reset();
            continue;
        }
        if (closing_ || delaying_) return;
        in_.set_limit(handler_.line_limit());
        auto kind = in_.next(line);
        if (kind == pop3::LineBuffer::Kind::none) return;
        apply(kind == pop3::LineBuffer::Kind::line ? handler_.line(line) : handler_.too_long());
    }
}

bool Connection::write_some() {
    ssize_t n;
    if (tls_) {
        size_t done = 0;
        switch (tls_->write(out_.data() + out_pos_, out_.size() - out_pos_, done)) {
        case TlsStream::Io::ok: n = static_cast<ssize_t>(done); break;
        case TlsStream::Io::again:
            event_add(tls_->wants_read() ? rd_.get() : wr_.get(), &timeout_);   // a read brings us back too
            return false;
        default: finish(End::write_failed); return false;
        }
    } else {
        n = ::write(1, out_.data() + out_pos_, out_.size() - out_pos_);
    }
    if (n < 0) {
        if (errno == EINTR) return true;
        if (errno == EAGAIN) {
            event_add(wr_.get(), &timeout_);   // a client that stops reading is timed out too
            return false;
        }
        finish(End::write_failed);
        return false;
    }
    out_pos_ += static_cast<size_t>(n);
    bytes_out_ += static_cast<uint64_t>(n);
    if (out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    } else if (out_pos_ > high_water) {
        out_.erase(0, out_pos_);
        out_pos_ = 0;
    }
    return true;
}

void Connection::advance() {
    while (!ended_) {
        produce();
        if (ended_) return;
        if (out_pos_ < out_.size()) {
            if (!write_some()) return;
            continue;
        }
        if (body_) continue;
        if (closing_) return finish(closing_end_);
        if (delaying_) return;   // the timer brings us back
        if (tls_ && tls_->pending()) event_active(rd_.get(), EV_READ, 0);   // decrypted already: no poll(2) says so
        else event_add(rd_.get(), &timeout_);
        return;
    }
}

void Connection::read_some() {
    char buf[65536];
    if (tls_) {
        size_t got = 0;
        read_wants_write_ = false;
        switch (tls_->read(buf, sizeof buf, got)) {
        case TlsStream::Io::ok: break;
        case TlsStream::Io::again:
            read_wants_write_ = tls_->wants_write();
            event_add(read_wants_write_ ? wr_.get() : rd_.get(), &timeout_);
            return;
        default: return finish(End::dropped);
        }
        in_.append(std::string_view(buf, got));
        return advance();
    }
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        event_add(rd_.get(), &timeout_);
        return;
    }
    if (n <= 0) return finish(End::dropped);   // nothing is changed: no UPDATE without QUIT
    in_.append(std::string_view(buf, static_cast<size_t>(n)));
    advance();
}

void Connection::on_read(evutil_socket_t, short what, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (what & EV_TIMEOUT) {
        c->out_ += c->handler_.timeout_reply();
        c->closing_ = true;
        c->closing_end_ = End::timeout;
        c->guarded(&Connection::advance);
        return;
    }
    c->guarded(&Connection::read_some);
}

void Connection::on_write(evutil_socket_t, short what, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (what & EV_TIMEOUT) return c->finish(End::write_failed);
    if (c->read_wants_write_) return c->guarded(&Connection::read_some);
    c->guarded(&Connection::advance);
}

void Connection::on_delay(evutil_socket_t, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    c->delaying_ = false;
    c->apply(std::move(c->delayed_));
    c->delayed_ = Step{};
    c->guarded(&Connection::advance);
}

}  // namespace yubin::pop3d
