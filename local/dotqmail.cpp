#include "dotqmail.hpp"

#include "instance.hpp"
#include "mbox.hpp"

namespace yubin {

namespace {

std::string_view trim_right(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string_view trim_left(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
}

std::string strip_angles(std::string_view a) {
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
    return std::string(a);
}

}  // namespace

DotQmail parse_dot_qmail(std::string_view text) {
    DotQmail out;
    if (text.empty()) {
        out.empty = true;
        return out;
    }
    size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = trim_right(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++line_no;
        if (line.empty()) {
            if (line_no == 1) {
                out.error = "the first line is blank";
                out.instructions.clear();
                return out;
            }
            continue;
        }
        auto add = [&](Instruction::Kind k, std::string v) {
            out.instructions.push_back(Instruction{k, std::move(v), line_no});
        };
        switch (line[0]) {
        case '#':
        case '+':
            break;
        case '|':
            if (trim_left(line.substr(1)).empty()) {
                out.error = "line " + std::to_string(line_no) + ": empty command";
                out.instructions.clear();
                return out;
            }
            add(Instruction::Kind::program, std::string(line.substr(1)));
            break;
        case '.':
        case '/':
            add(line.back() == '/' ? Instruction::Kind::maildir : Instruction::Kind::mbox, std::string(line));
            break;
        case '&':
            line.remove_prefix(1);
            [[fallthrough]];
        default: {
            std::string a = strip_angles(trim_left(line));
            if (a.empty()) {
                out.error = "line " + std::to_string(line_no) + ": empty forwarding address";
                out.instructions.clear();
                return out;
            }
            add(Instruction::Kind::forward, std::move(a));
        }
        }
    }
    return out;
}

std::string dot_qmail_safe_ext(std::string_view ext) {
    std::string s = lowercase(ext);
    for (char& c : s)
        if (c == '.' || c == '/') c = ':';
    return s;
}

std::string dot_qmail_name(std::string_view ext) {
    return ext.empty() ? std::string(".qmail") : ".qmail-" + dot_qmail_safe_ext(ext);
}

std::vector<QmailCandidate> dot_qmail_candidates(std::string_view ext, char sep) {
    std::vector<QmailCandidate> out;
    out.push_back({dot_qmail_name(ext), false, ""});
    if (ext.empty()) return out;
    const std::string safe = dot_qmail_safe_ext(ext);
    // safe has the length of ext, so a cut in one is the same cut in the other.
    for (size_t i = safe.size() + 1; i-- > 0;) {
        if (i != 0 && safe[i - 1] != sep) continue;
        out.push_back({".qmail-" + safe.substr(0, i) + "default", true, std::string(ext.substr(i))});
    }
    return out;
}

std::string dt_line(std::string_view local, std::string_view domain) {
    std::string a = std::string(local) + "@" + std::string(domain);
    for (char& c : a)
        if (c == '\n') c = '_';
    return "Delivered-To: " + a + "\n";
}

std::string rp_line(std::string_view sender) {
    std::string s(sender);
    for (char& c : s)
        if (c == '\n') c = '_';
    return "Return-Path: <" + s + ">\n";
}

std::string host_part(std::string_view host, int n) {
    size_t end = host.size();
    for (int k = 0; k < n; ++k) {
        size_t dot = host.substr(0, end).rfind('.');
        if (dot != std::string_view::npos) end = dot;
    }
    return std::string(host.substr(0, end));
}

std::string ext_part(std::string_view ext, int n, char sep) {
    for (int k = 0; k < n; ++k) {
        size_t cut = ext.find(sep);
        if (cut == std::string_view::npos) return "";
        ext.remove_prefix(cut + 1);
    }
    return std::string(ext);
}

std::vector<std::string> delivery_environment(const DeliveryEnvironment& e) {
    std::vector<std::string> env = {
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "USER=" + e.user,
        "HOME=" + e.home,
        "LOCAL=" + e.local,
        "HOST=" + e.domain,
        "HOST2=" + host_part(e.domain, 1),
        "HOST3=" + host_part(e.domain, 2),
        "HOST4=" + host_part(e.domain, 3),
        "RECIPIENT=" + e.local + "@" + e.domain,
        "SENDER=" + e.sender,
        "NEWSENDER=" + e.newsender,
        "EXT=" + e.ext,
        "EXT2=" + ext_part(e.ext, 1, e.sep),
        "EXT3=" + ext_part(e.ext, 2, e.sep),
        "EXT4=" + ext_part(e.ext, 3, e.sep),
        "DTLINE=" + dt_line(e.local, e.domain),
        "RPLINE=" + rp_line(e.sender),
        "UFLINE=" + mbox_from_line(e.sender, e.now),
    };
    if (e.has_default) env.push_back("DEFAULT=" + e.default_part);
    return env;
}

std::string one_line(std::string_view text, size_t max) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            if (i + 1 < text.size()) out += " / ";
        } else if (c < ' ' || c == 127) {
            out += ' ';
        } else {
            out += static_cast<char>(c);
        }
    }
    out = trim(out);
    if (out.size() > max) {
        size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out = trim(out.substr(0, cut)) + "...";
    }
    return out;
}

namespace {

// "5.1.1 rest" with the class digit wanted: the status, and rest in text.
bool leading_status(const std::string& s, char cls, std::string& status, std::string& rest) {
    size_t sp = s.find(' ');
    std::string_view w = std::string_view(s).substr(0, sp);
    if (w.size() < 5 || w[0] != cls || w[1] != '.') return false;
    int dots = 0;
    for (char c : w) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    if (dots != 2 || w.back() == '.' || w.find("..") != std::string_view::npos) return false;
    status = std::string(w);
    rest = sp == std::string::npos ? "" : trim(s.substr(sp + 1));
    return true;
}

}  // namespace

ProgramOutcome program_outcome(const CommandResult& r, std::string_view where, double timeout) {
    const std::string out = one_line(r.output, 300);
    auto fail = [&](bool permanent, const std::string& what) {
        std::string status = permanent ? "5.2.0" : "4.2.0", rest = out;
        leading_status(out, permanent ? '5' : '4', status, rest);
        std::string text = std::string(where) + ": " + what + (rest.empty() ? "" : ": " + rest);
        return ProgramOutcome{permanent ? DeliveryResult::permanent(status, text)
                                        : DeliveryResult::temporary(status, text),
                              false};
    };
    switch (r.end) {
    case CommandResult::End::not_started:
        return {DeliveryResult::temporary("4.3.0", std::string(where) + ": " + r.error), false};
    case CommandResult::End::timed_out: {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", timeout);
        return {DeliveryResult::temporary("4.3.0", std::string(where) + ": program timed out after " + secs +
                                                       " seconds (control/timeoutlocal)"),
                false};
    }
    case CommandResult::End::signaled:
        return {DeliveryResult::temporary("4.3.0", std::string(where) + ": program killed by signal " +
                                                       std::to_string(r.code)),
                false};
    case CommandResult::End::exited:
        break;
    }
    if (r.code == 0) return {DeliveryResult::success(), false};
    if (r.code == 99) return {DeliveryResult::success(), true};
    if (r.code == 100) return fail(true, "program failed permanently (exit 100)");
    return fail(false, "program failed temporarily (exit " + std::to_string(r.code) + ")");
}

}  // namespace yubin
