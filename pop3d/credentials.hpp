// pop3d's credential checker: passwords against users/passwd (PBKDF2
// hashes, password.hpp) and APOP digests against users/apop (users.hpp).
//
// APOP (RFC 1939 section 7) proves knowledge of a shared secret without
// sending it, but the server must then keep the secret itself, not a hash.
// So users/apop holds a line only for the users whose APOP was turned on
// with "yubin-user apop NAME on"; everyone else's password exists only as a
// salted, iterated hash.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "instance.hpp"

#include "authorization.hpp"

namespace yubin {

// MD5(timestamp + secret) in lower-case hex (RFC 1939 section 7).
std::string apop_digest(std::string_view timestamp, std::string_view secret);
// Compares a digest the client sent (either case) in constant time.
bool apop_digest_equal(std::string_view expected, std::string_view given);

// The checker pop3d uses: reads users/passwd and users/apop at each check.
// An unknown user costs the same PBKDF2 work as a known one, so the time
// does not tell them apart. APOP works only while the stored secret is
// still the user's password (it is checked against the hash), so changing
// the password turns an old APOP secret off.
class InstanceCredentials : public pop3::CredentialChecker {
public:
    explicit InstanceCredentials(const Instance& inst) : inst_(inst) {}
    pop3::CheckResult check_password(std::string_view user, std::string_view password) override;
    pop3::CheckResult check_apop(std::string_view user, std::string_view timestamp,
                                 std::string_view digest) override;
    // Whether any user has APOP on (pop3d then puts a timestamp in its greeting).
    bool apop_offered() const;

private:
    const Instance& inst_;
};

}  // namespace yubin
