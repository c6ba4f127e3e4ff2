// queue-manager's core: taking messages in from the queue, the event loop's
// callbacks, retry timers, stopping, and cleanup.
#include "scheduler.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "io.hpp"

namespace yubin {

namespace {

constexpr time_t tmp_max_age = 36 * 3600;
constexpr double cleanup_interval = 3600;
constexpr double stop_grace = 120;

}  // namespace

Scheduler::Scheduler(Instance inst, Config cfg, event_base* base, int local_jobs, int local_results,
                     int remote_jobs, int remote_results)
    : inst_(std::move(inst)), cfg_(std::move(cfg)), base_(base), log_("queue-manager") {
    local_.self = remote_.self = this;
    remote_.remote = true;
    local_.jobs = local_jobs;
    local_.results = local_results;
    remote_.jobs = remote_jobs;
    remote_.results = remote_results;
}

void Scheduler::start() {
    // O_RDWR: the FIFO always has a writer (us), so it never reports EOF.
    trigger_ = open_or_throw(inst_.queue_path("lock/trigger"), O_RDWR | O_NONBLOCK);
    trigger_ev_ = make_event(base_, trigger_.get(), EV_READ | EV_PERSIST, on_trigger, this);
    for (Link* l : {&local_, &remote_}) {
        set_nonblock(l->results);
        l->ev = make_event(base_, l->results, EV_READ | EV_PERSIST, on_results, l);
        event_add(l->ev.get(), nullptr);
    }
    timer_ev_ = make_event(base_, -1, 0, on_timer, this);
    cleanup_ev_ = make_event(base_, -1, EV_PERSIST, on_cleanup, this);
    event_add(trigger_ev_.get(), nullptr);
    timeval hour = seconds(cleanup_interval);
    event_add(cleanup_ev_.get(), &hour);
    log_({{"event", "start"}, {"me", cfg_.me}, {"concurrencylocal", std::to_string(cfg_.concurrency_local)},
          {"concurrencyremote", std::to_string(cfg_.concurrency_remote)}});
    clean_tmp();
    scan("cur");
    scan("new");
    remove_orphan_info();
    pump();
}

void Scheduler::remove_orphan_info() {
    const std::string dir = inst_.queue_path("info");
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    std::vector<std::string> orphans;
    while (dirent* e = ::readdir(d)) {
        std::string id = e->d_name;
        if (!valid_queue_id(id) || messages_.count(id)) continue;
        struct stat st;
        if (::stat(inst_.queue_path("cur/" + id).c_str(), &st) == 0) continue;  // malformed, kept
        orphans.push_back(std::move(id));
    }
    ::closedir(d);
    for (const auto& id : orphans) ::unlink((dir + "/" + id).c_str());
}

void Scheduler::stop() {
    if (stopping_) return;
    stopping_ = true;
    log_({{"event", "stopping"}, {"running", std::to_string(running_.size())}});
    event_del(trigger_ev_.get());
    event_del(timer_ev_.get());
    event_del(cleanup_ev_.get());
    // Running deliveries get a bounded time to finish; their recipients are
    // tried again after the next start if they do not.
    timeval grace = seconds(stop_grace);
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* b) { event_base_loopexit(static_cast<event_base*>(b), nullptr); },
        base_, &grace);
    check_stopped();
}

void Scheduler::check_stopped() {
    if (stopping_ && running_.empty()) event_base_loopexit(base_, nullptr);
}

void Scheduler::on_trigger(evutil_socket_t fd, short, void* arg) {
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    auto* s = static_cast<Scheduler*>(arg);
    s->scan("new");
    s->pump();
}

void Scheduler::on_results(evutil_socket_t fd, short, void* arg) {
    auto* link = static_cast<Link*>(arg);
    Scheduler* s = link->self;
    const char* who = link->remote ? "remote-spawn" : "local-spawn";
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        s->log_({{"event", "fatal"}, {"error", std::string(who) + " went away"}});
        std::_Exit(111);
    }
    link->reader.feed(std::string_view(buf, static_cast<size_t>(n)));
    try {
        while (auto p = link->reader.next()) s->handle_result(*link, *p);
    } catch (const PacketError& e) {
        s->log_({{"event", "fatal"}, {"error", std::string(who) + ": " + e.what()}});
        std::_Exit(111);
    }
    s->pump();
    s->check_stopped();
}

void Scheduler::on_timer(evutil_socket_t, short, void* arg) {
    auto* s = static_cast<Scheduler*>(arg);
    s->fire_due();
    s->pump();
}

void Scheduler::on_cleanup(evutil_socket_t, short, void* arg) { static_cast<Scheduler*>(arg)->clean_tmp(); }

void Scheduler::scan(const char* dir) {
    const bool from_new = std::strcmp(dir, "new") == 0;
    DIR* d = ::opendir(inst_.queue_path(dir).c_str());
    if (!d) {
        log_({{"event", "error"}, {"error", std::string("cannot read queue/") + dir}});
        return;
    }
    std::vector<std::string> ids;
    while (dirent* e = ::readdir(d))
        if (valid_queue_id(e->d_name)) ids.emplace_back(e->d_name);
    ::closedir(d);
    for (const auto& id : ids) take_in(id, from_new);
}

void Scheduler::take_in(const std::string& id, bool from_new) {
    const std::string cur = inst_.queue_path("cur/" + id);
    if (from_new && ::rename(inst_.queue_path("new/" + id).c_str(), cur.c_str()) < 0) {
        if (errno != ENOENT) log_({{"event", "error"}, {"id", id}, {"error", std::strerror(errno)}});
        return;
    }
    if (messages_.count(id)) return;
    std::optional<QueueHeader> header;
    try {
        Fd fd = open_or_throw(cur, O_RDONLY);
        header = read_queue_header(fd.get());
    } catch (const SysError& e) {
        log_({{"event", "error"}, {"id", id}, {"error", e.what()}});
        return;
    }
    if (!header) {
        log_({{"event", "error"}, {"id", id}, {"error", "malformed queue file; left in place"}});
        return;
    }
    Message& m = messages_[id];
    m.id = id;
    m.header = *header;
    for (const auto& r : m.header.envelope.recipients) {
        Recipient rc;
        rc.address = r;
        rc.route = route_recipient(cfg_, r);
        m.rcpts.push_back(std::move(rc));
    }
    if (auto info = read_file(inst_.queue_path("info/" + id), 64 << 20)) {
        for (const auto& l : parse_info(*info)) {
            if (l.index >= m.rcpts.size()) continue;
            Recipient& rc = m.rcpts[l.index];
            rc.state = l.kind == 'D' ? State::done : State::failed;
            rc.status = l.status;
            if (rc.route.local) {
                rc.text = l.text;
            } else {
                RemoteDiagnostic d = decode_remote_diagnostic(l.text);
                rc.diag_type = d.type;
                rc.remote_mta = d.remote_mta;
                rc.text = d.text;
            }
        }
    }
    log_({{"event", "new"}, {"id", id}, {"from", m.header.envelope.sender},
          {"rcpts", std::to_string(m.rcpts.size())}, {"uid", std::to_string(m.header.uid)}});
    for (size_t i = 0; i < m.rcpts.size(); ++i)
        if (m.rcpts[i].state == State::pending) enqueue(m, i);
    maybe_finish(m);
}

void Scheduler::schedule_retry(const Key& k, time_t when) {
    retries_.emplace(when, k);
    arm_timer();
}

void Scheduler::arm_timer() {
    if (stopping_ || retries_.empty()) return;
    time_t now = ::time(nullptr);
    time_t first = retries_.begin()->first;
    timeval tv = seconds(first > now ? static_cast<double>(first - now) : 0);
    event_add(timer_ev_.get(), &tv);
}

void Scheduler::fire_due() {
    const time_t now = ::time(nullptr);
    while (!retries_.empty() && retries_.begin()->first <= now) {
        Key k = retries_.begin()->second;
        retries_.erase(retries_.begin());
        auto it = messages_.find(k.first);
        if (it == messages_.end()) continue;
        if (k.second == finish_marker) maybe_finish(it->second);
        else if (it->second.rcpts[k.second].state == State::pending) enqueue(it->second, k.second);
    }
    arm_timer();
}

void Scheduler::clean_tmp() {
    const std::string dir = inst_.queue_path("tmp");
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    const time_t limit = ::time(nullptr) - tmp_max_age;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string p = dir + "/" + e->d_name;
        struct stat st;
        if (::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < limit) {
            ::unlink(p.c_str());
            log_({{"event", "cleanup"}, {"file", std::string("tmp/") + e->d_name}});
        }
    }
    ::closedir(d);
}

}  // namespace yubin
