"""sendmail(8) and mailq(8) as real callers use them: -t and its Resent-
form, -i/-oi, -f/-r/-F, the header fields it adds, the flags it ignores,
its exit codes, the queue listing, mbox delivery, and mail(1) as a client."""
import email.utils
import os
import pwd
import re
import subprocess
import time

import harness
from harness import (HOST, body_of, deb_program, header_values, missing_libraries, queue_dir, wait_for,
                     with_instance)

USER = pwd.getpwuid(os.getuid()).pw_name     # the caller: the instance owner
DFLT = "dflt.example"                       # a control/defaulthost unlike control/me
LOCALS = "%s\nlocalhost\n%s\n" % (HOST, DFLT)
ID_RE = re.compile(r"^\d+\.\d+\.\d+$")


def at(user, host=HOST):
    return "%s@%s" % (user, host)


def queued_envelopes(inst):
    """(sender, [recipients]) of every file in queue/new, in ID order."""
    out = []
    for name in queue_dir(inst, "new"):
        with open(os.path.join(inst.dir, "queue", "new", name), "rb") as f:
            head = f.read().split(b"\n\n", 1)[0].decode()
        lines = head.split("\n")
        assert lines[0].startswith("Y ") and lines[1].startswith("F"), head
        out.append((lines[1][1:], [l[1:] for l in lines[2:]]))
    return out


def queued_message(inst):
    """The message (after queue-inject's Received: line) of the only queued file."""
    [name] = queue_dir(inst, "new")
    with open(os.path.join(inst.dir, "queue", "new", name), "rb") as f:
        return f.read().split(b"\n\n", 1)[1].split(b"\n", 1)[1]


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stderr)


def only_message(inst, user, timeout=20):
    wait_for(lambda: inst.count(user) >= 1, timeout, "delivery to " + user)
    [m] = inst.messages(user)
    return m


# --- -t


T_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank")


@with_instance(users=T_USERS)
def test_t_takes_to_cc_bcc_and_removes_bcc(inst):
    msg = ("From: Sender <sender@%(h)s>\n"
           "To: \"Alice A. Liddell\" <alice@%(h)s>, bob@%(h)s (Bob's (nested) comment),\n"
           "  undisclosed-recipients:;\n"
           "CC: friends: Carol <carol@%(h)s>, dave@%(h)s;, erin\n"
           "Subject: t test\n"
           "Bcc: frank@%(h)s,\n"
           "\tGina <gina@%(h)s>\n"
           "X-After: kept\n"
           "\n"
           "To: nobody@%(h)s\n"
           "body\n") % {"h": HOST}
    ok(inst.sendmail(["-t", "-i", "hank"], msg))
    [(sender, rcpts)] = queued_envelopes(inst)
    assert sender == at(USER), sender
    assert sorted(rcpts) == sorted(at(u) for u in T_USERS), rcpts   # each once, none from the body
    inst.start()
    wait_for(lambda: all(inst.count(u) == 1 for u in T_USERS), 20, "every copy")
    for u in T_USERS:
        [m] = inst.messages(u)
        assert header_values(m, "Delivered-To") == [at(u)]
        assert header_values(m, "Bcc") == [], (u, m)
        rest = m.split(b"\n", 2)[2]       # after Return-Path: and Delivered-To:
        assert b"gina@" not in rest and b"frank@" not in rest, (u, m)
        assert header_values(m, "Subject") == ["t test"]
        assert header_values(m, "X-After") == ["kept"]
        assert header_values(m, "From") == ["Sender <sender@%s>" % HOST]
        assert ("\nCC: friends: Carol <carol@%s>, dave@%s;, erin\n" % (HOST, HOST)).encode() in m
        assert ("\"Alice A. Liddell\" <alice@%s>, bob@%s (Bob's (nested) comment),\n"
                "  undisclosed-recipients:;\n" % (HOST, HOST)).encode() in m
        assert body_of(m) == ("To: nobody@%s\nbody\n" % HOST).encode()
    wait_for(inst.queue_empty, 10, "queue to empty")


@with_instance(users=T_USERS)
def test_t_uses_resent_fields_when_present(inst):
    msg = ("From: orig@%(h)s\n"
           "To: alice@%(h)s\n"
           "Cc: bob@%(h)s\n"
           "Bcc: carol@%(h)s\n"
           "Subject: forwarded\n"
           "Resent-From: fwd@%(h)s\n"
           "Resent-To: dave@%(h)s, Erin <erin@%(h)s>\n"
           "resent-cc: frank\n"
           "Resent-Bcc: gina@%(h)s\n"
           "\n"
           "resent body\n") % {"h": HOST}
    ok(inst.sendmail(["-t", "hank@" + HOST], msg))
    [(_, rcpts)] = queued_envelopes(inst)
    want = ["dave", "erin", "frank", "gina", "hank"]
    assert sorted(rcpts) == [at(u) for u in want], rcpts
    inst.start()
    wait_for(lambda: all(inst.count(u) == 1 for u in want), 20, "every copy")
    for u in want:
        [m] = inst.messages(u)
        assert header_values(m, "Resent-Bcc") == [], (u, m)
        assert header_values(m, "Bcc") == [], (u, m)   # sendmail(8): -t removes Bcc: and Resent-Bcc:
        rest = m.split(b"\n", 2)[2]
        assert b"gina@" not in rest and b"carol@" not in rest, (u, m)
        assert header_values(m, "Resent-To") == ["dave@%s, Erin <erin@%s>" % (HOST, HOST)]
        assert header_values(m, "Resent-Cc") == ["frank"]
        assert header_values(m, "To") == [at("alice")] and header_values(m, "Cc") == [at("bob")]
        assert body_of(m) == b"resent body\n"
    wait_for(inst.queue_empty, 10, "queue to empty")
    assert all(inst.count(u) == 0 for u in ("alice", "bob", "carol"))


@with_instance(users=("alice", "bob"))
def test_clustered_switches_like_getopt(inst):
    # "sendmail -ti" / "-it" are common (PHP's default sendmail_path is
    # "sendmail -t -i", many scripts write "-it"): both switches count.
    msg = b"To: alice@" + HOST.encode() + b"\nSubject: cluster\n\nbefore\n.\nafter\n"
    for flags in (["-ti"], ["-it"], ["-vti"]):
        ok(inst.sendmail(flags, msg))
    ok(inst.sendmail(["-tf", "bob@" + HOST], msg))    # then an option with its argument
    envs = queued_envelopes(inst)
    assert [e[1] for e in envs] == [[at("alice")]] * 4, envs
    assert envs[3][0] == at("bob"), envs
    inst.start()
    wait_for(lambda: inst.count("alice") == 4, 20, "four deliveries")
    bodies = sorted(body_of(m) for m in inst.messages("alice"))
    assert bodies == [b"before\n"] + [b"before\n.\nafter\n"] * 3, bodies


# --- the message


@with_instance()
def test_dot_line_ends_message_unless_i(inst):
    inst.start()
    msg = b"Subject: %s\n\nfirst\n..\n.x\n.\nnot delivered\n"
    ok(inst.sendmail(["alice"], msg % b"plain"))
    ok(inst.sendmail(["-i", "alice"], msg % b"dash-i"))
    ok(inst.sendmail(["-oi", "alice"], msg % b"dash-oi"))
    ok(inst.sendmail(["alice"], b"Subject: crlfdot\r\n\r\nfirst\r\n.\r\nnot delivered\r\n"))
    wait_for(lambda: inst.count("alice") == 4, 20, "four deliveries")
    got = {header_values(m, "Subject")[0]: body_of(m) for m in inst.messages("alice")}
    assert got["plain"] == b"first\n..\n.x\n", got
    assert got["dash-i"] == b"first\n..\n.x\n.\nnot delivered\n", got
    assert got["dash-oi"] == got["dash-i"], got
    assert got["crlfdot"] == b"first\n", got


@with_instance()
def test_crlf_input_is_stored_with_lf(inst):
    msg = b"Subject: crlf\r\nX-Two: a\r\n b\r\n\r\nline one\r\nline two\r\n\r\nlast"
    ok(inst.sendmail(["-i", "alice"], msg))
    stored = queued_message(inst)
    assert b"\r" not in stored, stored
    assert stored.startswith(b"Subject: crlf\nX-Two: a\n b\n"), stored
    assert stored.endswith(b"\n\nline one\nline two\n\nlast\n"), stored
    inst.start()
    m = only_message(inst, "alice")
    assert b"\r" not in m
    assert body_of(m) == b"line one\nline two\n\nlast\n"


# --- envelope sender and defaulthost


@with_instance(users=("alice", "bob"), controls={"defaulthost": DFLT, "locals": LOCALS, "idhost": "ids.example"})
def test_sender_options_and_defaulthost(inst):
    cases = [
        (["-f", at("bob"), at("alice")], "dash-f", "<bob@%s>" % HOST),
        (["-f" + at("carol"), at("alice")], "attached", "<carol@%s>" % HOST),
        (["-r", at("dave"), at("alice")], "dash-r", "<dave@%s>" % HOST),
        (["-r<erin@x.example>", at("alice")], "bracketed", "<erin@x.example>"),
        (["-f", "<>", at("alice")], "null", "<>"),
        (["-f", "frank", at("alice")], "bare sender", "<frank@%s>" % DFLT),
        ([at("alice")], "default sender", "<%s@%s>" % (USER, DFLT)),
    ]
    for args, subject, _ in cases:
        ok(inst.sendmail(args, "Subject: %s\n\nx\n" % subject))
    ok(inst.sendmail(["alice", "bob"], "Subject: bare recipients\n\nx\n"))
    envs = queued_envelopes(inst)
    assert envs[-1] == ("%s@%s" % (USER, DFLT), [at("alice", DFLT), at("bob", DFLT)]), envs[-1]
    inst.start()
    wait_for(lambda: inst.count("alice") == len(cases) + 1 and inst.count("bob") == 1, 20, "deliveries")
    got = {header_values(m, "Subject")[0]: m for m in inst.messages("alice")}
    for _, subject, rp in cases:
        assert header_values(got[subject], "Return-Path") == [rp], (subject, got[subject][:200])
        assert header_values(got[subject], "Delivered-To") == [at("alice")]
    bare = got["bare recipients"]
    assert header_values(bare, "Delivered-To") == [at("alice", DFLT)]
    assert header_values(bare, "From")[0].endswith("<%s@%s>" % (USER, DFLT)), header_values(bare, "From")
    assert re.fullmatch(r"<[^@<>\s]+@ids\.example>", header_values(bare, "Message-ID")[0])
    [b] = inst.messages("bob")
    assert header_values(b, "Delivered-To") == [at("bob", DFLT)]


@with_instance(controls={"idhost": "ids.example"})
def test_from_date_message_id_added_only_when_missing(inst):
    ok(inst.sendmail(["-F", "Full Name", "alice"], b"Subject: bare\n\nx\n"))
    ok(inst.sendmail(["-FDoe, John \"JD\"", "alice"], b"Subject: quoted\n\nx\n"))
    given = (b"Subject: given\nFROM: Me <me@else.example>\ndate: Fri, 21 Nov 1997 09:55:06 -0600\n"
             b"Message-Id: <given.1@else.example>\n\nx\n")
    ok(inst.sendmail(["-F", "Not Used", "alice"], given))
    ok(inst.sendmail(["alice"], b"no header at all\n"))
    inst.start()
    wait_for(lambda: inst.count("alice") == 4, 20, "deliveries")
    got = {}
    for m in inst.messages("alice"):
        s = header_values(m, "Subject")
        got[s[0] if s else None] = m
    for m in got.values():
        for name in ("From", "Date", "Message-ID"):
            assert len(header_values(m, name)) == 1, (name, m)
    me = "%s@%s" % (USER, HOST)
    assert header_values(got["bare"], "From") == ["Full Name <%s>" % me]
    assert header_values(got["quoted"], "From") == ["\"Doe, John \\\"JD\\\"\" <%s>" % me]
    g = got["given"]
    assert header_values(g, "From") == ["Me <me@else.example>"]
    assert header_values(g, "Date") == ["Fri, 21 Nov 1997 09:55:06 -0600"]
    assert header_values(g, "Message-ID") == ["<given.1@else.example>"]
    ids = set()
    for s in ("bare", "quoted", None):
        m = got[s]
        when = email.utils.parsedate_to_datetime(header_values(m, "Date")[0]).timestamp()
        assert abs(when - time.time()) < 300, header_values(m, "Date")
        mid = header_values(m, "Message-ID")[0]
        assert re.fullmatch(r"<[^@<>\s]+@ids\.example>", mid), mid
        ids.add(mid)
    assert len(ids) == 3
    assert body_of(got[None]) == b"no header at all\n"


# --- flags and exit codes


@with_instance()
def test_ignored_flags_are_accepted(inst):
    args = ["-odi", "-oem", "-v", "-oQ/tmp", "-oi", "-B8BITMIME", "-N", "never", "-R", "hdrs", "-V", "x",
            "-L", "tag", "-n", "-U", "-q", "-odb", "-oep", "-om", "-h", "5", "-X", "/dev/null", "alice"]
    r = inst.sendmail(args, b"Subject: flags\n\nbody\n.\nmore\n")
    ok(r)
    assert len(queue_dir(inst, "new")) == 1      # in this instance's queue, whatever -oQ says
    inst.start()
    m = only_message(inst, "alice")
    assert header_values(m, "Subject") == ["flags"]
    assert body_of(m) == b"body\n.\nmore\n"      # -oi was among them
    assert header_values(m, "Delivered-To") == [at("alice")]


@with_instance()
def test_exit_codes(inst):
    msg = b"Subject: x\n\nx\n"
    for args, code in ((["-Z", "alice"], 64), (["-bz", "alice"], 64), (["-f"], 64),
                       (["-F"], 64), ([], 65), (["-i"], 65), (["-t"], 65)):
        r = inst.sendmail(args, msg)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert r.stderr.startswith(b"sendmail: "), (args, r.stderr)
    r = inst.sendmail(["-t"], b"To: undisclosed-recipients:;\nSubject: x\n\nx\n")
    assert r.returncode == 65, r
    r = inst.sendmail(["alice\nbob"], msg)
    assert r.returncode == 65, r
    assert queue_dir(inst, "new") == [] and queue_dir(inst, "tmp") == []
    # the build tree's sendmail belongs to no instance
    r = subprocess.run([os.path.join(harness.BUILD, "bin", "sendmail"), "alice@" + HOST], input=msg,
                       capture_output=True, timeout=10)
    assert r.returncode == 78, r
    assert r.stderr.startswith(b"sendmail: "), r.stderr


# --- the queue listing


@with_instance()
def test_bp_and_mailq_list_the_queue(inst):
    for cmd in ([inst.bin("sendmail"), "-bp"], [inst.bin("mailq")]):
        r = subprocess.run(cmd, capture_output=True, timeout=10)
        assert (r.returncode, r.stdout) == (0, b"mail queue is empty\n"), (cmd, r)
    ok(inst.sendmail(["-f", at("bob"), "alice", "carol@remote.example"], b"Subject: one\n\n12345\n"))
    ok(inst.sendmail(["-f", "<>", "alice"], b"Subject: two\n\nx\n"))
    ids = queue_dir(inst, "new")
    assert len(ids) == 2 and all(ID_RE.match(i) for i in ids), ids
    outs = []
    for cmd in ([inst.bin("sendmail"), "-bp"], [inst.bin("mailq")]):
        r = subprocess.run(cmd, capture_output=True, timeout=10)
        assert r.returncode == 0, r
        outs.append(r.stdout.decode())
    assert outs[0] == outs[1], outs
    lines = outs[0].split("\n")
    assert lines[-1] == "" and lines[-2] == "2 messages in the queue", lines
    first = [l for l in lines if l.startswith(ids[0] + " ")]
    second = [l for l in lines if l.startswith(ids[1] + " ")]
    assert len(first) == 1 and len(second) == 1, lines
    assert "from <%s>" % at("bob") in first[0] and "from <>" in second[0], lines
    i = lines.index(first[0])
    assert lines[i + 1].split() == ["pending", "<%s>" % at("alice")], lines
    assert lines[i + 2].split() == ["pending", "<carol@remote.example>"], lines
    assert lines[i + 3] == second[0], lines
    assert lines[i + 4].split() == ["pending", "<%s>" % at("alice")], lines
    assert all(l.endswith("  (not yet seen by queue-manager)") for l in first + second), lines
    # after the local deliveries: the second message is gone, the first waits
    # for its remote recipient and shows alice as delivered
    inst.start()
    wait_for(lambda: inst.count("alice") == 2, 20, "deliveries")

    def listing():
        return subprocess.run([inst.bin("mailq")], capture_output=True, timeout=10).stdout.decode()
    wait_for(lambda: ids[1] not in listing() and "delivered" in listing(), 10, "the listing to change")
    lines = listing().split("\n")
    assert lines[0].startswith(ids[0] + " ") and "from <%s>" % at("bob") in lines[0], lines
    assert "not yet seen" not in lines[0], lines
    assert lines[1].split() == ["delivered", "<%s>" % at("alice")], lines
    assert lines[2].split()[1] == "<carol@remote.example>", lines
    assert lines[3:] == ["1 message in the queue", ""], lines


# --- mbox


@with_instance(controls={"defaultdelivery": "./mbox"})
def test_mbox_delivery_with_from_quoting(inst):
    inst.start()
    body1 = b"From x\n>From y\n>>From z\nFromage\n From not at start\nFrom: looks like a header\n"
    ok(inst.sendmail(["-f", at("bob"), "alice"], b"Subject: first\n\n" + body1))
    mbox = os.path.join(inst.dir, "home", "alice", "mbox")
    wait_for(lambda: os.path.exists(mbox) and os.path.getsize(mbox) > 0, 20, "the first delivery")
    ok(inst.sendmail(["-f", "<>", "alice"], b"Subject: second\n\nsecond body\nno final newline"))
    wait_for(lambda: open(mbox, "rb").read().count(b"\nFrom ") == 1 and
             open(mbox, "rb").read().endswith(b"no final newline\n\n"), 20, "the second delivery")
    wait_for(inst.queue_empty, 10, "queue to empty")
    assert not os.path.exists(os.path.join(inst.maildir("alice"), "new", "x"))
    assert inst.count("alice") == 0               # not in the Maildir
    data = open(mbox, "rb").read()
    date = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}"
    # From_ line, message, empty line; twice
    m = re.fullmatch((r"From bob@%s %s\n(Return-Path: .*?\n)\n"
                      r"From MAILER-DAEMON %s\n(Return-Path: .*?\n)\n") % (re.escape(HOST), date, date),
                     data.decode(), re.S)
    assert m, data
    first, second = m.group(3).encode(), m.group(6).encode()
    assert header_values(first, "Return-Path") == ["<bob@%s>" % HOST]
    assert header_values(first, "Delivered-To") == [at("alice")]
    assert header_values(first, "Subject") == ["first"]
    assert body_of(first) == (b">From x\n>>From y\n>>>From z\nFromage\n From not at start\n"
                              b"From: looks like a header\n"), body_of(first)
    assert header_values(second, "Return-Path") == ["<>"]
    assert body_of(second) == b"second body\nno final newline\n"


# --- a real client


@with_instance(users=("alice", "bob"))
def test_mail_client_sends_through_sendmail(inst):
    mailx = deb_program("bsd-mailx", "usr/bin/bsd-mailx")
    missing = missing_libraries(mailx)
    assert not missing, "bsd-mailx needs %s: run make deps (liblockfile1)" % missing
    home = os.path.join(inst.dir, "mailx-home")
    os.mkdir(home)
    rc = os.path.join(home, "mailrc")
    with open(rc, "w") as f:
        f.write("set sendmail=%s\n" % inst.bin("sendmail"))
    env = dict(os.environ, HOME=home, MAILRC=rc, LC_ALL="C.UTF-8")
    inst.start()
    r = subprocess.run([mailx, "-n", "-s", "hello from mail(1)", "-c", "bob", "alice"],
                       input=b"written by mailx\n.\nstill here\n", env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r
    m = only_message(inst, "alice")
    assert header_values(m, "Subject") == ["hello from mail(1)"]
    assert header_values(m, "Delivered-To") == [at("alice")]
    assert header_values(m, "To") == ["alice"]
    assert header_values(m, "Return-Path") == ["<%s@%s>" % (USER, HOST)]
    assert len(header_values(m, "Date")) == 1 and len(header_values(m, "Message-ID")) == 1
    assert body_of(m) == b"written by mailx\n.\nstill here\n", body_of(m)
    c = only_message(inst, "bob")
    assert header_values(c, "Cc") == ["bob"] and body_of(c) == body_of(m)
    wait_for(inst.queue_empty, 10, "queue to empty")


if __name__ == "__main__":
    harness.run(globals())
