// The queue-manager's state: messages in queue/cur, their recipients, the
// jobs handed to the local and remote spawners, retry timers, and bounces.
#pragma once
#include <ctime>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backoff.hpp"
#include "event.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "packet.hpp"
#include "queuefile.hpp"

namespace yubin {

struct Config {
    std::string me;
    std::set<std::string> locals;                    // normalized domains
    std::vector<std::pair<std::string, std::string>> virtualdomains;  // domain (".x" = subdomains), prefix
    BackoffPolicy backoff;
    long concurrency_local = 10;
    long concurrency_remote = 20;
    std::string doublebounceto = "postmaster";
    std::string bouncefrom = "MAILER-DAEMON";
    char separator = '-';                            // control/extseparator: virtual domain prefix joins with it

    static Config load(const Instance& inst);
};

// Where a recipient goes: local (with the local part local-deliver sees) or remote.
struct Route {
    bool local = false;
    std::string local_part;
    std::string domain;
};
Route route_recipient(const Config& cfg, const std::string& recipient);

// The most recipients of one message in one remote job (one SMTP transaction
// at most; RFC 5321 4.5.3.1.8 makes every server take 100).
inline constexpr size_t max_remote_batch = 100;

// A remote recipient's permanent failure as the text of its P line in
// queue/info: "TYPE; REMOTE-MTA; TEXT" ("-" for no MTA), so that the bounce
// after a restart still has its Diagnostic-Code type and Remote-MTA.
struct RemoteDiagnostic {
    std::string type = "x-unix";
    std::string remote_mta;
    std::string text;
};
std::string encode_remote_diagnostic(const RemoteDiagnostic& d);
RemoteDiagnostic decode_remote_diagnostic(const std::string& line);

class Scheduler {
public:
    // Job records go to the local spawner on local_jobs and to the remote
    // spawner on remote_jobs; their results come on local_results and remote_results.
    Scheduler(Instance inst, Config cfg, event_base* base, int local_jobs, int local_results, int remote_jobs,
              int remote_results);
    void start();                // scan cur/ and new/, arm events
    void stop();                 // SIGTERM: no new jobs; exit when running jobs are done

private:
    enum class State { pending, running, done, failed };
    struct Recipient {
        std::string address;
        Route route;
        State state = State::pending;
        bool queued = false;          // pending and in a ready queue (not waiting for a retry)
        unsigned failures = 0;
        std::string status, text;     // last failure
        std::string diag_type = "x-unix", remote_mta;
        time_t last_attempt = 0;
    };
    struct Message {
        std::string id;
        QueueHeader header;
        std::vector<Recipient> rcpts;
    };
    using Key = std::pair<std::string, size_t>;   // queue id, recipient index
    static constexpr size_t finish_marker = static_cast<size_t>(-1);   // a Key for a retried bounce
    struct Job {
        bool remote = false;
        std::string id;                // queue id
        std::vector<size_t> rcpts;     // recipient indexes
    };
    // One spawner: its pipes, and the reader of its results.
    struct Link {
        Scheduler* self = nullptr;
        bool remote = false;
        int jobs = -1, results = -1;
        long running = 0;
        PacketReader reader;
        EventPtr ev;
    };
    // What a spawner said about one recipient.
    struct Outcome {
        char code = 'Z';
        std::string status, text, diag_type = "x-unix", remote_mta;
    };

    static void on_trigger(evutil_socket_t, short, void*);
    static void on_results(evutil_socket_t, short, void*);
    static void on_timer(evutil_socket_t, short, void*);
    static void on_cleanup(evutil_socket_t, short, void*);

    void scan(const char* dir);
    void take_in(const std::string& id, bool from_new);
    void enqueue(Message& m, size_t index);
    void pump();
    void pump_local();
    void pump_remote();
    void handle_result(Link& link, const Packet& p);
    void apply(Message& m, size_t index, const Outcome& o, std::vector<InfoLine>& lines);
    void record(Message& m, const std::vector<InfoLine>& lines);
    void schedule_retry(const Key& k, time_t when);
    void arm_timer();
    void fire_due();
    void maybe_finish(Message& m);
    bool send_bounce(Message& m);
    void remove(const std::string& id);
    void clean_tmp();
    void remove_orphan_info();
    void check_stopped();

    Instance inst_;
    Config cfg_;
    event_base* base_;
    Log log_;
    Fd trigger_;
    EventPtr trigger_ev_, timer_ev_, cleanup_ev_;
    Link local_, remote_;
    std::map<std::string, Message> messages_;
    std::deque<Key> ready_local_, ready_remote_;
    std::multimap<time_t, Key> retries_;
    std::map<std::string, Job> running_;          // job id -> job
    unsigned long long next_job_ = 1;
    bool stopping_ = false;
};

}  // namespace yubin
