// The one table of exit statuses used between yubin programs.
#pragma once

namespace yubin {

// local-deliver (qmail-command(8) convention)
namespace deliver_exit {
inline constexpr int ok = 0;
inline constexpr int stop = 99;        // delivered; skip further .qmail lines
inline constexpr int permanent = 100;
inline constexpr int temporary = 111;
}  // namespace deliver_exit

// queue-inject (qmail-queue(8) ranges: 11-40 permanent, 51-99 temporary)
namespace inject_exit {
inline constexpr int ok = 0;
inline constexpr int bad_address = 11;      // address too long or contains CR/LF/NUL
inline constexpr int refused = 31;          // refused permanently (no recipients)
inline constexpr int no_memory = 51;
inline constexpr int timeout = 52;          // the input did not arrive within 24 hours
inline constexpr int write_error = 53;      // write error or disk full
inline constexpr int read_error = 54;       // cannot read message or envelope
inline constexpr int no_config = 55;        // cannot read the instance configuration
inline constexpr int cannot_create = 62;    // cannot create the queue file
inline constexpr int internal = 81;
inline constexpr int envelope_format = 91;

inline constexpr bool is_permanent(int code) { return code >= 11 && code <= 40; }
const char* describe(int code);
}  // namespace inject_exit

// sendmail(8): sysexits.h values
namespace sysexit {
inline constexpr int ok = 0;
inline constexpr int usage = 64;
inline constexpr int dataerr = 65;
inline constexpr int noinput = 66;
inline constexpr int nouser = 67;
inline constexpr int software = 70;
inline constexpr int oserr = 71;
inline constexpr int cantcreat = 73;
inline constexpr int ioerr = 74;
inline constexpr int tempfail = 75;
inline constexpr int noperm = 77;
inline constexpr int config = 78;
}  // namespace sysexit

}  // namespace yubin
