// mbox delivery: fcntl locking, the From_ line, mboxrd >From quoting.
#pragma once
#include <ctime>
#include <string>
#include <string_view>

#include "result.hpp"

namespace yubin {

// "From sender Mon Nov 23 12:00:00 2026\n" (sender "MAILER-DAEMON" when null)
std::string mbox_from_line(std::string_view sender, time_t t);
// The message as it is stored in an mbox: lines matching ^>*From  get one
// more '>', the text ends with a newline and one blank line.
std::string mbox_quote(std::string_view message);

// Appends under an fcntl write lock (waiting at most lock_timeout seconds),
// fsyncs, and truncates back to the old size if anything fails.
DeliveryResult mbox_deliver(const std::string& path, std::string_view sender, time_t now,
                            std::string_view prefix, std::string_view message, int lock_timeout = 30);

}  // namespace yubin
