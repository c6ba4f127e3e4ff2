// libevent objects owned by std::unique_ptr with their free functions as deleters.
#pragma once
#include <event2/event.h>

#include <memory>

namespace yubin {

struct EventBaseDeleter { void operator()(event_base* b) const { event_base_free(b); } };
struct EventDeleter { void operator()(event* e) const { event_free(e); } };
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;

inline EventBasePtr make_event_base() { return EventBasePtr(event_base_new()); }
inline EventPtr make_event(event_base* b, int fd, short what, event_callback_fn cb, void* arg) {
    return EventPtr(event_new(b, fd, what, cb, arg));
}
inline timeval seconds(double s) {
    timeval tv;
    tv.tv_sec = static_cast<long>(s);
    tv.tv_usec = static_cast<long>((s - static_cast<double>(tv.tv_sec)) * 1e6);
    return tv;
}

}  // namespace yubin
