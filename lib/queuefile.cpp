#include "queuefile.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "io.hpp"

namespace yubin {

std::string encode_qmail_envelope(const Envelope& env) {
    std::string out = "F" + env.sender;
    out += '\0';
    for (const auto& r : env.recipients) {
        out += 'T';
        out += r;
        out += '\0';
    }
    out += '\0';
    return out;
}

std::optional<Envelope> parse_qmail_envelope(std::string_view b, std::string* why) {
    auto fail = [&](const char* w) -> std::optional<Envelope> {
        if (why) *why = w;
        return std::nullopt;
    };
    Envelope env;
    size_t pos = 0;
    bool have_sender = false;
    for (;;) {
        size_t nul = b.find('\0', pos);
        if (nul == std::string_view::npos) return fail("envelope not terminated");
        std::string_view item = b.substr(pos, nul - pos);
        pos = nul + 1;
        if (item.empty()) break;
        if (!have_sender) {
            if (item[0] != 'F') return fail("envelope does not start with F");
            env.sender = std::string(item.substr(1));
            have_sender = true;
        } else {
            if (item[0] != 'T') return fail("envelope item is not T");
            env.recipients.emplace_back(item.substr(1));
        }
    }
    if (!have_sender) return fail("envelope has no sender");
    if (pos != b.size()) return fail("bytes after the end of the envelope");
    return env;
}

std::string encode_queue_header(time_t birth, uid_t uid, const Envelope& env) {
    std::string out = "Y " + std::to_string(birth) + " " + std::to_string(uid) + "\n";
    out += "F" + env.sender + "\n";
    for (const auto& r : env.recipients) out += "T" + r + "\n";
    out += "\n";
    return out;
}

namespace {
bool parse_num(std::string_view s, unsigned long long& v) {
    if (s.empty() || s.size() > 19) return false;
    v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    return true;
}
}  // namespace

std::optional<QueueHeader> parse_queue_header(std::string_view b) {
    QueueHeader h;
    size_t nl = b.find('\n');
    if (nl == std::string_view::npos || b.substr(0, 2) != "Y ") return std::nullopt;
    std::string_view first = b.substr(2, nl - 2);
    size_t sp = first.find(' ');
    unsigned long long birth, uid;
    if (sp == std::string_view::npos || !parse_num(first.substr(0, sp), birth) ||
        !parse_num(first.substr(sp + 1), uid))
        return std::nullopt;
    h.birth = static_cast<time_t>(birth);
    h.uid = static_cast<uid_t>(uid);
    size_t pos = nl + 1;
    bool have_sender = false;
    for (;;) {
        nl = b.find('\n', pos);
        if (nl == std::string_view::npos) return std::nullopt;
        std::string_view line = b.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty()) break;
        if (!have_sender) {
            if (line[0] != 'F') return std::nullopt;
            h.envelope.sender = std::string(line.substr(1));
            have_sender = true;
        } else {
            if (line[0] != 'T') return std::nullopt;
            h.envelope.recipients.emplace_back(line.substr(1));
        }
    }
    if (!have_sender || h.envelope.recipients.empty()) return std::nullopt;
    h.message_offset = pos;
    return h;
}

std::optional<QueueHeader> read_queue_header(int fd) {
    std::string buf;
    char chunk[16384];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, chunk, sizeof chunk, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw SysError("read queue file", errno);
        }
        if (n == 0) return std::nullopt;
        // The header ends at the first empty line; search only the new bytes
        // (and the one before them).
        size_t from = buf.empty() ? 0 : buf.size() - 1;
        buf.append(chunk, static_cast<size_t>(n));
        off += n;
        if (buf.find("\n\n", from) != std::string::npos) return parse_queue_header(buf);
        if (buf.size() > (64u << 20)) return std::nullopt;
    }
}

std::string make_queue_id(pid_t pid) {
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    return std::to_string(tv.tv_sec) + "." + std::to_string(tv.tv_usec) + "." + std::to_string(pid);
}

bool valid_queue_id(std::string_view id) {
    int dots = 0;
    if (id.empty() || id.size() > 64) return false;
    for (char c : id) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 2 && id.front() != '.' && id.back() != '.' && id.find("..") == std::string_view::npos;
}

std::string encode_info_line(const InfoLine& l) {
    std::string out(1, l.kind);
    out += ' ';
    out += std::to_string(l.index);
    if (l.kind == 'P') {
        out += ' ';
        std::string status = l.status.empty() ? "5.0.0" : l.status;
        for (char c : status) out += (c == ' ' || c == '\n' || c == '\r' || c == '\0') ? '_' : c;
        out += ' ';
        for (char c : l.text) out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
    }
    out += '\n';
    return out;
}

std::vector<InfoLine> parse_info(std::string_view text) {
    std::vector<InfoLine> out;
    size_t pos = 0;
    for (;;) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.size() < 3 || (line[0] != 'D' && line[0] != 'P') || line[1] != ' ') continue;
        InfoLine l;
        l.kind = line[0];
        std::string_view rest = line.substr(2);
        size_t sp = rest.find(' ');
        unsigned long long idx;
        if (!parse_num(rest.substr(0, sp), idx)) continue;
        l.index = static_cast<size_t>(idx);
        if (l.kind == 'P') {
            if (sp == std::string_view::npos) continue;
            rest = rest.substr(sp + 1);
            sp = rest.find(' ');
            l.status = std::string(rest.substr(0, sp));
            if (sp != std::string_view::npos) l.text = std::string(rest.substr(sp + 1));
        } else if (sp != std::string_view::npos) {
            continue;
        }
        out.push_back(std::move(l));
    }
    return out;
}

}  // namespace yubin
