#include "handoff.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

using namespace yubin;

namespace {

struct Pair {
    Fd a, b;
    explicit Pair(int type = SOCK_SEQPACKET) {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

// A pipe whose write end is sent; what the receiver writes arrives at r.
struct Probe {
    Fd r, w;
    Probe() {
        int p[2];
        REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        r.reset(p[0]);
        w.reset(p[1]);
    }
};

// Sends a raw packet with the given fds attached.
void send_raw(int sock, const std::string& text, std::vector<int> fds) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size() + 1));
    if (!fds.empty()) {
        msg.msg_control = control.data();
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    }
    REQUIRE(::sendmsg(sock, &msg, 0) == static_cast<ssize_t>(text.size()));
}

}  // namespace

TEST_CASE("handoff: a connection and its variables arrive together", "[handoff]") {
    Pair s;
    Probe p;
    REQUIRE(send_handoff(s.a.get(), p.w.get(), {{"TCPREMOTEIP", "192.0.2.7"}, {"RELAYCLIENT", ""},
                                                {"X", "a=b c"}}) == 0);
    Handoff h = receive_handoff(s.b.get());
    CHECK_FALSE(h.end);
    REQUIRE(h.conn);
    CHECK(h.vars.size() == 3);
    CHECK(h.vars["TCPREMOTEIP"] == "192.0.2.7");
    CHECK(h.vars.count("RELAYCLIENT") == 1);
    CHECK(h.vars["RELAYCLIENT"].empty());
    CHECK(h.vars["X"] == "a=b c");
    // The received fd is the same pipe, and close-on-exec.
    CHECK((::fcntl(h.conn.get(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(h.conn.get(), "hi", 2) == 2);
    char buf[4] = {};
    CHECK(::read(p.r.get(), buf, sizeof buf) == 2);
    CHECK(std::string(buf) == "hi");

    REQUIRE(send_ready(s.b.get()));
    char r = 0;
    CHECK(::recv(s.a.get(), &r, 1, 0) == 1);
    CHECK(r == 'r');
}

TEST_CASE("handoff: no variables at all is still a connection", "[handoff]") {
    Pair s;
    Probe p;
    REQUIRE(send_handoff(s.a.get(), p.w.get(), {}) == 0);
    Handoff h = receive_handoff(s.b.get());
    CHECK_FALSE(h.end);
    CHECK(h.conn);
    CHECK(h.vars.empty());
}

TEST_CASE("handoff: variables that cannot be sent are refused", "[handoff]") {
    Pair s;
    Probe p;
    CHECK(send_handoff(s.a.get(), p.w.get(), {{"A=B", "x"}}) == EINVAL);
    CHECK(send_handoff(s.a.get(), p.w.get(), {{"", "x"}}) == EINVAL);
    CHECK(send_handoff(s.a.get(), p.w.get(), {{"A", std::string("x\0y", 3)}}) == EINVAL);
    CHECK(send_handoff(s.a.get(), p.w.get(), {{"A", std::string(max_handoff_packet, 'x')}}) == EMSGSIZE);
    // The other side has gone.
    s.b.reset();
    CHECK(send_handoff(s.a.get(), p.w.get(), {{"A", "1"}}) == EPIPE);
    CHECK_FALSE(send_ready(s.a.get()));
}

TEST_CASE("handoff: malformed packets give no connection, and their fds are closed", "[handoff]") {
    Pair s;
    SECTION("no fd") {
        send_raw(s.a.get(), std::string("A=1\0", 4), {});
        Handoff h = receive_handoff(s.b.get());
        CHECK_FALSE(h.end);
        CHECK_FALSE(h.conn);
    }
    SECTION("two fds: neither is kept, both are closed") {
        Probe p1, p2;
        send_raw(s.a.get(), std::string("A=1\0", 4), {p1.w.get(), p2.w.get()});
        p1.w.reset();
        p2.w.reset();
        Handoff h = receive_handoff(s.b.get());
        CHECK_FALSE(h.conn);
        char c;
        CHECK(::read(p1.r.get(), &c, 1) == 0);  // EOF: every write end is closed
        CHECK(::read(p2.r.get(), &c, 1) == 0);
    }
    SECTION("text without its final NUL, or an entry without =") {
        Probe p;
        send_raw(s.a.get(), "A=1", {p.w.get()});
        CHECK_FALSE(receive_handoff(s.b.get()).conn);
        send_raw(s.a.get(), std::string("A=1\0NOEQUALS\0", 13), {p.w.get()});
        CHECK_FALSE(receive_handoff(s.b.get()).conn);
        send_raw(s.a.get(), std::string("=1\0", 3), {p.w.get()});
        CHECK_FALSE(receive_handoff(s.b.get()).conn);
    }
    SECTION("a packet longer than the limit is truncated, and refused") {
        Probe p;
        send_raw(s.a.get(), "A=" + std::string(max_handoff_packet + 10, 'x') + std::string(1, '\0'), {p.w.get()});
        Handoff h = receive_handoff(s.b.get());
        CHECK_FALSE(h.end);
        CHECK_FALSE(h.conn);
    }
    SECTION("the other side closing is the end") {
        s.a.reset();
        CHECK(receive_handoff(s.b.get()).end);
    }
}

TEST_CASE("handoff: the fd from the environment must be a unix SOCK_SEQPACKET socket", "[handoff]") {
    ::unsetenv(handoff_variable);
    CHECK(handoff_fd_from_environment() == -1);

    Pair seq;
    ::setenv(handoff_variable, std::to_string(seq.b.get()).c_str(), 1);
    CHECK(handoff_fd_from_environment() == seq.b.get());
    CHECK(std::getenv(handoff_variable) == nullptr);  // removed: children do not see it

    Pair stream(SOCK_STREAM);
    ::setenv(handoff_variable, std::to_string(stream.b.get()).c_str(), 1);
    CHECK(handoff_fd_from_environment() == -1);
    CHECK(std::getenv(handoff_variable) == nullptr);

    Probe p;  // a pipe
    ::setenv(handoff_variable, std::to_string(p.r.get()).c_str(), 1);
    CHECK(handoff_fd_from_environment() == -1);

    for (const char* bad : {"", "x", "3x", "-4", "1", "99999"}) {
        ::setenv(handoff_variable, bad, 1);
        CHECK(handoff_fd_from_environment() == -1);
    }
}
