#include "datetime.hpp"

#include <catch2/catch.hpp>

#include <clocale>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

using namespace yubin;

namespace {

// Sets TZ for one test and puts the old value back afterwards.
class ScopedTz {
public:
    explicit ScopedTz(const char* tz) {
        if (const char* old = std::getenv("TZ")) old_ = old;
        setenv("TZ", tz, 1);
        tzset();
    }
    ~ScopedTz() {
        if (old_) setenv("TZ", old_->c_str(), 1);
        else unsetenv("TZ");
        tzset();
    }
    ScopedTz(const ScopedTz&) = delete;
    ScopedTz& operator=(const ScopedTz&) = delete;

private:
    std::optional<std::string> old_;
};

struct Case { time_t t; const char* want; };

void check_all(const std::vector<Case>& cases) {
    for (const auto& c : cases) {
        INFO(c.t);
        CHECK(rfc5322_date(c.t) == c.want);
    }
}

}  // namespace

TEST_CASE("rfc5322_date in UTC", "[datetime]") {
    ScopedTz tz("UTC0");
    check_all({
        {0, "Thu, 1 Jan 1970 00:00:00 +0000"},
        {1795437296, "Mon, 23 Nov 2026 12:34:56 +0000"},
        {951868799, "Tue, 29 Feb 2000 23:59:59 +0000"},
        {1700000000, "Tue, 14 Nov 2023 22:13:20 +0000"},
    });
}

TEST_CASE("rfc5322_date in a +0530 zone", "[datetime]") {
    ScopedTz tz("IST-5:30");
    check_all({
        {0, "Thu, 1 Jan 1970 05:30:00 +0530"},
        {1795437296, "Mon, 23 Nov 2026 18:04:56 +0530"},
        {951868799, "Wed, 1 Mar 2000 05:29:59 +0530"},
        {1700000000, "Wed, 15 Nov 2023 03:43:20 +0530"},
    });
}

TEST_CASE("rfc5322_date in a -0330 zone", "[datetime]") {
    ScopedTz tz("NST+3:30");
    check_all({
        {0, "Wed, 31 Dec 1969 20:30:00 -0330"},
        {1795437296, "Mon, 23 Nov 2026 09:04:56 -0330"},
    });
}

TEST_CASE("rfc5322_date uses English names whatever the locale", "[datetime]") {
    ScopedTz tz("UTC0");
    std::string old = std::setlocale(LC_ALL, nullptr);
    for (const char* loc : {"de_DE.UTF-8", "fr_FR.UTF-8", "C.UTF-8"}) {
        if (std::setlocale(LC_ALL, loc) == nullptr) continue;
        INFO(loc);
        CHECK(rfc5322_date(1795437296) == "Mon, 23 Nov 2026 12:34:56 +0000");
    }
    std::setlocale(LC_ALL, old.c_str());
}
