#include "writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "address.hpp"
#include "datetime.hpp"
#include "exitcodes.hpp"

namespace yubin {

Envelope check_envelope(std::string_view raw) {
    std::string why;
    auto env = parse_qmail_envelope(raw, &why);
    if (!env) throw QueueWriteError(inject_exit::envelope_format, why);
    if (env->recipients.empty()) throw QueueWriteError(inject_exit::refused, "");
    if (!address_is_storable(env->sender, max_queue_address)) throw QueueWriteError(inject_exit::bad_address, "sender");
    for (const auto& r : env->recipients)
        if (r.empty() || !address_is_storable(r, max_queue_address))
            throw QueueWriteError(inject_exit::bad_address, "recipient");
    return *std::move(env);
}

long long QueueIds::system_clock() {
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    return static_cast<long long>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

std::string QueueIds::next(pid_t pid) {
    long long now = clock_();
    if (now <= last_) now = last_ + 1;
    last_ = now;
    return std::to_string(now / 1000000) + "." + std::to_string(now % 1000000) + "." + std::to_string(pid);
}

std::string queue_file_head(time_t now, uid_t uid, pid_t pid, const Envelope& env) {
    std::string head = encode_queue_header(now, uid, env);
    head += "Received: (yubin " + std::to_string(pid) + " invoked by uid " + std::to_string(uid) + "); " +
            rfc5322_date(now) + "\n";
    return head;
}

namespace {
bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 || errno != ENOENT;
}
}  // namespace

QueueFile::QueueFile(const Instance& inst, QueueIds& ids, pid_t pid) : inst_(inst) {
    for (int attempt = 0; attempt < 10 && !fd_; ++attempt) {
        id_ = ids.next(pid);
        path_ = inst.queue_path("tmp/" + id_);
        // 0640: in a system instance remote-spawn reads it through the group (yubin-setup(8)).
        int f = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (f < 0 && errno != EEXIST)
            throw QueueWriteError(inject_exit::cannot_create, path_ + ": " + std::strerror(errno));
        if (f < 0) continue;
        // A file moves tmp/ -> new/ -> cur/ only: looking in new/ before
        // cur/ cannot miss one that moves on meanwhile.
        if (exists(inst.queue_path("new/" + id_)) || exists(inst.queue_path("cur/" + id_))) {
            ::close(f);
            ::unlink(path_.c_str());
            continue;
        }
        fd_.reset(f);
    }
    if (!fd_) throw QueueWriteError(inject_exit::cannot_create, "no unique name in tmp/");
}

QueueFile::~QueueFile() {
    if (!committed_) ::unlink(path_.c_str());
}

void QueueFile::write(std::string_view data) {
    try {
        write_all(fd_.get(), data);
    } catch (const SysError& e) {
        throw QueueWriteError(inject_exit::write_error, e.what());
    }
}

void QueueFile::commit() {
    if (::fsync(fd_.get()) < 0) throw QueueWriteError(inject_exit::write_error, "fsync " + path_ + ": " + std::strerror(errno));
    fd_.reset();
    if (::rename(path_.c_str(), inst_.queue_path("new/" + id_).c_str()) < 0)
        throw QueueWriteError(inject_exit::write_error, std::string("rename into new/: ") + std::strerror(errno));
    committed_ = true;
}

void sync_queue_new(const Instance& inst) {
    try {
        fsync_dir(inst.queue_path("new"));
    } catch (const SysError& e) {
        throw QueueWriteError(inject_exit::write_error, e.what());
    }
}

void trigger_queue_manager(const Instance& inst) {
    int fd = ::open(inst.queue_path("lock/trigger").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;  // no queue-manager running: it scans new/ when it starts
    ssize_t n = ::write(fd, "", 1);
    (void)n;
    ::close(fd);
}

}  // namespace yubin
