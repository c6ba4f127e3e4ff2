#include "forward.hpp"

#include "instance.hpp"

namespace yubin {

namespace {

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string strip(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return std::string(s);
}

// One entry after tokenizing: quotes removed.
struct Token {
    std::string text;
    size_t line;
};

void classify(const Token& t, ForwardList& out) {
    const std::string e = strip(t.text);
    auto error = [&](const std::string& why) {
        out.errors.push_back("line " + std::to_string(t.line) + ": " + why);
    };
    auto add = [&](Instruction::Kind k, std::string v) {
        out.instructions.push_back({k, std::move(v), t.line});
    };
    if (e.empty()) return;
    if (e[0] == '|') {
        if (strip(e.substr(1)).empty()) return error("empty command");
        return add(Instruction::Kind::program, e.substr(1));
    }
    if (e[0] == '/' || e[0] == '.')
        return add(e.back() == '/' ? Instruction::Kind::maildir : Instruction::Kind::mbox, e);
    if (lowercase(e.substr(0, 9)) == ":include:") {
        std::string path = strip(e.substr(9));
        if (path.empty() || path[0] != '/') return error(":include: needs an absolute path");
        return add(Instruction::Kind::include, path);
    }
    if (e[0] == '\\') {
        std::string user = strip(e.substr(1));
        if (user.empty()) return error("empty name after \\");
        return add(Instruction::Kind::self, user);
    }
    std::string addr = e;
    size_t lt = e.rfind('<');
    if (lt != std::string::npos && e.back() == '>') addr = strip(e.substr(lt + 1, e.size() - lt - 2));
    if (addr.empty()) return error("empty address");
    for (char c : addr)
        if (blank(c) || c == '<' || c == '>' || c == '"')
            return error("not an address: " + e);
    add(Instruction::Kind::forward, addr);
}

}  // namespace

ForwardList parse_forward_list(std::string_view text, size_t first_line) {
    ForwardList out;
    Token cur{"", first_line};
    bool started = false;      // cur has a non-blank character
    bool in_quote = false;
    bool line_start = true;    // only blanks so far on this line
    size_t line = first_line;
    auto end_entry = [&] {
        if (started) classify(cur, out);
        cur = Token{"", line};
        started = false;
    };
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            if (in_quote) {
                out.errors.push_back("line " + std::to_string(line) + ": unterminated quote");
                in_quote = false;
            }
            end_entry();
            ++line;
            cur.line = line;
            line_start = true;
            continue;
        }
        if (!in_quote && line_start && c == '#') {  // a comment line
            while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
            continue;
        }
        if (!blank(c)) line_start = false;
        if (in_quote) {
            if (c == '"') in_quote = false;
            else if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') cur.text += text[++i];
            else cur.text += c;
            continue;
        }
        if (c == ',') {
            end_entry();
            continue;
        }
        if (!blank(c) && !started) {
            started = true;
            cur.line = line;
        }
        if (c == '"') in_quote = true;
        else cur.text += c;
    }
    if (in_quote) out.errors.push_back("line " + std::to_string(line) + ": unterminated quote");
    end_entry();
    return out;
}

}  // namespace yubin
