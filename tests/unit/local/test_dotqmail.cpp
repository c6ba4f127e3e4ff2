#include "dotqmail.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
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
        INFO("instruction " << i);
        CHECK(got[i].kind == want[i].kind);
        CHECK(got[i].value == want[i].value);
        CHECK(got[i].line == want[i].line);
    }
}

std::string env_value(const std::vector<std::string>& env, const std::string& name) {
    for (const auto& e : env)
        if (e.compare(0, name.size() + 1, name + "=") == 0) return e.substr(name.size() + 1);
    return "<unset>";
}

}  // namespace

TEST_CASE("parse_dot_qmail: each kind of line, in order", "[dotqmail]") {
    const std::string text = "# my mail\n"
                             "./Maildir/\n"
                             "/var/mail/alice\n"
                             "./mbox  \t\n"
                             "|/usr/bin/procmail -m x\n"
                             "&bob@example.org\n"
                             "carol@example.net\n"
                             "\n"
                             "+list\n"
                             "&<dave@example.com>\n"
                             "& erin\r\n"
                             "|exit 99";
    DotQmail q = parse_dot_qmail(text);
    CHECK(q.error.empty());
    CHECK_FALSE(q.empty);
    check_instructions(q.instructions, {
                                           {Kind::maildir, "./Maildir/", 2},
                                           {Kind::mbox, "/var/mail/alice", 3},
                                           {Kind::mbox, "./mbox", 4},
                                           {Kind::program, "/usr/bin/procmail -m x", 5},
                                           {Kind::forward, "bob@example.org", 6},
                                           {Kind::forward, "carol@example.net", 7},
                                           {Kind::forward, "dave@example.com", 10},
                                           {Kind::forward, "erin", 11},
                                           {Kind::program, "exit 99", 12},
                                       });
}

TEST_CASE("parse_dot_qmail: empty file, comments only, blank first line, bad lines", "[dotqmail]") {
    DotQmail empty = parse_dot_qmail("");
    CHECK(empty.empty);
    CHECK(empty.error.empty());
    CHECK(empty.instructions.empty());

    // Only comments: not empty, and delivers nowhere (qmail's way to drop mail).
    DotQmail comments = parse_dot_qmail("# nothing here\n#\n");
    CHECK_FALSE(comments.empty);
    CHECK(comments.error.empty());
    CHECK(comments.instructions.empty());

    for (const char* bad : {"\n./Maildir/\n", "   \n./Maildir/\n", "\n"}) {
        INFO(bad);
        DotQmail q = parse_dot_qmail(bad);
        CHECK(q.error == "the first line is blank");
        CHECK(q.instructions.empty());
    }
    DotQmail cmd = parse_dot_qmail("./Maildir/\n|   \n");
    CHECK(cmd.error == "line 2: empty command");
    CHECK(cmd.instructions.empty());
    DotQmail amp = parse_dot_qmail("&\n");
    CHECK(amp.error == "line 1: empty forwarding address");
    DotQmail angles = parse_dot_qmail("&<>\n");
    CHECK(angles.error == "line 1: empty forwarding address");
}

TEST_CASE("dot_qmail_candidates: exact, then -default files from the longest", "[dotqmail]") {
    auto names = [](const std::vector<QmailCandidate>& c) {
        std::vector<std::string> out;
        for (const auto& x : c) out.push_back(x.name + (x.is_default ? " DEFAULT=" + x.default_part : ""));
        return out;
    };
    CHECK(names(dot_qmail_candidates("", '-')) == std::vector<std::string>{".qmail"});
    CHECK(names(dot_qmail_candidates("foo", '-')) ==
          std::vector<std::string>{".qmail-foo", ".qmail-default DEFAULT=foo"});
    CHECK(names(dot_qmail_candidates("foo-bar", '-')) ==
          std::vector<std::string>{".qmail-foo-bar", ".qmail-foo-default DEFAULT=bar", ".qmail-default DEFAULT=foo-bar"});
    CHECK(names(dot_qmail_candidates("a-b-c", '-')) ==
          std::vector<std::string>{".qmail-a-b-c", ".qmail-a-b-default DEFAULT=c", ".qmail-a-default DEFAULT=b-c",
                                   ".qmail-default DEFAULT=a-b-c"});
    CHECK(names(dot_qmail_candidates("a-", '-')) ==
          std::vector<std::string>{".qmail-a-", ".qmail-a-default DEFAULT=", ".qmail-default DEFAULT=a-"});
    // Lower case; dots and slashes cannot leave the home directory.
    CHECK(names(dot_qmail_candidates("Foo.Bar-X", '-')) ==
          std::vector<std::string>{".qmail-foo:bar-x", ".qmail-foo:bar-default DEFAULT=X", ".qmail-default DEFAULT=Foo.Bar-X"});
    CHECK(dot_qmail_name("../../etc/passwd") == ".qmail-::::::etc:passwd");
    // Another separator: the cuts follow it.
    CHECK(names(dot_qmail_candidates("foo+bar-x", '+')) ==
          std::vector<std::string>{".qmail-foo+bar-x", ".qmail-foo+default DEFAULT=bar-x", ".qmail-default DEFAULT=foo+bar-x"});
}

TEST_CASE("host_part and ext_part", "[dotqmail]") {
    CHECK(host_part("mail.sub.example.org", 1) == "mail.sub.example");
    CHECK(host_part("mail.sub.example.org", 2) == "mail.sub");
    CHECK(host_part("mail.sub.example.org", 3) == "mail");
    CHECK(host_part("example.org", 1) == "example");
    CHECK(host_part("example.org", 2) == "example");
    CHECK(host_part("example.org", 3) == "example");
    CHECK(host_part("localhost", 1) == "localhost");
    CHECK(ext_part("a-b-c", 1, '-') == "b-c");
    CHECK(ext_part("a-b-c", 2, '-') == "c");
    CHECK(ext_part("a-b-c", 3, '-') == "");
    CHECK(ext_part("abc", 1, '-') == "");
    CHECK(ext_part("", 1, '-') == "");
    CHECK(ext_part("a+b-c", 1, '+') == "b-c");
}

TEST_CASE("delivery_environment: qmail-command(8) variables", "[dotqmail]") {
    DeliveryEnvironment e;
    e.user = "alice";
    e.home = "/i/home/alice";
    e.local = "alice-list-a-b";
    e.ext = "list-a-b";
    e.domain = "mail.example.org";
    e.sender = "bob@example.net";
    e.newsender = "alice-list-a-b-owner@mail.example.org";
    e.has_default = true;
    e.default_part = "a-b";
    e.now = 0;
    auto env = delivery_environment(e);
    CHECK(env_value(env, "PATH") == "/usr/local/bin:/usr/bin:/bin");
    CHECK(env_value(env, "USER") == "alice");
    CHECK(env_value(env, "HOME") == "/i/home/alice");
    CHECK(env_value(env, "LOCAL") == "alice-list-a-b");
    CHECK(env_value(env, "HOST") == "mail.example.org");
    CHECK(env_value(env, "HOST2") == "mail.example");
    CHECK(env_value(env, "HOST3") == "mail");
    CHECK(env_value(env, "HOST4") == "mail");
    CHECK(env_value(env, "RECIPIENT") == "alice-list-a-b@mail.example.org");
    CHECK(env_value(env, "SENDER") == "bob@example.net");
    CHECK(env_value(env, "NEWSENDER") == "alice-list-a-b-owner@mail.example.org");
    CHECK(env_value(env, "EXT") == "list-a-b");
    CHECK(env_value(env, "EXT2") == "a-b");
    CHECK(env_value(env, "EXT3") == "b");
    CHECK(env_value(env, "EXT4") == "");
    CHECK(env_value(env, "DEFAULT") == "a-b");
    CHECK(env_value(env, "DTLINE") == "Delivered-To: alice-list-a-b@mail.example.org\n");
    CHECK(env_value(env, "RPLINE") == "Return-Path: <bob@example.net>\n");
    CHECK(env_value(env, "UFLINE") == "From bob@example.net Thu Jan  1 00:00:00 1970\n");
    CHECK(env.size() == 19);

    e.has_default = false;
    e.sender = "";
    env = delivery_environment(e);
    CHECK(env_value(env, "DEFAULT") == "<unset>");
    CHECK(env_value(env, "RPLINE") == "Return-Path: <>\n");
    CHECK(env_value(env, "UFLINE") == "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
}

TEST_CASE("dt_line and rp_line keep to one line", "[dotqmail]") {
    CHECK(dt_line("a\nb", "x.org") == "Delivered-To: a_b@x.org\n");
    CHECK(rp_line("a\nb@x") == "Return-Path: <a_b@x>\n");
}

TEST_CASE("program_outcome: qmail-command exit codes", "[dotqmail]") {
    auto exited = [](int code, std::string out = "") {
        CommandResult r;
        r.end = CommandResult::End::exited;
        r.code = code;
        r.output = std::move(out);
        return r;
    };
    auto ok = program_outcome(exited(0), ".qmail line 1", 60);
    CHECK(ok.result.ok());
    CHECK_FALSE(ok.stop);
    auto stop = program_outcome(exited(99), ".qmail line 1", 60);
    CHECK(stop.result.ok());
    CHECK(stop.stop);

    auto perm = program_outcome(exited(100, "no thanks\nsecond line\n"), ".qmail line 2", 60);
    CHECK(perm.result.kind == DeliveryResult::Kind::permanent);
    CHECK(perm.result.status == "5.2.0");
    CHECK(perm.result.text == ".qmail line 2: program failed permanently (exit 100): no thanks / second line");

    auto coded = program_outcome(exited(100, "5.1.1 no such member\n"), "x line 1", 60);
    CHECK(coded.result.status == "5.1.1");
    CHECK(coded.result.text == "x line 1: program failed permanently (exit 100): no such member");
    // A code of the wrong class is just text.
    auto wrong = program_outcome(exited(111, "5.1.1 odd\n"), "x line 1", 60);
    CHECK(wrong.result.kind == DeliveryResult::Kind::temporary);
    CHECK(wrong.result.status == "4.2.0");
    CHECK(wrong.result.text == "x line 1: program failed temporarily (exit 111): 5.1.1 odd");

    for (int code : {1, 2, 64, 65, 67, 75, 101, 111, 112, 127, 255}) {
        INFO(code);
        auto t = program_outcome(exited(code), "x line 1", 60);
        CHECK(t.result.kind == DeliveryResult::Kind::temporary);
        CHECK_FALSE(t.stop);
    }
    CommandResult sig;
    sig.end = CommandResult::End::signaled;
    sig.code = 9;
    CHECK(program_outcome(sig, "x line 1", 60).result.text == "x line 1: program killed by signal 9");
    CHECK(program_outcome(sig, "x line 1", 60).result.kind == DeliveryResult::Kind::temporary);
    CommandResult slow;
    slow.end = CommandResult::End::timed_out;
    CHECK(program_outcome(slow, "x line 1", 2.5).result.text ==
          "x line 1: program timed out after 2.5 seconds (control/timeoutlocal)");
    CommandResult none;
    none.error = "cannot fork: out of memory";
    CHECK(program_outcome(none, "x line 1", 60).result.line() == "4.3.0 x line 1: cannot fork: out of memory");
}

TEST_CASE("one_line: bounded single-line text", "[dotqmail]") {
    CHECK(one_line("a\nb\n", 100) == "a / b");
    CHECK(one_line("a\tb\x01" "c", 100) == "a b c");
    CHECK(one_line("  x  ", 100) == "x");
    CHECK(one_line(std::string(500, 'y'), 10) == std::string(10, 'y') + "...");
    // not inside a UTF-8 sequence: "é" is two bytes
    CHECK(one_line("aé", 2) == "a...");
}
