#include "inject.hpp"
#include "spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "exitcodes.hpp"
#include "netstring.hpp"

namespace yubin {

namespace {
constexpr size_t flush_size = 65536;          // also queue-injectd's largest netstring
constexpr size_t daemon_max_envelope = 1u << 20;
constexpr int connect_timeout = 10;           // seconds; then queue-inject is run instead
constexpr int daemon_timeout = 300;           // seconds for each send and each reply

// SIGPIPE would kill the caller if queue-inject dies early: ignore it for
// the whole process (every caller handles write errors) .
void ignore_sigpipe() {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, nullptr);
}

void set_timeout(int fd, int option, int secs) {
    timeval tv{secs, 0};
    ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

// Did the other side close (or reset) the connection, as opposed to a timeout?
bool closed_by_peer(ssize_t n) { return n == 0 || errno == ECONNRESET || errno == EPIPE; }

// *closed is set when the other side has closed the connection.
bool send_all(int fd, std::string_view data, bool* closed = nullptr) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // also EAGAIN: SO_SNDTIMEO ran out
            if (closed) *closed = closed_by_peer(n);
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// One reply line of queue-injectd (without its newline), or nullopt when
// the connection ends, breaks or times out first; *silent is set when it
// was closed before a single byte came. queue-injectd sends nothing after
// a line until the client speaks again, so a read cannot take more than
// the line.
std::optional<std::string> read_line(int fd, bool* silent = nullptr) {
    std::string line;
    char buf[512];
    while (line.size() < sizeof buf) {
        ssize_t n = ::recv(fd, buf, sizeof buf - line.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (silent) *silent = line.empty() && closed_by_peer(n);
            return std::nullopt;
        }
        line.append(buf, static_cast<size_t>(n));
        size_t nl = line.find('\n');
        if (nl != std::string::npos) return nl + 1 == line.size() ? std::optional(line.substr(0, nl)) : std::nullopt;
    }
    return std::nullopt;
}

// "CODE text": the code, or nullopt when the line is not one.
std::optional<int> reply_code(std::string_view line) {
    int code = 0;
    size_t i = 0;
    for (; i < line.size() && i < 3 && line[i] >= '0' && line[i] <= '9'; ++i) code = code * 10 + (line[i] - '0');
    if (i == 0 || (i < line.size() && line[i] != ' ') || code > 255) return std::nullopt;
    return code;
}
}  // namespace

QueueInjection::Connect QueueInjection::connect_daemon(const std::string& envelope) {
    const std::string path = inst_.path("public/inject");
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (envelope.size() > daemon_max_envelope || path.size() >= sizeof sa.sun_path) return Connect::unavailable;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Connect::unavailable;
    // A full backlog makes connect wait, up to SO_SNDTIMEO.
    set_timeout(fd.get(), SO_SNDTIMEO, connect_timeout);
    int rc;
    while ((rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa)) < 0 && errno == EINTR) {}
    // No socket (ENOENT), nobody listening (ECONNREFUSED), or busy: nothing went out yet.
    if (rc < 0) return Connect::unavailable;
    set_timeout(fd.get(), SO_SNDTIMEO, daemon_timeout);
    set_timeout(fd.get(), SO_RCVTIMEO, daemon_timeout);
    sock_ = std::move(fd);
    std::optional<std::string> line;
    bool silent = false;
    if (send_all(sock_.get(), encode_netstring(envelope), &silent)) line = read_line(sock_.get(), &silent);
    if (line && valid_queue_id(*line)) {
        id_ = *line;
        return Connect::ok;
    }
    if (silent) {
        // Closed without a word: queue-injectd stopping (a connection left
        // in its listen queue) or dying. It committed nothing of ours, and
        // commits nothing without the end of the message: queue-inject may
        // store it instead.
        sock_.reset();
        return Connect::unavailable;
    }
    std::optional<int> code;
    if (line && line->size() > 1 && (*line)[0] == '!') code = reply_code(std::string_view(*line).substr(1));
    refused_ = code && *code != inject_exit::ok ? *code : inject_exit::read_error;
    sock_.reset();
    return Connect::refused;
}

bool QueueInjection::start(const Envelope& envelope) {
    ignore_sigpipe();
    refused_ = 0;
    switch (connect_daemon(encode_qmail_envelope(envelope))) {
    case Connect::ok: return true;
    case Connect::refused: return false;
    case Connect::unavailable: break;
    }
    env_message_ = envelope;
    return start_program();
}

bool QueueInjection::start_program() {
    int msg[2], env[2], id[2];
    if (::pipe2(msg, O_CLOEXEC) < 0) return false;
    Fd msg_r(msg[0]), msg_w(msg[1]);
    if (::pipe2(env, O_CLOEXEC) < 0) return false;
    Fd env_r(env[0]), env_w(env[1]);
    if (::pipe2(id, O_CLOEXEC) < 0) return false;
    Fd id_r(id[0]), id_w(id[1]);
    const char* argv[] = {"queue-inject", "-i", nullptr};
    pid_t pid;
    if (spawn_program({inst_.path("bin/queue-inject"), false, argv, nullptr,
                       {{msg_r.get(), 0}, {env_r.get(), 1}, {id_w.get(), 3}}, ""},
                      &pid) != 0)
        return false;
    pid_ = pid;
    msg_ = std::move(msg_w);
    env_ = std::move(env_w);
    id_w.reset();
    // queue-inject writes "ID\n" and closes its end; EOF without an id means it failed.
    id_.clear();
    char buf[128];
    for (;;) {
        ssize_t n = ::read(id_r.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || id_.size() + static_cast<size_t>(n) > 64) break;
        id_.append(buf, static_cast<size_t>(n));
        if (id_.back() == '\n') break;
    }
    if (!id_.empty() && id_.back() == '\n') id_.pop_back();
    if (!valid_queue_id(id_)) {
        id_.clear();
        broken_ = true;
        return false;
    }
    return true;
}

void QueueInjection::write(std::string_view data) {
    buf_.append(data);
    if (buf_.size() >= flush_size) flush();
}

void QueueInjection::flush() {
    if (sock_) {
        // Empty netstrings end the message: never send one before the end.
        for (std::string_view rest = buf_; !broken_ && !rest.empty(); rest.remove_prefix(std::min(rest.size(), flush_size)))
            if (!send_all(sock_.get(), encode_netstring(rest.substr(0, flush_size)))) broken_ = true;
    } else if (!broken_ && msg_) {
        try {
            write_all(msg_.get(), buf_);
        } catch (const SysError&) {
            broken_ = true;  // queue-inject went away; its exit status says why
        }
    }
    buf_.clear();
}

int QueueInjection::wait() {
    int status;
    pid_t pid = pid_;
    pid_ = -1;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return inject_exit::internal;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return inject_exit::internal;
}

int QueueInjection::finish() {
    if (sock_) {
        flush();
        std::optional<std::string> line;
        if (!broken_ && send_all(sock_.get(), "0:,")) line = read_line(sock_.get());
        else line = read_line(sock_.get());  // why it went away, if it said so
        sock_.reset();
        std::optional<int> code;
        if (line) code = reply_code(*line);
        // Lost, timed out or garbled: not queued as far as we know, retry later.
        return code ? *code : inject_exit::read_error;
    }
    if (pid_ < 0) return refused_ ? refused_ : inject_exit::internal;
    flush();
    msg_.reset();
    if (!broken_) {
        try {
            write_all(env_.get(), encode_qmail_envelope(env_message_));
        } catch (const SysError&) {
        }
    }
    env_.reset();
    return wait();
}

int QueueInjection::abort() {
    if (sock_) {
        // Closed before the end of the message: queue-injectd removes its file.
        sock_.reset();
        buf_.clear();
        return inject_exit::envelope_format;
    }
    if (refused_) return refused_;
    if (pid_ < 0) return inject_exit::internal;
    buf_.clear();
    // No envelope: queue-inject refuses (envelope format error) and removes its file.
    msg_.reset();
    env_.reset();
    return wait();
}

int run_queue_inject(const Instance& inst, std::string_view message, const Envelope& env) {
    QueueInjection q(inst);
    if (!q.start(env)) {
        int code = q.abort();
        return code == 0 ? inject_exit::internal : code;
    }
    q.write(message);
    return q.finish();
}

}  // namespace yubin
