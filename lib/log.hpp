// One event per line on stderr: "program: key=value key=value".
#pragma once
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace yubin {

using LogField = std::pair<std::string_view, std::string_view>;

class Log {
public:
    explicit Log(std::string program, int fd = 2) : program_(std::move(program)), fd_(fd) {}
    void operator()(std::initializer_list<LogField> fields) const;
    // Format one line without writing it (for tests and for callers that batch).
    std::string format(std::initializer_list<LogField> fields) const;
private:
    std::string program_;
    int fd_;
};

// inetd gives a server its connection as descriptors 0, 1 and 2: a log
// line on stderr would go to the client (and into a TLS stream). When fd 2
// is the same socket as fd 0, this puts /dev/null there and sends every
// Log line for fd 2 to syslog (facility mail) instead. A network server
// calls it first thing in main().
void keep_log_from_client();

// A value as it appears in a log line: bare if it is a plain token, otherwise
// double-quoted with \" \\ and control characters escaped.
std::string log_value(std::string_view v);

}  // namespace yubin
