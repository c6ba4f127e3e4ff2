// An instance directory and its control files (yubin-control(5)).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

class Instance {
public:
    explicit Instance(std::string root) : root_(std::move(root)) {}
    // The instance this executable belongs to: realpath(/proc/self/exe)/../..
    // Nothing is taken from the environment or the arguments. Throws
    // std::runtime_error if the executable is not inside an instance.
    static Instance of_this_program();

    const std::string& root() const { return root_; }
    std::string path(std::string_view rel) const { return root_ + "/" + std::string(rel); }
    std::string control_path(std::string_view name) const { return path("control/" + std::string(name)); }
    std::string queue_path(std::string_view rel = {}) const {
        return rel.empty() ? path("queue") : path("queue/" + std::string(rel));
    }

    // Control file lines: '#' comments and blank lines dropped, white space trimmed.
    // An absent file gives an empty list; another error throws SysError.
    std::vector<std::string> control_lines(std::string_view name) const;
    // First line of a control file, or def when absent or empty.
    std::string control_string(std::string_view name, std::string_view def) const;
    // A number in [min, max]; def when absent; throws std::runtime_error when malformed.
    long control_long(std::string_view name, long def, long min, long max) const;

private:
    std::string root_;
};

std::string trim(std::string_view s);
std::string lowercase(std::string_view s);
// The words of a control file line, split at runs of spaces and tabs.
std::vector<std::string> split_words(std::string_view line);

}  // namespace yubin
