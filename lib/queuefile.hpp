// The on-disk queue format (yubin-queue(5)) and qmail-queue's envelope format.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace yubin {

struct Envelope {
    std::string sender;                  // "" is the null sender <>
    std::vector<std::string> recipients;
};

// qmail-queue envelope: "F" sender NUL, ("T" rcpt NUL)+, NUL.
std::string encode_qmail_envelope(const Envelope& env);
// Parses exactly one envelope; nullopt (with a reason) on any format error,
// including trailing bytes after the final NUL.
std::optional<Envelope> parse_qmail_envelope(std::string_view bytes, std::string* why = nullptr);

// The header at the start of every queue file.
struct QueueHeader {
    time_t birth = 0;
    uid_t uid = 0;
    Envelope envelope;
    size_t message_offset = 0;           // where the message starts in the file
};

std::string encode_queue_header(time_t birth, uid_t uid, const Envelope& env);
// Parses the header of a queue file from its first bytes; nullopt if the
// bytes do not hold a complete, well-formed header.
std::optional<QueueHeader> parse_queue_header(std::string_view bytes);
// Reads a queue file's header (reads as much of the file as needed).
std::optional<QueueHeader> read_queue_header(int fd);

// Queue ids: SECONDS.MICROSECONDS.PID
std::string make_queue_id(pid_t pid);
bool valid_queue_id(std::string_view id);

// A delivery log line in queue/info/ID.
struct InfoLine {
    char kind = 0;                       // 'D' delivered, 'P' permanent failure
    size_t index = 0;
    std::string status;                  // P only: enhanced status code
    std::string text;                    // P only
};
std::string encode_info_line(const InfoLine& l);
// Parses every complete line; a torn last line (no LF) is ignored, as are
// malformed lines (they cannot come from a completed write).
std::vector<InfoLine> parse_info(std::string_view text);

}  // namespace yubin
