// yubin-authd: the password checker as a long-lived service
// (yubin-authd(8)), so that a login costs a socket round trip and not a
// program start and a PBKDF2 run every time. yubin-start runs it when the
// instance has an auth/ directory, as the owner of the mailboxes (yubinv)
// in a system instance.
//
// It listens on INSTANCE/auth/socket (SOCK_SEQPACKET). A request is one
// packet with the bytes of the checkpassword interface ("user\0password\0"
// and, for APOP, "timestamp\0"); the answer is one packet: "K" then
// "user\0home\0" when the credentials are right, "N" when they are not
// (the same answer, after the same work, for a user who does not exist),
// "T" and a reason when they cannot be checked now. Only root, the
// instance's own user and smtpd's user (yubind, where it exists) may ask
// (SO_PEERCRED); anyone else is not answered.
//
// Right credentials are remembered for control/authcachettl seconds
// (default 3600; 0: never) under a keyed hash of user, password and
// timestamp, never the password itself, and forgotten at once when
// users/passwd or users/apop change. Wrong ones are never remembered: each
// guess costs the whole hash. Checks that need the hash run on up to
// nproc threads.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "instance.hpp"
#include "io.hpp"
#include "log.hpp"
#include "privileges.hpp"
#include "request.hpp"
#include "sasl.hpp"

using namespace yubin;

namespace {

using Clock = std::chrono::steady_clock;

// The users/ files as they are now: a change forgets every remembered answer.
std::string users_signature(const Instance& inst) {
    std::string sig;
    for (const char* f : {"users/passwd", "users/apop"}) {
        struct stat st;
        if (::stat(inst.path(f).c_str(), &st) == 0)
            sig += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                   std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
        else
            sig += "-;";
    }
    return sig;
}

class Cache {
public:
    explicit Cache(long ttl_seconds) : ttl_(std::chrono::seconds(ttl_seconds)) {
        if (RAND_bytes(key_, sizeof key_) != 1) throw std::runtime_error("RAND_bytes failed");
    }
    ~Cache() { OPENSSL_cleanse(key_, sizeof key_); }

    // HMAC-SHA256 under a key made at start: what a request is remembered by.
    std::string key_of(const Request& r) const {
        std::string msg = r.user + '\0' + r.password + '\0' + r.timestamp;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        HMAC(EVP_sha256(), key_, sizeof key_, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len);
        OPENSSL_cleanse(msg.data(), msg.size());
        return std::string(reinterpret_cast<char*>(md), len);
    }
    bool enabled() const { return ttl_.count() > 0; }

    // The remembered answer ("user\0home\0"), or "".
    std::string find(const std::string& key, const std::string& signature) {
        std::lock_guard<std::mutex> lock(mu_);
        sync(signature);
        auto it = entries_.find(key);
        if (it == entries_.end()) return "";
        if (Clock::now() >= it->second.expires) {
            entries_.erase(it);
            return "";
        }
        return it->second.answer;
    }
    void remember(const std::string& key, const std::string& signature, std::string answer) {
        if (!enabled()) return;
        std::lock_guard<std::mutex> lock(mu_);
        sync(signature);
        if (entries_.size() >= max_entries) {
            const auto now = Clock::now();
            for (auto it = entries_.begin(); it != entries_.end();)
                it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
            if (entries_.size() >= max_entries) entries_.clear();
        }
        entries_[key] = Entry{std::move(answer), Clock::now() + ttl_};
    }

private:
    static constexpr size_t max_entries = 10000;
    struct Entry {
        std::string answer;
        Clock::time_point expires;
    };
    void sync(const std::string& signature) {
        if (signature != signature_) {
            entries_.clear();
            signature_ = signature;
        }
    }
    unsigned char key_[32];
    std::chrono::seconds ttl_;
    std::mutex mu_;
    std::string signature_;
    std::unordered_map<std::string, Entry> entries_;
};

// At most n checks hash at once; the others wait their turn.
class Slots {
public:
    explicit Slots(unsigned n) : free_(n) {}
    void take() {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return free_ > 0; });
        --free_;
    }
    void give() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++free_;
        }
        cv_.notify_one();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    unsigned free_;
};

struct Service {
    const Instance& inst;
    const Log& log;
    Cache cache;
    Slots slots;
    std::vector<uid_t> allowed;
    std::atomic<int> clients{0};
    std::atomic<long> checks{0}, remembered{0};   // answers given, and of those from the cache
    // Requests being hashed now: the same one again waits for that answer
    // instead of hashing too (a client that opens several connections at once).
    std::mutex busy_mu;
    std::condition_variable busy_cv;
    std::set<std::string> busy;
};

// Marks a request as being hashed until destroyed.
class BusyMark {
public:
    BusyMark(Service& s, const std::string& key) : s_(s), key_(key) {}
    ~BusyMark() {
        {
            std::lock_guard<std::mutex> lock(s_.busy_mu);
            s_.busy.erase(key_);
        }
        s_.busy_cv.notify_all();
    }

private:
    Service& s_;
    const std::string& key_;
};

constexpr int max_clients = 256;

std::string answer(Service& s, std::string_view packet) {
    std::optional<Request> req = parse_request(packet);
    if (!req) {
        s.log({{"event", "misuse"}, {"error", "a request that is not user and password ended by NULs"}});
        return "N";
    }
    ++s.checks;
    const std::string sig = users_signature(s.inst);
    const std::string key = s.cache.key_of(*req);
    if (std::string hit = s.cache.find(key, sig); !hit.empty()) {
        ++s.remembered;
        return "K" + hit;
    }
    if (s.cache.enabled()) {
        std::unique_lock<std::mutex> lock(s.busy_mu);
        while (s.busy.count(key)) {
            s.busy_cv.wait(lock);
            lock.unlock();
            if (std::string hit = s.cache.find(key, sig); !hit.empty()) {   // its answer was right
                ++s.remembered;
                return "K" + hit;
            }
            lock.lock();
        }
        s.busy.insert(key);
    }
    std::optional<BusyMark> mark;
    if (s.cache.enabled()) mark.emplace(s, key);
    Verified v;
    s.slots.take();
    try {
        v = verify_request(s.inst, *req);
    } catch (const std::exception& e) {
        s.slots.give();
        s.log({{"event", "temporary"}, {"user", req->user}, {"error", e.what()}});
        return std::string("T") + e.what();
    }
    s.slots.give();
    if (!v.user) {
        s.log({{"event", "refused"}, {"user", req->user}, {"reason", v.reason}});
        return "N";
    }
    std::string reply = v.user->name + '\0' + v.user->home + '\0';
    s.cache.remember(key, sig, reply);
    return "K" + reply;
}

// One client: requests until it hangs up or is idle for a minute.
void serve_client(Service& s, int fd) {
    Fd conn(fd);
    timeval tv{60, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[max_request + 1];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        const size_t len = static_cast<size_t>(n) > sizeof buf ? sizeof buf : static_cast<size_t>(n);
        // a packet longer than the buffer is too long for a request: parse_request refuses it
        std::string reply = answer(s, std::string_view(buf, static_cast<size_t>(n) > max_request ? max_request + 1 : len));
        OPENSSL_cleanse(buf, sizeof buf);
        if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) break;
    }
    OPENSSL_cleanse(buf, sizeof buf);
}

bool peer_allowed(const Service& s, int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return false;
    for (uid_t u : s.allowed)
        if (u == cred.uid) return true;
    return false;
}

}  // namespace

int main() {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);   // passwords pass through this process: no core file
    ::signal(SIGPIPE, SIG_IGN);
    Log log("yubin-authd");
    try {
        Instance inst = Instance::of_this_program();
        const long ttl = inst.control_long("authcachettl", 3600, 0, 86400 * 7);
        unsigned threads = std::thread::hardware_concurrency();
        if (threads == 0) threads = 2;
        Service s{inst, log, Cache(ttl), Slots(threads), {0, ::getuid()}, {}};
        if (auto smtpd = lookup_user(system_user::smtpd)) s.allowed.push_back(smtpd->uid);
        if (::getuid() == 0) s.allowed = {0};   // root's own instance: everything runs as root

        // Blocked before the socket exists, so that a stop always removes it;
        // the threads never take them.
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
        const std::string path = inst.path("auth/socket");
        Fd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (!listener) throw SysError("socket", errno);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof addr.sun_path) throw std::runtime_error(path + ": path too long for a socket");
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        ::unlink(path.c_str());
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
            throw SysError("bind " + path, errno);
        // Who may ask is SO_PEERCRED's to say: anyone may connect.
        if (::chmod(path.c_str(), 0666) < 0) throw SysError("chmod " + path, errno);
        if (::listen(listener.get(), 128) < 0) throw SysError("listen " + path, errno);
        log({{"event", "start"}, {"socket", path}, {"cachettl", std::to_string(ttl)},
             {"threads", std::to_string(threads)}});

        std::thread([&mask, &s, &log, path] {
            int sig = 0;
            sigwait(&mask, &sig);
            ::unlink(path.c_str());
            log({{"event", "stop"}, {"checks", std::to_string(s.checks.load())},
                 {"remembered", std::to_string(s.remembered.load())}});
            std::_Exit(0);
        }).detach();

        for (;;) {
            int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                    if (errno == EMFILE || errno == ENFILE) ::usleep(100000);
                    continue;
                }
                throw SysError("accept", errno);
            }
            if (!peer_allowed(s, fd) || s.clients.load() >= max_clients) {
                if (s.clients.load() >= max_clients) log({{"event", "busy"}, {"clients", std::to_string(max_clients)}});
                ::close(fd);
                continue;
            }
            ++s.clients;
            std::thread([&s, fd] {
                serve_client(s, fd);
                --s.clients;
            }).detach();
        }
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        return 111;
    }
}
