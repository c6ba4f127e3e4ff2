// Delivery status notifications (bounces): RFC 3464 inside an RFC 6522
// multipart/report, sent as an automatic reply (RFC 3834).
#pragma once
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

struct FailedRecipient {
    std::string address;             // the final recipient
    std::string action = "failed";   // "failed" or "delayed" (anything else counts as failed)
    std::string status;              // RFC 3463 code, e.g. "5.1.1"; empty or malformed:
                                     // "5.0.0" if failed, "4.0.0" if delayed
    std::string diagnostic;          // the failure text, one line, e.g. "550 5.1.1 no such user"
    std::string diagnostic_type = "x-unix";  // "smtp" when diagnostic is a remote server's reply
    std::string remote_mta;          // host name of the remote MTA, empty for local deliveries
    time_t last_attempt = 0;         // 0: unknown, no Last-Attempt-Date
};

struct BounceInput {
    std::string reporting_mta;       // this host's name (control/me)
    std::string queue_id;            // the original's queue id
    std::string original_sender;     // envelope sender of the original ("" for the null sender)
    std::string bounce_from;         // e.g. "MAILER-DAEMON@host"
    std::string bounce_to;           // the original sender, or postmaster for a double bounce
    time_t arrival = 0;              // when the original entered the queue (0: unknown)
    time_t now = 0;                  // the bounce's Date:
    std::string message_id;          // "id@host", unique, without <>
    std::string_view original;       // the whole original message (LF line ends)
    std::vector<FailedRecipient> recipients;
};

// The complete bounce message with LF line ends:
//   From:, To:, Subject:, Date:, Message-ID:, Auto-Submitted: auto-replied,
//   MIME-Version: 1.0, Content-Type: multipart/report;
//   report-type=delivery-status; boundary="..."
// and three parts: text/plain (us-ascii explanation), message/delivery-status
// (RFC 3464 fields), text/rfc822-headers (the original's header section,
// octets as they were; never its body).
//
// Every input string is untrusted: control characters (CR, LF, NUL, ...) in
// it become spaces, over-long texts are cut, so each field stays one field;
// the human part stays ASCII (other octets of a diagnostic become '?').
// Addresses with octets >= 0x80 are written as RFC 6533 "utf-8" addresses
// with \x{HEX} escapes, so the report stays 7-bit. The boundary is derived
// from message_id and chosen so that it occurs nowhere in the parts.
std::string compose_bounce(const BounceInput& in);

}  // namespace yubin
