#include "exitcodes.hpp"

namespace yubin::inject_exit {

const char* describe(int code) {
    switch (code) {
    case ok: return "queued";
    case bad_address: return "address too long or contains CR, LF or NUL";
    case refused: return "message refused: no recipients";
    case no_memory: return "out of memory";
    case timeout: return "timed out reading the message or envelope";
    case write_error: return "write error or disk full";
    case read_error: return "unable to read the message or envelope";
    case no_config: return "unable to read the instance configuration";
    case cannot_create: return "unable to create the queue file";
    case internal: return "internal error";
    case envelope_format: return "envelope format error";
    default: return is_permanent(code) ? "permanent queue failure" : "temporary queue failure";
    }
}

}  // namespace yubin::inject_exit
