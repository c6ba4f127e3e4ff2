// The password check of yubin-checkpassword(8): passwords against
// users/passwd (PBKDF2 hashes, password.hpp) and APOP digests against
// users/apop (users.hpp). Only yubin-checkpassword reads those files to
// check a password (local-spawn and yubin-user read users/passwd for homes).
//
// APOP (RFC 1939 section 7) proves knowledge of a shared secret without
// sending it, but the server must then keep the secret itself, not a hash.
// So users/apop holds a line only for the users whose APOP was turned on
// with "yubin-user apop NAME on"; everyone else's password exists only as a
// salted, iterated hash.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "instance.hpp"
#include "users.hpp"

namespace yubin {

// MD5(timestamp + secret) in lower-case hex (RFC 1939 section 7).
std::string apop_digest(std::string_view timestamp, std::string_view secret);
// Compares a digest the client sent (either case) in constant time.
bool apop_digest_equal(std::string_view expected, std::string_view given);

struct Verified {
    std::optional<UserEntry> user;   // set when the credentials are right
    std::string reason;              // why not, for the caller's log
};

// The checks read users/passwd and users/apop each time. An unknown user
// costs the same PBKDF2 work as a known one, so the time does not tell them
// apart. APOP works only while the stored secret is still the user's
// password (it is checked against the hash), so changing the password
// turns an old APOP secret off. Throw SysError when a file cannot be read.
Verified check_password(const Instance& inst, std::string_view user, std::string_view password);
Verified check_apop(const Instance& inst, std::string_view user, std::string_view timestamp, std::string_view digest);
// Whether users/apop has a line for the user.
bool apop_enabled(const Instance& inst, std::string_view user);

}  // namespace yubin
