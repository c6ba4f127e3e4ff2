// credentials.hpp: APOP digests and the instance checker.
#include "credentials.hpp"

#include "io.hpp"
#include "password.hpp"
#include "temp_dir.hpp"
#include "users.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

using namespace yubin;
using yubin::test::TempDir;

namespace {

struct Inst {
    TempDir tmp;
    Instance inst{tmp.path()};
    Inst() {
        ::mkdir((tmp / "users").c_str(), 0700);
        save_users(inst, {{"alice", hash_password("secret", 1000), tmp / "home/alice"},
                          {"bob", hash_password("bobpw", 1000), tmp / "home/bob"}});
    }
};

}  // namespace

TEST_CASE("apop digest: RFC 1939's example", "[credentials]") {
    CHECK(apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb");
    CHECK(apop_digest_equal("c4c9334bac560ecc979e58001b3e22fb", "C4C9334BAC560ECC979E58001B3E22FB"));
    CHECK_FALSE(apop_digest_equal("c4c9334bac560ecc979e58001b3e22fb", "c4c9334bac560ecc979e58001b3e22fa"));
    CHECK_FALSE(apop_digest_equal("c4c9334bac560ecc979e58001b3e22fb", "c4c9"));
}

TEST_CASE("password checks: right, wrong, unknown user, case of the name", "[credentials]") {
    Inst t;
    auto ok = check_password(t.inst, "alice", "secret");
    REQUIRE(ok.user);
    CHECK(ok.user->name == "alice");
    CHECK(ok.user->home == t.tmp / "home/alice");
    CHECK(check_password(t.inst, "Alice", "secret").user);
    auto wrong = check_password(t.inst, "alice", "Secret");
    CHECK_FALSE(wrong.user);
    CHECK(wrong.reason == "wrong password");
    auto unknown = check_password(t.inst, "mallory", "secret");
    CHECK_FALSE(unknown.user);
    CHECK(unknown.reason == "no such user");
    CHECK_FALSE(check_password(t.inst, "bob", "secret").user);
}

TEST_CASE("APOP: only with a stored secret that is still the password", "[credentials]") {
    Inst t;
    const std::string ts = "<1.2.3@h>";
    auto off = check_apop(t.inst, "alice", ts, apop_digest(ts, "secret"));
    CHECK_FALSE(off.user);
    CHECK(off.reason == "APOP is off for this user");

    save_apop(t.inst, {{"alice", "secret"}});
    CHECK(yubin::test::file_mode(t.tmp / "users/apop") == 0640);  // the group: yubin-checkpassword in a system instance
    CHECK(check_apop(t.inst, "alice", ts, apop_digest(ts, "secret")).user);
    CHECK_FALSE(check_apop(t.inst, "alice", "<other@h>", apop_digest(ts, "secret")).user);
    CHECK_FALSE(check_apop(t.inst, "bob", ts, apop_digest(ts, "bobpw")).user);
    CHECK(check_apop(t.inst, "nobody", ts, apop_digest(ts, "x")).reason == "no such user");

    // a password change makes the stored secret stale: APOP is refused
    auto users = load_users(t.inst);
    users[0].hash = hash_password("changed", 1000);
    save_users(t.inst, users);
    auto stale = check_apop(t.inst, "alice", ts, apop_digest(ts, "secret"));
    CHECK_FALSE(stale.user);
    CHECK(stale.reason == "APOP secret is not the current password");
}
