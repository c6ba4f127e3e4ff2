#include "job_spawner.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

using namespace yubin;

namespace {

// Each job record [id, shell command] runs `sh -c command` with /dev/null
// on fd 0; the result record is [id, exit status, output].
class ShellSpawner : public JobSpawner {
public:
    ShellSpawner(event_base* base, int in, int out) : JobSpawner(base, "test-spawn", 10, in, out) {}
    std::vector<std::string> finished_ids;

private:
    void start(const Packet& p) override {
        if (p.size() != 2) throw PacketError("bad job record");
        if (p[1] == "refuse") {  // answered without a child
            reply({p[0], "refused", ""});
            return;
        }
        int pipefd[2];
        REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
        Fd rd(pipefd[0]), wr(pipefd[1]);
        Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const char* argv[] = {"sh", "-c", p[1].c_str(), nullptr};
        pid_t pid;
        REQUIRE(spawn_program({"/bin/sh", false, argv, nullptr, {{null.get(), 0}, {wr.get(), 1}, {wr.get(), 2}}, "/"},
                              &pid) == 0);
        wr.reset();
        track(pid, Job{p[0], 1}, std::move(rd));
    }
    void finished(const Job& job, int status, const std::string& output) override {
        finished_ids.push_back(job.id);
        reply({job.id, std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1), output});
    }
};

std::vector<Packet> read_results(int fd) {
    PacketReader r;
    r.feed(read_all(fd));
    std::vector<Packet> out;
    while (auto p = r.next()) out.push_back(*p);
    return out;
}

}  // namespace

TEST_CASE("JobSpawner: a child per job, output bounded, results on exit, ends at EOF", "[job_spawner]") {
    int jobs[2], results[2];
    REQUIRE(::pipe(jobs) == 0);
    REQUIRE(::pipe(results) == 0);
    Fd jobs_r(jobs[0]), results_w(results[1]), results_r(results[0]);
    {
        Fd jobs_w(jobs[1]);
        write_all(jobs_w.get(), encode_packet({"a", "sleep 0.2; echo first; exit 3"}) +
                                    encode_packet({"b", "printf 0123456789abcdef; echo err >&2"}) +
                                    encode_packet({"c", "refuse"}) +
                                    encode_packet({"d", "pwd; exit 0"}));
    }  // EOF: the loop ends once every child is reaped
    EventBasePtr base = make_event_base();
    ShellSpawner s(base.get(), jobs_r.get(), results_w.get());
    event_base_dispatch(base.get());
    results_w.reset();
    auto res = read_results(results_r.get());
    REQUIRE(res.size() == 4);
    CHECK(res[0] == Packet{"c", "refused", ""});  // at once, before any child ends
    // b and d end before a (which sleeps); each result after its child's exit.
    CHECK(res.back() == Packet{"a", "3", "first\n"});
    for (const Packet& p : res) {
        if (p[0] == "b") CHECK(p == Packet{"b", "0", "0123456789"});  // 10 bytes kept of 20
        if (p[0] == "d") CHECK(p == Packet{"d", "0", "/\n"});
    }
    CHECK(s.finished_ids.size() == 3);
}
