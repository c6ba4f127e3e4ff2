#include "backoff.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <vector>

using namespace yubin;

namespace {
const BackoffPolicy defaults{};  // 60, 3600, 604800
const time_t birth = 1700000000;
}  // namespace

TEST_CASE("the default policy matches yubin-control(5)", "[backoff]") {
    CHECK(defaults.min_backoff == 60);
    CHECK(defaults.max_backoff == 3600);
    CHECK(defaults.lifetime == 604800);
}

TEST_CASE("the gap doubles from min_backoff and stops at max_backoff", "[backoff]") {
    const time_t now = birth + 1000;
    struct Row {
        unsigned failures;
        long gap;
    };
    // 1, 2, 4, 8, 16, 32 minutes, then one hour (queue-manager(8)).
    const std::vector<Row> rows = {
        {1, 60},   {2, 120},  {3, 240},  {4, 480},    {5, 960},   {6, 1920},
        {7, 3600}, {8, 3600}, {20, 3600}, {64, 3600}, {1000, 3600}, {4000000000u, 3600},
    };
    for (const auto& r : rows) {
        INFO("failures = " << r.failures);
        auto next = next_attempt(defaults, birth, now, r.failures);
        REQUIRE(next.has_value());
        CHECK(*next == now + r.gap);
    }
}

TEST_CASE("the first failure waits exactly min_backoff", "[backoff]") {
    for (long min : {1L, 30L, 60L, 300L}) {
        BackoffPolicy p{min, 3600, 604800};
        auto next = next_attempt(p, birth, birth + 5, 1);
        REQUIRE(next.has_value());
        CHECK(*next == birth + 5 + min);
    }
    // failures = 0 (no failure counted yet) is treated like the first.
    auto zero = next_attempt(defaults, birth, birth, 0);
    REQUIRE(zero.has_value());
    CHECK(*zero == birth + 60);
}

TEST_CASE("odd policies: min above max, min zero", "[backoff]") {
    BackoffPolicy above{500, 100, 604800};
    CHECK(next_attempt(above, birth, birth, 1) == std::optional<time_t>(birth + 100));
    CHECK(next_attempt(above, birth, birth, 9) == std::optional<time_t>(birth + 100));

    BackoffPolicy zero{0, 100, 604800};
    CHECK(next_attempt(zero, birth, birth, 1) == std::optional<time_t>(birth + 1));
    CHECK(next_attempt(zero, birth, birth, 3) == std::optional<time_t>(birth + 4));

    BackoffPolicy not_power{45, 100, 604800};  // 45, 90, then capped at 100
    CHECK(next_attempt(not_power, birth, birth, 2) == std::optional<time_t>(birth + 90));
    CHECK(next_attempt(not_power, birth, birth, 3) == std::optional<time_t>(birth + 100));
}

TEST_CASE("the last attempt is made exactly at the expiry time", "[backoff]") {
    const time_t expiry = birth + defaults.lifetime;
    // A retry that would fall after expiry is moved to expiry.
    for (time_t now : {expiry - 3599, expiry - 1000, expiry - 60, expiry - 1}) {
        INFO("seconds before expiry: " << expiry - now);
        auto next = next_attempt(defaults, birth, now, 10);
        REQUIRE(next.has_value());
        CHECK(*next == expiry);
    }
    // One that falls exactly on it stays there; one before it is not moved.
    CHECK(next_attempt(defaults, birth, expiry - 3600, 10) == std::optional<time_t>(expiry));
    CHECK(next_attempt(defaults, birth, expiry - 3601, 10) == std::optional<time_t>(expiry - 1));
    CHECK(next_attempt(defaults, birth, expiry - 61, 1) == std::optional<time_t>(expiry - 1));
}

TEST_CASE("no further attempt at or after expiry", "[backoff]") {
    const time_t expiry = birth + defaults.lifetime;
    for (time_t now : {expiry, expiry + 1, expiry + 86400}) {
        for (unsigned failures : {1u, 2u, 50u}) {
            INFO("now - expiry = " << now - expiry << ", failures = " << failures);
            CHECK_FALSE(next_attempt(defaults, birth, now, failures).has_value());
        }
    }
    BackoffPolicy short_life{60, 3600, 100};
    CHECK(next_attempt(short_life, birth, birth + 99, 1) == std::optional<time_t>(birth + 100));
    CHECK_FALSE(next_attempt(short_life, birth, birth + 100, 1).has_value());
}

TEST_CASE("a whole schedule ends at expiry and then stops", "[backoff]") {
    // Follow the schedule from the first failure as queue-manager would.
    BackoffPolicy p{60, 3600, 20000};
    const time_t expiry = birth + p.lifetime;
    time_t now = birth;
    unsigned failures = 0;
    std::vector<time_t> attempts;
    while (auto next = next_attempt(p, birth, now, ++failures)) {
        REQUIRE(*next > now);
        REQUIRE(*next <= expiry);
        attempts.push_back(*next);
        now = *next;
        REQUIRE(attempts.size() < 100);
    }
    REQUIRE(attempts.size() >= 8);
    CHECK(attempts[0] == birth + 60);
    CHECK(attempts[1] == birth + 180);
    CHECK(attempts[5] == birth + 3780);   // 60+120+240+480+960+1920
    CHECK(attempts[6] == birth + 7380);   // then one hour
    CHECK(attempts.back() == expiry);
    CHECK(attempts[attempts.size() - 2] < expiry);
    CHECK(now == expiry);
}
