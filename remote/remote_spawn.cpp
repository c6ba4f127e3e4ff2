// remote-spawn: runs remote-deliver for each job queue-manager sends on fd 0
// and reports the results, one per recipient, on fd 1. See remote-spawn(8).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "instance.hpp"
#include "job_spawner.hpp"
#include "queuefile.hpp"
#include "remote_result.hpp"

using namespace yubin;

namespace {

constexpr size_t max_output = 1 << 20;
constexpr size_t job_fixed_fields = 5;   // job-id, queue-id, offset, sender, domain

class RemoteSpawner : public JobSpawner {
public:
    RemoteSpawner(const Instance& inst, event_base* base)
        : JobSpawner(base, "remote-spawn", max_output), inst_(inst), deliver_(inst.path("bin/remote-deliver")) {}

private:
    // The same result for every recipient of a job.
    void report_all(const std::string& job, size_t rcpts, const RemoteResult& r) {
        Packet p{job};
        for (size_t i = 0; i < rcpts; ++i)
            p.insert(p.end(), {std::string(1, r.code), r.status, r.remote_mta, r.diag_type, r.diagnostic});
        reply(p);
    }

    // job: [job-id, queue-id, message-offset, sender, domain, rcpt...]
    void start(const Packet& p) override {
        if (p.size() <= job_fixed_fields || !valid_queue_id(p[1])) throw PacketError("bad job record");
        const std::string& job = p[0];
        const size_t rcpts = p.size() - job_fixed_fields;
        const off_t offset = static_cast<off_t>(packet_number(p[2]));
        Fd msg(::open(inst_.queue_path("cur/" + p[1]).c_str(), O_RDONLY | O_CLOEXEC));
        if (!msg || ::lseek(msg.get(), offset, SEEK_SET) != offset) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "cannot open queue file " + p[1]));
            return;
        }
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "out of pipes"));
            return;
        }
        Fd rd(pipefd[0]), wr(pipefd[1]);
        // remote-deliver -i QUEUE-ID DOMAIN SENDER RCPT...
        std::vector<const char*> argv{"remote-deliver", "-i", p[1].c_str(), p[4].c_str(), p[3].c_str()};
        for (size_t i = job_fixed_fields; i < p.size(); ++i) argv.push_back(p[i].c_str());
        argv.push_back(nullptr);
        pid_t pid;
        if (spawn_program({deliver_, false, argv.data(), nullptr, {{msg.get(), 0}, {wr.get(), 1}}, ""}, &pid) != 0) {
            report_all(job, rcpts, RemoteResult::temporary("4.3.0", "cannot run remote-deliver"));
            return;
        }
        wr.reset();
        track(pid, Job{job, rcpts}, std::move(rd));
    }

    // [job-id, then for each recipient: code, status, remote-mta, diagnostic type, diagnostic]
    void finished(const Job& job, int status, const std::string& output) override {
        const std::string why = WIFSIGNALED(status)
                                    ? "remote-deliver crashed (signal " + std::to_string(WTERMSIG(status)) + ")"
                                    : "remote-deliver exited " + std::to_string(WEXITSTATUS(status)) +
                                          " without a result";
        Packet p{job.id};
        size_t pos = 0;
        for (size_t i = 0; i < job.count; ++i) {
            std::optional<RemoteResult> r;
            size_t nl = output.find('\n', pos);
            if (nl != std::string::npos) {
                r = parse_result_line(std::string_view(output).substr(pos, nl - pos));
                pos = nl + 1;
            }
            if (!r) r = RemoteResult::temporary("4.3.0", why);
            p.insert(p.end(), {std::string(1, r->code), r->status, r->remote_mta, r->diag_type, r->diagnostic});
        }
        if (pos != output.size() || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            log_({{"event", "error"}, {"job", job.id}, {"error", why}});
        reply(p);
    }

    const Instance inst_;
    const std::string deliver_;
};

}  // namespace

int main() {
    return run_job_spawner("remote-spawn", [](const Instance& inst, event_base* base) {
        return std::unique_ptr<JobSpawner>(new RemoteSpawner(inst, base));
    });
}
