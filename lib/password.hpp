// Password hashing for POP3 credentials: PBKDF2-HMAC-SHA256 (OpenSSL),
// stored as $pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX.
#pragma once
#include <string>
#include <string_view>

namespace yubin {

inline constexpr int password_iterations = 100000;

std::string hash_password(std::string_view password, int iterations = password_iterations);
// Constant-time comparison against a stored hash; false for a malformed one.
bool verify_password(std::string_view password, std::string_view stored);

// A digest in lower-case hex: "md5" (APOP), "sha256".
std::string digest_hex(std::string_view algorithm, std::string_view data);

}  // namespace yubin
