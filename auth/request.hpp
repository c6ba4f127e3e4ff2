// What a client asks of the password checker, in the checkpassword
// interface's bytes: "user\0password\0" and, for APOP, "timestamp\0" (the
// password is then the client's digest), 512 bytes at most. The same bytes
// come on descriptor 3 (yubin-checkpassword) and in one packet on
// yubin-authd's socket.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "credentials.hpp"
#include "instance.hpp"

namespace yubin {

inline constexpr size_t max_request = 512;

struct Request {
    std::string user, password, timestamp;
    Request() = default;
    Request(const Request&) = delete;
    Request& operator=(const Request&) = delete;
    Request(Request&&) = default;
    Request& operator=(Request&&) = default;
    ~Request();   // the password is overwritten
};

// nullopt unless the bytes are two or three fields each ended by a NUL,
// the user not empty, 512 bytes at most.
std::optional<Request> parse_request(std::string_view bytes);

// The APOP check when there is a timestamp, the password is a 32-digit hex
// digest and the user has APOP on; else the password check (qmail-popup
// sends a timestamp with USER/PASS logins too). Throws SysError when
// users/ cannot be read.
Verified verify_request(const Instance& inst, const Request& req);

}  // namespace yubin
