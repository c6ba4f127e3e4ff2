"""Real checkpassword clients using yubin's users through
INSTANCE/bin/yubin-checkpassword (yubin-checkpassword(8)).

Dovecot 2.3 (Debian's dovecot-core and dovecot-pop3d, installed as
tests/bench/pop3_bench.py does when missing, its service left off) runs
privately with its own configuration, base_dir, state and log under a
temporary directory, POP3 only, on a free 127.0.0.1 port, with
    passdb { driver = checkpassword  args = INSTANCE/bin/yubin-checkpassword }
and either userdb prefetch or userdb static. Dovecot's auth process forks,
puts "user\\0password\\0\\0" (an empty timestamp) on a pipe as descriptor
3 and another pipe as descriptor 4, and executes
    yubin-checkpassword /usr/lib/dovecot/checkpassword-reply
as the user of its auth service (service auth { user = ... }: by default
Dovecot's internal user "dovecot"). On success the program must execute
checkpassword-reply, which reads USER and HOME and writes the userdb
fields, TAB-separated, on descriptor 4 ("user=alice\\tuserdb_home=...\\t
userdb_uid=UID\\tuserdb_gid=GID\\t", the IDs being its own), and exit 0;
Dovecot reads descriptor 4 to its end and refuses a reply with NUL or LF.
Exit 1 is a wrong password, anything else an internal error. The
program's standard error is Dovecot's log.

Dovecot serves no mailbox as root ("userdb returned 0 as uid"), so the
instance, made by root here, is handed to nobody (chown -R) after the
mail is delivered: a user's own single-user instance, as nobody's.

qmail-popup is not in Debian: a small Python caller does what its
doanddie() does: descriptors 0 and 1 the client's connection (here a
socket pair whose other end the test reads), descriptor 2 a copy of 1,
descriptor 3 a pipe carrying "user\\0password\\0<timestamp>\\0" (the
timestamp of its greeting, for USER/PASS as well as for APOP, where the
password is the digest), no descriptor 4, then it runs
    yubin-checkpassword PROGRAM...
and waits: exit 0 is the session's end, anything else "-ERR
authorization failed".

Needs root (Dovecot's master, and to hand the instance to nobody);
otherwise it says "skip" and tests nothing."""
import hashlib
import os
import poplib
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import harness
from harness import Instance, HOST, wait_for, free_port

sys.path.insert(0, os.path.join(harness.TOP, "tests", "bench"))
import pop3_bench   # noqa: E402  (ensure_dovecot: how Dovecot is installed, its service off)

PASSWORD = "secret-alice"
REPLY = "/usr/lib/dovecot/checkpassword-reply"
NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)


# ------------------------------------------------------------- Dovecot

_dovecot_problem = []


def dovecot_missing():
    """None when Dovecot is there (installed now if need be), else why not."""
    if not _dovecot_problem:
        try:
            pop3_bench.ensure_dovecot()
            _dovecot_problem.append(None)
        except pop3_bench.Unavailable as e:
            _dovecot_problem.append(str(e))
        if not os.path.exists(REPLY):
            _dovecot_problem[0] = "%s is missing" % REPLY
    return _dovecot_problem[0]


def session_pids(sid):
    """Pids of the processes in session sid."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[4]) == sid:
                        out.append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    return out


class Dovecot:
    """A private Dovecot, POP3 only on 127.0.0.1:<free port>, everything
    of its own (configuration, base_dir, state, log, index files) under a
    temporary directory. passdb: checkpassword with args; userdb: the
    given block; service auth runs as auth_user (None: Dovecot's default,
    its internal user)."""

    def __init__(self, checkpassword, userdb, auth_user="root", mail_owner=NOBODY):
        self.dir = tempfile.mkdtemp(prefix="yubin-dovecot.")
        os.chmod(self.dir, 0o755)     # its login and mail processes run as other users
        self.logpath = os.path.join(self.dir, "dovecot.log")
        self.port = free_port()
        index = os.path.join(self.dir, "index")
        os.mkdir(index)
        os.chown(index, mail_owner.pw_uid, mail_owner.pw_gid)
        auth = "service auth {\n  user = %s\n}\n" % auth_user if auth_user else ""
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("""instance_name = yubin-test-dovecot-{port}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
# no address-space limit on the auth process: yubin-checkpassword runs in
# it, and under make check SANITIZE=1 its shadow memory needs more than 256M
default_vsz_limit = 0
auth_verbose = yes
auth_debug = yes
mail_location = maildir:~/Maildir:INDEX={index}/%u:CONTROL={index}/%u
{auth}passdb {{
  driver = checkpassword
  args = {checkpassword}
}}
{userdb}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""".format(d=self.dir, port=self.port, index=index, auth=auth, checkpassword=checkpassword, userdb=userdb))
        self.out = open(os.path.join(self.dir, "dovecot.out"), "ab")
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.out, start_new_session=True)
        try:
            pop3_bench.wait_port(self.port, self.proc, "dovecot")
        except Exception:
            self.stop()
            raise

    def read_log(self):
        out = ""
        for name in ("dovecot.out", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                pass
        return out

    def login(self, user, password):
        """(reply to PASS or the error, STAT or None, messages or None)."""
        p = poplib.POP3("127.0.0.1", self.port, timeout=10)
        try:
            p.user(user)
            try:
                reply = p.pass_(password)
            except poplib.error_proto as e:
                return e.args[0], None, None
            stat = p.stat()
            msgs = [b"\n".join(p.retr(i + 1)[1]) for i in range(stat[0])]
            return reply, stat, msgs
        finally:
            try:
                p.quit()
            except (poplib.error_proto, OSError):
                pass
            p.close()

    def stop(self):
        """SIGTERM to the master (it stops its children), then SIGKILL to
        whatever is left of its session; waits until none is left."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for pid in session_pids(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        wait_for(lambda: not session_pids(self.proc.pid), 10, "dovecot's processes to end")
        self.out.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


PREFETCH = "userdb {\n  driver = prefetch\n}"


def static_userdb(inst):
    return "userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/home/%%n\n}" % (
        NOBODY.pw_uid, NOBODY.pw_gid, inst.dir)


MESSAGES = [b"From: carol@elsewhere.example\nTo: alice@%s\nSubject: first %d\n\nthe first one\n",
            b"From: carol@elsewhere.example\nTo: alice@%s\nSubject: second %d\n\nthe second one\n"]


def nobodys_instance(deliver=True):
    """Instance() (alice, secret-alice), with two messages delivered to
    alice by its sendmail when deliver, then given to nobody."""
    inst = Instance()
    try:
        if deliver:
            inst.start()
            for m in MESSAGES:
                r = inst.sendmail(["alice@" + HOST], m % (HOST.encode(), os.getpid()))
                assert r.returncode == 0, r
            wait_for(lambda: inst.count("alice") == 2, 20, "delivery to alice")
            inst.stop()
        subprocess.run(["chown", "-R", "%s:%s" % (NOBODY.pw_name, NOGROUP.gr_name), inst.dir], check=True,
                       timeout=30)
    except Exception:
        inst.cleanup()
        raise
    return inst


def dovecot_test(deliver=True):
    """Decorator: fn(inst) with a fresh instance of nobody's; prints "skip"
    when Dovecot cannot be had; always cleans the instance up (the test
    stops its own Dovecot)."""
    def deco(fn):
        def run():
            why = dovecot_missing()
            if why:
                print("skip %s: %s" % (fn.__name__, why))
                return
            inst = nobodys_instance(deliver)
            try:
                fn(inst)
            finally:
                inst.cleanup()
        run.__name__ = fn.__name__
        return run
    return deco


def with_dovecot(inst, fn, *args, **kw):
    """Runs fn(dovecot) with a Dovecot(*args, **kw); prints its log when fn
    fails; always stops it."""
    d = Dovecot(*args, **kw)
    try:
        fn(d)
    except Exception:
        print("--- dovecot log (tail) ---\n" + d.read_log()[-4000:])
        raise
    finally:
        d.cleanup()


def check_mailbox(inst, reply, stat, msgs):
    assert reply.startswith(b"+OK"), reply
    assert stat is not None and stat[0] == 2, stat
    bodies = sorted(m.split(b"\n\n", 1)[1] for m in msgs)
    assert bodies == [b"the first one", b"the second one"], msgs


REFERENCE = r'''#!/usr/bin/python3
# A reference checkpassword, by the interface alone: records how it is
# called, checks alice's password, runs the reply program with USER and HOME.
import os, stat, sys
req = b""
while True:
    b = os.read(3, 600)
    if not b:
        break
    req += b
def kind(fd):
    try:
        m = os.fstat(fd).st_mode
    except OSError:
        return "closed"
    return "pipe" if stat.S_ISFIFO(m) else "other"
with open(sys.argv[1], "w") as f:
    f.write(repr({"uid": os.getuid(), "gid": os.getgid(), "argv": sys.argv[2:], "request": req,
                  "fd4": kind(4), "ORIG_UID": os.environ.get("ORIG_UID")}))
fields = req.split(b"\0")
if fields[:2] != [b"alice", b"%(password)s"]:
    sys.exit(1)
os.environ["USER"] = "alice"
os.environ["HOME"] = "%(home)s"
os.chdir("%(home)s")
os.execv(sys.argv[2], sys.argv[2:])
'''


def write_reference(d, home):
    path = os.path.join(d, "reference-checkpassword")
    with open(path, "w") as f:
        f.write(REFERENCE % {"password": PASSWORD, "home": home})
    os.chmod(path, 0o755)
    return path


# ---------------------------------------------------------------- Dovecot tests

@dovecot_test()
def test_dovecot_config_works_with_a_reference_checkpassword(inst):
    """The control: the same Dovecot configuration as below with a
    checkpassword that follows the interface and nothing else logs alice
    in and shows her two messages. It also records how Dovecot calls a
    checkpassword: as the user of its auth service, with the reply program
    as its argument, "user\\0password\\0\\0" on descriptor 3 and a pipe as
    descriptor 4."""
    home = os.path.join(inst.dir, "home", "alice")
    tmp = tempfile.mkdtemp(prefix="yubin-reference.")
    try:
        os.chmod(tmp, 0o755)
        os.chown(tmp, NOBODY.pw_uid, NOBODY.pw_gid)   # the auth service (nobody) writes its record there
        prog = write_reference(tmp, home)
        record = os.path.join(tmp, "called")

        def check(d):
            check_mailbox(inst, *d.login("alice", PASSWORD))
            with open(record) as f:
                called = eval(f.read())
            assert called["uid"] == NOBODY.pw_uid and called["ORIG_UID"] == str(NOBODY.pw_uid), called
            assert called["argv"] == [REPLY], called
            assert called["request"] == b"alice\0" + PASSWORD.encode() + b"\0\0", called
            assert called["fd4"] == "pipe", called
            log = d.read_log()
            assert "userdb_home=%s" % home in log and "userdb_uid=%d" % NOBODY.pw_uid in log, log[-3000:]
        # The auth service as the instance's owner: checkpassword-reply then
        # reports the owner's IDs, which prefetch gives the mail process.
        with_dovecot(inst, check, prog + " " + record, PREFETCH, auth_user="nobody")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dovecot_test()
def test_dovecot_pop3_login_through_yubin_checkpassword_with_userdb_prefetch(inst):
    """passdb checkpassword = yubin-checkpassword, userdb prefetch, the
    auth service running as the instance's owner (nobody): alice logs in
    with yubin's password and sees the two messages yubin delivered."""
    def check(d):
        check_mailbox(inst, *d.login("alice", PASSWORD))
    with_dovecot(inst, check, inst.bin("yubin-checkpassword"), PREFETCH, auth_user="nobody")


@dovecot_test()
def test_dovecot_pop3_login_through_yubin_checkpassword_with_userdb_static(inst):
    """The configuration of yubin-checkpassword(8)'s EXAMPLES: the auth
    service as root, a static userdb with the mailbox owner's IDs and the
    homes of the instance."""
    def check(d):
        check_mailbox(inst, *d.login("alice", PASSWORD))
    with_dovecot(inst, check, inst.bin("yubin-checkpassword"), static_userdb(inst), auth_user="root")


@dovecot_test(deliver=False)
def test_dovecot_refuses_a_wrong_password_and_an_unknown_user(inst):
    """Exit 1 is Dovecot's "Authentication failed", the same -ERR for both;
    yubin-checkpassword's log (its standard error, Dovecot's log) says
    event=refused with the reason, never the password."""
    def check(d):
        wrong = d.login("alice", "not-her-password")[0]
        unknown = d.login("bob", PASSWORD)[0]
        assert wrong.startswith(b"-ERR") and b"[AUTH]" in wrong, wrong
        assert unknown == wrong, (unknown, wrong)
        log = d.read_log()
        assert "yubin-checkpassword: event=refused user=alice reason=" in log, log[-3000:]
        assert "yubin-checkpassword: event=refused user=bob reason=" in log, log[-3000:]
        assert "Login failed (status=1)" in log, log[-3000:]
        assert "not-her-password" not in log
    for auth_user in ("nobody", "root"):
        with_dovecot(inst, check, inst.bin("yubin-checkpassword"), PREFETCH, auth_user=auth_user)


@dovecot_test(deliver=False)
def test_dovecot_s_default_auth_user_is_not_answered(inst):
    """Without service auth { user = ... } Dovecot runs the program as its
    internal user (dovecot), who cannot read the users of another user's
    single-user instance: exit 111, a temporary failure for the client,
    event=temporary in the log (yubin-checkpassword(8), Callers). (With
    the instance's directory at mode 0700 Dovecot cannot even execute the
    program, "execv() failed: Permission denied"; here others may traverse
    it, mode 0711, so that the program itself answers.)"""
    os.chmod(inst.dir, 0o711)

    def check(d):
        reply = d.login("alice", PASSWORD)[0]
        assert reply.startswith(b"-ERR") and b"TEMP" in reply, reply
        log = d.read_log()
        assert "yubin-checkpassword: event=temporary user=alice" in log, log[-3000:]
        assert "exited with status 111" in log, log[-3000:]
    with_dovecot(inst, check, inst.bin("yubin-checkpassword"), PREFETCH, auth_user=None)


# ------------------------------------------------------------- qmail-style caller

PROGRAM = r'''#!/bin/sh
# What qmail-pop3d Maildir would get: who, where, the Maildir relative to the cwd.
{
  echo "USER=$USER"
  echo "HOME=$HOME"
  echo "cwd=$(pwd -P)"
  echo "uid=$(id -u)"
  echo "messages=$(find Maildir/new Maildir/cur -type f | grep -c .)"
  echo "args=$*"
} > "$OUT"
'''


def qmail_popup(inst, request, program=(), fd4=False, env=None):
    """What qmail-popup's doanddie() does: fds 0 and 1 the client's
    connection (a socket pair, the test holding the other end), fd 2 a
    copy of fd 1, fd 3 a pipe with the request, no fd 4 (unless fd4: a pipe
    there, as Dovecot gives). Returns (exit status, what reached the
    client, what came on fd 4)."""
    client, server = socket.socketpair()
    r3, w3 = os.pipe()
    r4, w4 = os.pipe() if fd4 else (None, None)
    os.write(w3, request)      # at most 512 bytes: the pipe takes them
    os.close(w3)

    def child():
        os.dup2(r3, 3)
        if fd4:
            os.dup2(w4, 4)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # sig_pipedefault()
    e = {"PATH": "/usr/bin:/bin", "TCPLOCALIP": "127.0.0.1", "TCPREMOTEIP": "127.0.0.1", "PROTO": "TCP"}
    e.update(env or {})
    try:
        p = subprocess.Popen([inst.bin("yubin-checkpassword"), *program], stdin=server, stdout=server,
                             stderr=server, pass_fds=(3, 4) if fd4 else (3,), preexec_fn=child, env=e)
    finally:
        server.close()
        os.close(r3)
        if fd4:
            os.close(w4)
    reply4 = b""
    try:
        if fd4:
            while True:
                b = os.read(r4, 4096)
                if not b:
                    break
                reply4 += b
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if fd4:
            os.close(r4)
    client.settimeout(5)
    seen = b""
    while True:
        try:
            b = client.recv(4096)
        except socket.timeout:
            break
        if not b:
            break
        seen += b
    client.close()
    return p.returncode, seen, reply4


def greeting_timestamp():
    """qmail-popup's: <pid.time@hostname>."""
    return "<%d.%d@%s>" % (os.getpid(), int(time.time()), HOST)


def apop_digest(timestamp, secret):
    return hashlib.md5((timestamp + secret).encode()).hexdigest()


def with_program(fn):
    """Decorator: fn(inst, program, out) with a fresh Instance() holding one
    message for alice (a file in home/alice/Maildir/new) and the PROGRAM
    script, which writes what it was given to out."""
    def run():
        inst = Instance()
        tmp = tempfile.mkdtemp(prefix="yubin-qmail.")
        try:
            md = inst.maildir("alice")
            with open(os.path.join(md, "new", "1700000000.M1P1.%s" % HOST), "wb") as f:
                f.write(b"Subject: waiting\n\nfor alice\n")
            prog = os.path.join(tmp, "program")
            with open(prog, "w") as f:
                f.write(PROGRAM)
            os.chmod(prog, 0o755)
            fn(inst, prog, os.path.join(tmp, "out"))
        finally:
            inst.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)
    run.__name__ = fn.__name__
    return run


def ran(out):
    with open(out) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines())


def check_ran(inst, out, args=""):
    got = ran(out)
    home = os.path.realpath(os.path.join(inst.dir, "home", "alice"))
    assert got["USER"] == "alice", got
    assert os.path.realpath(got["HOME"]) == home and got["cwd"] == home, got
    assert got["uid"] == str(os.getuid()), got       # its caller's rights, no other user's
    assert got["messages"] == "1", got
    assert got["args"] == args, got


@with_program
def test_qmail_popup_apop_runs_the_program_in_the_home(inst, prog, out):
    """APOP: user\\0digest\\0timestamp\\0. Right: PROGRAM runs in alice's
    home with USER and HOME, as qmail-pop3d Maildir would; the client sees
    nothing of yubin-checkpassword's."""
    inst_apop = subprocess.run([inst.bin("yubin-user"), "apop", "alice", "on"], input=(PASSWORD + "\n").encode(),
                               capture_output=True, timeout=30)
    assert inst_apop.returncode == 0, inst_apop
    ts = greeting_timestamp()
    req = b"alice\0" + apop_digest(ts, PASSWORD).encode() + b"\0" + ts.encode() + b"\0"
    code, seen, _ = qmail_popup(inst, req, [prog, "Maildir"], env={"OUT": out})
    assert code == 0 and seen == b"", (code, seen)
    check_ran(inst, out, "Maildir")
    # A wrong digest: exit 1 ("-ERR authorization failed"), the program not run.
    os.unlink(out)
    req = b"alice\0" + apop_digest(ts, "wrong").encode() + b"\0" + ts.encode() + b"\0"
    code, seen, _ = qmail_popup(inst, req, [prog, "Maildir"], env={"OUT": out})
    assert code == 1 and not os.path.exists(out), (code, seen)


@with_program
def test_qmail_style_plain_login_without_a_timestamp_runs_the_program(inst, prog, out):
    """user\\0password\\0, no timestamp (the form yubin's own smtpd and
    pop3d send): PROGRAM runs in alice's home with USER and HOME."""
    code, seen, _ = qmail_popup(inst, b"alice\0" + PASSWORD.encode() + b"\0", [prog, "Maildir"],
                                env={"OUT": out})
    assert code == 0 and seen == b"", (code, seen)
    check_ran(inst, out, "Maildir")


@with_program
def test_qmail_popup_user_pass_carries_the_greeting_timestamp(inst, prog, out):
    """What qmail-popup really sends for USER and PASS: its doanddie()
    writes user\\0, password\\0 and then always <unique@hostname>\\0, the
    timestamp of its greeting, APOP or not; the checkpassword interface
    (cr.yp.to/checkpwd/interface.html) always has the timestamp, the
    password being a password. The right password must let alice in."""
    ts = greeting_timestamp()
    code, seen, _ = qmail_popup(inst, b"alice\0" + PASSWORD.encode() + b"\0" + ts.encode() + b"\0",
                                [prog, "Maildir"], env={"OUT": out})
    assert code == 0, "exit %d, the client saw %r" % (code, seen)
    check_ran(inst, out, "Maildir")


@with_program
def test_qmail_popup_refuses_a_wrong_password_and_an_unknown_user(inst, prog, out):
    """Exit 1 for both (qmail-popup: "-ERR authorization failed"), the
    program not run."""
    for req in (b"alice\0wrong\0", b"bob\0" + PASSWORD.encode() + b"\0"):
        code, seen, _ = qmail_popup(inst, req, [prog], env={"OUT": out})
        assert code == 1 and not os.path.exists(out), (req, code, seen)


@with_program
def test_qmail_popup_client_learns_nothing_of_the_refusal(inst, prog, out):
    """Behind qmail-popup descriptor 2 is the client's connection
    (fd_copy(2,1)). yubin-checkpassword(8): "The answer ... the same
    whether the user exists or not", the reason being for the administrator
    only. So what reaches the client must not differ between a wrong
    password and an unknown user."""
    _, wrong, _ = qmail_popup(inst, b"alice\0wrong\0", [prog], env={"OUT": out})
    _, unknown, _ = qmail_popup(inst, b"bob\0" + PASSWORD.encode() + b"\0", [prog], env={"OUT": out})
    assert wrong.replace(b"alice", b"USER") == unknown.replace(b"bob", b"USER"), \
        "the client saw %r for a wrong password, %r for an unknown user" % (wrong, unknown)


@with_program
def test_checkpassword_reply_as_the_program_answers_on_descriptor_4(inst, prog, out):
    """The chain with Dovecot's checkpassword-reply as PROGRAM, the caller
    giving a pipe as descriptor 4 as Dovecot does: PROGRAM must find
    descriptor 4 as its caller gave it, so that checkpassword-reply's
    userdb fields are all that arrives there, and the exit is 0."""
    if dovecot_missing():
        print("skip test_checkpassword_reply_as_the_program_answers_on_descriptor_4: %s" % dovecot_missing())
        return
    code, seen, reply4 = qmail_popup(inst, b"alice\0" + PASSWORD.encode() + b"\0\0", [REPLY], fd4=True,
                                     env={"ORIG_UID": str(os.getuid())})
    home = os.path.join(inst.dir, "home", "alice")
    want = ("user=alice\tuserdb_home=%s\tuserdb_uid=%d\tuserdb_gid=%d\t" % (home, os.getuid(), os.getgid())).encode()
    assert (code, reply4) == (0, want), "exit %d, descriptor 4 %r, the client saw %r" % (code, reply4, seen)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skip %s: Dovecot's master and handing the instance to nobody need root" % os.path.basename(__file__))
        sys.exit(0)
    harness.run(globals())
