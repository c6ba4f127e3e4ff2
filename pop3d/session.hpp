// The mailbox session of pop3d (the qmail-pop3d role): run as
// "pop3d session MAILDIR" by the front end after a successful login, in the
// user's home (the current directory), with USER set, the connection on
// fds 0 and 1, and on fd 3 the client's bytes that the front end had read
// beyond the login (pipelined commands). It locks the Maildir, answers the
// login with +OK, and serves the TRANSACTION and UPDATE states.
#pragma once
#include <string>

#include "config.hpp"
#include "instance.hpp"
#include "log.hpp"

namespace yubin::pop3d {

int run_session(const Config& cfg, const std::string& maildir, const Log& log);

}  // namespace yubin::pop3d
