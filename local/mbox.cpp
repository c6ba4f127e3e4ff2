#include "mbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io.hpp"

namespace yubin {

std::string mbox_from_line(std::string_view sender, time_t t) {
    static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    ::gmtime_r(&t, &tm);
    char date[64];
    std::snprintf(date, sizeof date, "%s %s %2d %02d:%02d:%02d %d", days[tm.tm_wday], months[tm.tm_mon],
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    std::string s(sender.empty() ? std::string_view("MAILER-DAEMON") : sender);
    for (char& c : s)
        if (c == ' ' || c == '\t') c = '_';
    return "From " + s + " " + date + "\n";
}

std::string mbox_quote(std::string_view message) {
    std::string out;
    out.reserve(message.size() + 64);
    size_t pos = 0;
    while (pos < message.size()) {
        size_t nl = message.find('\n', pos);
        size_t end = nl == std::string_view::npos ? message.size() : nl + 1;
        std::string_view line = message.substr(pos, end - pos);
        size_t gt = 0;
        while (gt < line.size() && line[gt] == '>') ++gt;
        if (line.substr(gt, 5) == "From ") out += '>';
        out += line;
        pos = end;
    }
    if (out.empty() || out.back() != '\n') out += '\n';
    out += '\n';
    return out;
}

DeliveryResult mbox_deliver(const std::string& path, std::string_view sender, time_t now,
                            std::string_view prefix, std::string_view message, int lock_timeout) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return DeliveryResult::temporary("4.2.0", "cannot open mbox " + path + ": " + std::strerror(errno));
    Fd guard(fd);
    struct flock lk {};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    // Bounded wait for the lock: poll every 100 ms up to lock_timeout seconds.
    for (int tries = 0;; ++tries) {
        if (::fcntl(fd, F_SETLK, &lk) == 0) break;
        if ((errno != EACCES && errno != EAGAIN) || tries >= lock_timeout * 10)
            return DeliveryResult::temporary("4.2.0", "cannot lock mbox " + path + ": " + std::strerror(errno));
        ::usleep(100000);
    }
    struct stat st;
    if (::fstat(fd, &st) < 0)
        return DeliveryResult::temporary("4.2.0", "cannot stat mbox " + path + ": " + std::strerror(errno));
    std::string text = mbox_from_line(sender, now);
    text += mbox_quote(std::string(prefix) + std::string(message));
    try {
        write_all(fd, text);
        if (::fsync(fd) < 0) throw SysError("fsync", errno);
    } catch (const SysError& e) {
        if (::ftruncate(fd, st.st_size) < 0) { /* nothing more to do: report the write error */ }
        if (e.err() == EDQUOT) return DeliveryResult::temporary("4.2.2", "mailbox is full: " + path);
        return DeliveryResult::temporary("4.2.0", "cannot write mbox " + path + ": " + e.what());
    }
    return DeliveryResult::success("delivered to mbox " + path);
}

}  // namespace yubin
