// The retry schedule for temporary failures.
#pragma once
#include <ctime>
#include <optional>

namespace yubin {

struct BackoffPolicy {
    long min_backoff = 60;      // seconds before the first retry
    long max_backoff = 3600;    // the longest gap between two attempts
    long lifetime = 604800;     // how long a message may stay in the queue
};

// After the `failures`-th consecutive temporary failure at time `now` of a
// message born at `birth`: when to try next, or nullopt when the queue
// lifetime is over (the recipient bounces). The gap doubles from min_backoff
// up to max_backoff; the last attempt is made at the expiry time itself.
std::optional<time_t> next_attempt(const BackoffPolicy& p, time_t birth, time_t now, unsigned failures);

}  // namespace yubin
