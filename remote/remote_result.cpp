#include "remote_result.hpp"

namespace yubin {

namespace {

std::string clean(std::string_view s, bool spaces_allowed) {
    std::string out;
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        out += u < ' ' || u == 0x7f || (!spaces_allowed && c == ' ') ? (spaces_allowed ? ' ' : '_') : c;
    }
    return out;
}

bool valid_status(std::string_view s) {
    if (s.size() < 5 || s.size() > 9 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
    int dots = 0;
    for (char c : s.substr(1)) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 2 && s.back() != '.' && s.find("..") == std::string_view::npos;
}

bool valid_type(std::string_view t) {
    if (t.empty() || t.size() > 32) return false;
    for (char c : t)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

}  // namespace

std::string format_result_line(const RemoteResult& r) {
    std::string out(1, r.code);
    out += ' ';
    std::string status = valid_status(r.status) ? r.status : "0.0.0";
    status[0] = r.code == 'K' ? '2' : r.code == 'D' ? '5' : '4';   // the class always agrees with the code
    out += status;
    out += ' ';
    out += r.remote_mta.empty() ? "-" : clean(r.remote_mta, false);
    out += ' ';
    out += valid_type(r.diag_type) ? r.diag_type : "x-unix";
    out += "; ";
    out += clean(r.diagnostic, true);
    out += '\n';
    return out;
}

std::optional<RemoteResult> parse_result_line(std::string_view line) {
    RemoteResult r;
    if (line.size() < 2 || (line[0] != 'K' && line[0] != 'Z' && line[0] != 'D') || line[1] != ' ') return std::nullopt;
    r.code = line[0];
    line.remove_prefix(2);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || !valid_status(line.substr(0, sp))) return std::nullopt;
    r.status = std::string(line.substr(0, sp));
    if ((r.code == 'D') != (r.status[0] == '5') || (r.code == 'K') != (r.status[0] == '2')) return std::nullopt;
    line.remove_prefix(sp + 1);
    sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0) return std::nullopt;
    if (line.substr(0, sp) != "-") r.remote_mta = std::string(line.substr(0, sp));
    line.remove_prefix(sp + 1);
    size_t semi = line.find("; ");
    if (semi == std::string_view::npos || !valid_type(line.substr(0, semi))) return std::nullopt;
    r.diag_type = std::string(line.substr(0, semi));
    r.diagnostic = std::string(line.substr(semi + 2));
    for (char c : r.diagnostic)
        if (static_cast<unsigned char>(c) < ' ') return std::nullopt;
    return r;
}

}  // namespace yubin
