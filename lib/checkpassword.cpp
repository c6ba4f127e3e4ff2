#include "checkpassword.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>

#include "io.hpp"
#include "sasl.hpp"
#include "spawn.hpp"

namespace yubin {

namespace {

long now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

PasswordCheck temporary(std::string why) {
    PasswordCheck c;
    c.error = std::move(why);
    return c;
}

// "user\0password\0[timestamp\0]", or "" when it is longer than the
// checkpassword limit (no password is that long).
std::string request_bytes(std::string_view user, std::string_view password, std::string_view timestamp) {
    std::string request;
    request.reserve(user.size() + password.size() + timestamp.size() + 3);
    request.append(user).push_back('\0');
    request.append(password).push_back('\0');
    if (!timestamp.empty()) request.append(timestamp).push_back('\0');
    if (request.size() > 512) {
        OPENSSL_cleanse(request.data(), request.size());
        request.clear();
    }
    return request;
}

// "user\0home\0" into an ok answer.
PasswordCheck accepted(const std::string& answer, const std::string& who) {
    size_t a = answer.find('\0');
    size_t b = a == std::string::npos ? a : answer.find('\0', a + 1);
    if (b == std::string::npos) return temporary(who + " gave no user and home");
    PasswordCheck out;
    out.result = PasswordCheck::Result::ok;
    out.user = answer.substr(0, a);
    out.home = answer.substr(a + 1, b - a - 1);
    return out;
}

}  // namespace

std::optional<PasswordCheck> check_with_service(const std::string& socket, std::string_view user,
                                                std::string_view password, std::string_view timestamp,
                                                int timeout_ms) {
    std::string request = request_bytes(user, password, timestamp);
    WipeOnExit wiped{request};
    if (request.empty()) {
        PasswordCheck refused;
        refused.result = PasswordCheck::Result::refused;
        return refused;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket.size() >= sizeof addr.sun_path) return std::nullopt;
    std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
    // Non-blocking: a service whose queue of connections is full (stuck, or
    // stopped without its socket removed) is no answer, not a wait.
    Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return std::nullopt;
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        return std::nullopt;
    const long deadline = now_ms() + timeout_ms;
    char buf[8192];
    for (;;) {
        pollfd p{fd.get(), POLLIN, 0};
        long left = deadline - now_ms();
        int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return temporary("yubin-authd did not answer in time");
        if (r < 0) return std::nullopt;
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return std::nullopt;   // it hung up: the program answers instead
        std::string answer(buf, static_cast<size_t>(n));
        switch (answer[0]) {
        case 'K': return accepted(answer.substr(1), "yubin-authd");
        case 'N': {
            PasswordCheck refused;
            refused.result = PasswordCheck::Result::refused;
            return refused;
        }
        default: return temporary("yubin-authd: " + answer.substr(1));
        }
    }
}

PasswordCheck check_credentials(const Instance& inst, std::string_view user, std::string_view password,
                                std::string_view timestamp) {
    if (auto c = check_with_service(inst.path("auth/socket"), user, password, timestamp)) return *c;
    return check_with_program(inst.path("bin/yubin-checkpassword"), user, password, timestamp);
}

PasswordCheck check_with_program(const std::string& program, std::string_view user, std::string_view password,
                                 std::string_view timestamp, int timeout_ms) {
    std::string request = request_bytes(user, password, timestamp);
    WipeOnExit wiped{request};
    PasswordCheck out;
    if (request.empty()) {
        out.result = PasswordCheck::Result::refused;
        return out;
    }
    int in[2], reply[2];
    if (::pipe2(in, O_CLOEXEC) < 0) return temporary(std::string("pipe: ") + std::strerror(errno));
    Fd in_r(in[0]), in_w(in[1]);
    if (::pipe2(reply, O_CLOEXEC) < 0) return temporary(std::string("pipe: ") + std::strerror(errno));
    Fd reply_r(reply[0]), reply_w(reply[1]);
    try {
        write_all(in_w.get(), request);   // at most 512 bytes: a pipe takes them without a reader
    } catch (const SysError& e) {
        return temporary(e.what());
    }
    in_w.reset();
    Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null) return temporary(std::string("/dev/null: ") + std::strerror(errno));
    // Never the client's connection on its fds 0 and 1.
    const char* argv[] = {"yubin-checkpassword", nullptr};
    Spawn s;
    s.path = program;
    s.argv = argv;
    s.fds = {{null.get(), 0}, {null.get(), 1}, {in_r.get(), 3}, {reply_w.get(), 4}};
    pid_t pid;
    if (int err = spawn_program(s, &pid)) return temporary("cannot run " + program + ": " + std::strerror(err));
    in_r.reset();
    reply_w.reset();
    std::string answer;
    const long deadline = now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        pollfd p{reply_r.get(), POLLIN, 0};
        long left = deadline - now_ms();
        int r = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            timed_out = true;
            break;
        }
        char buf[1024];
        ssize_t n = ::read(reply_r.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (answer.size() < 8192) answer.append(buf, static_cast<size_t>(n));
    }
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) return temporary(program + " did not answer in time");
    if (!WIFEXITED(status)) return temporary(program + " was killed by signal " + std::to_string(WTERMSIG(status)));
    switch (WEXITSTATUS(status)) {
    case 0: return accepted(answer, program + " (on descriptor 4)");
    case 1: out.result = PasswordCheck::Result::refused; return out;
    case 2: return temporary(program + " says it was called wrongly (exit 2)");
    default: return temporary(program + " failed temporarily (exit " + std::to_string(WEXITSTATUS(status)) + ")");
    }
}

}  // namespace yubin
