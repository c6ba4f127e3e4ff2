// .qmail files (dot-qmail(5)): the delivery instructions, the names
// local-deliver looks for, and the environment of delivery programs.
// Everything here is pure: no file is read.
#pragma once
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "command.hpp"
#include "result.hpp"

namespace yubin {

// One delivery instruction, from a .qmail file, a .forward file, an
// :include: file or an alias (see forward.hpp for the last three).
struct Instruction {
    enum class Kind {
        program,   // value: the command for /bin/sh -c
        forward,   // value: the address
        maildir,   // value: the path, ending in '/'
        mbox,      // value: the path
        include,   // value: the file to read more instructions from (.forward, aliases)
        self,      // value: the user name of "\user" (.forward, aliases)
    };
    Kind kind;
    std::string value;
    size_t line = 0;   // 1-based line of its file
};

struct DotQmail {
    std::vector<Instruction> instructions;
    bool empty = false;   // the file has no bytes at all: the default delivery applies
    std::string error;    // not empty: the file cannot be used (a temporary failure)
};

// Lines in order: trailing blanks (SP, HT, CR) are removed; '#' starts a
// comment; '|' a program; '.' or '/' a path (a Maildir if it ends in '/',
// else an mbox); '&' a forwarding address; '+' lines are reserved and
// ignored; any other line is a forwarding address. A blank first line is an
// error (qmail's guard against a mangled file); other blank lines are
// ignored. An address in <> loses them.
DotQmail parse_dot_qmail(std::string_view text);

// The file names an extension is looked up under, in order.
struct QmailCandidate {
    std::string name;           // ".qmail-foo-bar"
    bool is_default = false;    // a -default file
    std::string default_part;   // for a -default file: the part of ext it stands for (DEFAULT)
};
// ext "": {".qmail"}. Otherwise ".qmail-EXT", then for each separator in
// EXT from the right ".qmail-PREFIX<sep>default", then ".qmail-default".
// EXT is written in lower case with '.' and '/' replaced by ':'.
std::vector<QmailCandidate> dot_qmail_candidates(std::string_view ext, char sep);
// The exact name only (the first candidate).
std::string dot_qmail_name(std::string_view ext);
// ext in the form used in file names.
std::string dot_qmail_safe_ext(std::string_view ext);

// What a delivery program sees (qmail-command(8)).
struct DeliveryEnvironment {
    std::string user, home, local, ext, domain, sender, newsender;
    bool has_default = false;
    std::string default_part;
    char sep = '-';
    time_t now = 0;
};
// "NAME=value" strings: PATH, USER, HOME, LOCAL, HOST, HOST2..4,
// RECIPIENT, SENDER, NEWSENDER, EXT, EXT2..4, DEFAULT (only for a -default
// file), DTLINE, RPLINE, UFLINE.
std::vector<std::string> delivery_environment(const DeliveryEnvironment& e);

// "Delivered-To: local@domain\n" (a LF inside becomes '_').
std::string dt_line(std::string_view local, std::string_view domain);
// "Return-Path: <sender>\n".
std::string rp_line(std::string_view sender);
// HOST2, HOST3, HOST4: host without its last one, two, three dot-parts
// (as far as there are dots).
std::string host_part(std::string_view host, int n);
// EXT2, EXT3, EXT4: ext after its first, second, third separator ("" if none).
std::string ext_part(std::string_view ext, int n, char sep);

// What a delivery program's end means (qmail-command(8)): exit 0
// delivered; 99 delivered, and the lines after it are skipped (stop); 100
// a permanent failure; any other status, a signal, the timeout or a
// failure to start is temporary. The text names `where` ("FILE line N")
// and adds the program's output, one line, at most 300 bytes; output that
// starts with an enhanced status code of the failure's class ("5.1.1 ...")
// gives the status.
struct ProgramOutcome {
    DeliveryResult result;
    bool stop = false;
};
ProgramOutcome program_outcome(const CommandResult& r, std::string_view where, double timeout);

// Text for a log line or a bounce: control characters become spaces, line
// ends " / ", cut at max bytes (not inside a UTF-8 sequence), trimmed.
std::string one_line(std::string_view text, size_t max);

}  // namespace yubin
