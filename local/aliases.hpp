// control/aliases (/etc/aliases format) and its compiled form
// control/aliases.cdb, written by yubin-newaliases and read for local parts
// that name no user (yubin-control(5), yubin-newaliases(8)).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "instance.hpp"

namespace yubin {

// One entry of control/aliases: "name: value" with continuation lines.
struct AliasRecord {
    std::string name;    // lower case
    std::string value;   // the text after ':', continuation lines joined with '\n'
    size_t line = 0;     // line of the name
};
struct AliasFile {
    std::vector<AliasRecord> records;
    std::vector<std::string> errors;   // "line N: why"
};
// /etc/aliases format: "name: entry, entry, ..."; a line starting with a
// blank continues the one before; '#' lines and blank lines are ignored.
// A name is not empty and has no blank, ':', '@', '"' or '\'. Every value
// must parse with parse_forward_list and have at least one entry; a name
// may appear once.
AliasFile parse_aliases(std::string_view text);

// The cdb for the records: key the name, data the value (re-parsed with
// parse_forward_list when a message arrives).
std::string build_aliases_cdb(const std::vector<AliasRecord>& records);

// The value of alias `name` (any case) in INSTANCE/control/aliases.cdb;
// nullopt if there is no such alias or no such file. Throws SysError or
// std::runtime_error when the file cannot be read.
std::optional<std::string> alias_value(const Instance& inst, std::string_view name);

}  // namespace yubin
