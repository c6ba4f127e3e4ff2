#include "credentials.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <optional>

#include "io.hpp"
#include "password.hpp"
#include "users.hpp"

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

pop3::CheckResult accepted(const UserEntry& u) { return {pop3::Account{u.name, u.home}, ""}; }
pop3::CheckResult refused(std::string reason) { return {std::nullopt, std::move(reason)}; }

}  // namespace

std::string apop_digest(std::string_view timestamp, std::string_view secret) {
    std::string input = std::string(timestamp) + std::string(secret);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(input.data(), input.size(), md, &len, EVP_md5(), nullptr);
    OPENSSL_cleanse(input.data(), input.size());
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

bool apop_digest_equal(std::string_view expected, std::string_view given) {
    if (expected.size() != given.size()) return false;
    std::string lower = lowercase(given);
    return CRYPTO_memcmp(expected.data(), lower.data(), expected.size()) == 0;
}

pop3::CheckResult InstanceCredentials::check_password(std::string_view user, std::string_view password) {
    auto u = find_user(inst_, user);
    if (!u) {
        verify_password(password, dummy_hash());
        return refused("no such user");
    }
    if (!verify_password(password, u->hash)) return refused("wrong password");
    return accepted(*u);
}

pop3::CheckResult InstanceCredentials::check_apop(std::string_view user, std::string_view timestamp,
                                                  std::string_view digest) {
    auto u = find_user(inst_, user);
    std::optional<std::string> secret;
    if (u)
        for (auto& e : load_apop(inst_))
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

bool InstanceCredentials::apop_offered() const { return !load_apop(inst_).empty(); }

}  // namespace yubin
