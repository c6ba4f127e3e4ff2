// queue-manager: schedules every message in the queue. Started by
// yubin-start with fd 3 (jobs to local-spawn) and fd 4 (its results).
#include <signal.h>

#include "event.hpp"
#include "instance.hpp"
#include "log.hpp"
#include "scheduler.hpp"

using namespace yubin;

namespace {
constexpr int jobs_fd = 3;
constexpr int results_fd = 4;
void on_signal(evutil_socket_t, short, void* arg) {
    auto* s = static_cast<Scheduler*>(arg);
    s->stop();
}
}  // namespace

int main() {
    ::signal(SIGPIPE, SIG_IGN);
    Log log("queue-manager");
    try {
        Instance inst = Instance::of_this_program();
        EventBasePtr base = make_event_base();
        Scheduler sched(inst, Config::load(inst), base.get(), jobs_fd, results_fd);
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
