// Running INSTANCE/bin/queue-inject with a message and an envelope.
#pragma once
#include <string_view>

#include "instance.hpp"
#include "queuefile.hpp"

namespace yubin {

// Returns queue-inject's exit status (inject_exit codes), or
// inject_exit::internal if it could not be run or was killed.
// If message_fd >= 0 the message is read from that fd (from its current
// offset to EOF) instead of `message`.
int run_queue_inject(const Instance& inst, std::string_view message, const Envelope& env, int message_fd = -1);

}  // namespace yubin
