// QueueInjection against a stand-in queue-injectd (a unix socket served by
// a thread here) and a stand-in queue-inject (a shell script): when it
// falls back to queue-inject and when it must not.
#include "inject.hpp"

#include "exitcodes.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <string_view>
#include <thread>

using namespace yubin;

namespace {

// An instance with a queue-inject that reports an id ending in .4242 (so
// that a test can tell it ran), reads its input and exits 0.
struct FakeInstance {
    test::TempDir dir;
    Instance inst{dir.path()};
    FakeInstance() {
        ::mkdir((dir / "bin").c_str(), 0755);
        ::mkdir((dir / "public").c_str(), 0700);
        std::ofstream(dir / "bin/queue-inject")
            << "#!/bin/sh\necho \"$(date +%s).1.4242\" >&3; exec 3>&-; cat >/dev/null; cat <&1 >/dev/null; exit 0\n";
        ::chmod((dir / "bin/queue-inject").c_str(), 0755);
    }
};

// queue-injectd's stand-in: accepts one connection and runs `serve` on it.
class OneShotServer {
public:
    OneShotServer(const std::string& path, std::function<void(int)> serve) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(listener_.get(), 4) == 0);
        thread_ = std::thread([this, serve] {
            Fd c(::accept(listener_.get(), nullptr, nullptr));
            if (c) serve(c.get());
        });
    }
    ~OneShotServer() { thread_.join(); }

private:
    Fd listener_;
    std::thread thread_;
};

// Reads until the peer's envelope netstring has come (its final comma).
void read_envelope(int fd) {
    char c;
    while (::read(fd, &c, 1) == 1 && c != ',') {
    }
}

// Writes a reply line.
void say(int fd, std::string_view line) { CHECK(::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())); }

const Envelope env{"a@example.com", {"b@example.com"}};

}  // namespace

TEST_CASE("QueueInjection: no queue-injectd: queue-inject serves", "[inject]") {
    FakeInstance f;
    QueueInjection q(f.inst);
    REQUIRE(q.start(env));
    CHECK(q.id().size() > 5);
    CHECK(q.id().substr(q.id().size() - 5) == ".4242");
    q.write("Subject: x\n\nbody\n");
    CHECK(q.finish() == inject_exit::ok);
}

TEST_CASE("QueueInjection: closed without a word: queue-inject serves", "[inject]") {
    FakeInstance f;
    OneShotServer srv(f.dir / "public/inject", [](int fd) { read_envelope(fd); });
    QueueInjection q(f.inst);
    REQUIRE(q.start(env));
    CHECK(q.id().substr(q.id().size() - 5) == ".4242");
    CHECK(q.finish() == inject_exit::ok);
}

TEST_CASE("QueueInjection: a refused envelope is the daemon's answer, not a fallback", "[inject]") {
    FakeInstance f;
    OneShotServer srv(f.dir / "public/inject", [](int fd) {
        read_envelope(fd);
        say(fd, "!11 address too long\n");
    });
    QueueInjection q(f.inst);
    CHECK_FALSE(q.start(env));
    CHECK(q.abort() == inject_exit::bad_address);
}

TEST_CASE("QueueInjection: lost after the id: a temporary failure, never a second copy", "[inject]") {
    FakeInstance f;
    OneShotServer srv(f.dir / "public/inject", [](int fd) {
        read_envelope(fd);
        say(fd, "1795450000.123456.77\n");
        // then closes without reading the message
    });
    QueueInjection q(f.inst);
    REQUIRE(q.start(env));
    CHECK(q.id() == "1795450000.123456.77");
    q.write("Subject: x\n\nbody\n");
    int code = q.finish();
    CHECK(code != inject_exit::ok);
    CHECK_FALSE(inject_exit::is_permanent(code));
}

TEST_CASE("QueueInjection: the daemon's id, message and result", "[inject]") {
    FakeInstance f;
    std::string got;
    OneShotServer srv(f.dir / "public/inject", [&got](int fd) {
        read_envelope(fd);
        say(fd, "1795450000.123456.78\n");
        char buf[4096];
        while (got.size() < 3 || got.compare(got.size() - 3, 3, "0:,") != 0) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            got.append(buf, static_cast<size_t>(n));
        }
        say(fd, "0 queued\n");
    });
    QueueInjection q(f.inst);
    REQUIRE(q.start(env));
    q.write("Subject: x\n\nbody\n");
    CHECK(q.finish() == inject_exit::ok);
    CHECK(got == "17:Subject: x\n\nbody\n,0:,");
}
