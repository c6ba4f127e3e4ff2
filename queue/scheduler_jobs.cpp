// Jobs for the spawners and their results: local recipients one by one,
// remote recipients of one message at one domain together, at most
// concurrencylocal / concurrencyremote jobs at once; D and P lines in queue/info.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "scheduler.hpp"

namespace yubin {

namespace {

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

constexpr size_t remote_result_fields = 5;   // code, status, remote-mta, diagnostic type, diagnostic

}  // namespace

std::string encode_remote_diagnostic(const RemoteDiagnostic& d) {
    return d.type + "; " + (d.remote_mta.empty() ? std::string("-") : d.remote_mta) + "; " + d.text;
}

RemoteDiagnostic decode_remote_diagnostic(const std::string& line) {
    RemoteDiagnostic d;
    size_t a = line.find("; ");
    size_t b = a == std::string::npos ? a : line.find("; ", a + 2);
    if (b == std::string::npos || a == 0 || line.find(' ') < a) {
        d.text = line;
        return d;
    }
    d.type = line.substr(0, a);
    d.remote_mta = line.substr(a + 2, b - a - 2);
    if (d.remote_mta == "-") d.remote_mta.clear();
    d.text = line.substr(b + 2);
    return d;
}

void Scheduler::enqueue(Message& m, size_t index) {
    Recipient& rc = m.rcpts[index];
    rc.queued = true;
    (rc.route.local ? ready_local_ : ready_remote_).emplace_back(m.id, index);
}

void Scheduler::pump() {
    try {
        pump_local();
        pump_remote();
    } catch (const SysError& e) {  // a spawner's pipe is broken: it is gone
        log_({{"event", "fatal"}, {"error", e.what()}});
        std::_Exit(111);
    }
}

void Scheduler::pump_local() {
    const time_t now = ::time(nullptr);
    while (!stopping_ && local_.running < cfg_.concurrency_local && !ready_local_.empty()) {
        Key k = ready_local_.front();
        ready_local_.pop_front();
        auto it = messages_.find(k.first);
        if (it == messages_.end()) continue;
        Message& m = it->second;
        Recipient& rc = m.rcpts[k.second];
        if (!rc.queued || rc.state != State::pending) continue;
        std::string job = std::to_string(next_job_++);
        write_all(local_.jobs, encode_packet({job, m.id, std::to_string(m.header.message_offset),
                                              m.header.envelope.sender, rc.address, rc.route.local_part,
                                              rc.route.domain}));
        rc.queued = false;
        rc.state = State::running;
        rc.last_attempt = now;
        running_.emplace(job, Job{false, m.id, {k.second}});
        ++local_.running;
    }
}

// One job for the first ready recipient and every other ready recipient of
// the same message at the same domain (up to max_remote_batch).
void Scheduler::pump_remote() {
    const time_t now = ::time(nullptr);
    while (!stopping_ && remote_.running < cfg_.concurrency_remote && !ready_remote_.empty()) {
        Key k = ready_remote_.front();
        ready_remote_.pop_front();
        auto it = messages_.find(k.first);
        if (it == messages_.end()) continue;
        Message& m = it->second;
        if (!m.rcpts[k.second].queued || m.rcpts[k.second].state != State::pending) continue;
        const std::string domain = m.rcpts[k.second].route.domain;
        Job job{true, m.id, {k.second}};
        for (size_t j = 0; j < m.rcpts.size() && job.rcpts.size() < max_remote_batch; ++j) {
            const Recipient& o = m.rcpts[j];
            if (j != k.second && o.queued && o.state == State::pending && !o.route.local && o.route.domain == domain)
                job.rcpts.push_back(j);
        }
        std::sort(job.rcpts.begin(), job.rcpts.end());
        std::string id = std::to_string(next_job_++);
        Packet p{id, m.id, std::to_string(m.header.message_offset), m.header.envelope.sender, domain};
        for (size_t j : job.rcpts) p.push_back(m.rcpts[j].address);
        write_all(remote_.jobs, encode_packet(p));
        for (size_t j : job.rcpts) {
            Recipient& rc = m.rcpts[j];
            rc.queued = false;
            rc.state = State::running;
            rc.last_attempt = now;
        }
        running_.emplace(id, std::move(job));
        ++remote_.running;
    }
}

// local: [job-id, code, text]; remote: [job-id, then remote_result_fields per recipient].
void Scheduler::handle_result(Link& link, const Packet& p) {
    if (p.empty()) throw PacketError("empty result record");
    auto found = running_.find(p[0]);
    if (found == running_.end()) throw PacketError("result for an unknown job");
    if (found->second.remote != link.remote) throw PacketError("result from the wrong spawner");
    Job job = std::move(found->second);
    running_.erase(found);
    --link.running;
    std::vector<Outcome> outcomes;
    if (!link.remote) {
        if (p.size() != 3 || p[1].size() != 1) throw PacketError("bad result record");
        Outcome o;
        o.code = p[1][0];
        split_status(p[2], o.status, o.text);
        outcomes.push_back(std::move(o));
    } else {
        if (p.size() != 1 + remote_result_fields * job.rcpts.size()) throw PacketError("bad remote result record");
        for (size_t i = 1; i < p.size(); i += remote_result_fields) {
            if (p[i].size() != 1) throw PacketError("bad result code");
            outcomes.push_back(Outcome{p[i][0], p[i + 1], p[i + 4], p[i + 3], p[i + 2]});
        }
    }
    for (const auto& o : outcomes)
        if (o.code != 'K' && o.code != 'Z' && o.code != 'D') throw PacketError("bad result code");
    auto it = messages_.find(job.id);
    if (it == messages_.end()) return;
    Message& m = it->second;
    std::vector<InfoLine> lines;
    for (size_t i = 0; i < outcomes.size(); ++i) apply(m, job.rcpts[i], outcomes[i], lines);
    bool open = false, failed = false;
    for (const auto& r : m.rcpts) {
        if (r.state == State::failed) failed = true;
        else if (r.state != State::done) open = true;
    }
    // The last recipients of a message without failures need no D line: the
    // message is removed at once, so there is nothing to remember.
    if (open || failed) record(m, lines);
    maybe_finish(m);
}

void Scheduler::apply(Message& m, size_t index, const Outcome& o, std::vector<InfoLine>& lines) {
    Recipient& rc = m.rcpts[index];
    const bool remote = !rc.route.local;
    const std::string relay = o.remote_mta.empty() ? "-" : o.remote_mta;
    auto log = [&](const char* result, const std::string& status, const std::string& retry_in) {
        const std::string& id = m.id;
        const std::string& to = rc.address;
        if (remote && !retry_in.empty())
            log_({{"event", "delivery"}, {"id", id}, {"rcpt", to}, {"result", result}, {"relay", relay},
                  {"status", status}, {"text", o.text}, {"retry_in", retry_in}});
        else if (remote)
            log_({{"event", "delivery"}, {"id", id}, {"rcpt", to}, {"result", result}, {"relay", relay},
                  {"status", status}, {"text", o.text}});
        else if (!retry_in.empty())
            log_({{"event", "delivery"}, {"id", id}, {"rcpt", to}, {"result", result}, {"status", status},
                  {"text", o.text}, {"retry_in", retry_in}});
        else
            log_({{"event", "delivery"}, {"id", id}, {"rcpt", to}, {"result", result}, {"status", status},
                  {"text", o.text}});
    };
    auto fail = [&](std::string status, std::string text) {
        rc.state = State::failed;
        rc.status = std::move(status);
        rc.text = std::move(text);
        lines.push_back({'P', index, rc.status,
                         remote ? encode_remote_diagnostic({rc.diag_type, rc.remote_mta, rc.text}) : rc.text});
    };
    const time_t now = ::time(nullptr);
    rc.diag_type = o.diag_type;
    rc.remote_mta = o.remote_mta;
    switch (o.code) {
    case 'K':
        rc.state = State::done;
        lines.push_back({'D', index, "", ""});
        log("ok", o.status.empty() ? "2.0.0" : o.status, "");
        break;
    case 'D':
        fail(o.status.empty() ? "5.0.0" : o.status, o.text);
        log("failed", rc.status, "");
        break;
    default: {  // 'Z'
        rc.status = o.status.empty() ? "4.0.0" : o.status;
        rc.text = o.text;
        ++rc.failures;
        auto next = next_attempt(cfg_.backoff, m.header.birth, now, rc.failures);
        if (!next) {
            // A server's last reply stays the diagnostic; Status 4.4.7 says why it bounces.
            bool smtp = remote && o.diag_type == "smtp";
            fail("4.4.7", smtp ? o.text : "message expired in the queue; last error: " + o.text);
            log("expired", o.status, "");
        } else {
            rc.state = State::pending;
            schedule_retry({m.id, index}, *next);
            log("deferred", rc.status, std::to_string(*next - now));
        }
        break;
    }
    }
}

void Scheduler::record(Message& m, const std::vector<InfoLine>& lines) {
    if (lines.empty()) return;
    const std::string path = inst_.queue_path("info/" + m.id);
    std::string text;
    for (const auto& l : lines) text += encode_info_line(l);
    try {
        int f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        bool created = false;
        if (f < 0 && errno == ENOENT) {
            f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            created = true;
        }
        if (f < 0) throw SysError("open " + path, errno);
        Fd fd(f);
        write_all(fd.get(), text);
        if (::fsync(fd.get()) < 0) throw SysError("fsync " + path, errno);
        // A new file's name is durable only once its directory is.
        if (created) fsync_dir(inst_.queue_path("info"));
    } catch (const SysError& e) {
        // The results are kept in memory; after a crash the recipients are tried again.
        log_({{"event", "error"}, {"id", m.id}, {"error", e.what()}});
    }
}

}  // namespace yubin
