#include "maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io.hpp"

namespace yubin {

std::string maildir_host(std::string_view hostname) {
    std::string out;
    for (char c : hostname) {
        if (c == '/') out += "\\057";
        else if (c == ':') out += "\\072";
        else out += c;
    }
    return out;
}

void CrlfSizeCounter::add(std::string_view in) {
    bytes_ += in.size();
    size_t pos = 0;
    while (pos < in.size()) {
        const void* lf = std::memchr(in.data() + pos, '\n', in.size() - pos);
        if (!lf) break;
        size_t at = static_cast<size_t>(static_cast<const char*>(lf) - in.data());
        bool cr = at > 0 ? in[at - 1] == '\r' : prev_cr_;
        if (!cr) ++bare_lf_;
        pos = at + 1;
    }
    if (!in.empty()) {
        prev_cr_ = in.back() == '\r';
        at_line_start_ = in.back() == '\n';
    }
}

uint64_t CrlfSizeCounter::total() const {
    uint64_t t = bytes_ + bare_lf_;
    if (!at_line_start_) t += prev_cr_ ? 1 : 2;   // the line end the last line gets
    return t;
}

uint64_t crlf_size(std::string_view message) {
    CrlfSizeCounter c;
    c.add(message);
    return c.total();
}

std::string maildir_unique_name(long sec, long usec, pid_t pid, unsigned counter,
                                std::string_view host, size_t size, uint64_t crlf_size) {
    return std::to_string(sec) + ".M" + std::to_string(usec) + "P" + std::to_string(pid) + "Q" +
           std::to_string(counter) + "." + maildir_host(host) + ",S=" + std::to_string(size) +
           ",W=" + std::to_string(crlf_size);
}

namespace {

DeliveryResult from_errno(const char* what, int err) {
    std::string text = std::string(what) + ": " + std::strerror(err);
    if (err == EDQUOT) return DeliveryResult::temporary("4.2.2", "mailbox is full: " + text);
    if (err == ENOSPC) return DeliveryResult::temporary("4.3.1", "mail system is full: " + text);
    return DeliveryResult::temporary("4.2.0", text);
}

std::string local_hostname() {
    char buf[256];
    if (::gethostname(buf, sizeof buf - 1) < 0) return "localhost";
    buf[sizeof buf - 1] = 0;
    return buf;
}

}  // namespace

DeliveryResult maildir_deliver(const std::string& maildir, std::string_view prefix,
                               std::string_view message) {
    static unsigned counter = 0;  // per process: one more per delivery
    const std::string host = local_hostname();
    CrlfSizeCounter crlf;
    crlf.add(prefix);
    crlf.add(message);
    std::string tmp, name;
    int fd = -1;
    for (int attempt = 0; attempt < 5 && fd < 0; ++attempt) {
        struct timeval tv;
        ::gettimeofday(&tv, nullptr);
        name = maildir_unique_name(tv.tv_sec, tv.tv_usec, ::getpid(), ++counter, host,
                                   prefix.size() + message.size(), crlf.total());
        tmp = maildir + "/tmp/" + name;
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) return from_errno(("maildir " + maildir + "/tmp").c_str(), errno);
    }
    if (fd < 0) return DeliveryResult::temporary("4.2.0", "cannot make a unique name in " + maildir);
    Fd guard(fd);
    try {
        write_all(fd, prefix);
        write_all(fd, message);
        if (::fsync(fd) < 0) throw SysError("fsync", errno);
        guard.reset();
        if (::rename(tmp.c_str(), (maildir + "/new/" + name).c_str()) < 0) throw SysError("rename into new/", errno);
        fsync_dir(maildir + "/new");
    } catch (const SysError& e) {
        ::unlink(tmp.c_str());
        return from_errno(("maildir " + maildir + ": " + e.action()).c_str(), e.err());
    }
    return DeliveryResult::success("delivered to maildir " + name);
}

void maildir_create(const std::string& maildir) {
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
        std::string p = maildir + sub;
        if (::mkdir(p.c_str(), 0700) < 0 && errno != EEXIST) throw SysError("mkdir " + p, errno);
    }
}

}  // namespace yubin
