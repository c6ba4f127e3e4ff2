#include "instance.hpp"

#include <climits>
#include <cstdlib>
#include <stdexcept>

#include "io.hpp"

namespace yubin {

std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
    return std::string(s.substr(b, e - b));
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::vector<std::string> split_words(std::string_view line) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < line.size()) {
        size_t end = line.find_first_of(" \t", pos);
        if (end == std::string_view::npos) end = line.size();
        if (end > pos) out.emplace_back(line.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

Instance Instance::of_this_program() {
    char buf[PATH_MAX];
    if (!::realpath("/proc/self/exe", buf)) throw SysError("realpath /proc/self/exe", errno);
    std::string exe(buf);
    std::string bindir = dirname_of(exe);
    std::string root = dirname_of(bindir);
    if (bindir.size() < 4 || bindir.compare(bindir.size() - 4, 4, "/bin") != 0 ||
        !read_file(root + "/control/me", 4096))
        throw std::runtime_error("not run from an instance (" + exe +
                                 "): run the copy in INSTANCE/bin made by yubin-setup");
    return Instance(root);
}

std::vector<std::string> Instance::control_lines(std::string_view name) const {
    std::vector<std::string> out;
    auto text = read_file(control_path(name), 16 * 1024 * 1024);
    if (!text) return out;
    size_t pos = 0;
    while (pos < text->size()) {
        size_t nl = text->find('\n', pos);
        if (nl == std::string::npos) nl = text->size();
        std::string line = trim(std::string_view(*text).substr(pos, nl - pos));
        pos = nl + 1;
        if (line.empty() || line[0] == '#') continue;
        out.push_back(std::move(line));
    }
    return out;
}

std::string Instance::control_string(std::string_view name, std::string_view def) const {
    auto lines = control_lines(name);
    return lines.empty() ? std::string(def) : lines.front();
}

long Instance::control_long(std::string_view name, long def, long min, long max) const {
    auto lines = control_lines(name);
    if (lines.empty()) return def;
    const std::string& s = lines.front();
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (errno || end == s.c_str() || *end || v < min || v > max)
        throw std::runtime_error("control/" + std::string(name) + ": not a number from " +
                                 std::to_string(min) + " to " + std::to_string(max) + ": " + s);
    return v;
}

}  // namespace yubin
