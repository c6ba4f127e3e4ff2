// ldns-testns (from ldnsutils) on a random loopback port, with a data file
// written from answer entries, for tests of the real resolver. Every query
// stays on this machine. The server is killed when the object goes away.
#pragma once
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace yubin::test {

// One ldns-testns entry: the reply to queries for qname (any case) and qtype.
// rcode NOERROR, NXDOMAIN, SERVFAIL, ...; answers in zone-file syntax.
inline std::string dns_entry(const std::string& qname, const std::string& qtype, const std::string& rcode,
                             const std::vector<std::string>& answers = {}) {
    std::string e = "ENTRY_BEGIN\nMATCH opcode qtype qname\nADJUST copy_id\nREPLY QR AA RA " + rcode +
                    "\nSECTION QUESTION\n" + qname + ". IN " + qtype + "\nSECTION ANSWER\n";
    for (const auto& a : answers) e += a + "\n";
    return e + "ENTRY_END\n";
}

class TestNameServer {
public:
    explicit TestNameServer(const std::string& entries) {
        const std::string data = dir_ / "data";
        std::ofstream(data) << entries;
        int out[2];
        if (::pipe(out) < 0) throw std::runtime_error("pipe");
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            ::close(out[0]);
            ::execlp("ldns-testns", "ldns-testns", "-r", data.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(out[1]);
        std::string text;
        const std::string mark = "Listening on port ";
        while (text.find('\n', text.find(mark)) == std::string::npos || text.find(mark) == std::string::npos) {
            pollfd p{out[0], POLLIN, 0};
            char buf[512];
            ssize_t n = ::poll(&p, 1, 5000) == 1 ? ::read(out[0], buf, sizeof buf) : -1;
            if (n <= 0) {
                ::close(out[0]);
                throw std::runtime_error("ldns-testns did not start (is ldnsutils installed?): " + text);
            }
            text.append(buf, static_cast<size_t>(n));
        }
        ::close(out[0]);
        port_ = static_cast<uint16_t>(std::stoi(text.substr(text.find(mark) + mark.size())));
    }
    ~TestNameServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    TestNameServer(const TestNameServer&) = delete;
    TestNameServer& operator=(const TestNameServer&) = delete;

    uint16_t port() const { return port_; }

private:
    TempDir dir_;
    pid_t pid_ = -1;
    uint16_t port_ = 0;
};

}  // namespace yubin::test
