// What SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034) share: strict base64
// (RFC 4648, no white space, padding only at the end) and the messages of
// the PLAIN (RFC 4616) and LOGIN mechanisms.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace yubin {

std::string base64_encode(std::string_view bytes);
// nullopt for anything but canonical base64 (bad characters, bad padding, a
// length that is not a multiple of 4, non-zero bits in the last character).
std::optional<std::string> base64_decode(std::string_view text);

struct PlainCredentials {
    std::string user;       // the authentication identity
    std::string password;
};

// A PLAIN message, already decoded: authzid NUL authcid NUL passwd. nullopt
// when it is malformed: not exactly two NULs, an empty user or password, or
// an authorization identity other than the user (no one may act as another).
// why says which, for the reply.
std::optional<PlainCredentials> parse_plain(std::string_view message, std::string* why = nullptr);

// A user name or password from LOGIN, decoded: no NUL, CR or LF.
bool valid_login_field(std::string_view s);

// Whether a client at remote ("local" for a local session, else its IP
// address) may send a password without TLS, by a control file's setting:
// "yes", "no" or "loopback" (127.0.0.0/8, ::1 and local sessions only).
// Throws std::invalid_argument for any other setting.
bool plaintext_allowed(std::string_view setting, std::string_view remote);
bool is_loopback(std::string_view remote);

// Overwrites a secret before its memory is given back (OPENSSL_cleanse), and empties it.
void wipe(std::string& secret);
// wipe(s) when the scope ends, whichever way it ends.
struct WipeOnExit {
    std::string& s;
    ~WipeOnExit() { wipe(s); }
};

}  // namespace yubin
