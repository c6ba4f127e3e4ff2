#include "credentials.hpp"

#include <openssl/crypto.h>

#include <optional>

#include "io.hpp"
#include "password.hpp"

namespace yubin {

namespace {

// A well-formed hash that no password matches in practice, for unknown
// users: checking against it costs what a real check costs.
std::string dummy_hash() {
    return "$pbkdf2-sha256$" + std::to_string(password_iterations) + "$" + std::string(32, '0') + "$" +
           std::string(64, '0');
}

std::optional<UserEntry> find_user(const Instance& inst, std::string_view name) {
    const std::string key = lowercase(name);
    for (auto& u : load_users(inst))
        if (u.name == key) return u;
    return std::nullopt;
}

Verified accepted(const UserEntry& u) { return {u, ""}; }
Verified refused(std::string reason) { return {std::nullopt, std::move(reason)}; }

}  // namespace

std::string apop_digest(std::string_view timestamp, std::string_view secret) {
    std::string input = std::string(timestamp) + std::string(secret);
    std::string out = digest_hex("md5", input);
    OPENSSL_cleanse(input.data(), input.size());
    return out;
}

bool apop_digest_equal(std::string_view expected, std::string_view given) {
    if (expected.size() != given.size()) return false;
    std::string lower = lowercase(given);
    return CRYPTO_memcmp(expected.data(), lower.data(), expected.size()) == 0;
}

Verified check_password(const Instance& inst, std::string_view user, std::string_view password) {
    auto u = find_user(inst, user);
    if (!u) {
        verify_password(password, dummy_hash());
        return refused("no such user");
    }
    if (!verify_password(password, u->hash)) return refused("wrong password");
    return accepted(*u);
}

bool apop_enabled(const Instance& inst, std::string_view user) {
    const std::string name = lowercase(user);
    for (auto& e : load_apop(inst))
        if (e.name == name) return true;
    return false;
}

Verified check_apop(const Instance& inst, std::string_view user, std::string_view timestamp, std::string_view digest) {
    auto u = find_user(inst, user);
    std::optional<std::string> secret;
    if (u)
        for (auto& e : load_apop(inst))
            if (e.name == u->name) secret = e.secret;
    if (!u || !secret) {
        verify_password("", dummy_hash());
        return refused(!u ? "no such user" : "APOP is off for this user");
    }
    const bool match = apop_digest_equal(apop_digest(timestamp, *secret), digest);
    // The secret must still be the password: a password change turns it off.
    const bool current = verify_password(*secret, u->hash);
    if (!match) return refused("wrong APOP digest");
    if (!current) return refused("APOP secret is not the current password");
    return accepted(*u);
}

}  // namespace yubin
