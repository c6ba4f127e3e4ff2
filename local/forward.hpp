// sendmail-style address lists: .forward files, :include: files and the
// values of control/aliases (dot-forward(5), yubin-control(5)).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "dotqmail.hpp"

namespace yubin {

struct ForwardList {
    std::vector<Instruction> instructions;
    std::vector<std::string> errors;   // "line N: why"; the list is unusable if any
};

// Entries are separated by commas and line ends, except inside double
// quotes ("|prog a, b" is one entry; \" and \\ escape inside quotes).
// A line whose first non-blank character is '#' is a comment. Each entry,
// with blanks around it removed and its quotes taken off, is:
//   |command              a program
//   /path/ or ./path/     a Maildir (path ending in '/')
//   /path or ./path       an mbox file
//   :include:/path        more entries from that file (absolute path)
//   \user                 the user's own mailbox, without forwarding
//   address, <address>, Name <address>   a forwarding address
// Line numbers count from first_line.
ForwardList parse_forward_list(std::string_view text, size_t first_line = 1);

}  // namespace yubin
