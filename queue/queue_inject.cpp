// queue-inject: message on fd 0, envelope on fd 1 -> one durable queue file.
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

[[noreturn]] void die(int code, const std::string& why = {}) {
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
        die(e.err() == EFBIG ? inject_exit::envelope_format : inject_exit::read_error, e.what());
    }
    std::string why;
    auto env = parse_qmail_envelope(raw, &why);
    if (!env) die(inject_exit::envelope_format, why);
    if (env->recipients.empty()) die(inject_exit::refused);
    if (!address_is_storable(env->sender, max_address)) die(inject_exit::bad_address, "sender");
    for (const auto& r : env->recipients)
        if (r.empty() || !address_is_storable(r, max_address)) die(inject_exit::bad_address, "recipient");
    return *std::move(env);
}

void trigger(const Instance& inst) {
    int fd = ::open(inst.queue_path("lock/trigger").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;  // no queue-manager running: it scans new/ when it starts
    ssize_t n = ::write(fd, "", 1);
    (void)n;
    ::close(fd);
}

}  // namespace

int main() {
    ::signal(SIGPIPE, SIG_IGN);
    ::alarm(input_timeout);
    ::signal(SIGALRM, [](int) { die(inject_exit::timeout); });
    std::optional<Instance> inst;
    try {
        inst = Instance::of_this_program();
    } catch (const std::exception& e) {
        die(inject_exit::no_config, e.what());
    }
    ::umask(077);

    try {
        std::string message = read_all(0);
        Envelope env = read_envelope();
        ::alarm(0);

        const time_t now = ::time(nullptr);
        const pid_t pid = ::getpid();
        std::string id, tmp;
        Fd fd;
        for (int attempt = 0; attempt < 10 && !fd; ++attempt) {
            id = make_queue_id(pid);
            tmp = inst->queue_path("tmp/" + id);
            int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (f >= 0) fd.reset(f);
            else if (errno != EEXIST) die(inject_exit::cannot_create, tmp + ": " + std::strerror(errno));
            else ::usleep(1);
        }
        if (!fd) die(inject_exit::cannot_create, "no unique name in tmp/");

        std::string head = encode_queue_header(now, ::getuid(), env);
        head += "Received: (yubin " + std::to_string(pid) + " invoked by uid " + std::to_string(::getuid()) +
                "); " + rfc5322_date(now) + "\n";
        try {
            write_all(fd.get(), head);
            write_all(fd.get(), message);
            if (::fsync(fd.get()) < 0) throw SysError("fsync " + tmp, errno);
            fd.reset();
            if (::rename(tmp.c_str(), inst->queue_path("new/" + id).c_str()) < 0)
                throw SysError("rename into new/", errno);
            fsync_dir(inst->queue_path("new"));
        } catch (const SysError& e) {
            ::unlink(tmp.c_str());
            die(inject_exit::write_error, e.what());
        }
        trigger(*inst);
    } catch (const std::bad_alloc&) {
        die(inject_exit::no_memory);
    } catch (const SysError& e) {
        die(inject_exit::read_error, e.what());
    }
    return inject_exit::ok;
}
