// queue-inject: message on fd 0, envelope on fd 1 -> one durable queue file.
// With -i, the queue id is written to fd 3 (one line) before the message is
// read, so that the caller can name it in its Received: line.
// See queue-inject(8) and yubin-queue(5).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>

#include "address.hpp"
#include "datetime.hpp"
#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "queuefile.hpp"

using namespace yubin;

namespace {

constexpr size_t max_envelope = 16u << 20;
constexpr size_t max_address = 1000;
constexpr unsigned input_timeout = 86400;
constexpr int id_fd = 3;

struct InjectError {
    int code;
    std::string why;
    bool quiet = false;
};

[[noreturn]] void exit_with(int code, const std::string& why, bool quiet = false) {
    if (quiet) std::_Exit(code);
    std::string line = "queue-inject: " + std::string(inject_exit::describe(code));
    if (!why.empty()) line += ": " + why;
    line += "\n";
    ssize_t n = ::write(2, line.data(), line.size());
    (void)n;
    std::_Exit(code);
}

Envelope read_envelope() {
    std::string raw;
    try {
        raw = read_all(1, max_envelope);
    } catch (const SysError& e) {
        throw InjectError{e.err() == EFBIG ? inject_exit::envelope_format : inject_exit::read_error, e.what()};
    }
    // An empty envelope is how a caller drops a message it started (smtpd
    // refusing one at the end of DATA): refuse it without a complaint.
    if (raw.empty()) throw InjectError{inject_exit::envelope_format, "", true};
    std::string why;
    auto env = parse_qmail_envelope(raw, &why);
    if (!env) throw InjectError{inject_exit::envelope_format, why};
    if (env->recipients.empty()) throw InjectError{inject_exit::refused, ""};
    if (!address_is_storable(env->sender, max_address)) throw InjectError{inject_exit::bad_address, "sender"};
    for (const auto& r : env->recipients)
        if (r.empty() || !address_is_storable(r, max_address))
            throw InjectError{inject_exit::bad_address, "recipient"};
    return *std::move(env);
}

// A new file in queue/tmp; removed again unless commit() renamed it into new/.
class TmpFile {
public:
    explicit TmpFile(const Instance& inst) : inst_(inst) {
        const pid_t pid = ::getpid();
        for (int attempt = 0; attempt < 10 && !fd_; ++attempt) {
            id_ = make_queue_id(pid);
            path_ = inst.queue_path("tmp/" + id_);
            // 0640: in a system instance remote-spawn reads it through the group (yubin-setup(8)).
            int f = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
            if (f >= 0) fd_.reset(f);
            else if (errno != EEXIST) throw InjectError{inject_exit::cannot_create, path_ + ": " + std::strerror(errno)};
            else ::usleep(1);
        }
        if (!fd_) throw InjectError{inject_exit::cannot_create, "no unique name in tmp/"};
    }
    ~TmpFile() {
        if (!committed_) ::unlink(path_.c_str());
    }
    const std::string& id() const { return id_; }

    void commit(std::string_view head, std::string_view message) {
        try {
            write_all(fd_.get(), head);
            write_all(fd_.get(), message);
            if (::fsync(fd_.get()) < 0) throw SysError("fsync " + path_, errno);
            fd_.reset();
            if (::rename(path_.c_str(), inst_.queue_path("new/" + id_).c_str()) < 0)
                throw SysError("rename into new/", errno);
            committed_ = true;
            fsync_dir(inst_.queue_path("new"));
        } catch (const SysError& e) {
            throw InjectError{inject_exit::write_error, e.what()};
        }
    }

private:
    const Instance& inst_;
    std::string id_, path_;
    Fd fd_;
    bool committed_ = false;
};

void trigger(const Instance& inst) {
    int fd = ::open(inst.queue_path("lock/trigger").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;  // no queue-manager running: it scans new/ when it starts
    ssize_t n = ::write(fd, "", 1);
    (void)n;
    ::close(fd);
}

int inject(const Instance& inst, bool report_id) {
    TmpFile file(inst);
    if (report_id) {
        try {
            write_all(id_fd, file.id() + "\n");
        } catch (const SysError& e) {
            throw InjectError{inject_exit::write_error, std::string("queue id: ") + e.what()};
        }
        ::close(id_fd);
    }
    std::string message;
    try {
        message = read_all(0);
    } catch (const SysError& e) {
        throw InjectError{inject_exit::read_error, e.what()};
    }
    Envelope env = read_envelope();
    ::alarm(0);
    const time_t now = ::time(nullptr);
    std::string head = encode_queue_header(now, ::getuid(), env);
    head += "Received: (yubin " + std::to_string(::getpid()) + " invoked by uid " + std::to_string(::getuid()) +
            "); " + rfc5322_date(now) + "\n";
    file.commit(head, message);
    trigger(inst);
    return inject_exit::ok;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// make check SANITIZE=1: LeakSanitizer stops the world with ptrace at exit,
// which a setuid (non-dumpable) process cannot do; it then fails the run.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

// Setuid in a system instance, queue-inject trusts nothing its caller set
// up: a closed fd 2 (or 3 with -i) must not become the queue file, so that
// an error message or the id line cannot land in it.
bool std_fds_open(bool report_id) {
    for (int fd = 0; fd <= (report_id ? id_fd : 2); ++fd) {
        if (::fcntl(fd, F_GETFD) >= 0) continue;
        if (fd != 2) return false;
        int null = ::open("/dev/null", O_WRONLY);
        if (null != 2) return false;
    }
    return true;
}

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGALRM, [](int) { exit_with(inject_exit::timeout, ""); });
    ::alarm(input_timeout);
    bool report_id = false;
    if (argc == 2 && std::strcmp(argv[1], "-i") == 0) report_id = true;
    else if (argc != 1) exit_with(inject_exit::internal, "usage: queue-inject [-i]");
    if (!std_fds_open(report_id)) exit_with(inject_exit::internal, "fd 0, 1 or 3 is not open");
    ::umask(027);
    try {
        Instance inst = Instance::of_this_program();
        return inject(inst, report_id);
    } catch (const InjectError& e) {
        exit_with(e.code, e.why, e.quiet);
    } catch (const std::bad_alloc&) {
        exit_with(inject_exit::no_memory, "");
    } catch (const std::exception& e) {
        exit_with(inject_exit::no_config, e.what());
    }
}
