// Handing a connection from yubin-listen to a running program (yubin-listen
// -m, yubin-listen(8)): over a SOCK_SEQPACKET socket, one packet per
// connection carries the connection's fd (SCM_RIGHTS) and its variables as
// "NAME=VALUE" strings, each ended by a NUL; the program writes one byte
// back when it has finished with a connection and can take the next.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io.hpp"

namespace yubin {

// The variable naming the program's end of the socket.
inline constexpr const char handoff_variable[] = "YUBIN_HANDOFF";
// The largest packet (the variables of one connection).
inline constexpr size_t max_handoff_packet = 16384;

// Sends conn and vars. 0, or an errno value (EMSGSIZE: vars too long;
// EPIPE: the program has gone).
int send_handoff(int sock, int conn, const std::vector<std::pair<std::string, std::string>>& vars);

struct Handoff {
    bool end = false;                            // the other side closed: no more connections
    Fd conn;                                     // empty when the packet was malformed
    std::map<std::string, std::string> vars;
};
// Waits for the next connection. A packet without exactly one fd, or with
// a truncated or malformed text, yields no conn (and must still be answered
// with send_ready); a read error is taken as the end.
Handoff receive_handoff(int sock);

// One byte: "done with that connection, give me the next". false if the
// other side has gone.
bool send_ready(int sock);

// The fd named by YUBIN_HANDOFF, if it is a unix SOCK_SEQPACKET socket;
// else -1. The variable is removed from the environment either way, so
// that programs started from here do not see it, and the fd is made
// close-on-exec.
int handoff_fd_from_environment();

}  // namespace yubin
