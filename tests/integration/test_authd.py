"""yubin-authd, the password checker that remembers: yubin-start runs it,
smtpd's AUTH and pop3d's logins ask it on auth/socket, it remembers right
answers (never wrong ones) and forgets them when users/ changes, answers
only the users that may ask, and when it is not running smtpd and pop3d
run yubin-checkpassword instead. Its answers are counted in its stop line
(checks=N remembered=M), which is how these tests see the cache at work
without timing anything."""
import os
import poplib
import re
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import Instance, wait_for, with_instance
from pop3_helpers import Pop3Listener

PASSWORD = "secret-alice"


def ask(inst, request, timeout=30):
    """One request on auth/socket: the answer packet, or b"" when it hung up."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(os.path.join(inst.dir, "auth", "socket"))
        s.send(request)
        return s.recv(8192)
    finally:
        s.close()


def stop_line(inst):
    inst.stop()
    m = re.findall(r"yubin-authd: event=stop checks=(\d+) remembered=(\d+)", inst.read_log())
    assert m, inst.read_log()
    return tuple(int(x) for x in m[-1])


def pop3_login(port, user="alice", password=PASSWORD):
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        p.user(user)
        return p.pass_(password)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        try:
            p.quit()
        except Exception:
            pass


@with_instance()
def test_the_protocol_right_wrong_unknown_and_malformed(inst):
    inst.start()
    wait_for(lambda: os.path.exists(os.path.join(inst.dir, "auth", "socket")), 10, "the socket")
    home = os.path.realpath(os.path.join(inst.dir, "home", "alice"))
    ok = ask(inst, b"alice\0" + PASSWORD.encode() + b"\0")
    assert ok[:1] == b"K", ok
    name, got_home, rest = ok[1:].split(b"\0")
    assert name == b"alice" and os.path.realpath(got_home.decode()) == home and rest == b""
    assert ask(inst, b"ALICE\0" + PASSWORD.encode() + b"\0")[:1] == b"K"   # names in any case
    assert ask(inst, b"alice\0wrong\0") == b"N"
    assert ask(inst, b"nobody\0" + PASSWORD.encode() + b"\0") == b"N"
    for bad in (b"alice\0" + PASSWORD.encode(), b"\0pw\0", b"alice", b"a\0b\0c\0d\0",
                b"alice\0" + b"x" * 600 + b"\0", b"alice\0" + PASSWORD.encode() + b"\0" + b"x" * 600):
        assert ask(inst, bad) == b"N", bad
    assert ask(inst, b"") == b""   # an empty packet reads as the end: it hangs up
    log = inst.read_log()
    assert 'yubin-authd: event=refused user=nobody reason="no such user"' in log, log
    assert PASSWORD not in log


@with_instance()
def test_logins_are_remembered_and_a_new_password_is_seen_at_once(inst):
    inst.start()
    lst = Pop3Listener(inst)
    try:
        for _ in range(3):
            assert pop3_login(lst.port).startswith(b"+OK")
        assert pop3_login(lst.port, password="wrong").startswith(b"-ERR [AUTH]")
        assert pop3_login(lst.port, password="wrong").startswith(b"-ERR [AUTH]")
        # a new password: the remembered one is forgotten with the old file
        subprocess.run([inst.bin("yubin-user"), "passwd", "alice"], input=b"new-password\n", check=True)
        assert pop3_login(lst.port).startswith(b"-ERR [AUTH]")
        assert pop3_login(lst.port, password="new-password").startswith(b"+OK")
        assert pop3_login(lst.port, password="new-password").startswith(b"+OK")
        assert "yubin-checkpassword" not in lst.read_log()   # the service answered every time
    finally:
        lst.stop()
    # 8 checks: the 2nd and 3rd right one, and the last, came from memory; no wrong one did
    assert stop_line(inst) == (8, 3)


@with_instance()
def test_the_same_first_login_at_once_is_hashed_once(inst):
    inst.start()
    wait_for(lambda: os.path.exists(os.path.join(inst.dir, "auth", "socket")), 10, "the socket")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(ask(inst, b"alice\0" + PASSWORD.encode() + b"\0")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 6 and all(a[:1] == b"K" for a in answers), answers
    assert stop_line(inst) == (6, 5)   # one hash; the other five waited for its answer


@with_instance(controls={"authcachettl": "0"})
def test_authcachettl_0_remembers_nothing(inst):
    inst.start()
    wait_for(lambda: os.path.exists(os.path.join(inst.dir, "auth", "socket")), 10, "the socket")
    for _ in range(3):
        assert ask(inst, b"alice\0" + PASSWORD.encode() + b"\0")[:1] == b"K"
    assert stop_line(inst) == (3, 0)


@with_instance()
def test_without_the_service_the_program_answers(inst):
    # not started: no socket, and a stale socket nobody listens on
    lst = Pop3Listener(inst)
    try:
        assert pop3_login(lst.port).startswith(b"+OK")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(os.path.join(inst.dir, "auth", "socket"))
        s.close()
        assert pop3_login(lst.port).startswith(b"+OK")
        assert pop3_login(lst.port, password="wrong").startswith(b"-ERR [AUTH]")
        assert 'yubin-checkpassword: event=refused user=alice reason="wrong password"' in lst.read_log()
    finally:
        lst.stop()


@with_instance()
def test_a_service_that_dies_is_replaced_by_the_program_and_stops_the_instance(inst):
    inst.start()
    wait_for(lambda: os.path.exists(os.path.join(inst.dir, "auth", "socket")), 10, "the socket")
    [pid] = inst.pids("yubin-authd")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: inst.proc.poll() is not None, 30, "yubin-start to stop everything")
    lst = Pop3Listener(inst)
    try:
        assert pop3_login(lst.port).startswith(b"+OK")   # the stale socket is refused: the program answers
    finally:
        lst.stop()


if __name__ == "__main__":
    harness.run(globals())
