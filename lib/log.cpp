#include "log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sys/prctl.h>
// make check SANITIZE=1: LeakSanitizer stops the process's threads with
// ptrace, which a process that made itself undumpable (smtpd, pop3d, the
// password checkers, anything setgid) does not allow unless it is root;
// it would die at exit. Such a process is not checked for leaks.
extern "C" int __lsan_is_turned_off() { return ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1 && ::geteuid() != 0; }
#endif

namespace yubin {

namespace {
bool log_to_syslog = false;
}  // namespace

void keep_log_from_client() {
    struct stat in, err;
    if (::fstat(0, &in) < 0 || ::fstat(2, &err) < 0) return;
    if (!S_ISSOCK(err.st_mode) || in.st_dev != err.st_dev || in.st_ino != err.st_ino) return;
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0) return;
    ::dup2(null, 2);   // not close-on-exec: what the server runs inherits it
    ::close(null);
    ::openlog(nullptr, LOG_PID, LOG_MAIL);
    log_to_syslog = true;
}

std::string log_value(std::string_view v) {
    bool plain = !v.empty();
    for (unsigned char c : v)
        if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) { plain = false; break; }
    if (plain) return std::string(v);
    static const char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : v) {
        if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
        else if (c < ' ' || c == 0x7f) { out += "\\x"; out += hex[c >> 4]; out += hex[c & 15]; }
        else out += static_cast<char>(c);
    }
    out += '"';
    return out;
}

std::string Log::format(std::initializer_list<LogField> fields) const {
    std::string line = program_ + ":";
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        line += log_value(v);
    }
    line += '\n';
    return line;
}

void Log::operator()(std::initializer_list<LogField> fields) const {
    std::string line = format(fields);
    if (log_to_syslog && fd_ == 2) {
        ::syslog(LOG_INFO, "%.*s", static_cast<int>(line.size() - 1), line.c_str());
        return;
    }
    // One write per line so that lines from several processes do not interleave.
    ssize_t n = ::write(fd_, line.data(), line.size());
    (void)n;
}

}  // namespace yubin
