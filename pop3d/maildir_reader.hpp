// Reading a Maildir for POP3: the messages in new/ and cur/, their unique
// ids and POP3 sizes, the lock that keeps one POP3 session per mailbox, and
// the changes of the UPDATE state (delete, move new/ to cur/).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io.hpp"

namespace yubin {

struct MaildirMessage {
    std::string dir;      // "new" or "cur"
    std::string name;     // the file name in dir
    std::string uidl;     // see pop3_uidl
    uint64_t size = 0;    // octets as POP3 sends it (encode.hpp)
};

// The base name: the file name up to the first ':' (the info part).
std::string_view maildir_base(std::string_view name);
// The value of a ",K=digits" field of a base name (",S=" size, ",W=" size
// with CRLF line ends), if present.
std::optional<uint64_t> maildir_field(std::string_view base, char key);
// The POP3 unique id of a message: its base name, which never changes when
// the message moves from new/ to cur/ or gets flags. RFC 1939 allows 1 to
// 70 characters from 0x21 to 0x7E; a base name outside that is replaced by
// "x" and the SHA-256 of the name (hex, cut to 64), just as stable.
std::string pop3_uidl(std::string_view base);

// The messages of a Maildir, oldest first (by the delivery time at the start
// of the name, then by name). Names starting with '.' and anything that is
// not a regular file are skipped; so is a second file with a base name
// already seen. The size comes from ",W=" when the name also has a ",S="
// equal to the file's size (Dovecot's and Courier's convention); otherwise
// the file is read and counted. Throws SysError when new/ or cur/ cannot
// be read.
std::vector<MaildirMessage> maildir_scan(const std::string& maildir);

// Opens a message for reading. If another program moved it from new/ to
// cur/ (or changed its flags) since the scan, it is found again by its base
// name and m is updated. An invalid Fd if it is gone; SysError otherwise.
Fd maildir_open(const std::string& maildir, MaildirMessage& m);

struct MaildirUpdate {
    size_t deleted = 0;     // files removed (or already gone)
    size_t failed = 0;      // deletions that failed
    size_t moved = 0;       // new/ to cur/
};
// The UPDATE state: unlinks each message whose flag is set, moves the
// others that are still in new/ to cur/ with the info ":2," (as qmail-pop3d
// does; the base name, and so the unique id, stays), then fsyncs new/ and
// cur/.
MaildirUpdate maildir_update(const std::string& maildir, std::vector<MaildirMessage>& msgs,
                             const std::vector<bool>& deleted);

// flock() on MAILDIR/yubin-pop3d.lock, held for as long as the object lives.
class MaildirLock {
public:
    // nullopt when another process holds it; SysError when it cannot be tried.
    static std::optional<MaildirLock> try_lock(const std::string& maildir);
private:
    explicit MaildirLock(Fd fd) : fd_(std::move(fd)) {}
    Fd fd_;
};

}  // namespace yubin
