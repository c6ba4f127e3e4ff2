// Asking yubin-checkpassword(8) whether a password is right: smtpd's AUTH
// and pop3d's logins. The program is the only one that reads the hashes;
// this side gives it the credentials on descriptor 3 and reads the user's
// name and home from descriptor 4 (the checkpassword interface).
#pragma once
#include <string>
#include <string_view>

namespace yubin {

struct PasswordCheck {
    enum class Result { ok, refused, temporary };
    Result result = Result::temporary;
    std::string user, home;   // ok: the user's canonical name and home
    std::string error;        // temporary: why, for the log (never a password)
};

// Runs program (INSTANCE/bin/yubin-checkpassword) and waits for its answer,
// at most timeout_ms. timestamp: the APOP timestamp, the password being the
// client's digest; empty for a password.
PasswordCheck check_with_program(const std::string& program, std::string_view user, std::string_view password,
                                 std::string_view timestamp = {}, int timeout_ms = 60000);

}  // namespace yubin
