#include "smtp_socket.hpp"

#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace yubin {

namespace {

constexpr size_t send_batch = 64 * 1024;   // queued octets that make send() flush

long long now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// poll one fd until deadline (ms, monotonic); returns revents, 0 on timeout.
short wait_for(int fd, short events, long long deadline) {
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left > 3600000 ? 3600000 : left));
        if (n > 0) return p.revents;
        if (n < 0 && errno != EINTR) throw TransportError(std::string("poll: ") + std::strerror(errno));
    }
}

}  // namespace

Fd connect_tcp(const IpAddress& ip, uint16_t port, int timeout_seconds, std::string& error) {
    Fd fd(::socket(ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        error = std::strerror(errno);
        return Fd();
    }
    sockaddr_storage ss{};
    socklen_t len;
    if (ip.family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        std::memcpy(&sin->sin_addr, ip.bytes.data(), 4);
        len = sizeof *sin;
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        std::memcpy(&sin6->sin6_addr, ip.bytes.data(), 16);
        len = sizeof *sin6;
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) {
        if (errno != EINPROGRESS) {
            error = std::strerror(errno);
            return Fd();
        }
        short ev;
        try {
            ev = wait_for(fd.get(), POLLOUT, now_ms() + 1000LL * timeout_seconds);
        } catch (const TransportError& e) {
            error = e.what();
            return Fd();
        }
        if (!ev) {
            error = "timed out after " + std::to_string(timeout_seconds) + " s";
            return Fd();
        }
        int err = 0;
        socklen_t elen = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
        if (err) {
            error = std::strerror(err);
            return Fd();
        }
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void SocketTransport::send(std::string_view data) {
    out_.append(data);
    if (out_.size() >= send_batch) flush();
}

void SocketTransport::read_some() {
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd_.get(), buf, sizeof buf);
        if (n > 0) {
            try {
                reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
            } catch (const SmtpProtocolError& e) {
                throw TransportError(e.what());
            }
            return;
        }
        if (n == 0) throw TransportError("the server closed the connection");
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        throw TransportError(std::strerror(errno));
    }
}

// Write everything queued. While the socket is not writable, replies that
// arrive are read into the reader, so a pipelining server that is blocked
// writing to us can never deadlock us.
void SocketTransport::flush() {
    size_t pos = 0;
    while (pos < out_.size()) {
        short ev = wait_for(fd_.get(), POLLOUT | POLLIN, now_ms() + 1000LL * timeout_);
        if (!ev) throw TransportError("timed out after " + std::to_string(timeout_) + " s sending");
        if (ev & (POLLIN | POLLHUP)) read_some();
        if (!(ev & (POLLOUT | POLLERR))) continue;
        ssize_t n = ::send(fd_.get(), out_.data() + pos, out_.size() - pos, MSG_NOSIGNAL);
        if (n > 0) pos += static_cast<size_t>(n);
        else if (n < 0 && errno != EINTR && errno != EAGAIN) throw TransportError(std::strerror(errno));
    }
    out_.clear();
}

SmtpReply SocketTransport::read_reply() {
    flush();
    const long long deadline = now_ms() + 1000LL * timeout_;
    for (;;) {
        try {
            if (auto r = reader_.next()) return *r;
        } catch (const SmtpProtocolError& e) {
            throw TransportError(std::string("malformed reply: ") + e.what());
        }
        if (!wait_for(fd_.get(), POLLIN, deadline))
            throw TransportError("timed out after " + std::to_string(timeout_) + " s");
        read_some();
    }
}

}  // namespace yubin
