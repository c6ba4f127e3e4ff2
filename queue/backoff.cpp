#include "backoff.hpp"

namespace yubin {

std::optional<time_t> next_attempt(const BackoffPolicy& p, time_t birth, time_t now, unsigned failures) {
    const time_t expiry = birth + p.lifetime;
    if (now >= expiry) return std::nullopt;
    long delay = p.min_backoff > 0 ? p.min_backoff : 1;
    for (unsigned i = 1; i < failures && delay < p.max_backoff; ++i) delay *= 2;
    if (delay > p.max_backoff) delay = p.max_backoff;
    time_t next = now + delay;
    return next > expiry ? expiry : next;
}

}  // namespace yubin
