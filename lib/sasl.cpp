#include "sasl.hpp"

#include <openssl/crypto.h>

#include <stdexcept>

namespace yubin {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                     static_cast<unsigned char>(in[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (size_t rest = in.size() - i) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = in[i + k];
            if (c == '=' && last && k >= 2) {
                ++pad;
                v[k] = 0;
                continue;
            }
            if (pad) return std::nullopt;   // "=" only at the very end
            v[k] = value_of(c);
            if (v[k] < 0) return std::nullopt;
        }
        unsigned bits = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        // canonical: the bits that padding drops are zero
        if ((pad == 1 && (bits & 0xff)) || (pad == 2 && (bits & 0xffff))) return std::nullopt;
        out += static_cast<char>((bits >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((bits >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(bits & 0xff);
    }
    return out;
}

std::optional<PlainCredentials> parse_plain(std::string_view m, std::string* why) {
    auto fail = [why](const char* reason) -> std::optional<PlainCredentials> {
        if (why) *why = reason;
        return std::nullopt;
    };
    size_t a = m.find('\0');
    if (a == std::string_view::npos) return fail("no NUL in the PLAIN message");
    size_t b = m.find('\0', a + 1);
    if (b == std::string_view::npos) return fail("one NUL in the PLAIN message, two expected");
    if (m.find('\0', b + 1) != std::string_view::npos) return fail("a NUL inside the password");
    std::string_view authz = m.substr(0, a), user = m.substr(a + 1, b - a - 1), pass = m.substr(b + 1);
    if (user.empty()) return fail("empty user name");
    if (pass.empty()) return fail("empty password");
    if (!authz.empty() && authz != user) return fail("authorization identity differs from the user");
    if (!valid_login_field(user) || !valid_login_field(pass)) return fail("CR or LF in the credentials");
    return PlainCredentials{std::string(user), std::string(pass)};
}

bool valid_login_field(std::string_view s) { return s.find_first_of(std::string_view("\0\r\n", 3)) == std::string_view::npos; }

bool is_loopback(std::string_view remote) {
    return remote == "local" || remote == "::1" || remote.rfind("127.", 0) == 0 || remote.rfind("::ffff:127.", 0) == 0;
}

bool plaintext_allowed(std::string_view setting, std::string_view remote) {
    if (setting == "yes") return true;
    if (setting == "no") return false;
    if (setting == "loopback") return is_loopback(remote);
    throw std::invalid_argument("expected yes, no or loopback, not " + std::string(setting));
}

void wipe(std::string& secret) {
    OPENSSL_cleanse(secret.data(), secret.size());
    secret.clear();
}

}  // namespace yubin
