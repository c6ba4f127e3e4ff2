// local-spawn: runs local-deliver for each job queue-manager sends on fd 0
// and reports each result on fd 1. See local-spawn(8).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "aliases.hpp"
#include "instance.hpp"
#include "job_spawner.hpp"
#include "privileges.hpp"
#include "queuefile.hpp"
#include "users.hpp"

using namespace yubin;

namespace {

constexpr size_t max_output = 1000;

class LocalSpawner : public JobSpawner {
public:
    LocalSpawner(const Instance& inst, event_base* base)
        : JobSpawner(base, "local-spawn", max_output), inst_(inst), deliver_(inst.path("bin/local-deliver")) {
        defaultdelivery_ = inst_.control_string("defaultdelivery", "./Maildir/");
        system_ = system_queue_owner(inst_.queue_path()).has_value();
        separator_ = extension_separator(inst_);
    }

private:
    void report(const std::string& job, char code, const std::string& text) {
        reply({job, std::string(1, code), text});
    }

    // job: [job-id, queue-id, message-offset, sender, recipient, local, domain]
    void start(const Packet& p) override {
        if (p.size() != 7 || !valid_queue_id(p[1])) throw PacketError("bad job record");
        const std::string& job = p[0];
        const off_t offset = static_cast<off_t>(packet_number(p[2]));
        const std::string &sender = p[3], &recipient = p[4], &local = p[5], &domain = p[6];

        std::optional<LocalTarget> target;
        try {
            auto is_alias = [this](const std::string& name) { return alias_value(inst_, name).has_value(); };
            target = resolve_local(inst_, load_users(inst_), local, separator_, is_alias);
        } catch (const std::exception& e) {
            report(job, 'Z', std::string("4.3.0 cannot look up the recipient: ") + e.what());
            return;
        }
        if (!target) {
            report(job, 'D', "5.1.1 no mailbox here by that name: " + recipient);
            return;
        }
        Fd msg(::open(inst_.queue_path("cur/" + p[1]).c_str(), O_RDONLY | O_CLOEXEC));
        if (!msg || ::lseek(msg.get(), offset, SEEK_SET) != offset) {
            report(job, 'Z', "4.3.0 cannot open queue file " + p[1]);
            return;
        }
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) {
            report(job, 'Z', "4.3.0 out of pipes");
            return;
        }
        Fd rd(pipefd[0]), wr(pipefd[1]);
        std::string dash = target->ext.empty() ? "" : std::string(1, separator_);
        const char* argv[] = {"local-deliver", target->user.c_str(), target->home.c_str(), local.c_str(),
                              dash.c_str(), target->ext.c_str(), domain.c_str(), sender.c_str(),
                              defaultdelivery_.c_str(), nullptr};
        // Run as root, the delivery runs as the owner of the mailbox's home
        // (yubinv in a system instance); never as root in a system instance.
        std::optional<Ids> as;
        if (::geteuid() == 0) {
            // lstat: a symbolic link in home/ (which yubinv owns) must not lend its target's owner.
            struct stat st;
            if (::lstat(target->home.c_str(), &st) < 0) {
                report(job, 'Z', "4.3.0 cannot find home " + target->home + ": " + std::strerror(errno));
                return;
            }
            if (!S_ISDIR(st.st_mode)) {
                report(job, 'Z', "4.3.0 home " + target->home + " is not a directory");
                return;
            }
            if (st.st_uid != 0) as = Ids{st.st_uid, st.st_gid};
            else if (system_) {
                report(job, 'Z', "4.3.0 will not deliver as root: " + target->home + " belongs to root");
                return;
            }
        }
        pid_t pid;
        int err = as ? fork_as(argv, msg.get(), wr.get(), target->home, *as, &pid)
                     : spawn_program({deliver_, false, argv, nullptr,
                                      {{msg.get(), 0}, {wr.get(), 1}, {wr.get(), 2}}, target->home}, &pid);
        if (err) {
            report(job, 'Z', "4.3.0 cannot run local-deliver: " + std::string(std::strerror(err)));
            return;
        }
        wr.reset();
        track(pid, Job{job}, std::move(rd));
    }

    // spawn_program with a change of user, which posix_spawn cannot do.
    // The child reports a failure before exec through a close-on-exec pipe.
    int fork_as(const char* const* argv, int msg, int out, const std::string& home, Ids as, pid_t* pid) {
        int status[2];
        if (::pipe2(status, O_CLOEXEC) < 0) return errno;
        Fd status_rd(status[0]), status_wr(status[1]);
        *pid = ::fork();
        if (*pid < 0) return errno;
        if (*pid == 0) {
            int err = 0;
            if (::dup2(msg, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) err = errno;
            reset_child_signals();
            if (!err) err = become(as);
            if (!err && ::chdir(home.c_str()) < 0) err = errno;
            if (!err) ::execve(deliver_.c_str(), const_cast<char* const*>(argv), environ);
            if (!err) err = errno;
            ssize_t n = ::write(status_wr.get(), &err, sizeof err);
            (void)n;
            std::_Exit(111);
        }
        status_wr.reset();
        int err = 0;
        ssize_t n;
        while ((n = ::read(status_rd.get(), &err, sizeof err)) < 0 && errno == EINTR) {}
        if (n == static_cast<ssize_t>(sizeof err)) {  // exec failed: the child is gone already
            while (::waitpid(*pid, nullptr, 0) < 0 && errno == EINTR) {}
            return err;
        }
        return 0;
    }

    // local-deliver's exit code (0 or 99, 100, else 111) and its first line.
    void finished(const Job& job, int status, const std::string& output) override {
        std::string text = first_line(output);
        char code;
        if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 99)) code = 'K';
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 100) code = 'D';
        else code = 'Z';
        if (text.empty())
            text = WIFSIGNALED(status) ? "4.3.0 local-deliver crashed (signal " + std::to_string(WTERMSIG(status)) + ")"
                                       : "4.3.0 local-deliver gave no reason";
        report(job.id, code, text);
    }

    static std::string first_line(const std::string& s) {
        std::string line = s.substr(0, s.find('\n'));
        for (char& ch : line)
            if (static_cast<unsigned char>(ch) < ' ') ch = ' ';
        return trim(line);
    }

    const Instance inst_;
    const std::string deliver_;
    std::string defaultdelivery_;
    char separator_ = '-';
    bool system_ = false;
};

}  // namespace

int main() {
    return run_job_spawner("local-spawn", [](const Instance& inst, event_base* base) {
        return std::unique_ptr<JobSpawner>(new LocalSpawner(inst, base));
    });
}
