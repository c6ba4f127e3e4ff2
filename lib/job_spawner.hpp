// The loop local-spawn and remote-spawn share (local-spawn(8),
// remote-spawn(8)): job records from queue-manager on fd 0, one child
// program per job, the child's output read (bounded) from a pipe, and when
// the child has exited, one result record on fd 1. The loop ends when fd 0
// is closed and every child has been reaped.
#pragma once
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "event.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "packet.hpp"
#include "spawn.hpp"

namespace yubin {

class JobSpawner {
public:
    // Jobs come in on fd `in`, results go out on fd `out` (0 and 1 in the programs).
    JobSpawner(event_base* base, const char* name, size_t max_output, int in = 0, int out = 1);
    virtual ~JobSpawner() = default;
    JobSpawner(const JobSpawner&) = delete;
    JobSpawner& operator=(const JobSpawner&) = delete;

protected:
    struct Job {
        std::string id;     // the job-id of the record
        size_t count = 0;   // how many results the record needs (remote-spawn: recipients)
    };
    // One job record: start a child and track() it, or reply() at once.
    // Throws PacketError for a record that does not parse (a bug in
    // queue-manager): the spawner then exits 111.
    virtual void start(const Packet& record) = 0;
    // The child of job ended with status (waitpid's) after writing output.
    virtual void finished(const Job& job, int status, const std::string& output) = 0;

    // Watch a started child: out is the read end of its output pipe.
    void track(pid_t pid, Job job, Fd out);
    void reply(const Packet& record) { write_all(out_, encode_packet(record)); }

    Log log_;

private:
    struct Child {
        Job job;
        Fd out;
        EventPtr ev;
        std::string output;
    };
    static void on_jobs(evutil_socket_t, short, void* arg);
    static void on_sigchld(evutil_socket_t, short, void* arg);
    static void on_output(evutil_socket_t fd, short, void* arg);
    void read_jobs();
    void drain(int fd);
    void read_output(Child& c);
    void reap();
    void maybe_exit();

    event_base* base_;
    size_t max_output_;
    int in_, out_;
    EventPtr jobs_ev_, sigchld_;
    PacketReader reader_;
    std::map<pid_t, Child> children_;
    bool eof_ = false;
};

// A spawner's main(): SIGPIPE, SIGTERM and SIGINT ignored (it keeps going
// until queue-manager closes its input; yubin-start stops queue-manager
// first), the instance of this program, the loop of S(instance, base).
// Returns the exit status.
int run_job_spawner(const char* name,
                    const std::function<std::unique_ptr<JobSpawner>(const Instance&, event_base*)>& make);

}  // namespace yubin
