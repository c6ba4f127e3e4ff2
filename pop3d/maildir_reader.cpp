#include "maildir_reader.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "maildir.hpp"
#include "password.hpp"

#include "encode.hpp"

namespace yubin {

namespace {

struct DirCloser { void operator()(DIR* d) const { ::closedir(d); } };

// The names of the regular files in dir that do not start with '.', with
// their sizes.
std::vector<std::pair<std::string, uint64_t>> list_dir(const std::string& dir) {
    std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
    if (!d) throw SysError("opendir " + dir, errno);
    std::vector<std::pair<std::string, uint64_t>> out;
    errno = 0;
    while (struct dirent* e = ::readdir(d.get())) {
        if (e->d_name[0] == '.') continue;
        struct stat st;
        if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;   // gone since readdir, or not a message
        out.emplace_back(e->d_name, static_cast<uint64_t>(st.st_size));
    }
    return out;
}

uint64_t count_size(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw SysError("open " + path, errno);
    pop3::FdReader in(fd);
    CrlfSizeCounter c;
    char buf[65536];
    while (size_t n = in.read(buf, sizeof buf)) c.add(std::string_view(buf, n));
    return c.total();
}

uint64_t leading_number(std::string_view name) {
    uint64_t v = 0;
    for (char c : name) {
        if (c < '0' || c > '9' || v > UINT64_MAX / 100) break;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
}


}  // namespace

std::string_view maildir_base(std::string_view name) { return name.substr(0, name.find(':')); }

std::optional<uint64_t> maildir_field(std::string_view base, char key) {
    const char tag[] = {',', key, '='};
    size_t at = base.find(std::string_view(tag, 3));
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view digits = base.substr(at + 3);
    digits = digits.substr(0, digits.find_first_not_of("0123456789"));
    if (digits.empty() || digits.size() > 18) return std::nullopt;
    uint64_t v = 0;
    for (char c : digits) v = v * 10 + static_cast<uint64_t>(c - '0');
    return v;
}

std::string pop3_uidl(std::string_view base) {
    bool fits = !base.empty() && base.size() <= 70;
    for (unsigned char c : base)
        if (c < 0x21 || c > 0x7e) fits = false;
    return fits ? std::string(base) : "x" + digest_hex("sha256", base);
}

std::vector<MaildirMessage> maildir_scan(const std::string& maildir) {
    std::vector<MaildirMessage> out;
    std::set<std::string, std::less<>> seen;
    for (const char* dir : {"cur", "new"}) {
        for (auto& [name, file_size] : list_dir(maildir + "/" + dir)) {
            std::string_view base = maildir_base(name);
            if (!seen.insert(std::string(base)).second) continue;
            MaildirMessage m{dir, name, pop3_uidl(base), 0};
            auto w = maildir_field(base, 'W'), s = maildir_field(base, 'S');
            if (w && s && *s == file_size) {
                m.size = *w;
            } else {
                try {
                    m.size = count_size(maildir + "/" + dir + "/" + name);
                } catch (const SysError& e) {
                    if (e.err() == ENOENT) continue;   // removed by another program meanwhile
                    throw;
                }
            }
            out.push_back(std::move(m));
        }
    }
    std::sort(out.begin(), out.end(), [](const MaildirMessage& a, const MaildirMessage& b) {
        uint64_t ta = leading_number(a.name), tb = leading_number(b.name);
        if (ta != tb) return ta < tb;
        return maildir_base(a.name) < maildir_base(b.name);
    });
    return out;
}

Fd maildir_open(const std::string& maildir, MaildirMessage& m) {
    int fd = ::open((maildir + "/" + m.dir + "/" + m.name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) return Fd(fd);
    if (errno != ENOENT) throw SysError("open " + m.dir + "/" + m.name, errno);
    const std::string base(maildir_base(m.name));
    for (const char* dir : {"cur", "new"}) {
        for (auto& entry : list_dir(maildir + "/" + dir)) {
            if (maildir_base(entry.first) != base) continue;
            fd = ::open((maildir + "/" + dir + "/" + entry.first).c_str(), O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                m.dir = dir;
                m.name = entry.first;
                return Fd(fd);
            }
        }
    }
    return Fd();
}

MaildirUpdate maildir_update(const std::string& maildir, std::vector<MaildirMessage>& msgs,
                             const std::vector<bool>& deleted) {
    MaildirUpdate r;
    for (size_t i = 0; i < msgs.size(); ++i) {
        MaildirMessage& m = msgs[i];
        const std::string path = maildir + "/" + m.dir + "/" + m.name;
        if (i < deleted.size() && deleted[i]) {
            if (::unlink(path.c_str()) == 0) {
                ++r.deleted;
                continue;
            }
            if (errno != ENOENT) {
                ++r.failed;
                continue;
            }
            // Moved by another program since the scan: delete it where it is now.
            try {
                Fd again = maildir_open(maildir, m);
                if (!again || ::unlink((maildir + "/" + m.dir + "/" + m.name).c_str()) == 0 || errno == ENOENT)
                    ++r.deleted;   // removed now, or gone already
                else
                    ++r.failed;
            } catch (const SysError&) {
                ++r.failed;
            }
        } else if (m.dir == "new") {
            const std::string name = std::string(maildir_base(m.name)) + ":2,";
            if (::rename(path.c_str(), (maildir + "/cur/" + name).c_str()) == 0) {
                m.dir = "cur";
                m.name = name;
                ++r.moved;
            }
        }
    }
    for (const char* dir : {"new", "cur"}) {
        if (r.deleted + r.moved == 0) break;
        try {
            fsync_dir(maildir + "/" + dir);
        } catch (const SysError&) {
            // the changes are made; only their durability is in doubt
        }
    }
    return r;
}

std::optional<MaildirLock> MaildirLock::try_lock(const std::string& maildir) {
    Fd fd = open_or_throw(maildir + "/yubin-pop3d.lock", O_RDWR | O_CREAT, 0600);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return MaildirLock(std::move(fd));
    if (errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    throw SysError("flock " + maildir + "/yubin-pop3d.lock", errno);
}

}  // namespace yubin
