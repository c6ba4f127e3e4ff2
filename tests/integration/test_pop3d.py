"""pop3d with Python's poplib and a raw socket client, through yubin-listen
on a loopback port: retrieval byte for byte, sizes, unique ids, deletion
only in UPDATE, APOP, failed logins, and every error path and state rule."""
import hashlib
import os
import poplib
import re
import socket
import subprocess
import time

import harness
from harness import wait_for, BUILD
from pop3_helpers import (PASSWORD, Raw, crlf, deliver, maildir_files, mail_set, ordered_files, stuff,
                          wait_unlocked, with_pop3)


def pop(lst):
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    p.user("alice")
    p.pass_(PASSWORD)
    return p


@with_pop3()
def test_poplib_retrieves_every_message_byte_for_byte(inst, lst):
    deliver(inst, mail_set())
    files = ordered_files(inst)
    p = pop(lst)
    try:
        count, total = p.stat()
        assert count == len(files)
        sizes = [int(l.split()[1]) for l in p.list()[1]]
        assert total == sum(sizes)
        for i, (uid, path, content) in enumerate(files, 1):
            resp, lines, octets = p.retr(i)
            # poplib counts what it received, without the byte-stuffing
            assert octets == sizes[i - 1] == len(crlf(content)), (i, octets, sizes[i - 1], len(crlf(content)))
            assert b"\r\n".join(lines) + b"\r\n" == crlf(content)
            assert resp == b"+OK %d octets" % octets
        assert [l.split()[1].decode() for l in p.uidl()[1]] == [uid for uid, _, _ in files]
        top = p.top(2, 1)[1]
        head, body = crlf(files[1][2]).split(b"\r\n\r\n", 1)
        assert b"\r\n".join(top) == head + b"\r\n\r\n" + body.split(b"\r\n")[0]
        p.quit()
    finally:
        p.close()
    # the raw bytes on the wire: the CRLF file, stuffed, then ".\r\n"
    c = Raw(lst.port)
    c.login()
    for i, (_, _, content) in enumerate(files, 1):
        assert c.cmd("RETR %d" % i) == "+OK %d octets" % len(crlf(content))
        assert c.multi() == stuff(crlf(content)), i
    assert c.cmd("QUIT").startswith("+OK")
    c.close()


@with_pop3()
def test_files_with_odd_line_ends_and_size_fields(inst, lst):
    md = inst.maildir("alice")
    odd = {"1000000001.M1P1Q1.host,S=11": b"a\r\nb\rc\n.\r\nd",
           "1000000002.M1P1Q1.host,S=4,W=5": b"abc\n",        # W= trusted: S= matches
           "1000000003.M1P1Q1.host,S=9,W=999": b"abc\n",      # W= ignored: S= does not match
           "1000000004.M1P1Q1.host": b"",
           ("x" * 80): b"long name\n"}                         # unique id must be hashed
    for name, content in odd.items():
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(content)
    c = Raw(lst.port)
    c.login()
    assert c.cmd("LIST").startswith("+OK")
    listing = c.multi().decode()
    # oldest first: the long name has no time in front, so it counts as 0
    assert listing == "1 11\r\n2 14\r\n3 5\r\n4 5\r\n5 0\r\n.\r\n", listing
    assert c.cmd("RETR 2") == "+OK 14 octets"
    assert c.multi() == b"a\r\nb\rc\r\n..\r\nd\r\n.\r\n"
    assert c.cmd("RETR 5") == "+OK 0 octets"
    assert c.multi() == b".\r\n"
    assert c.cmd("UIDL 1") == "+OK 1 x" + hashlib.sha256(b"x" * 80).hexdigest()
    assert c.cmd("UIDL 2") == "+OK 2 1000000001.M1P1Q1.host,S=11"
    c.cmd("QUIT")
    c.close()


@with_pop3()
def test_dele_quit_removes_exactly_those_and_ids_are_stable(inst, lst):
    deliver(inst, [b"Subject: m%d\n\nbody %d\n" % (i, i) for i in range(5)])
    before = ordered_files(inst)
    p = pop(lst)
    ids = [l.split()[1].decode() for l in p.uidl()[1]]
    assert ids == [uid for uid, _, _ in before]
    assert len(set(ids)) == 5
    p.dele(1)
    p.rset()
    assert p.stat()[0] == 5
    p.dele(2)
    p.dele(4)
    assert p.stat()[0] == 3
    assert [l.split()[0] for l in p.uidl()[1]] == [b"1", b"3", b"5"]
    p.quit()
    wait_unlocked(inst)
    after = maildir_files(inst)
    assert sorted(after) == sorted([ids[0], ids[2], ids[4]])
    # the rest moved from new/ to cur/ with ":2,": same base name, same id
    assert all("/cur/" in path and path.endswith(":2,") for path, _ in after.values())
    assert os.listdir(os.path.join(inst.maildir("alice"), "new")) == []
    p = pop(lst)
    assert [l.split()[1].decode() for l in p.uidl()[1]] == [ids[0], ids[2], ids[4]]
    p.quit()


@with_pop3()
def test_rset_and_a_dropped_connection_delete_nothing(inst, lst):
    deliver(inst, [b"Subject: a\n\na\n", b"Subject: b\n\nb\n"])
    before = maildir_files(inst)
    c = Raw(lst.port)
    c.login()
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("RSET") .startswith("+OK maildrop has 2 messages")
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("DELE 2").startswith("+OK")
    c.close()       # no QUIT
    wait_unlocked(inst)
    assert maildir_files(inst) == before
    c = Raw(lst.port)
    c.login()
    assert c.cmd("STAT").startswith("+OK 2 ")
    c.cmd("DELE 1")
    c.send("QUIT")   # no line end: not a command, then the connection drops
    c.close()
    wait_unlocked(inst)
    assert maildir_files(inst) == before
    assert "reason=dropped" in lst.read_log()


def apop_refused(port, secret, what):
    """APOP as alice with secret fails with the one reply for every failed login."""
    p = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        p.apop("alice", secret)
        raise AssertionError("APOP with %s worked" % what)
    except poplib.error_proto as e:
        assert str(e) == "b'-ERR [AUTH] authentication failed'", e
    finally:
        p.close()


@with_pop3()
def test_deleting_a_user_removes_its_apop_secret(inst, lst):
    subprocess.run([inst.bin("yubin-user"), "apop", "alice", "on"], input=(PASSWORD + "\n").encode(), check=True)
    apop = os.path.join(inst.dir, "users", "apop")
    assert PASSWORD in open(apop).read()
    subprocess.run([inst.bin("yubin-user"), "del", "alice"], check=True)
    assert "alice" not in open(apop).read() and PASSWORD not in open(apop).read()
    assert "alice:" not in open(os.path.join(inst.dir, "users", "passwd")).read()
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    assert b"<" not in p.getwelcome()  # nobody has APOP any more
    p.user("alice")
    try:
        p.pass_(PASSWORD)
        raise AssertionError("a deleted user logged in")
    except poplib.error_proto:
        pass
    p.close()


@with_pop3()
def test_apop_on_off_and_after_a_password_change(inst, lst):
    user = [inst.bin("yubin-user"), "apop", "alice"]
    r = subprocess.run(user + ["on"], input=b"not-the-password\n", capture_output=True)
    assert r.returncode != 0 and b"not the password" in r.stderr
    assert not os.path.exists(os.path.join(inst.dir, "users", "apop"))
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    assert b"<" not in p.getwelcome()          # no user has APOP: no timestamp
    p.quit()
    subprocess.run(user + ["on"], input=(PASSWORD + "\n").encode(), check=True)
    # owner and group only (the group is how pop3d reads it in a system instance)
    assert os.stat(os.path.join(inst.dir, "users", "apop")).st_mode & 0o777 == 0o640
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    assert re.search(rb"<\d+\.\d+\.[0-9a-f]+@test\.example>", p.getwelcome()), p.getwelcome()
    assert p.apop("alice", PASSWORD).startswith(b"+OK")
    p.quit()
    wait_unlocked(inst)
    apop_refused(lst.port, "wrong", "a wrong secret")
    # a new password replaces the stored secret: APOP stays on, with it
    subprocess.run([inst.bin("yubin-user"), "passwd", "alice"], input=b"new-password\n", check=True)
    apop_refused(lst.port, PASSWORD, "the old password")
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    assert p.apop("alice", "new-password").startswith(b"+OK")
    p.quit()
    wait_unlocked(inst)
    apop_file = os.path.join(inst.dir, "users", "apop")
    assert open(apop_file).read().count("new-password") == 1
    # a stored secret that is no longer the password (changed behind
    # yubin-user's back) is refused, and the log says why
    with open(apop_file, "w") as f:
        f.write("alice:%s\n" % PASSWORD)
    apop_refused(lst.port, PASSWORD, "a stale secret")
    subprocess.run(user + ["off"], check=True)
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    assert b"<" not in p.getwelcome()
    p.user("alice")
    assert p.pass_("new-password").startswith(b"+OK")
    p.quit()
    log = lst.read_log()
    assert "method=apop" in log, log
    assert "yubin-checkpassword: event=refused user=alice reason=\"APOP secret is not the current password\"" \
        in log, log


@with_pop3(controls={"pop3faildelay": "1500"})
def test_failed_logins_are_delayed_logged_and_alike(inst, lst):
    c = Raw(lst.port)
    replies, times = [], []
    for user, password in (("alice", "wrong"), ("nobody", "wrong"), ("alice", "wrong")):
        assert c.cmd("USER " + user) == "+OK send PASS"      # USER never tells
        t0 = time.monotonic()
        replies.append(c.cmd("PASS " + password))
        times.append(time.monotonic() - t0)
    assert min(times) >= 1.45, times
    assert replies[0] == replies[1] == replies[2] == "-ERR [AUTH] authentication failed"
    assert c.line() == "-ERR too many failed logins; closing connection"
    assert c.closed()
    t0 = time.monotonic()
    Raw(lst.port).login()
    # a right password is not delayed: it costs the same hashing, not the delay
    assert time.monotonic() - t0 < min(times) - 0.7, (time.monotonic() - t0, times)
    log = lst.read_log()
    assert log.count("event=login-failed") == 3
    assert 'event=login-failed user=nobody method=user remote=127.0.0.1' in log, log
    # why, from the one program that reads the hashes
    assert 'yubin-checkpassword: event=refused user=nobody reason="no such user"' in log, log
    assert log.count('yubin-checkpassword: event=refused user=alice reason="wrong password"') == 2, log
    assert "wrong" not in re.sub(r'reason="wrong password"', "", log)   # no password in the log


@with_pop3()
def test_commands_in_the_wrong_state_unknown_or_with_bad_arguments(inst, lst):
    deliver(inst, [b"Subject: a\n\na\n", b"Subject: b\n\nb\n"])
    before = maildir_files(inst)
    c = Raw(lst.port)
    for line, reply in (("STAT", "-ERR log in first"), ("RETR 1", "-ERR log in first"),
                        ("DELE 1", "-ERR log in first"), ("NOOP", "-ERR log in first"),
                        ("PASS x", "-ERR send USER first"), ("XYZZY", "-ERR unknown command"),
                        ("USER", "-ERR syntax: USER name"), ("APOP alice x", "-ERR APOP is not offered here")):
        assert c.cmd(line) == reply, (line, reply)
    c.login()
    for line, reply in (("USER alice", "-ERR already authenticated"), ("PASS x", "-ERR already authenticated"),
                        ("XYZZY", "-ERR unknown command"), ("RETR", "-ERR syntax: RETR msg"),
                        ("RETR one", "-ERR invalid message number"), ("RETR 0", "-ERR no such message"),
                        ("RETR 3", "-ERR no such message"), ("TOP 1", "-ERR syntax: TOP msg n"),
                        ("TOP 1 -2", "-ERR invalid number of lines"), ("LIST 1 2", "-ERR syntax: LIST [msg]"),
                        ("STAT now", "-ERR STAT takes no argument"), ("DELE 1", "+OK message 1 deleted"),
                        ("DELE 1", "-ERR message 1 already deleted"), ("RETR 1", "-ERR message 1 already deleted"),
                        ("LIST 1", "-ERR message 1 already deleted"), ("QUIT now", "-ERR QUIT takes no argument"),
                        ("stat", "+OK 1 %d" % len(crlf(ordered_files(inst)[1][2])))):
        assert c.cmd(line) == reply, (line, reply)
    c.close()
    wait_unlocked(inst)
    assert maildir_files(inst) == before


@with_pop3()
def test_too_long_lines_and_too_many_errors(inst, lst):
    c = Raw(lst.port)
    assert c.cmd("USER " + "a" * 300) == "-ERR line too long"
    assert c.cmd("NOOP" + " " * 249) == "-ERR log in first"        # 255 octets with CRLF: a line
    assert c.cmd("NOOP" + " " * 250) == "-ERR line too long"       # 256: too long
    c.send(b"X" * 100000)                                          # a long line arriving in pieces
    assert c.cmd("") == "-ERR line too long"
    c.login()
    assert c.cmd("LIST " + "1" * 400) == "-ERR line too long"
    assert c.cmd("NOOP") == "+OK"
    for _ in range(19):             # with the long line, 20 errors
        assert c.cmd("BOGUS") == "-ERR unknown command"
    assert c.cmd("BOGUS") == "-ERR unknown command"
    assert c.line() == "-ERR too many errors; closing connection"
    assert c.closed()


@with_pop3(controls={"timeoutpop3d": "1"})
def test_idle_clients_are_timed_out_without_update(inst, lst):
    deliver(inst, [b"Subject: a\n\na\n"])
    before = maildir_files(inst)
    c = Raw(lst.port)
    t0 = time.monotonic()
    assert c.line() == "-ERR disconnected for inactivity"
    assert c.closed() and time.monotonic() - t0 < 5
    c = Raw(lst.port)
    c.login()
    assert c.cmd("DELE 1").startswith("+OK")
    t0 = time.monotonic()
    assert c.line() == "-ERR disconnected for inactivity"
    assert c.closed() and time.monotonic() - t0 < 5
    wait_unlocked(inst)
    assert maildir_files(inst) == before
    assert "reason=timeout" in lst.read_log()


@with_pop3()
def test_a_second_session_gets_in_use(inst, lst):
    deliver(inst, [b"Subject: a\n\na\n"])
    first = Raw(lst.port)
    first.login()
    second = Raw(lst.port)
    assert second.cmd("USER alice") == "+OK send PASS"
    assert second.cmd("PASS " + PASSWORD).startswith("-ERR [IN-USE] ")
    assert second.closed()
    assert first.cmd("STAT").startswith("+OK 1 ")
    assert first.cmd("QUIT").startswith("+OK")
    first.close()
    third = Raw(lst.port)          # at once after QUIT: the lock is already released
    assert third.login().startswith("+OK maildrop has 1 message")
    third.close()
    assert "event=in-use user=alice" in lst.read_log()


@with_pop3()
def test_pipelined_commands_across_the_login(inst, lst):
    deliver(inst, [b"Subject: p%d\n\n.body %d\n" % (i, i) for i in range(30)])
    files = ordered_files(inst)
    c = Raw(lst.port)
    assert "PIPELINING" in (c.cmd("CAPA") + c.multi().decode())
    # the login and every command in one write: the front end hands what it
    # read beyond PASS to the mailbox session
    c.send("USER alice\r\nPASS %s\r\nSTAT\r\n" % PASSWORD + "".join("RETR %d\r\n" % i for i in range(1, 31)) +
           "DELE 30\r\nQUIT\r\n")
    assert c.line().startswith("+OK send PASS")
    assert c.line().startswith("+OK maildrop has 30 messages")
    assert c.line().startswith("+OK 30 ")
    for i, (_, _, content) in enumerate(files, 1):
        assert c.line() == "+OK %d octets" % len(crlf(content))
        assert c.multi() == stuff(crlf(content))
    assert c.line() == "+OK message 30 deleted"
    assert c.line().startswith("+OK yubin POP3 server signing off (1 message deleted)")
    wait_unlocked(inst)
    assert inst.count("alice") == 29


@with_pop3()
def test_a_big_message_streams_and_capa_in_both_states(inst, lst):
    big = b"Subject: big\n\n" + b"".join(b".%07d line of a big message\n" % i for i in range(200000))
    deliver(inst, [big])
    [(_, _, content)] = ordered_files(inst)
    p = poplib.POP3("127.0.0.1", lst.port, timeout=30)
    caps = p.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"} <= set(caps) and "IMPLEMENTATION" not in caps
    p.user("alice")
    p.pass_(PASSWORD)
    caps = p.capa()
    assert caps["IMPLEMENTATION"] == ["yubin"] and "USER" not in caps
    resp, lines, octets = p.retr(1)
    assert octets == len(crlf(content)) == int(p.list(1).split()[2])
    assert b"\r\n".join(lines) + b"\r\n" == crlf(content)
    p.quit()


@with_pop3()
def test_mail_arriving_during_a_session_is_left_alone(inst, lst):
    deliver(inst, [b"Subject: old\n\nold\n"])
    c = Raw(lst.port)
    c.login()
    deliver(inst, [b"Subject: new\n\nnew\n"])
    assert c.cmd("STAT").startswith("+OK 1 ")
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("RETR 2") == "-ERR no such message"
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    [(uid, path, content)] = ordered_files(inst)
    assert b"Subject: new" in content and "/new/" in path


def test_outside_an_instance_it_refuses(tmp=None):
    r = subprocess.run([os.path.join(BUILD, "bin", "pop3d")], input=b"QUIT\r\n", capture_output=True, timeout=10)
    assert r.returncode == 111
    assert r.stdout == b"-ERR [SYS/TEMP] mail system configuration error; try again later\r\n"
    assert b"event=fatal" in r.stderr


@with_pop3()
def test_over_pipes_with_a_dialog(inst, lst):
    deliver(inst, [b"Subject: a\n\na\n"])
    env = dict(os.environ, TCPREMOTEIP="192.0.2.9")
    # not loopback: no login in clear text (pop3d(8), control/pop3plaintext) ...
    r = subprocess.run([inst.bin("pop3d")], input=("USER alice\nPASS %s\nQUIT\n" % PASSWORD).encode(),
                       capture_output=True, timeout=10, env=env)
    assert r.stdout.decode().splitlines()[1].startswith("-ERR [AUTH] Plaintext authentication disallowed"), r.stdout
    assert b"event=login" not in r.stderr, r.stderr
    # ... unless the administrator allows it
    inst.control("pop3plaintext", "yes")
    r = subprocess.run([inst.bin("pop3d")], input=("USER alice\nPASS %s\nLIST\nQUIT\n" % PASSWORD).encode(),
                       capture_output=True, timeout=10, env=env)
    out = r.stdout.decode()
    assert r.returncode == 0
    assert re.fullmatch(r"\+OK yubin POP3 server ready\r\n\+OK send PASS\r\n\+OK maildrop has 1 message \(\d+ octets\)\r\n"
                        r"\+OK 1 message \(\d+ octets\)\r\n1 \d+\r\n\.\r\n\+OK yubin POP3 server signing off "
                        r"\(0 messages deleted\)\r\n", out), out
    assert b"event=login user=alice method=user remote=192.0.2.9" in r.stderr, r.stderr


if __name__ == "__main__":
    harness.run(globals())
