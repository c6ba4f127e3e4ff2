// queue-manager pieces without an event loop: local or remote, and the P
// line text of a remote failure.
#include <catch2/catch.hpp>

#include "scheduler.hpp"

using namespace yubin;

TEST_CASE("route_recipient: locals and virtualdomains are local, the rest remote", "[scheduler]") {
    Config cfg;
    cfg.me = "me.example";
    cfg.locals = {"me.example", "localhost"};
    cfg.virtualdomains = {{"virt.example", "alice"}, {".sub.example", "bob"}};
    Route r = route_recipient(cfg, "joe@ME.Example.");
    CHECK(r.local);
    CHECK(r.local_part == "joe");
    r = route_recipient(cfg, "joe");
    CHECK(r.local);
    r = route_recipient(cfg, "x@virt.example");
    CHECK(r.local);
    CHECK(r.local_part == "alice-x");
    CHECK(route_recipient(cfg, "x@a.sub.example").local);
    r = route_recipient(cfg, "Joe@Far.Example");
    CHECK_FALSE(r.local);
    CHECK(r.domain == "far.example");
    r = route_recipient(cfg, "joe@[192.0.2.1]");
    CHECK_FALSE(r.local);
    CHECK(r.domain == "[192.0.2.1]");
}

TEST_CASE("remote diagnostics in P lines keep type and Remote-MTA", "[scheduler]") {
    RemoteDiagnostic d{"smtp", "mx1.far.example", "550 5.1.1 no; such user"};
    std::string text = encode_remote_diagnostic(d);
    CHECK(text == "smtp; mx1.far.example; 550 5.1.1 no; such user");
    RemoteDiagnostic back = decode_remote_diagnostic(text);
    CHECK(back.type == "smtp");
    CHECK(back.remote_mta == "mx1.far.example");
    CHECK(back.text == "550 5.1.1 no; such user");
    back = decode_remote_diagnostic(encode_remote_diagnostic({"x-unix", "", "domain not found"}));
    CHECK(back.type == "x-unix");
    CHECK(back.remote_mta.empty());
    CHECK(back.text == "domain not found");
    // a text in another form stays whole
    back = decode_remote_diagnostic("no such domain; really");
    CHECK(back.type == "x-unix");
    CHECK(back.text == "no such domain; really");
    CHECK(max_remote_batch == 100);
}
