// control/senderlogins (yubin-control(5)): which envelope senders each
// authenticated user may use, as Postfix's smtpd_sender_login_maps with
// reject_sender_login_mismatch. One line per address:
//
//   alice@example.com   alice
//   @example.org        bob carol
//
// "@domain" stands for every address in the domain; an exact address
// comes before its domain; case does not matter. When the file exists, an authenticated client
// may use only the senders listed for its login (and the null sender);
// an address with no line belongs to no one.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace yubin {

class SenderLogins {
public:
    // Throws std::runtime_error naming the line for a malformed one.
    static SenderLogins parse(std::string_view text);
    bool may_use(std::string_view login, std::string_view sender) const;
    size_t size() const { return entries_.size(); }

private:
    std::vector<std::pair<std::string, std::vector<std::string>>> entries_;   // key (lower case), logins
    const std::vector<std::string>* find(const std::string& key) const;
};

}  // namespace yubin
