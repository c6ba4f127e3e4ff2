#include "request.hpp"

#include <vector>

#include "sasl.hpp"

namespace yubin {

namespace {

bool is_hex_digest(const std::string& s) {
    if (s.size() != 32) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
    return true;
}

}  // namespace

Request::~Request() { wipe(password); }

std::optional<Request> parse_request(std::string_view bytes) {
    if (bytes.size() > max_request) return std::nullopt;
    std::vector<std::string_view> fields;
    size_t start = 0;
    for (size_t i = 0; i < bytes.size(); ++i)
        if (bytes[i] == '\0') {
            fields.push_back(bytes.substr(start, i - start));
            start = i + 1;
        }
    if ((fields.size() != 2 && fields.size() != 3) || start != bytes.size() || fields[0].empty()) return std::nullopt;
    Request r;
    r.user = fields[0];
    r.password = fields[1];
    if (fields.size() == 3) r.timestamp = fields[2];
    return r;
}

Verified verify_request(const Instance& inst, const Request& req) {
    // qmail-popup sends its greeting's timestamp with every login, USER/PASS
    // too, and Dovecot an empty one: a digest is taken for APOP only where
    // the user has APOP on, anything else is a password.
    if (!req.timestamp.empty() && is_hex_digest(req.password) && apop_enabled(inst, req.user))
        return check_apop(inst, req.user, req.timestamp, req.password);
    return check_password(inst, req.user, req.password);
}

}  // namespace yubin
