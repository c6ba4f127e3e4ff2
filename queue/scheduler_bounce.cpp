// The end of a message: when every recipient is finished, the bounce for
// the failed ones (RFC 3464), then the queue files are removed.
#include <unistd.h>

#include "bounce.hpp"
#include "exitcodes.hpp"
#include "inject.hpp"
#include "scheduler.hpp"

namespace yubin {

namespace {

constexpr const char* double_bounce_sender = "#@[]";
constexpr time_t bounce_retry = 300;

std::string qualify(const std::string& addr, const std::string& me) {
    return addr.find('@') == std::string::npos ? addr + "@" + me : addr;
}

}  // namespace

void Scheduler::maybe_finish(Message& m) {
    bool any_failed = false;
    for (const auto& r : m.rcpts) {
        if (r.state == State::failed) any_failed = true;
        else if (r.state != State::done) return;
    }
    if (any_failed && !send_bounce(m)) {
        schedule_retry({m.id, finish_marker}, ::time(nullptr) + bounce_retry);
        return;
    }
    remove(m.id);
}

bool Scheduler::send_bounce(Message& m) {
    const std::string& sender = m.header.envelope.sender;
    std::vector<FailedRecipient> failed;
    for (const auto& r : m.rcpts) {
        if (r.state != State::failed) continue;
        failed.push_back(FailedRecipient{.address = r.address, .action = "failed", .status = r.status,
                                         .diagnostic = r.text, .diagnostic_type = r.diag_type,
                                         .remote_mta = r.remote_mta, .last_attempt = r.last_attempt});
    }
    if (sender == double_bounce_sender) {
        log_({{"event", "bounce"}, {"id", m.id}, {"result", "dropped"},
              {"reason", "a double bounce failed; not bouncing again"}});
        return true;
    }
    Envelope env;
    BounceInput in;
    if (sender.empty()) {
        env.sender = double_bounce_sender;
        env.recipients.push_back(qualify(cfg_.doublebounceto, cfg_.me));
    } else {
        env.sender = "";
        env.recipients.push_back(sender);
    }
    const time_t now = ::time(nullptr);
    std::string original;
    try {
        auto file = read_file(inst_.queue_path("cur/" + m.id));
        if (file && file->size() >= m.header.message_offset) original = file->substr(m.header.message_offset);
    } catch (const SysError& e) {
        log_({{"event", "error"}, {"id", m.id}, {"error", e.what()}});
        return false;
    }
    in.reporting_mta = cfg_.me;
    in.queue_id = m.id;
    in.original_sender = sender;
    in.bounce_from = cfg_.bouncefrom + "@" + cfg_.me;
    in.bounce_to = env.recipients.front();
    in.arrival = m.header.birth;
    in.now = now;
    in.message_id = m.id + ".bounce." + std::to_string(now) + "@" + cfg_.me;
    in.original = original;
    in.recipients = std::move(failed);
    int rc = run_queue_inject(inst_, compose_bounce(in), env);
    log_({{"event", "bounce"}, {"id", m.id}, {"to", env.recipients.front()},
          {"result", rc == 0 ? "queued" : inject_exit::describe(rc)}});
    return rc == 0;
}

void Scheduler::remove(const std::string& id_ref) {
    const std::string id = id_ref;  // id_ref may live in the message erased below
    // The queue file first: a crash between the two leaves only an orphan
    // info file, which the next start removes.
    ::unlink(inst_.queue_path("cur/" + id).c_str());
    ::unlink(inst_.queue_path("info/" + id).c_str());
    messages_.erase(id);
    log_({{"event", "done"}, {"id", id}});
}

}  // namespace yubin
