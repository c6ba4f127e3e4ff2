// The front end of pop3d: the AUTHORIZATION state. It checks the
// credentials and never opens a mailbox; after a successful login it execs
// the mailbox session (session.hpp) in the user's home.
#pragma once
#include "config.hpp"
#include "instance.hpp"
#include "log.hpp"

namespace yubin::pop3d {

// Returns only when the connection ends without a login, or when the
// session could not be started; the exit status.
int run_front_end(const Instance& inst, const Config& cfg, const Log& log);

}  // namespace yubin::pop3d
