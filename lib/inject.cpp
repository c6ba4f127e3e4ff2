#include "inject.hpp"
#include "spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcodes.hpp"

namespace yubin {

namespace {
constexpr size_t flush_size = 65536;

// SIGPIPE would kill the caller if queue-inject dies early: ignore it for
// the whole process (every caller handles write errors) .
void ignore_sigpipe() {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, nullptr);
}
}  // namespace

bool QueueInjection::start(const Envelope& envelope) {
    ignore_sigpipe();
    env_message_ = envelope;
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
    if (!broken_ && msg_) {
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
    if (pid_ < 0) return inject_exit::internal;
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
