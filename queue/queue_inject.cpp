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

#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "writer.hpp"

using namespace yubin;

namespace {

constexpr size_t max_envelope = 16u << 20;
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
    return check_envelope(raw);
}

int inject(const Instance& inst, bool report_id) {
    QueueIds ids;
    QueueFile file(inst, ids, ::getpid());
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
    file.write(queue_file_head(::time(nullptr), ::getuid(), ::getpid(), env));
    file.write(message);
    file.commit();
    sync_queue_new(inst);
    trigger_queue_manager(inst);
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
    } catch (const QueueWriteError& e) {
        exit_with(e.code(), e.what());
    } catch (const std::bad_alloc&) {
        exit_with(inject_exit::no_memory, "");
    } catch (const std::exception& e) {
        exit_with(inject_exit::no_config, e.what());
    }
}
