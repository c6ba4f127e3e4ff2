// The queue-manager's state: messages in queue/cur, their recipients, the
// jobs handed to the local spawner, retry timers, and bounces.
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
    std::string doublebounceto = "postmaster";
    std::string bouncefrom = "MAILER-DAEMON";

    static Config load(const Instance& inst);
};

// Where a recipient goes: local (with the local part local-deliver sees) or remote.
struct Route {
    bool local = false;
    std::string local_part;
    std::string domain;
};
Route route_recipient(const Config& cfg, const std::string& recipient);

class Scheduler {
public:
    // to_spawner: fd to write job records to; from_spawner: fd results come on.
    Scheduler(Instance inst, Config cfg, event_base* base, int to_spawner, int from_spawner);
    void start();                // scan cur/ and new/, arm events
    void stop();                 // SIGTERM: no new jobs; exit when running jobs are done

private:
    enum class State { pending, running, done, failed, waiting_remote };
    struct Recipient {
        std::string address;
        Route route;
        State state = State::pending;
        unsigned failures = 0;
        std::string status, text;     // last failure
        time_t last_attempt = 0;
    };
    struct Message {
        std::string id;
        QueueHeader header;
        std::vector<Recipient> rcpts;
        bool bounce_pending = false;
    };
    using Key = std::pair<std::string, size_t>;   // queue id, recipient index

    static void on_trigger(evutil_socket_t, short, void*);
    static void on_results(evutil_socket_t, short, void*);
    static void on_timer(evutil_socket_t, short, void*);
    static void on_cleanup(evutil_socket_t, short, void*);

    void scan(const char* dir);
    void take_in(const std::string& id, bool from_new);
    void pump();
    void handle_result(const Packet& p);
    void record(Message& m, const InfoLine& line, bool durable);
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
    int to_spawner_, from_spawner_;
    Log log_;
    Fd trigger_;
    EventPtr trigger_ev_, results_ev_, timer_ev_, cleanup_ev_;
    PacketReader reader_;
    std::map<std::string, Message> messages_;
    std::deque<Key> ready_;
    std::multimap<time_t, Key> retries_;
    std::map<std::string, Key> running_;          // job id -> recipient
    unsigned long long next_job_ = 1;
    bool stopping_ = false;
};

}  // namespace yubin
