#include "password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace yubin {

namespace {

const char prefix[] = "$pbkdf2-sha256$";

std::string to_hex(const unsigned char* p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        out += hex[p[i] >> 4];
        out += hex[p[i] & 15];
    }
    return out;
}

bool from_hex(std::string_view s, std::vector<unsigned char>& out) {
    if (s.size() % 2) return false;
    auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    out.clear();
    for (size_t i = 0; i < s.size(); i += 2) {
        int hi = val(s[i]), lo = val(s[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<unsigned char>(hi * 16 + lo));
    }
    return true;
}

std::vector<unsigned char> derive(std::string_view password, const std::vector<unsigned char>& salt,
                                  int iterations, size_t len) {
    std::vector<unsigned char> out(len);
    if (!PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                           static_cast<int>(salt.size()), iterations, EVP_sha256(), static_cast<int>(len),
                           out.data()))
        throw std::runtime_error("PBKDF2 failed");
    return out;
}

}  // namespace

std::string digest_hex(std::string_view algorithm, std::string_view data) {
    const EVP_MD* md = EVP_get_digestbyname(std::string(algorithm).c_str());
    if (!md) throw std::invalid_argument("unknown digest " + std::string(algorithm));
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
    return to_hex(out, len);
}

std::string hash_password(std::string_view password, int iterations) {
    std::vector<unsigned char> salt(16);
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1)
        throw std::runtime_error("no random bytes for the salt");
    auto h = derive(password, salt, iterations, 32);
    return std::string(prefix) + std::to_string(iterations) + "$" + to_hex(salt.data(), salt.size()) + "$" +
           to_hex(h.data(), h.size());
}

bool verify_password(std::string_view password, std::string_view stored) {
    if (stored.substr(0, sizeof prefix - 1) != prefix) return false;
    std::string_view rest = stored.substr(sizeof prefix - 1);
    size_t a = rest.find('$');
    if (a == std::string_view::npos) return false;
    size_t b = rest.find('$', a + 1);
    if (b == std::string_view::npos) return false;
    int iterations = 0;
    for (char c : rest.substr(0, a)) {
        if (c < '0' || c > '9' || iterations > 10000000) return false;
        iterations = iterations * 10 + (c - '0');
    }
    std::vector<unsigned char> salt, want;
    if (iterations < 1 || !from_hex(rest.substr(a + 1, b - a - 1), salt) ||
        !from_hex(rest.substr(b + 1), want) || want.empty() || want.size() > 64)
        return false;
    auto got = derive(password, salt, iterations, want.size());
    return CRYPTO_memcmp(got.data(), want.data(), want.size()) == 0;
}

}  // namespace yubin
