// The outcome of a delivery attempt: temporary versus permanent travels in the type.
#pragma once
#include <string>

namespace yubin {

struct DeliveryResult {
    enum class Kind { ok, temporary, permanent };
    Kind kind = Kind::ok;
    std::string status;   // RFC 3463 enhanced status code, "2.0.0", "4.2.0", "5.1.1"
    std::string text;     // one line for humans

    static DeliveryResult success(std::string t = "delivered") { return {Kind::ok, "2.0.0", std::move(t)}; }
    static DeliveryResult temporary(std::string st, std::string t) { return {Kind::temporary, std::move(st), std::move(t)}; }
    static DeliveryResult permanent(std::string st, std::string t) { return {Kind::permanent, std::move(st), std::move(t)}; }
    bool ok() const { return kind == Kind::ok; }
    // "4.2.0 text" as written on a result line
    std::string line() const { return status.empty() ? text : status + " " + text; }
};

}  // namespace yubin
