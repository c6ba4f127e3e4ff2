// queue-manager: schedules every message in the queue. Started by
// yubin-start with fd 3 (jobs to local-spawn), fd 4 (its results), fd 5
// (jobs to remote-spawn) and fd 6 (its results).
#include <fcntl.h>
#include <signal.h>

#include "event.hpp"
#include "instance.hpp"
#include "log.hpp"
#include "scheduler.hpp"

using namespace yubin;

namespace {
constexpr int local_jobs_fd = 3;
constexpr int local_results_fd = 4;
constexpr int remote_jobs_fd = 5;
constexpr int remote_results_fd = 6;
void on_signal(evutil_socket_t, short, void* arg) {
    auto* s = static_cast<Scheduler*>(arg);
    s->stop();
}
}  // namespace

int main() {
    ::signal(SIGPIPE, SIG_IGN);
    Log log("queue-manager");
    for (int fd : {local_jobs_fd, local_results_fd, remote_jobs_fd, remote_results_fd}) {
        if (::fcntl(fd, F_GETFD) < 0) {
            log({{"event", "fatal"}, {"error", "descriptor " + std::to_string(fd) + " is not open: run by yubin-start"}});
            return 111;
        }
    }
    try {
        Instance inst = Instance::of_this_program();
        EventBasePtr base = make_event_base();
        Scheduler sched(inst, Config::load(inst), base.get(), local_jobs_fd, local_results_fd, remote_jobs_fd,
                        remote_results_fd);
        EventPtr term = make_event(base.get(), SIGTERM, EV_SIGNAL | EV_PERSIST, on_signal, &sched);
        EventPtr intr = make_event(base.get(), SIGINT, EV_SIGNAL | EV_PERSIST, on_signal, &sched);
        event_add(term.get(), nullptr);
        event_add(intr.get(), nullptr);
        sched.start();
        event_base_dispatch(base.get());
        log({{"event", "stop"}});
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return 111;
    }
    return 0;
}
