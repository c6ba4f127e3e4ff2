// Asking the password checker whether a password is right: smtpd's AUTH
// and pop3d's logins. yubin-authd(8), when it runs, answers on
// INSTANCE/auth/socket and remembers right answers for a while; else
// yubin-checkpassword(8) is run with the credentials on descriptor 3 and
// the user's name and home read from descriptor 4 (the checkpassword
// interface). Either is the only reader of the hashes.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "instance.hpp"

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

// yubin-authd on socket, at most timeout_ms; nullopt when it does not
// answer at all (no socket, nobody listening, it hung up), so that the
// caller can run the program instead.
std::optional<PasswordCheck> check_with_service(const std::string& socket, std::string_view user,
                                                std::string_view password, std::string_view timestamp = {},
                                                int timeout_ms = 60000);

// The service if it answers, else the program: what smtpd and pop3d use.
PasswordCheck check_credentials(const Instance& inst, std::string_view user, std::string_view password,
                                std::string_view timestamp = {});

}  // namespace yubin
