#include "cdb.hpp"

#include "io.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>
#include <vector>

using namespace yubin;

TEST_CASE("cdb_hash is djb's hash", "[dotqmail][cdb]") {
    CHECK(cdb_hash("") == 5381u);
    CHECK(cdb_hash("a") == (((5381u << 5) + 5381u) ^ 'a'));
    // as computed by tinycdb and python for "one"
    CHECK(cdb_hash("one") == 193420161u);
}

TEST_CASE("cdb_build and cdb_find_in round trip", "[dotqmail][cdb]") {
    std::vector<std::pair<std::string, std::string>> recs;
    for (int i = 0; i < 2000; ++i) recs.emplace_back("key" + std::to_string(i), std::string(i % 37, 'v') + std::to_string(i));
    recs.emplace_back("", "empty key");
    recs.emplace_back(std::string("binary\0key", 10), "x");
    const std::string db = cdb_build(recs);
    for (const auto& [k, v] : recs) {
        INFO(k);
        auto got = cdb_find_in(db, k);
        REQUIRE(got.has_value());
        CHECK(*got == v);
    }
    CHECK_FALSE(cdb_find_in(db, "key2000").has_value());
    CHECK_FALSE(cdb_find_in(db, "KEY1").has_value());
    // The first of repeated keys wins.
    const std::string dup = cdb_build({{"a", "1"}, {"a", "2"}});
    CHECK(cdb_find_in(dup, "a") == std::optional<std::string>("1"));
    // No records: 2048 bytes of empty table pointers.
    const std::string none = cdb_build({});
    CHECK(none.size() == 2048);
    CHECK_FALSE(cdb_find_in(none, "a").has_value());
    // A truncated file is an error, not a silent miss.
    CHECK_THROWS(cdb_find_in(db.substr(0, 3000), "key1999"));
}
