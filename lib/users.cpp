#include "users.hpp"

#include <stdexcept>

#include "io.hpp"

namespace yubin {

namespace {

// The lines of a users/ file that hold an entry: not empty, not a '#' comment.
std::vector<std::string_view> entry_lines(std::string_view text) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line[0] != '#') out.push_back(line);
    }
    return out;
}

}  // namespace

std::vector<UserEntry> parse_passwd(std::string_view text) {
    std::vector<UserEntry> out;
    for (std::string_view line : entry_lines(text)) {
        size_t a = line.find(':');
        if (a == std::string_view::npos) continue;
        size_t b = line.find(':', a + 1);
        if (b == std::string_view::npos) continue;
        UserEntry u{std::string(line.substr(0, a)), std::string(line.substr(a + 1, b - a - 1)),
                    std::string(line.substr(b + 1))};
        if (valid_user_name(u.name) && !u.home.empty() && u.home[0] == '/') out.push_back(std::move(u));
    }
    return out;
}

std::string format_passwd(const std::vector<UserEntry>& users) {
    std::string out;
    for (const auto& u : users) out += u.name + ":" + u.hash + ":" + u.home + "\n";
    return out;
}

std::vector<UserEntry> load_users(const Instance& inst) {
    auto text = read_file(inst.path("users/passwd"), 64 << 20);
    return text ? parse_passwd(*text) : std::vector<UserEntry>{};
}

void save_users(const Instance& inst, const std::vector<UserEntry>& users) {
    write_file_atomic(inst.path("users/passwd"), format_passwd(users), 0640);
}

std::vector<ApopEntry> parse_apop(std::string_view text) {
    std::vector<ApopEntry> out;
    for (std::string_view line : entry_lines(text)) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        ApopEntry e{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))};
        if (valid_user_name(e.name) && !e.secret.empty()) out.push_back(std::move(e));
    }
    return out;
}

std::string format_apop(const std::vector<ApopEntry>& entries) {
    std::string out;
    for (const auto& e : entries) out += e.name + ":" + e.secret + "\n";
    return out;
}

std::vector<ApopEntry> load_apop(const Instance& inst) {
    auto text = read_file(inst.path("users/apop"), 16 << 20);
    return text ? parse_apop(*text) : std::vector<ApopEntry>{};
}

void save_apop(const Instance& inst, const std::vector<ApopEntry>& entries) {
    write_file_atomic(inst.path("users/apop"), format_apop(entries), 0640);
}

bool valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > 32 || name[0] == '.') return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_')) return false;
    return true;
}

std::optional<LocalTarget> resolve_local(const Instance& inst, const std::vector<UserEntry>& users,
                                         std::string_view local_in, char separator,
                                         const AliasPredicate& is_alias) {
    const std::string local = lowercase(local_in);
    if (local.empty()) return std::nullopt;
    auto find = [&](std::string_view name) -> const UserEntry* {
        for (const auto& u : users)
            if (u.name == name) return &u;
        return nullptr;
    };
    if (const UserEntry* u = find(local)) return LocalTarget{u->name, u->home, "", false};
    const LocalTarget alias{"alias", inst.path("alias"), local, true};
    // The alias names come before user-ext, so that a user "mailer" cannot
    // receive mailer-daemon's mail.
    if (local == "postmaster" || local == "mailer-daemon" || local == "root" || (is_alias && is_alias(local)))
        return alias;
    // user-ext: the longest prefix before a separator that names a user.
    for (size_t cut = local.rfind(separator); cut != std::string::npos && cut > 0;
         cut = local.rfind(separator, cut - 1)) {
        if (const UserEntry* u = find(std::string_view(local).substr(0, cut)))
            return LocalTarget{u->name, u->home, local.substr(cut + 1), false};
    }
    return alias;
}

char extension_separator(const Instance& inst) {
    const std::string s = inst.control_string("extseparator", "-");
    const char c = s.size() == 1 ? s[0] : 0;
    const bool ok = c > ' ' && c < 127 && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
                    !(c >= '0' && c <= '9') && c != '@' && c != '.' && c != '/' && c != ':' && c != '"' &&
                    c != '\\';
    if (!ok) throw std::runtime_error("control/extseparator: not a single punctuation character: " + s);
    return c;
}

}  // namespace yubin
