// Writing one message into the queue (yubin-queue(5)): a new file in
// queue/tmp, the queue header and the Received: line, the message, fsync,
// rename into queue/new, fsync of queue/new, a byte to the trigger FIFO.
// queue-inject writes one message per run with it, queue-injectd many.
#pragma once
#include <sys/types.h>

#include <ctime>
#include <stdexcept>
#include <string>
#include <string_view>

#include "instance.hpp"
#include "io.hpp"
#include "queuefile.hpp"

namespace yubin {

// A failed injection: an inject_exit code and why.
class QueueWriteError : public std::runtime_error {
public:
    QueueWriteError(int code, const std::string& why) : std::runtime_error(why), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

inline constexpr size_t max_queue_address = 1000;

// Parses and checks a qmail envelope as queue-inject takes it (exactly one
// envelope, at least one recipient, addresses storable and at most
// max_queue_address bytes); throws QueueWriteError with the inject_exit code.
Envelope check_envelope(std::string_view raw);

// Queue ids for one process: SECONDS.MICROSECONDS.PID where SECONDS.MICROSECONDS
// never repeats and never goes back within the process, however many ids
// it makes per microsecond (the clock is taken, and moved on by a
// microsecond past the last id when it has not advanced).
class QueueIds {
public:
    using Clock = long long (*)();  // microseconds since the epoch
    static long long system_clock();
    explicit QueueIds(Clock clock = system_clock) : clock_(clock) {}
    std::string next(pid_t pid);

private:
    Clock clock_;
    long long last_ = 0;  // of the last id
};

// The queue header and Received: line of a message injected by uid (process pid) at now.
std::string queue_file_head(time_t now, uid_t uid, pid_t pid, const Envelope& env);

// queue/tmp/ID, made with O_EXCL under an id that names nothing in new/ or
// cur/ either; removed again unless commit() renamed it into new/.
class QueueFile {
public:
    QueueFile(const Instance& inst, QueueIds& ids, pid_t pid);
    ~QueueFile();
    QueueFile(const QueueFile&) = delete;
    QueueFile& operator=(const QueueFile&) = delete;

    const std::string& id() const { return id_; }
    void write(std::string_view data);
    // fsync, close, rename into new/. Durable once new/ is fsynced
    // (sync_queue_new): many files may share that one fsync.
    void commit();
    bool committed() const { return committed_; }

private:
    const Instance& inst_;
    std::string id_, path_;
    Fd fd_;
    bool committed_ = false;
};

// fsync queue/new; throws QueueWriteError.
void sync_queue_new(const Instance& inst);
// A byte to queue/lock/trigger, if a queue-manager listens.
void trigger_queue_manager(const Instance& inst);

}  // namespace yubin
