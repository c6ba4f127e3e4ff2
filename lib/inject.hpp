// Running INSTANCE/bin/queue-inject with a message and an envelope.
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

#include "instance.hpp"
#include "io.hpp"
#include "queuefile.hpp"

namespace yubin {

// One queue-inject run, streamed: start(envelope) (which learns the queue
// id), any number of write()s, then finish() for the exit status, or abort()
// to drop the message (queue-inject then removes its temporary file).
class QueueInjection {
public:
    explicit QueueInjection(const Instance& inst) : inst_(inst) {}
    ~QueueInjection() { abort(); }
    QueueInjection(const QueueInjection&) = delete;
    QueueInjection& operator=(const QueueInjection&) = delete;

    // false if queue-inject could not be started or reported no id.
    bool start(const Envelope& envelope);
    const std::string& id() const { return id_; }
    void write(std::string_view data);
    // queue-inject's exit status (inject_exit codes).
    int finish();
    // Returns queue-inject's exit status (non-zero: it stored nothing).
    int abort();

private:
    void flush();
    int wait();

    const Instance& inst_;
    pid_t pid_ = -1;
    Fd msg_, env_;
    Envelope env_message_;
    std::string id_, buf_;
    bool broken_ = false;
};

// The whole message at once. Returns queue-inject's exit status, or
// inject_exit::internal if it could not be run or was killed.
int run_queue_inject(const Instance& inst, std::string_view message, const Envelope& env);

}  // namespace yubin
