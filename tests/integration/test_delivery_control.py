"""Delivery control end to end: .qmail and .forward files, extension
addresses, aliases (alias home and control/aliases), virtual domains, and the
safety rules, on real files in a temporary instance."""
import os
import shutil
import subprocess
import time
import uuid

import harness
from harness import Instance, wait_for, header_values, body_of, with_instance, HOST

FAST_RETRY = {"minbackoff": "1", "maxbackoff": "2"}


def home(inst, user):
    return os.path.join(inst.dir, "alias") if user == "alias" else os.path.join(inst.dir, "home", user)


def put(inst, user, name, text, mode=0o644):
    """Writes HOME/name for user (mode set exactly, whatever the umask)."""
    path = os.path.join(home(inst, user), name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def send(inst, sender, rcpt, subject="test", body="hello\n"):
    msg = "Subject: %s\nTo: %s\n\n%s" % (subject, rcpt, body)
    r = inst.sendmail(["-f", sender, rcpt], msg.encode())
    assert r.returncode == 0, r
    return msg


def mbox_count(path):
    if not os.path.exists(path):
        return 0
    return sum(1 for line in read(path).split(b"\n") if line.startswith(b"From "))


def env_file(path):
    """NAME=value lines of env(1) output; values may span lines (DTLINE ends in LF)."""
    out, last = {}, None
    text = read(path).decode()
    for line in (text[:-1] if text.endswith("\n") else text).split("\n"):
        if "=" in line and line.split("=", 1)[0].isupper():
            last, value = line.split("=", 1)
            out[last] = value
        elif last is not None:
            out[last] += "\n" + line
    return out


def copy_of_sleep(inst, user):
    """A copy of sleep(1) with a unique name, to find its processes by exe."""
    path = os.path.join(home(inst, user), "sleep-" + uuid.uuid4().hex[:10])
    shutil.copy("/bin/sleep", path)
    os.chmod(path, 0o755)
    return path


def running(exe):
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % p) == exe:
                    n += 1
            except OSError:
                pass
    return n


@with_instance(users=("alice", "bob"), controls={"locals": HOST + "\nmail.sub.test.example\n"})
def test_program_sees_qmail_environment_and_message(inst):
    put(inst, "alice", ".qmail-env-default",
        '|env > "$HOME/env.out"; cat > "$HOME/stdin.out"; pwd > "$HOME/pwd.out"\n')
    put(inst, "alice", ".qmail-env-a-b-c-owner", "./Maildir/\n")
    inst.start()
    rcpt = "alice-env-a-b-c@mail.sub.test.example"
    send(inst, "bob@" + HOST, rcpt, body="the body\n")
    wait_for(inst.queue_empty, 20, "delivery")
    h = home(inst, "alice")
    env = env_file(os.path.join(h, "env.out"))
    want = {
        "USER": "alice", "HOME": h, "LOCAL": "alice-env-a-b-c", "HOST": "mail.sub.test.example",
        "HOST2": "mail.sub.test", "HOST3": "mail.sub", "HOST4": "mail",
        "RECIPIENT": rcpt, "SENDER": "bob@" + HOST,
        "NEWSENDER": "alice-env-a-b-c-owner@mail.sub.test.example",
        "EXT": "env-a-b-c", "EXT2": "a-b-c", "EXT3": "b-c", "EXT4": "c", "DEFAULT": "a-b-c",
        "DTLINE": "Delivered-To: %s\n" % rcpt, "RPLINE": "Return-Path: <bob@%s>\n" % HOST,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    for k, v in want.items():
        assert env.get(k) == v, (k, env.get(k), v)
    assert env["UFLINE"].startswith("From bob@%s " % HOST), env["UFLINE"]
    extra = set(env) - set(want) - {"UFLINE", "PWD", "SHLVL", "_", "OLDPWD"}
    assert not extra, extra
    # The message as queued: no Return-Path or Delivered-To added for programs.
    msg = read(os.path.join(h, "stdin.out"))
    assert msg.startswith(b"Received: "), msg[:100]
    assert not header_values(msg, "Delivered-To") and not header_values(msg, "Return-Path")
    assert header_values(msg, "Subject") == ["test"] and body_of(msg) == b"the body\n"
    assert read(os.path.join(h, "pwd.out")).decode().strip() == h
    assert inst.count("alice") == 0


@with_instance(users=("alice", "bob"))
def test_exit_99_delivers_and_skips_the_rest(inst):
    put(inst, "alice", ".qmail-stop", "./Maildir/\n|exit 99\n./after.mbox\n&bob\n")
    put(inst, "alice", ".qmail-fwd99", "&bob\n|exit 99\n./after.mbox\n")
    inst.start()
    send(inst, "bob@" + HOST, "alice-stop@" + HOST)
    send(inst, "bob@" + HOST, "alice-fwd99@" + HOST)
    # forwards met before the 99 still go out
    wait_for(lambda: inst.count("bob") == 1, 20, "the forward")
    wait_for(inst.queue_empty, 20, "deliveries")
    assert inst.count("alice") == 1
    assert not os.path.exists(os.path.join(home(inst, "alice"), "after.mbox"))
    assert "result=failed" not in inst.read_log() and "result=deferred" not in inst.read_log()


@with_instance(users=("alice", "bob"))
def test_exit_100_bounces_with_the_program_output(inst):
    put(inst, "alice", ".qmail-closed", "./Maildir/\n|echo 'sorry, this list is closed'; exit 100\n")
    inst.start()
    send(inst, "bob@" + HOST, "alice-closed@" + HOST)
    wait_for(lambda: inst.count("bob") == 1, 20, "the bounce")
    [b] = inst.messages("bob")
    text = b.decode()
    assert "Status: 5.2.0" in text, text
    assert "sorry, this list is closed" in text
    assert ".qmail-closed line 2" in text
    # at-least-once: the line before the failure was delivered
    assert inst.count("alice") == 1


@with_instance(users=("alice", "bob"), controls=FAST_RETRY)
def test_exit_111_and_other_codes_retry(inst):
    h = home(inst, "alice")
    put(inst, "alice", ".qmail-later", '|test -f "$HOME/ok" || exit 111\n./Maildir/\n')
    put(inst, "alice", ".qmail-odd", '|test -f "$HOME/ok" || exit 3\n./odd.mbox\n')
    inst.start()
    send(inst, "bob@" + HOST, "alice-later@" + HOST)
    send(inst, "bob@" + HOST, "alice-odd@" + HOST)
    wait_for(lambda: inst.read_log().count("result=deferred") >= 4, 20, "two deferrals each")
    log = inst.read_log()
    assert "program failed temporarily (exit 111)" in log and "program failed temporarily (exit 3)" in log, log
    assert inst.count("alice") == 0
    open(os.path.join(h, "ok"), "w").close()
    wait_for(inst.queue_empty, 20, "delivery after the fix")
    assert inst.count("alice") == 1 and mbox_count(os.path.join(h, "odd.mbox")) == 1
    assert inst.count("bob") == 0


@with_instance(users=("alice", "bob", "carol"))
def test_forwarding_keeps_sender_adds_delivered_to_one_queue_entry(inst):
    put(inst, "alice", ".qmail", "./Maildir/\n&bob@%s\ncarol\n&<Carol@%s>\n" % (HOST, HOST.upper()))
    inst.start()
    send(inst, "someone@elsewhere.example", "alice@" + HOST, subject="fwd")
    wait_for(lambda: inst.count("bob") == 1 and inst.count("carol") == 1, 20, "forwards")
    wait_for(inst.queue_empty, 20, "queue to empty")
    assert inst.count("alice") == 1
    for user in ("bob", "carol"):
        [m] = inst.messages(user)
        assert header_values(m, "Return-Path") == ["<someone@elsewhere.example>"], user
        assert header_values(m, "Delivered-To") == ["%s@%s" % (user, HOST), "alice@" + HOST], user
        assert header_values(m, "Subject") == ["fwd"]
    # one queue entry for both addresses (carol once although named twice)
    log = inst.read_log()
    assert log.count("rcpts=2") == 1, log
    assert "delivered: 1 mailbox, 0 programs, 2 forwards (queued as " in log


@with_instance(users=("alice", "bob", "carol"))
def test_forwarding_loop_between_two_users_ends_in_one_bounce(inst):
    put(inst, "alice", ".qmail", "&bob@%s\n" % HOST)
    put(inst, "bob", ".forward", "alice@%s\n" % HOST)
    inst.start()
    send(inst, "carol@" + HOST, "alice@" + HOST, subject="round and round")
    wait_for(lambda: inst.count("carol") == 1, 30, "the bounce")
    wait_for(inst.queue_empty, 20, "queue to empty")
    time.sleep(1)
    assert inst.count("carol") == 1 and inst.count("alice") == 0 and inst.count("bob") == 0
    assert inst.count("alias") == 0
    [b] = inst.messages("carol")
    assert b"Status: 5.4.6" in b and b"mail loop" in b, b
    assert b"Final-Recipient: rfc822; alice@" + HOST.encode() in b


@with_instance(users=("alice", "bob"))
def test_extensions_fall_back_to_default_files(inst):
    h = home(inst, "alice")
    put(inst, "alice", ".qmail-foo-bar", "./exact.mbox\n")
    put(inst, "alice", ".qmail-foo-default", "./foo-default.mbox\n")
    put(inst, "alice", ".qmail-default", "./default.mbox\n")
    put(inst, "alice", ".qmail-drop", "# delivered nowhere\n")
    put(inst, "alice", ".qmail-empty", "")
    inst.start()
    for rcpt in ("alice-foo-bar", "Alice-Foo-Bar", "alice-foo-baz", "alice-foo-x-y", "alice-other",
                 "alice-drop", "alice-empty", "alice", "bob-nothing"):
        send(inst, "bob@" + HOST, rcpt + "@" + HOST)
    wait_for(inst.queue_empty, 30, "deliveries")
    assert mbox_count(os.path.join(h, "exact.mbox")) == 2
    assert mbox_count(os.path.join(h, "foo-default.mbox")) == 2
    assert mbox_count(os.path.join(h, "default.mbox")) == 1
    assert inst.count("alice") == 2      # the empty .qmail-empty and plain alice: the default delivery
    # bob has no .qmail-default: bob-nothing does not exist
    [b] = inst.messages("bob")
    assert b"Status: 5.1.1" in b and b"bob-nothing@" + HOST.encode() in b
    m = read(os.path.join(h, "foo-default.mbox"))
    assert b"\nDelivered-To: alice-foo-baz@" + HOST.encode() + b"\n" in m


@with_instance(users=("alice", "bob", "carol"))
def test_dot_forward(inst):
    h = home(inst, "bob")
    put(inst, "bob", ".forward",
        '# sendmail style\n\\bob, carol@%s,\n"|cat > $HOME/prog.out; echo \'a, b\' >> $HOME/prog.out"\n%s/saved.mbox\n'
        % (HOST, h))
    # naming oneself without the backslash is the same as \alice
    put(inst, "alice", ".forward", "alice@%s, carol\n" % HOST)
    inst.start()
    send(inst, "someone@elsewhere.example", "bob@" + HOST, subject="to bob")
    send(inst, "someone@elsewhere.example", "alice@" + HOST, subject="to alice")
    wait_for(inst.queue_empty, 30, "deliveries")
    assert inst.count("bob") == 1 and inst.count("alice") == 1 and inst.count("carol") == 2
    assert b"Subject: to bob" in read(os.path.join(h, "prog.out"))
    assert read(os.path.join(h, "prog.out")).endswith(b"\na, b\n")
    assert mbox_count(os.path.join(h, "saved.mbox")) == 1
    # .forward is not read when there is a .qmail
    put(inst, "alice", ".qmail", "./Maildir/\n")
    send(inst, "someone@elsewhere.example", "alice@" + HOST)
    wait_for(inst.queue_empty, 30, "delivery")
    assert inst.count("alice") == 2 and inst.count("carol") == 2


@with_instance(users=("alice", "bob"), controls=FAST_RETRY)
def test_unsafe_files_defer_delivery(inst):
    put(inst, "alice", ".qmail", "&bob\n", mode=0o664)
    inst.start()
    send(inst, "bob@" + HOST, "alice@" + HOST)
    wait_for(lambda: "writable by its group" in inst.read_log(), 20, "the deferral")
    log = inst.read_log()
    assert "result=deferred" in log and "unsafe delivery file, not delivering" in log, log
    assert inst.count("bob") == 0 and inst.count("alice") == 0
    # another owner
    path = os.path.join(home(inst, "alice"), ".qmail")
    os.chmod(path, 0o644)
    os.chown(path, 65534, -1)
    wait_for(lambda: "is owned by uid 65534" in inst.read_log(), 20, "the owner check")
    assert inst.count("bob") == 0
    os.chown(path, os.geteuid(), -1)
    wait_for(lambda: inst.count("bob") == 1, 20, "delivery once fixed")
    # a home directory writable by others
    os.chmod(home(inst, "bob"), 0o777)
    send(inst, "alice@" + HOST, "bob@" + HOST)
    wait_for(lambda: "unsafe home directory" in inst.read_log(), 20, "the home check")
    os.chmod(home(inst, "bob"), 0o700)
    wait_for(lambda: inst.count("bob") == 2, 20, "delivery once fixed")


@with_instance(users=("alice", "bob", "carol"), controls=FAST_RETRY)
def test_aliases_with_include(inst):
    lst = os.path.join(inst.dir, "staff.list")
    with open(lst, "w") as f:
        f.write("# the staff\nalice\nbob@%s, \\alias\n" % HOST)
    os.chmod(lst, 0o644)
    bad = os.path.join(inst.dir, "open.list")
    with open(bad, "w") as f:
        f.write("alice\n")
    os.chmod(bad, 0o666)
    inst.control("aliases", "# aliases\nStaff: :include:%s,\n  carol\nopen: :include:%s\n"
                 "prog: \"|cat > %s/prog.out\"\nalice-sales: bob\n" % (lst, bad, inst.dir))
    r = subprocess.run([inst.bin("yubin-newaliases")], capture_output=True, text=True)
    assert r.returncode == 0 and "4 aliases" in r.stdout, r
    inst.start()
    send(inst, "carol@" + HOST, "staff@" + HOST, subject="all hands")
    send(inst, "carol@" + HOST, "prog@" + HOST, subject="to a program")
    send(inst, "carol@" + HOST, "alice-sales@" + HOST, subject="sales")
    wait_for(lambda: inst.count("alice") == 1 and inst.count("bob") == 2 and inst.count("carol") == 1
             and inst.count("alias") == 1, 30, "alias deliveries")
    for m in inst.messages("alice") + inst.messages("carol") + inst.messages("alias"):
        assert header_values(m, "Delivered-To")[-1] == "staff@" + HOST
        assert header_values(m, "Return-Path") == ["<carol@%s>" % HOST]
    assert b"Subject: to a program" in read(os.path.join(inst.dir, "prog.out"))
    # an include anyone may write is not followed
    send(inst, "carol@" + HOST, "open@" + HOST)
    wait_for(lambda: "unsafe :include: file" in inst.read_log(), 20, "the deferral")
    assert inst.count("alice") == 1
    # a broken aliases file changes nothing
    inst.control("aliases", "staff alice\nok: bob\n")
    r = subprocess.run([inst.bin("yubin-newaliases")], capture_output=True, text=True)
    assert r.returncode == 65 and "line 1: no ':' after the name" in r.stderr, r
    send(inst, "carol@" + HOST, "staff@" + HOST, subject="still there")
    wait_for(lambda: inst.count("alice") == 2, 20, "the old aliases still apply")


@with_instance(users=("alice", "bob"))
def test_alias_home_files(inst):
    put(inst, "alias", ".qmail-postmaster", "&alice\n")
    put(inst, "alias", ".qmail-help-default", "./help.mbox\n")
    inst.start()
    send(inst, "bob@" + HOST, "postmaster@" + HOST)
    send(inst, "bob@" + HOST, "help-me@" + HOST)
    send(inst, "bob@" + HOST, "root@" + HOST)        # no .qmail-root: the alias Maildir
    wait_for(inst.queue_empty, 30, "deliveries")
    assert inst.count("alice") == 1 and inst.count("alias") == 1 and inst.count("bob") == 0
    assert mbox_count(os.path.join(home(inst, "alias"), "help.mbox")) == 1
    # a catch-all for unknown local parts
    put(inst, "alias", ".qmail-default", "&bob\n")
    send(inst, "alice@" + HOST, "nobody-here@" + HOST)
    wait_for(lambda: inst.count("bob") == 1, 20, "the catch-all")


@with_instance(users=("alice", "bob"),
               controls={"virtualdomains": "virt.example:alice\n.virt2.example:vd\n"})
def test_virtual_domains(inst):
    put(inst, "alice", ".qmail-default", "./Maildir/\n")
    put(inst, "alias", ".qmail-vd-default", '|echo "$EXT $DEFAULT $HOST" >> "$HOME/vd.out"\n&bob\n')
    inst.start()
    send(inst, "bob@" + HOST, "Anyone@virt.example", subject="v1")
    send(inst, "bob@" + HOST, "sales@mail.virt2.example", subject="v2")
    wait_for(lambda: inst.count("alice") == 1 and inst.count("bob") == 1, 20, "virtual deliveries")
    [m] = inst.messages("alice")
    assert header_values(m, "Delivered-To") == ["alice-Anyone@virt.example"]   # case kept
    [m] = inst.messages("bob")
    assert header_values(m, "Delivered-To") == ["bob@" + HOST, "vd-sales@mail.virt2.example"]
    assert read(os.path.join(home(inst, "alias"), "vd.out")) == b"vd-sales sales mail.virt2.example\n"


@with_instance(users=("alice", "bob"), controls={"extseparator": "+"})
def test_another_extension_separator(inst):
    h = home(inst, "alice")
    put(inst, "alice", ".qmail-foo+bar", "./exact.mbox\n")
    put(inst, "alice", ".qmail-foo+default", '|echo "$EXT $EXT2 $DEFAULT" >> "$HOME/ext.out"\n')
    inst.start()
    for rcpt in ("alice+foo+bar", "alice+foo+x-y", "alice-foo"):
        send(inst, "bob@" + HOST, rcpt + "@" + HOST)
    wait_for(inst.queue_empty, 30, "deliveries")
    assert mbox_count(os.path.join(h, "exact.mbox")) == 1
    assert read(os.path.join(h, "ext.out")) == b"foo+x-y x-y x-y\n"
    # with "+" as the separator, alice-foo names no user
    [b] = inst.messages("bob")
    assert b"Status: 5.1.1" in b and b"alice-foo@" + HOST.encode() in b


@with_instance(users=("alice", "bob"), controls={"timeoutlocal": "600"})
def test_background_program_does_not_hold_delivery(inst):
    sleeper = copy_of_sleep(inst, "alice")
    put(inst, "alice", ".qmail", "|%s 300 & echo started\n./Maildir/\n" % sleeper)
    inst.start()
    t0 = time.monotonic()
    send(inst, "bob@" + HOST, "alice@" + HOST)
    wait_for(lambda: inst.count("alice") == 1, 20, "delivery")
    wait_for(inst.queue_empty, 20, "queue to empty")
    assert time.monotonic() - t0 < 15
    wait_for(lambda: running(sleeper) == 0, 10, "the background job to be killed")


@with_instance(users=("alice", "bob"), controls={"timeoutlocal": "2", "minbackoff": "300"})
def test_program_timeout(inst):
    sleeper = copy_of_sleep(inst, "alice")
    put(inst, "alice", ".qmail", "|%s 60\n" % sleeper)
    inst.start()
    t0 = time.monotonic()
    send(inst, "bob@" + HOST, "alice@" + HOST)
    wait_for(lambda: "program timed out after 2 seconds" in inst.read_log(), 20, "the timeout")
    assert time.monotonic() - t0 < 15
    assert "result=deferred" in inst.read_log()
    wait_for(lambda: running(sleeper) == 0, 10, "the program to be killed")
    assert inst.count("alice") == 0 and inst.count("bob") == 0


@with_instance(users=("alice", "bob"), controls=FAST_RETRY)
def test_blank_first_line_and_bad_forward_defer(inst):
    put(inst, "alice", ".qmail", "\n./Maildir/\n")
    put(inst, "bob", ".forward", '"|unterminated\n')
    inst.start()
    send(inst, "bob@" + HOST, "alice@" + HOST)
    send(inst, "alice@" + HOST, "bob@" + HOST)
    wait_for(lambda: ".qmail: the first line is blank" in inst.read_log()
             and ".forward line 1: unterminated quote" in inst.read_log(), 20, "the deferrals")
    put(inst, "alice", ".qmail", "./Maildir/\n")
    os.unlink(os.path.join(home(inst, "bob"), ".forward"))
    wait_for(inst.queue_empty, 20, "deliveries once fixed")
    assert inst.count("alice") == 1 and inst.count("bob") == 1


if __name__ == "__main__":
    harness.run(globals())
