#include "scheduler.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "address.hpp"
#include "bounce.hpp"
#include "exitcodes.hpp"
#include "inject.hpp"
#include "io.hpp"

namespace yubin {

namespace {

constexpr const char* double_bounce_sender = "#@[]";
constexpr time_t tmp_max_age = 36 * 3600;
constexpr double cleanup_interval = 3600;
constexpr time_t bounce_retry = 300;
constexpr double stop_grace = 120;
constexpr size_t finish_marker = static_cast<size_t>(-1);

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0) return "localhost";
    return buf;
}

// "4.2.0 text" -> status "4.2.0", text "text"
void split_status(const std::string& line, std::string& status, std::string& text) {
    size_t sp = line.find(' ');
    std::string_view first = std::string_view(line).substr(0, sp);
    int dots = 0;
    bool ok = first.size() >= 5 && (first[0] == '2' || first[0] == '4' || first[0] == '5') && first[1] == '.';
    for (char c : first) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') ok = false;
    }
    if (ok && dots == 2) {
        status = std::string(first);
        text = sp == std::string::npos ? "" : line.substr(sp + 1);
    } else {
        status.clear();
        text = line;
    }
}

std::string qualify(const std::string& addr, const std::string& me) {
    return addr.find('@') == std::string::npos ? addr + "@" + me : addr;
}

}  // namespace

Config Config::load(const Instance& inst) {
    Config c;
    c.me = inst.control_string("me", hostname());
    for (const auto& d : inst.control_lines("locals")) c.locals.insert(normalize_domain(d));
    if (c.locals.empty()) c.locals.insert(normalize_domain(c.me));
    for (const auto& line : inst.control_lines("virtualdomains")) {
        size_t colon = line.find(':');
        if (colon == std::string::npos || colon == 0) continue;
        c.virtualdomains.emplace_back(normalize_domain(line.substr(0, colon)), line.substr(colon + 1));
    }
    c.backoff.min_backoff = inst.control_long("minbackoff", 60, 1, 86400);
    c.backoff.max_backoff = inst.control_long("maxbackoff", 3600, 1, 7 * 86400);
    c.backoff.lifetime = inst.control_long("queuelifetime", 604800, 1, 365L * 86400);
    c.concurrency_local = inst.control_long("concurrencylocal", 10, 1, 1000);
    c.doublebounceto = inst.control_string("doublebounceto", "postmaster");
    c.bouncefrom = inst.control_string("bouncefrom", "MAILER-DAEMON");
    return c;
}

Route route_recipient(const Config& cfg, const std::string& recipient) {
    AddressParts parts = split_address(recipient);
    Route r;
    r.domain = normalize_domain(parts.domain.empty() ? cfg.me : parts.domain);
    std::string local = unquote_local_part(parts.local);
    if (cfg.locals.count(r.domain)) {
        r.local = true;
        r.local_part = local;
        return r;
    }
    // virtualdomains: an exact domain wins over the longest ".suffix" match.
    const std::pair<std::string, std::string>* best = nullptr;
    for (const auto& vd : cfg.virtualdomains) {
        if (vd.first == r.domain) { best = &vd; break; }
        if (vd.first.size() > 1 && vd.first[0] == '.' && r.domain.size() > vd.first.size() &&
            r.domain.compare(r.domain.size() - vd.first.size(), vd.first.size(), vd.first) == 0 &&
            (!best || best->first.size() < vd.first.size()))
            best = &vd;
    }
    if (best) {
        r.local = true;
        r.local_part = best->second.empty() ? local : best->second + "-" + local;
    }
    return r;
}

Scheduler::Scheduler(Instance inst, Config cfg, event_base* base, int to_spawner, int from_spawner)
    : inst_(std::move(inst)), cfg_(std::move(cfg)), base_(base), to_spawner_(to_spawner),
      from_spawner_(from_spawner), log_("queue-manager") {}

void Scheduler::start() {
    // O_RDWR: the FIFO always has a writer (us), so it never reports EOF.
    trigger_ = open_or_throw(inst_.queue_path("lock/trigger"), O_RDWR | O_NONBLOCK);
    set_nonblock(from_spawner_);
    trigger_ev_ = make_event(base_, trigger_.get(), EV_READ | EV_PERSIST, on_trigger, this);
    results_ev_ = make_event(base_, from_spawner_, EV_READ | EV_PERSIST, on_results, this);
    timer_ev_ = make_event(base_, -1, 0, on_timer, this);
    cleanup_ev_ = make_event(base_, -1, EV_PERSIST, on_cleanup, this);
    event_add(trigger_ev_.get(), nullptr);
    event_add(results_ev_.get(), nullptr);
    timeval hour = seconds(cleanup_interval);
    event_add(cleanup_ev_.get(), &hour);
    log_({{"event", "start"}, {"me", cfg_.me}, {"concurrencylocal", std::to_string(cfg_.concurrency_local)}});
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
    auto* s = static_cast<Scheduler*>(arg);
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        s->log_({{"event", "fatal"}, {"error", "local-spawn went away"}});
        std::_Exit(111);
    }
    s->reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
    try {
        while (auto p = s->reader_.next()) s->handle_result(*p);
    } catch (const PacketError& e) {
        s->log_({{"event", "fatal"}, {"error", e.what()}});
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
            rc.text = l.text;
        }
    }
    log_({{"event", "new"}, {"id", id}, {"from", m.header.envelope.sender},
          {"rcpts", std::to_string(m.rcpts.size())}, {"uid", std::to_string(m.header.uid)}});
    for (size_t i = 0; i < m.rcpts.size(); ++i) {
        Recipient& rc = m.rcpts[i];
        if (rc.state != State::pending) continue;
        if (rc.route.local) {
            ready_.emplace_back(id, i);
        } else {
            rc.state = State::waiting_remote;
            log_({{"event", "waiting"}, {"id", id}, {"rcpt", rc.address},
                  {"reason", "remote delivery is not available in this release"}});
        }
    }
    maybe_finish(m);
}

void Scheduler::pump() {
    const time_t now = ::time(nullptr);
    while (!stopping_ && static_cast<long>(running_.size()) < cfg_.concurrency_local && !ready_.empty()) {
        Key k = ready_.front();
        ready_.pop_front();
        auto it = messages_.find(k.first);
        if (it == messages_.end()) continue;
        Message& m = it->second;
        Recipient& rc = m.rcpts[k.second];
        if (rc.state != State::pending) continue;
        std::string job = std::to_string(next_job_++);
        write_all(to_spawner_, encode_packet({job, m.id, std::to_string(m.header.message_offset),
                                              m.header.envelope.sender, rc.address, rc.route.local_part,
                                              rc.route.domain}));
        rc.state = State::running;
        rc.last_attempt = now;
        running_.emplace(job, k);
    }
}

void Scheduler::handle_result(const Packet& p) {
    if (p.size() != 3 || p[1].size() != 1) throw PacketError("bad result record");
    auto job = running_.find(p[0]);
    if (job == running_.end()) throw PacketError("result for an unknown job");
    Key k = job->second;
    running_.erase(job);
    auto it = messages_.find(k.first);
    if (it == messages_.end()) return;
    Message& m = it->second;
    Recipient& rc = m.rcpts[k.second];
    std::string status, text;
    split_status(p[2], status, text);
    const time_t now = ::time(nullptr);
    switch (p[1][0]) {
    case 'K': {
        rc.state = State::done;
        bool others_open = false, any_failed = false;
        for (const auto& r : m.rcpts) {
            if (r.state == State::failed) any_failed = true;
            else if (r.state != State::done) others_open = true;
        }
        // The last recipient of a message without failures: the message is
        // removed at once, so there is nothing to remember.
        if (others_open || any_failed) record(m, {'D', k.second, "", ""}, true);
        log_({{"event", "delivery"}, {"id", m.id}, {"rcpt", rc.address}, {"result", "ok"}, {"text", text}});
        break;
    }
    case 'D':
        rc.state = State::failed;
        rc.status = status.empty() ? "5.0.0" : status;
        rc.text = text;
        record(m, {'P', k.second, rc.status, rc.text}, true);
        log_({{"event", "delivery"}, {"id", m.id}, {"rcpt", rc.address}, {"result", "failed"},
              {"status", rc.status}, {"text", text}});
        break;
    case 'Z': {
        rc.status = status.empty() ? "4.0.0" : status;
        rc.text = text;
        ++rc.failures;
        auto next = next_attempt(cfg_.backoff, m.header.birth, now, rc.failures);
        if (!next) {
            rc.state = State::failed;
            rc.text = "message expired in the queue; last error: " + text;
            rc.status = "4.4.7";
            record(m, {'P', k.second, rc.status, rc.text}, true);
            log_({{"event", "delivery"}, {"id", m.id}, {"rcpt", rc.address}, {"result", "expired"},
                  {"status", status}, {"text", text}});
        } else {
            rc.state = State::pending;
            schedule_retry(k, *next);
            log_({{"event", "delivery"}, {"id", m.id}, {"rcpt", rc.address}, {"result", "deferred"},
                  {"status", rc.status}, {"text", text}, {"retry_in", std::to_string(*next - now)}});
        }
        break;
    }
    default:
        throw PacketError("bad result code");
    }
    maybe_finish(m);
}

void Scheduler::record(Message& m, const InfoLine& line, bool durable) {
    const std::string path = inst_.queue_path("info/" + m.id);
    try {
        int f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        bool created = false;
        if (f < 0 && errno == ENOENT) {
            f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            created = true;
        }
        if (f < 0) throw SysError("open " + path, errno);
        Fd fd(f);
        write_all(fd.get(), encode_info_line(line));
        if (durable && ::fsync(fd.get()) < 0) throw SysError("fsync " + path, errno);
        // A new file's name is durable only once its directory is.
        if (durable && created) fsync_dir(inst_.queue_path("info"));
    } catch (const SysError& e) {
        // The result is kept in memory; after a crash the recipient is tried again.
        log_({{"event", "error"}, {"id", m.id}, {"error", e.what()}});
    }
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
        else if (it->second.rcpts[k.second].state == State::pending) ready_.push_back(k);
    }
    arm_timer();
}

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
                                         .diagnostic = r.text, .diagnostic_type = "x-unix",
                                         .remote_mta = {}, .last_attempt = r.last_attempt});
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
