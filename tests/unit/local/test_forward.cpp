#include "aliases.hpp"
#include "forward.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace yubin;
using Kind = Instruction::Kind;

namespace {

struct Want {
    Kind kind;
    const char* value;
    size_t line;
};

void check_instructions(const std::vector<Instruction>& got, const std::vector<Want>& want) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        INFO("entry " << i);
        CHECK(got[i].kind == want[i].kind);
        CHECK(got[i].value == want[i].value);
        CHECK(got[i].line == want[i].line);
    }
}

}  // namespace

TEST_CASE("parse_forward_list: sendmail .forward entries", "[dotqmail][forward]") {
    const std::string text = "# forward my mail\n"
                             "\\alice, bob@example.org,carol\n"
                             "\"|/usr/bin/vacation -a alice, -j\"\n"
                             "  /var/mail/alice  ,  ./Maildir/\n"
                             ":include:/etc/yubin/staff\n"
                             "Dave Smith <dave@example.net>, <erin@example.com>\n"
                             "   # an indented comment\n"
                             "|/bin/true,\n"
                             "\"quoted \\\"name\\\"\" <frank@x.org>\n";
    ForwardList l = parse_forward_list(text);
    CHECK(l.errors.empty());
    check_instructions(l.instructions, {
                                           {Kind::self, "alice", 2},
                                           {Kind::forward, "bob@example.org", 2},
                                           {Kind::forward, "carol", 2},
                                           {Kind::program, "/usr/bin/vacation -a alice, -j", 3},
                                           {Kind::mbox, "/var/mail/alice", 4},
                                           {Kind::maildir, "./Maildir/", 4},
                                           {Kind::include, "/etc/yubin/staff", 5},
                                           {Kind::forward, "dave@example.net", 6},
                                           {Kind::forward, "erin@example.com", 6},
                                           {Kind::program, "/bin/true", 8},
                                           {Kind::forward, "frank@x.org", 9},
                                       });
}

TEST_CASE("parse_forward_list: empty input and errors", "[dotqmail][forward]") {
    CHECK(parse_forward_list("").instructions.empty());
    CHECK(parse_forward_list("\n\n# only a comment\n , ,\n").instructions.empty());
    CHECK(parse_forward_list("\n\n# only a comment\n , ,\n").errors.empty());

    struct Row {
        const char* text;
        const char* error;
    };
    for (const Row& r : std::vector<Row>{
             {"\"|prog\n", "line 1: unterminated quote"},
             {"a, \"b", "line 1: unterminated quote"},
             {"ok\n:include:relative/path\n", "line 2: :include: needs an absolute path"},
             {":include:", "line 1: :include: needs an absolute path"},
             {"\\ ", "line 1: empty name after \\"},
             {"|", "line 1: empty command"},
             {"two words", "line 1: not an address: two words"},
             {"Name <>", "line 1: empty address"},
         }) {
        INFO(r.text);
        ForwardList l = parse_forward_list(r.text);
        REQUIRE_FALSE(l.errors.empty());
        CHECK(l.errors.front() == r.error);
    }
    // Line numbers can start elsewhere (an alias value).
    ForwardList l = parse_forward_list(" a,\n  b b\n", 7);
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0] == "line 8: not an address: b b");
}

TEST_CASE("parse_aliases: /etc/aliases format", "[dotqmail][aliases]") {
    const std::string text = "# system aliases\n"
                             "Postmaster: root\n"
                             "staff: alice, bob,\n"
                             "  carol@example.org\n"
                             "\tdave\n"
                             "\n"
                             "lists: \"|/usr/bin/list-handler --x, y\", :include:/srv/lists/all\n"
                             "archive: /var/mail/archive, ./Maildir/\n";
    AliasFile f = parse_aliases(text);
    CHECK(f.errors.empty());
    REQUIRE(f.records.size() == 4);
    CHECK(f.records[0].name == "postmaster");
    CHECK(f.records[0].value == " root");
    CHECK(f.records[0].line == 2);
    CHECK(f.records[1].name == "staff");
    CHECK(f.records[1].line == 3);
    ForwardList staff = parse_forward_list(f.records[1].value, f.records[1].line);
    check_instructions(staff.instructions, {
                                               {Kind::forward, "alice", 3},
                                               {Kind::forward, "bob", 3},
                                               {Kind::forward, "carol@example.org", 4},
                                               {Kind::forward, "dave", 5},
                                           });
    ForwardList lists = parse_forward_list(f.records[2].value);
    check_instructions(lists.instructions, {
                                               {Kind::program, "/usr/bin/list-handler --x, y", 1},
                                               {Kind::include, "/srv/lists/all", 1},
                                           });
    CHECK(f.records[3].name == "archive");
}

TEST_CASE("parse_aliases: errors name their lines", "[dotqmail][aliases]") {
    const std::string text = "  orphan continuation\n"
                             "noколон\n"
                             "bad name: x\n"
                             "a@b: x\n"
                             ": x\n"
                             "empty:\n"
                             "dup: a\n"
                             "DUP: b\n"
                             "broken: \"|prog\n"
                             "rel: :include:relative\n"
                             "good: fine\n";
    AliasFile f = parse_aliases(text);
    const std::vector<std::string> want = {
        "line 1: continuation line without a name",
        "line 2: no ':' after the name",
        "line 3: bad alias name \"bad name\"",
        "line 4: bad alias name \"a@b\"",
        "line 5: bad alias name \"\"",
        "line 6: alias empty has no entries",
        "line 8: alias dup is already defined on line 7",
        "line 9: unterminated quote",
        "line 10: :include: needs an absolute path",
    };
    CHECK(f.errors == want);
}
