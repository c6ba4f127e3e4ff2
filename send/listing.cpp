#include "listing.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "datetime.hpp"
#include "exitcodes.hpp"
#include "io.hpp"
#include "queuefile.hpp"

namespace yubin {

namespace {

struct Entry {
    std::string id, dir;
};

std::vector<Entry> list_dir(const Instance& inst, const char* dir) {
    std::vector<Entry> out;
    DIR* d = ::opendir(inst.queue_path(dir).c_str());
    if (!d) throw SysError(std::string("cannot read queue/") + dir, errno);
    while (dirent* e = ::readdir(d))
        if (valid_queue_id(e->d_name)) out.push_back({e->d_name, dir});
    ::closedir(d);
    return out;
}

}  // namespace

int print_queue(const Instance& inst, std::FILE* out) {
    std::vector<Entry> entries;
    try {
        entries = list_dir(inst, "cur");
        auto fresh = list_dir(inst, "new");
        entries.insert(entries.end(), fresh.begin(), fresh.end());
    } catch (const SysError& e) {
        std::fprintf(stderr, "mailq: %s\n", e.what());
        return sysexit::noperm;
    }
    // Oldest first: ids are SECONDS.MICROSECONDS.PID, compared as numbers.
    auto key = [](const std::string& id) {
        std::array<unsigned long, 3> k{};
        std::sscanf(id.c_str(), "%lu.%lu.%lu", &k[0], &k[1], &k[2]);
        return k;
    };
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) { return key(a.id) < key(b.id); });
    size_t shown = 0;
    for (const auto& e : entries) {
        const std::string path = inst.queue_path(e.dir + "/" + e.id);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;  // delivered while we looked
        Fd guard(fd);
        struct stat st;
        auto h = read_queue_header(fd);
        if (!h || ::fstat(fd, &st) < 0) continue;
        std::vector<char> state(h->envelope.recipients.size(), ' ');
        std::vector<std::string> why(state.size());
        if (auto info = read_file(inst.queue_path("info/" + e.id), 64 << 20))
            for (const auto& l : parse_info(*info))
                if (l.index < state.size()) {
                    state[l.index] = l.kind;
                    why[l.index] = l.status + " " + l.text;
                }
        std::fprintf(out, "%s  %lld bytes  %s  from <%s>%s\n", e.id.c_str(),
                     static_cast<long long>(st.st_size) - static_cast<long long>(h->message_offset),
                     rfc5322_date(h->birth).c_str(), h->envelope.sender.c_str(),
                     e.dir == "new" ? "  (not yet seen by queue-manager)" : "");
        for (size_t i = 0; i < state.size(); ++i) {
            const char* s = state[i] == 'D' ? "delivered" : state[i] == 'P' ? "failed" : "pending";
            std::fprintf(out, "    %-9s <%s>%s%s\n", s, h->envelope.recipients[i].c_str(),
                         state[i] == 'P' ? "  " : "", state[i] == 'P' ? why[i].c_str() : "");
        }
        ++shown;
    }
    if (shown == 0) std::fprintf(out, "mail queue is empty\n");
    else std::fprintf(out, "%zu message%s in the queue\n", shown, shown == 1 ? "" : "s");
    return sysexit::ok;
}

}  // namespace yubin
