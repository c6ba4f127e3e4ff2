#include "sender_logins.hpp"

#include <stdexcept>

#include "address.hpp"
#include "instance.hpp"

namespace yubin {

namespace {

// The lookup key of an address: all in lower case, as Postfix's tables look up.
std::string key_of(std::string_view address) {
    AddressParts parts = split_address(address);
    return lowercase(parts.local) + "@" + normalize_domain(parts.domain);
}

}  // namespace

SenderLogins SenderLogins::parse(std::string_view text) {
    SenderLogins out;
    size_t n = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++n;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::vector<std::string> w = split_words(line);
        if (w.empty() || w[0][0] == '#') continue;
        if (w.size() < 2 || w[0].find('@') == std::string_view::npos)
            throw std::runtime_error("control/senderlogins line " + std::to_string(n) +
                                     ": expected an address or @domain, then one or more logins");
        std::vector<std::string> logins;
        for (size_t i = 1; i < w.size(); ++i) logins.push_back(lowercase(w[i]));
        std::string key = w[0][0] == '@' ? "@" + normalize_domain(w[0].substr(1)) : key_of(w[0]);
        out.entries_.emplace_back(std::move(key), std::move(logins));
    }
    return out;
}

const std::vector<std::string>* SenderLogins::find(const std::string& key) const {
    for (const auto& [k, logins] : entries_)
        if (k == key) return &logins;
    return nullptr;
}

bool SenderLogins::may_use(std::string_view login, std::string_view sender) const {
    if (sender.empty()) return true;   // the null sender (a bounce) belongs to everyone
    const std::vector<std::string>* logins = find(key_of(sender));
    if (!logins) logins = find("@" + normalize_domain(split_address(sender).domain));
    if (!logins) return false;
    const std::string who = lowercase(login);
    for (const auto& l : *logins)
        if (l == who) return true;
    return false;
}

}  // namespace yubin
