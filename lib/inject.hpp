// Queueing a message: through queue-injectd's socket INSTANCE/public/inject
// when it listens, else by running INSTANCE/bin/queue-inject.
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

#include "instance.hpp"
#include "io.hpp"
#include "queuefile.hpp"

namespace yubin {

// One injection, streamed: start(envelope) (which learns the queue id), any
// number of write()s, then finish() for the result (an inject_exit code),
// or abort() to drop the message (its temporary file is removed).
// start() connects to queue-injectd; when nothing listens there (or the
// envelope is over queue-injectd's limit) it runs queue-inject instead.
// Once connected, every failure is a temporary one: no fallback after the
// first byte went out. Every wait on queue-injectd is bounded.
class QueueInjection {
public:
    explicit QueueInjection(const Instance& inst) : inst_(inst) {}
    ~QueueInjection() { abort(); }
    QueueInjection(const QueueInjection&) = delete;
    QueueInjection& operator=(const QueueInjection&) = delete;

    // false if queue-inject could not be started or reported no id, or
    // queue-injectd refused the envelope (abort() then returns why).
    bool start(const Envelope& envelope);
    // Through queue-injectd (after a successful start())?
    bool via_daemon() const { return static_cast<bool>(sock_); }
    const std::string& id() const { return id_; }
    void write(std::string_view data);
    // queue-inject's exit status or queue-injectd's result (inject_exit codes).
    int finish();
    // Returns the failure (non-zero: nothing was stored).
    int abort();

private:
    enum class Connect { ok, refused, unavailable };
    Connect connect_daemon(const std::string& envelope);
    bool start_program();
    void flush();
    int wait();

    const Instance& inst_;
    pid_t pid_ = -1;
    Fd msg_, env_;
    Fd sock_;             // queue-injectd
    int refused_ = 0;     // queue-injectd's code when it refused the envelope
    Envelope env_message_;
    std::string id_, buf_;
    bool broken_ = false;
};

// The whole message at once. Returns queue-inject's exit status, or
// inject_exit::internal if it could not be run or was killed.
int run_queue_inject(const Instance& inst, std::string_view message, const Envelope& env);

}  // namespace yubin
