#include "address.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

TEST_CASE("split_address uses the last @ outside quotes", "[address]") {
    struct Case { std::string in, local, domain; };
    const std::vector<Case> cases = {
        {"user@example.com", "user", "example.com"},
        {"\"a@b\"@example.com", "\"a@b\"", "example.com"},
        {"a@b@example.com", "a@b", "example.com"},
        {"\"x\\\"@y\"@z", "\"x\\\"@y\"", "z"},   // escaped quote inside the quoted part
        {"\"a@b\"", "\"a@b\"", ""},              // the only @ is quoted
        {"root", "root", ""},
        {"a%b@c", "a%b", "c"},
        {"a!b!c", "a!b!c", ""},
        {"\"unterminated@x", "\"unterminated", "x"},
        {"", "", ""},
        {"@example.com", "", "example.com"},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        AddressParts p = split_address(c.in);
        CHECK(p.local == c.local);
        CHECK(p.domain == c.domain);
    }
}

TEST_CASE("domains compare without case and one trailing dot", "[address]") {
    CHECK(normalize_domain("Example.COM.") == "example.com");
    CHECK(normalize_domain("example.com..") == "example.com.");
    CHECK(normalize_domain("") == "");
    CHECK(domain_equal("EXAMPLE.com", "example.COM."));
    CHECK_FALSE(domain_equal("example.com", "example.org"));
    CHECK_FALSE(domain_equal("example.com", "example.com.."));
}

TEST_CASE("quote_local_part and unquote_local_part", "[address]") {
    struct Case { std::string unquoted, quoted; };
    const std::vector<Case> cases = {
        {"joe", "joe"},
        {"joe.smith", "joe.smith"},
        {"a+tag", "a+tag"},
        {"a b", "\"a b\""},
        {"a@b", "\"a@b\""},
        {"a..b", "\"a..b\""},
        {".a", "\".a\""},
        {"a.", "\"a.\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"", "\"\""},
    };
    for (const auto& c : cases) {
        INFO(c.unquoted);
        CHECK(quote_local_part(c.unquoted) == c.quoted);
        CHECK(unquote_local_part(c.quoted) == c.unquoted);
    }
    // Not one well-formed quoted string: unchanged.
    CHECK(unquote_local_part("\"a\"b\"") == "\"a\"b\"");
    CHECK(unquote_local_part("\"abc") == "\"abc");
    CHECK(unquote_local_part("\"abc\\\"") == "\"abc\\\"");
    CHECK(unquote_local_part("\"") == "\"");
    CHECK(unquote_local_part("plain") == "plain");
    CHECK(unquote_local_part("\"a\\bc\"") == "abc");  // quoted-pair of an ordinary char
}

TEST_CASE("parse_smtp_path accepts good paths", "[address][smtp]") {
    struct Case { std::string in, address; bool utf8; };
    const std::vector<Case> cases = {
        {"<user@example.com>", "user@example.com", false},
        {"<User@Example.COM>", "User@example.com", false},          // local part keeps its case
        {"<user@example.com.>", "user@example.com", false},         // one trailing dot
        {"<first.last+tag@mail.example.org>", "first.last+tag@mail.example.org", false},
        {"<\"a b\"@example.com>", "\"a b\"@example.com", false},
        {"<\"a@b\"@example.com>", "\"a@b\"@example.com", false},
        {"<\"a%b c\"@example.com>", "\"a%b c\"@example.com", false},
        {"<\"joe\"@example.com>", "joe@example.com", false},        // needless quotes removed
        {"<\"a\\\"b\"@example.com>", "\"a\\\"b\"@example.com", false},
        {"<\"a\\bc\"@example.com>", "abc@example.com", false},
        {"<a%b@c>", "a%b@c", false},                                // percent hack: plain local part
        {"<a!b!c@relay.example>", "a!b!c@relay.example", false},    // bang path: plain local part
        {"<@a.example,@b.example:user@c.example>", "user@c.example", false},
        {"<@a.example:user@c.example>", "user@c.example", false},
        {"<user@[192.0.2.1]>", "user@[192.0.2.1]", false},
        {"<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", false},
        {"<user@[IPv6:::ffff:192.0.2.1]>", "user@[IPv6:::ffff:192.0.2.1]", false},
        {"<user@[ipv6:1:2:3:4:5:6:7:8]>", "user@[ipv6:1:2:3:4:5:6:7:8]", false},
        {"<postmaster>", "postmaster", false},
        {"<PostMaster>", "postmaster", false},
        {"<a-b@x-y.example>", "a-b@x-y.example", false},
        {"<1@2.3>", "1@2.3", false},
        {"<j\xC3\xB6rg@b\xC3\xBC" "cher.example>", "j\xC3\xB6rg@b\xC3\xBC" "cher.example", true},
        {"<\"j\xC3\xB6 rg\"@example.com>", "\"j\xC3\xB6 rg\"@example.com", true},
        {"<" + std::string(64, 'a') + "@example.com>", std::string(64, 'a') + "@example.com", false},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        PathResult r = parse_smtp_path(c.in, false, c.utf8);
        CHECK(r.ok);
        CHECK_FALSE(r.null_path);
        CHECK(r.address == c.address);
        CHECK(r.error.empty());
        CHECK(r.consumed == c.in.size());
    }
}

TEST_CASE("parse_smtp_path reports the bytes consumed", "[address][smtp]") {
    PathResult r = parse_smtp_path("<a@b.example> SIZE=100 BODY=8BITMIME", false, false);
    REQUIRE(r.ok);
    CHECK(r.consumed == 13);
    CHECK(r.address == "a@b.example");
    r = parse_smtp_path("<\"x>y\"@b.example> X", false, false);  // '>' inside quotes does not end the path
    REQUIRE(r.ok);
    CHECK(r.consumed == 17);
}

TEST_CASE("parse_smtp_path null path", "[address][smtp]") {
    PathResult r = parse_smtp_path("<>", true, false);
    CHECK(r.ok);
    CHECK(r.null_path);
    CHECK(r.address.empty());
    CHECK(r.consumed == 2);
    r = parse_smtp_path("<> SIZE=10", true, true);
    CHECK(r.ok);
    CHECK(r.consumed == 2);
    r = parse_smtp_path("<>", false, false);
    CHECK_FALSE(r.ok);
    CHECK_FALSE(r.null_path);
    CHECK_FALSE(r.error.empty());
    CHECK_FALSE(parse_smtp_path("< >", true, false).ok);
}

TEST_CASE("parse_smtp_path rejects bad paths", "[address][smtp]") {
    struct Case { std::string in; bool utf8; std::string error; };
    const std::string long_local(65, 'a');
    const std::string label63(63, 'b');
    const std::string long_domain = label63 + "." + label63 + "." + label63 + "." + label63 + ".com";  // 256
    const std::vector<Case> cases = {
        {"user@example.com", false, "address must be enclosed in <>"},
        {"<user@example.com", false, "missing >"},
        {"<<user@example.com>>", false, ""},
        {"<user@example.com>>", false, ""},  // accepted prefix; see separate check below
        {"<>", false, "null address not allowed here"},
        {"", false, ""},
        {"<", false, ""},
        {"<@example.com>", false, "empty local part"},
        {"<\"\"@example.com>", false, "empty local part"},
        {"<user@>", false, "bad domain"},
        {"<user>", false, "address must include a domain"},
        {"<\"postmaster\">", false, "address must include a domain"},
        {"<user name@example.com>", false, "bad address syntax"},
        {"< user@example.com>", false, ""},
        {"<user@example.com >", false, ""},
        {"<us(er@example.com>", false, ""},
        {"<a,b@example.com>", false, ""},
        {"<a;b@example.com>", false, ""},
        {"<a:b@example.com>", false, ""},
        {"<a[b@example.com>", false, ""},
        {"<a\\b@example.com>", false, ""},
        {"<.a@example.com>", false, ""},
        {"<a.@example.com>", false, ""},
        {"<a..b@example.com>", false, ""},
        {"<\"ab@example.com>", false, ""},                // unbalanced quote
        {"<\"a\tb\"@example.com>", false, ""},             // control in quoted string
        {"<\"a\\\x01\"@example.com>", false, ""},          // control in quoted pair
        {"<a\rb@example.com>", false, "address contains CR, LF or NUL"},
        {"<ab@exa\nmple.com>", false, "address contains CR, LF or NUL"},
        {"<\"a\r\"@example.com>", false, "address contains CR, LF or NUL"},
        {"<a"s + '\0' + "b@example.com>", false, "address contains CR, LF or NUL"},
        {"<user@example..com>", false, "bad domain"},
        {"<user@.example.com>", false, "bad domain"},
        {"<user@example.com..>", false, "bad domain"},
        {"<user@-example.com>", false, "bad domain"},
        {"<user@example-.com>", false, "bad domain"},
        {"<user@ex_ample.com>", false, "bad address syntax"},
        {"<user@" + std::string(64, 'x') + ".com>", false, "bad domain"},
        {"<user@[192.0.2.256]>", false, "bad domain"},
        {"<user@[192.0.2]>", false, "bad domain"},
        {"<user@[192.0.2.1>", false, "bad domain"},
        {"<user@[IPv6:2001:db8:::1]>", false, "bad domain"},
        {"<user@[IPv6:1:2:3:4:5:6:7:8:9]>", false, "bad domain"},
        {"<user@[IPv6:12345::1]>", false, "bad domain"},
        {"<user@[foo:bar]>", false, "bad domain"},
        {"<@a.example:user>", false, "address must include a domain"},
        {"<@a.example user@c.example>", false, "bad source route"},
        {"<@a.example,user@c.example>", false, "bad source route"},
        {"<@:user@c.example>", false, "bad source route"},
        {"<" + long_local + "@example.com>", false, "local part too long"},
        {"<\"" + std::string(63, 'a') + "\"@example.com>", false, "local part too long"},  // 65 as written
        {"<a@" + long_domain + ">", false, "domain too long"},
        {"<" + std::string(64, 'a') + "@" + label63 + "." + label63 + "." + label63 + ".com>", false,
         "address too long"},  // 64 + 1 + 195 + 2 = 262
        {"<j\xC3\xB6rg@example.com>", false, "non-ASCII address needs SMTPUTF8"},
        {"<jorg@b\xC3\xBC" "cher.example>", false, "non-ASCII address needs SMTPUTF8"},
        {"<j\xC3rg@example.com>", true, "address is not valid UTF-8"},     // truncated sequence
        {"<j\xC0\xAFrg@example.com>", true, "address is not valid UTF-8"}, // overlong
        {"<j\xED\xA0\x80@example.com>", true, "address is not valid UTF-8"},  // surrogate
    };
    for (const auto& c : cases) {
        INFO(c.in);
        PathResult r = parse_smtp_path(c.in, false, c.utf8);
        if (c.in == "<user@example.com>>") {
            // The path itself is fine; the stray '>' is left for the caller.
            CHECK(r.ok);
            CHECK(r.consumed == c.in.size() - 1);
            continue;
        }
        CHECK_FALSE(r.ok);
        CHECK(r.address.empty());
        CHECK_FALSE(r.error.empty());
        if (!c.error.empty()) CHECK(r.error == c.error);
    }
}

TEST_CASE("parse_smtp_path length limits are exact", "[address][smtp]") {
    // Path of exactly 256 octets is accepted, 257 is not.
    const std::string label63(63, 'b');
    std::string domain = label63 + "." + label63 + "." + label63 + ".";  // 192
    std::string local(256 - 2 - 1 - 192 - 3, 'a');                       // 58, leaves "com"
    std::string path = "<" + local + "@" + domain + "com>";
    REQUIRE(path.size() == 256);
    CHECK(parse_smtp_path(path, false, false).ok);
    path = "<" + local + "a@" + domain + "com>";
    REQUIRE(path.size() == 257);
    CHECK(parse_smtp_path(path, false, false).error == "address too long");
    // A 63-octet label is fine, 64 is not.
    CHECK(parse_smtp_path("<a@" + std::string(63, 'x') + ".example>", false, false).ok);
}

TEST_CASE("parse_smtp_path bounded on hostile input", "[address][smtp]") {
    std::string big = "<" + std::string(100000, 'a');
    CHECK_FALSE(parse_smtp_path(big, false, false).ok);
    std::string quotes = "<\"" + std::string(100000, '\\');
    CHECK_FALSE(parse_smtp_path(quotes, false, false).ok);
    std::string route = "<";
    for (int i = 0; i < 10000; ++i) route += "@a,";
    CHECK_FALSE(parse_smtp_path(route, false, false).ok);
    CHECK(parse_smtp_path(big + "@b>", false, false).error == "local part too long");
}

TEST_CASE("parse_address_list", "[address][header]") {
    using V = std::vector<std::string>;
    struct Case { std::string in; V out; };
    const std::vector<Case> cases = {
        {"", {}},
        {"   ", {}},
        {"user@example.com", {"user@example.com"}},
        {"User@Example.COM", {"User@Example.COM"}},   // domain kept as written
        {"a@x, b@y,c@z", {"a@x", "b@y", "c@z"}},
        {"Joe Smith <joe@example.com>", {"joe@example.com"}},
        {"\"Smith, Joe\" <joe@example.com>, other@example.org", {"joe@example.com", "other@example.org"}},
        {"\"Joe <x@y>\" <joe@example.com>", {"joe@example.com"}},
        {"joe@example.com (Joe Smith, the one)", {"joe@example.com"}},
        {"(lead) joe@example.com", {"joe@example.com"}},
        {"joe(a comment)@(another)example.com", {"joe@example.com"}},
        {"joe@example.com (outer (nested, inner) still), b@y", {"joe@example.com", "b@y"}},
        {"joe@example.com (escaped \\) paren, still comment), b@y", {"joe@example.com", "b@y"}},
        {"undisclosed-recipients:;", {}},
        {"undisclosed-recipients: ;", {}},
        {"team: a@x, b@y;", {"a@x", "b@y"}},
        {"team: a@x, b@y;, c@z", {"a@x", "b@y", "c@z"}},
        {"first@x, team: Ann <a@x>, \"Bob B\" <b@y>; , last@z", {"first@x", "a@x", "b@y", "last@z"}},
        {"<@route.example,@r2.example:user@example.com>", {"user@example.com"}},
        {"Name <@route.example:user@example.com>", {"user@example.com"}},
        {"\"a b\"@example.com", {"\"a b\"@example.com"}},
        {"\"a,b\"@example.com, c@d", {"\"a,b\"@example.com", "c@d"}},
        {"Quoted <\"a@b\"@example.com>", {"\"a@b\"@example.com"}},
        {"root", {"root"}},
        {"root, admin", {"root", "admin"}},
        {"first.last@example.com", {"first.last@example.com"}},
        {"user@[192.0.2.1]", {"user@[192.0.2.1]"}},
        {"J. Random Hacker <jrh@example.com>", {"jrh@example.com"}},
        {"<>", {}},
        {"<>, a@b", {"a@b"}},
        {"Joe Smith", {}},                                // display name without address
        {"a@b, @@@, c@d", {"a@b", "c@d"}},                // garbage skipped
        {"a@b junk, c@d", {"c@d"}},
        {"<a@b> junk, c@d", {"a@b", "c@d"}},        // the closed <...> counts
        {"Name <a@b, c@d", {"c@d"}},                      // unbalanced <
        {"Name a@b>, c@d", {"c@d"}},
        {"a@, c@d", {"c@d"}},
        {"\"unterminated <a@b>, c@d", {}},                // quote runs to the end
        {"(unterminated comment a@b, c@d", {}},
        {"a@b, [oops, c@d", {"a@b"}},
        {"a@b,,, ,c@d", {"a@b", "c@d"}},
        {"j\xC3\xB6rg@b\xC3\xBC" "cher.example", {"j\xC3\xB6rg@b\xC3\xBC" "cher.example"}},
        {"a@b\r\n\t, c@d", {"a@b", "c@d"}},
    };
    for (const auto& c : cases) {
        INFO(c.in);
        CHECK(parse_address_list(c.in) == c.out);
    }
}

TEST_CASE("parse_address_list bounded on hostile input", "[address][header]") {
    CHECK(parse_address_list(std::string(100000, '(')).empty());
    CHECK(parse_address_list(std::string(100000, ')')).empty());
    CHECK(parse_address_list(std::string(100000, '<')).empty());
    CHECK(parse_address_list(std::string(100000, ':')).empty());
    CHECK(parse_address_list(std::string(100000, '\\')).empty());
    std::string many;
    for (int i = 0; i < 10000; ++i) many += "a@b,";
    CHECK(parse_address_list(many).size() == 10000);
    CHECK(parse_address_list("a@b, (x\\").size() == 1);
}

TEST_CASE("address_is_storable", "[address]") {
    CHECK(address_is_storable("user@example.com"));
    CHECK(address_is_storable(""));
    CHECK_FALSE(address_is_storable("a\rb@c"));
    CHECK_FALSE(address_is_storable("a\nb@c"));
    CHECK_FALSE(address_is_storable("a"s + '\0' + "b@c"));
    CHECK(address_is_storable(std::string(1000, 'a')));
    CHECK_FALSE(address_is_storable(std::string(1001, 'a')));
    CHECK(address_is_storable("abc", 3));
    CHECK_FALSE(address_is_storable("abcd", 3));
}

TEST_CASE("is_dot_atom", "[address]") {
    CHECK(is_dot_atom("a.b"));
    CHECK(is_dot_atom("!#$%&'*+-/=?^_`{|}~"));
    CHECK_FALSE(is_dot_atom(""));
    CHECK_FALSE(is_dot_atom("a..b"));
    CHECK_FALSE(is_dot_atom("a b"));
    CHECK_FALSE(is_dot_atom("a@b"));
    CHECK_FALSE(is_dot_atom("a\"b"));
}
