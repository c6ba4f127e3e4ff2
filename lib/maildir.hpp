// Maildir delivery (https://cr.yp.to/proto/maildir.html) and unique names.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "result.hpp"

namespace yubin {

// The host part of a Maildir name: '/' becomes \057 and ':' becomes \072.
std::string maildir_host(std::string_view hostname);
// The size of a message with every line end as CRLF, which is what POP3
// announces for it and what a client receives (RFC 1939 section 3): a LF
// becomes CRLF, a CRLF already there stays, and a last line without a line
// end gets one. CrlfSizeCounter is fed the message in pieces.
class CrlfSizeCounter {
public:
    void add(std::string_view in);
    uint64_t total() const;
private:
    uint64_t bytes_ = 0, bare_lf_ = 0;
    bool prev_cr_ = false, at_line_start_ = true;
};
uint64_t crlf_size(std::string_view message);

// TIME.M<usec>P<pid>Q<counter>.HOST,S=<size>,W=<crlf size>: the size of the
// file, and its crlf_size, which POP3 announces,
// so that pop3d need not read a message to list it (Dovecot's convention).
std::string maildir_unique_name(long sec, long usec, pid_t pid, unsigned counter,
                                std::string_view host, size_t size, uint64_t crlf_size);

// Writes prefix + message into maildir/tmp, fsyncs, renames into maildir/new
// and fsyncs new/. Success only when all of that succeeded.
DeliveryResult maildir_deliver(const std::string& maildir, std::string_view prefix,
                               std::string_view message);

// Creates maildir/{tmp,new,cur} (mode 0700), parents must exist.
void maildir_create(const std::string& maildir);

}  // namespace yubin
