// The result of remote delivery for one recipient, and the line that
// remote-deliver prints for it on its standard output (remote-deliver(8)):
//   CODE STATUS REMOTE-MTA TYPE; TEXT
// CODE is K (delivered), Z (temporary failure) or D (permanent failure),
// STATUS the enhanced status code, REMOTE-MTA the host whose answer this is
// ("-" when no server answered), and "TYPE; TEXT" the diagnostic as in an
// RFC 3464 Diagnostic-Code: "smtp; 550 5.1.1 no such user" for a server's
// reply, "x-unix; ..." for a failure found here (DNS, connection).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace yubin {

struct RemoteResult {
    char code = 'Z';
    std::string status;
    std::string remote_mta;     // empty: none
    std::string diag_type;      // "smtp" or "x-unix"
    std::string diagnostic;     // one line

    static RemoteResult temporary(std::string status, std::string text) {
        return RemoteResult{'Z', std::move(status), "", "x-unix", std::move(text)};
    }
};

// One line, LF included; control characters in the fields become spaces.
std::string format_result_line(const RemoteResult& r);
// A line without its LF; nullopt when it is not well-formed.
std::optional<RemoteResult> parse_result_line(std::string_view line);

}  // namespace yubin
