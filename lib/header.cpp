#include "header.hpp"

#include <algorithm>

namespace yubin {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool name_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

bool is_name_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && c != ':';
}

// Length of the field name at the start of line, if line is "name:...".
// 0 if it is not a field line.
size_t field_name_length(std::string_view line) {
    size_t i = 0;
    while (i < line.size() && is_name_char(line[i])) ++i;
    if (i == 0 || i == line.size() || line[i] != ':') return 0;
    return i;
}

std::string trim_wsp(std::string_view s) {
    size_t b = 0;
    while (b < s.size() && is_wsp(s[b])) ++b;
    size_t e = s.size();
    while (e > b && is_wsp(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
}

std::string with_leading_space(std::string value) {
    if (value.empty()) return value;
    return " " + value;
}

}  // namespace

bool is_field_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), is_name_char);
}

HeaderBlock HeaderBlock::parse(std::string_view message, size_t& body_offset) {
    HeaderBlock block;
    size_t pos = 0;
    while (pos < message.size()) {
        size_t nl = message.find('\n', pos);
        size_t next = nl == std::string_view::npos ? message.size() : nl + 1;
        size_t end = nl == std::string_view::npos ? message.size() : nl;
        if (nl != std::string_view::npos && end > pos && message[end - 1] == '\r') --end;
        std::string_view line = message.substr(pos, end - pos);

        if (line.empty()) {  // the empty line that separates header and body
            body_offset = next;
            return block;
        }
        if (is_wsp(line[0])) {
            if (block.fields_.empty()) break;  // a continuation of nothing
            std::string& value = block.fields_.back().value;
            value += '\n';
            value += line;
        } else if (size_t n = field_name_length(line); n != 0) {
            block.fields_.push_back({std::string(line.substr(0, n)), std::string(line.substr(n + 1))});
        } else {
            break;
        }
        pos = next;
    }
    body_offset = pos;
    return block;
}

const HeaderField* HeaderBlock::find(std::string_view name) const {
    for (const auto& f : fields_)
        if (name_equal(f.name, name)) return &f;
    return nullptr;
}

std::vector<const HeaderField*> HeaderBlock::find_all(std::string_view name) const {
    std::vector<const HeaderField*> out;
    for (const auto& f : fields_)
        if (name_equal(f.name, name)) out.push_back(&f);
    return out;
}

bool HeaderBlock::has(std::string_view name) const { return find(name) != nullptr; }

void HeaderBlock::remove_all(std::string_view name) {
    std::erase_if(fields_, [name](const HeaderField& f) { return name_equal(f.name, name); });
}

void HeaderBlock::append(std::string name, std::string value) {
    fields_.push_back({std::move(name), with_leading_space(std::move(value))});
}

void HeaderBlock::prepend(std::string name, std::string value) {
    fields_.insert(fields_.begin(), {std::move(name), with_leading_space(std::move(value))});
}

std::string HeaderBlock::serialize() const {
    size_t total = 0;
    for (const auto& f : fields_) total += f.name.size() + f.value.size() + 2;
    std::string out;
    out.reserve(total);
    for (const auto& f : fields_) {
        out += f.name;
        out += ':';
        out += f.value;
        out += '\n';
    }
    return out;
}

std::string unfold(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (c == '\n' && i + 1 < value.size() && is_wsp(value[i + 1])) continue;
        if (c == '\r' && i + 2 < value.size() && value[i + 1] == '\n' && is_wsp(value[i + 2])) {
            ++i;  // skip CR and LF
            continue;
        }
        out += c;
    }
    return trim_wsp(out);
}

std::string fold_header(std::string_view name, std::string_view value, size_t width) {
    std::string text = unfold(value);
    for (char& c : text)
        if (c == '\r' || c == '\n' || c == '\0') c = ' ';
    text = trim_wsp(text);

    std::string out(name);
    out += ':';
    if (text.empty()) return out + '\n';
    out += ' ';
    size_t line_len = out.size();
    // text has no leading or trailing WSP: it is a word, then runs of
    // (WSP run, word). Fold before a WSP run when the run and its word would
    // overflow the line.
    size_t i = 0;
    bool first = true;
    while (i < text.size()) {
        size_t j = i;
        while (j < text.size() && is_wsp(text[j])) ++j;
        while (j < text.size() && !is_wsp(text[j])) ++j;
        size_t seg = j - i;
        if (!first && line_len + seg > width) {
            out += '\n';
            line_len = 0;
        }
        out.append(text, i, seg);
        line_len += seg;
        first = false;
        i = j;
    }
    out += '\n';
    return out;
}

}  // namespace yubin
