#include "handoff.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace yubin {

int send_handoff(int sock, int conn, const std::vector<std::pair<std::string, std::string>>& vars) {
    std::string text;
    for (const auto& [name, value] : vars) {
        if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos ||
            value.find('\0') != std::string::npos)
            return EINVAL;
        text += name + "=" + value;
        text += '\0';
    }
    if (text.size() > max_handoff_packet) return EMSGSIZE;
    if (text.empty()) text.push_back('\0');  // a packet of length 0 would read as the end
    iovec iov{text.data(), text.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &conn, sizeof(int));
    for (;;) {
        if (::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(text.size())) return 0;
        if (errno != EINTR) return errno;
    }
}

Handoff receive_handoff(int sock) {
    Handoff h;
    std::string text(max_handoff_packet, '\0');
    iovec iov{text.data(), text.size()};
    // Room for more fds than one, so that extra ones arrive (and are closed) rather than vanish.
    alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        h.end = true;
        return h;
    }
    std::vector<Fd> fds;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            fds.emplace_back(fd);
        }
    }
    if (fds.size() != 1 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) return h;
    text.resize(static_cast<size_t>(n));
    if (text.back() != '\0') return h;
    std::map<std::string, std::string> vars;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = text.find('\0', pos);
        std::string_view entry(text.data() + pos, end - pos);
        pos = end + 1;
        if (entry.empty() && pos == text.size() && vars.empty()) break;  // the packet of no variables
        size_t eq = entry.find('=');
        if (eq == 0 || eq == std::string_view::npos) return h;
        vars[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
    }
    h.vars = std::move(vars);
    h.conn = std::move(fds[0]);
    return h;
}

bool send_ready(int sock) {
    for (;;) {
        if (::send(sock, "r", 1, MSG_NOSIGNAL) == 1) return true;
        if (errno != EINTR) return false;
    }
}

int handoff_fd_from_environment() {
    const char* v = std::getenv(handoff_variable);
    if (!v) return -1;
    char* end;
    errno = 0;
    long fd = std::strtol(v, &end, 10);
    bool number = errno == 0 && *v && !*end && fd > 2 && fd < 1024;
    ::unsetenv(handoff_variable);
    if (!number) return -1;
    int type = 0, domain = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) return -1;
    len = sizeof domain;
    if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX) return -1;
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
}

}  // namespace yubin
