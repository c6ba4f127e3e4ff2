#include "aliases.hpp"

#include <algorithm>
#include <map>

#include "cdb.hpp"
#include "forward.hpp"

namespace yubin {

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string strip(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return std::string(s);
}

}  // namespace

AliasFile parse_aliases(std::string_view text) {
    AliasFile out;
    std::vector<AliasRecord> recs;
    size_t pos = 0, line_no = 0;
    bool open = false;   // the last record can still be continued
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        const bool is_blank = strip(line).empty();
        if (is_blank || line[0] == '#' || blank(line[0])) {
            if (open) recs.back().value += "\n" + std::string(is_blank || line[0] == '#' ? "" : line);
            else if (!is_blank && line[0] != '#')
                out.errors.push_back("line " + std::to_string(line_no) +
                                     ": continuation line without a name");
            continue;
        }
        open = false;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            out.errors.push_back("line " + std::to_string(line_no) + ": no ':' after the name");
            continue;
        }
        std::string name = lowercase(strip(line.substr(0, colon)));
        bool ok = !name.empty();
        for (char c : name)
            if (blank(c) || c == '@' || c == '"' || c == '\\' || c == ':') ok = false;
        if (!ok) {
            out.errors.push_back("line " + std::to_string(line_no) + ": bad alias name \"" +
                                 strip(line.substr(0, colon)) + "\"");
            continue;
        }
        recs.push_back({name, std::string(line.substr(colon + 1)), line_no});
        open = true;
    }
    std::map<std::string, size_t> seen;
    for (auto& r : recs) {
        auto [it, fresh] = seen.emplace(r.name, r.line);
        if (!fresh) {
            out.errors.push_back("line " + std::to_string(r.line) + ": alias " + r.name +
                                 " is already defined on line " + std::to_string(it->second));
            continue;
        }
        ForwardList list = parse_forward_list(r.value, r.line);
        for (auto& e : list.errors) out.errors.push_back(std::move(e));
        if (list.errors.empty() && list.instructions.empty())
            out.errors.push_back("line " + std::to_string(r.line) + ": alias " + r.name + " has no entries");
        out.records.push_back(std::move(r));
    }
    // In the order of the file.
    auto line_of = [](const std::string& e) { return std::stoul(e.substr(5)); };
    std::stable_sort(out.errors.begin(), out.errors.end(),
                     [&](const std::string& a, const std::string& b) { return line_of(a) < line_of(b); });
    return out;
}

std::string build_aliases_cdb(const std::vector<AliasRecord>& records) {
    std::vector<std::pair<std::string, std::string>> kv;
    kv.reserve(records.size());
    for (const auto& r : records) kv.emplace_back(r.name, r.value);
    return cdb_build(kv);
}

std::optional<std::string> alias_value(const Instance& inst, std::string_view name) {
    return cdb_find(inst.control_path("aliases.cdb"), lowercase(name));
}

}  // namespace yubin
