"""A system instance (yubin-setup --system, as root): every program runs as
its own user and none of the network-facing ones as root. smtpd runs as
yubind under yubin-listen -u/-g and queues through the setuid queue-inject;
an ordinary user's sendmail does the same; queue-manager runs as yubinq,
remote-spawn as yubinr with the queue's group, local-deliver and pop3d as
yubinv. Needs root (CI runs as root); otherwise it says "skip" and tests
nothing. The four users yubin-setup creates stay on the machine, as a
package's system users do."""
import os
import poplib
import pwd
import grp
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile

import harness
from harness import BUILD, HOST, wait_for, header_values, body_of
from fake_smtp import FakeSmtp

NOBODY = pwd.getpwnam("nobody")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ids(pid):
    """(real, effective, saved, fs uids), (gids), [groups] of a process."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return [int(x) for x in out["Uid"]], [int(x) for x in out["Gid"]], [int(x) for x in out["Groups"]]


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


class SystemInstance:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-system.")
        self.procs = []
        r = subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--system", self.dir, "--hostname", HOST],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        self.user = {n: pwd.getpwnam(n) for n in ("yubinq", "yubind", "yubinr", "yubinv")}
        self.control("smtproutes", ":127.0.0.1:1")
        self.control("dnsservers", "127.0.0.1:1")
        self.control("timeoutdns", "1")
        r = subprocess.run([self.bin("yubin-user"), "add", "alice"], input=b"secret-alice\n", timeout=30)
        assert r.returncode == 0
        self.logfile = os.path.join(self.dir, "yubin.log")

    def control(self, name, value):
        with open(os.path.join(self.dir, "control", name), "w") as f:
            f.write(value + "\n")

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def maildir(self, user):
        return os.path.join(self.dir, "home", user, "Maildir")

    def messages(self, user):
        """(stat, content) of each message in the user's Maildir."""
        out = []
        for path in harness.maildir_files(self.maildir(user)):
            with open(path, "rb") as f:
                out.append((os.stat(path), f.read()))
        return out

    def spawn(self, argv):
        log = open(self.logfile, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def log(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self):
        self.spawn([self.bin("yubin-start")])
        wait_for(lambda: "event=start me=" in self.log(), 10, "queue-manager to start")

    def listen(self, user, program, *options):
        port = free_port()
        u = self.user[user]
        self.spawn([self.bin("yubin-listen")] + list(options) +
                   ["-u", str(u.pw_uid), "-g", str(u.pw_gid), "127.0.0.1", str(port), self.bin(program)])
        wait_for(lambda: ("event=listening address=127.0.0.1:%d" % port) in self.log(), 10, "yubin-listen")
        return port

    def pids(self, program):
        return harness.program_pids(self.bin(program))

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        harness.kill_programs(self.dir, os.listdir(os.path.join(self.dir, "bin")))
        shutil.rmtree(self.dir, ignore_errors=True)


def system_test(fn):
    def run():
        inst = SystemInstance()
        try:
            fn(inst)
        except Exception:
            print("--- log (tail) ---\n" + inst.log()[-3000:] if os.path.exists(inst.logfile) else "(no log)")
            raise
        finally:
            inst.cleanup()
    run.__name__ = fn.__name__
    return run


@system_test
def test_setup_gives_each_part_its_owner(inst):
    st = os.stat(inst.dir)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    q = inst.user["yubinq"]
    for sub, mode in (("", 0o750), ("tmp", 0o2750), ("new", 0o750), ("cur", 0o750), ("info", 0o700),
                      ("lock", 0o700)):
        st = os.stat(os.path.join(inst.dir, "queue", sub))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (q.pw_uid, q.pw_gid, mode), (sub, oct(st.st_mode))
    st = os.stat(inst.bin("queue-inject"))
    assert (st.st_uid, st.st_mode & 0o7777) == (q.pw_uid, 0o4711), oct(st.st_mode)
    v = inst.user["yubinv"]
    for path in ("home", "home/alice", "home/alice/Maildir/new", "alias/Maildir"):
        st = os.stat(os.path.join(inst.dir, path))
        assert (st.st_uid, st.st_gid) == (v.pw_uid, v.pw_gid), path
    # users/ says where each mailbox is: root writes it, local delivery (yubinv) reads it through the group.
    for path, mode in (("users", 0o750), ("users/passwd", 0o640)):
        st = os.stat(os.path.join(inst.dir, path))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, v.pw_gid, mode), (path, oct(st.st_mode))
    for u in inst.user.values():
        assert u.pw_uid != 0 and u.pw_gid != 0 and u.pw_shell == "/usr/sbin/nologin"
    # Running it again (an upgrade) keeps all of that, and the user.
    r = subprocess.run([inst.bin("yubin-setup"), "--system", inst.dir], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.stat(inst.bin("queue-inject")).st_mode & 0o7777 == 0o4711
    assert "alice:" in open(os.path.join(inst.dir, "users/passwd")).read()


@system_test
def test_only_the_password_checker_reads_the_hashes(inst):
    """smtpd runs as yubind, which cannot read users/; it asks the setgid
    yubin-checkpassword, which answers through its exit code (checkpassword
    interface) and gives its group up before it runs the next program."""
    v, d = inst.user["yubinv"], inst.user["yubind"]
    st = os.stat(inst.bin("yubin-checkpassword"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, v.pw_gid, 0o2755), oct(st.st_mode)
    r = subprocess.run(["cat", os.path.join(inst.dir, "users/passwd")], preexec_fn=as_user(d),
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and b"Permission denied" in r.stderr

    def check(password, *program, user=d, raw=None):
        rd, wr = os.pipe()
        os.write(wr, raw if raw is not None else b"alice\0" + password + b"\0")
        os.close(wr)

        def child():
            if user:
                as_user(user)()
            os.dup2(rd, 3)
        try:
            return subprocess.run([inst.bin("yubin-checkpassword"), *program], pass_fds=(rd,), preexec_fn=child,
                                  capture_output=True, timeout=60)
        finally:
            os.close(rd)
    assert check(b"secret-alice").returncode == 0
    assert check(b"wrong").returncode == 1
    # qmail-popup sends its timestamp with a password too: still a password
    assert check(b"secret-alice\0<1.2@host>").returncode == 0
    assert check(b"0123456789abcdef0123456789abcdef\0<1.2@host>").returncode == 1   # APOP is off for alice
    assert check(None, raw=b"alice\0secret-alice").returncode == 2   # no NUL at the end
    # Any other user would have an oracle for guessing passwords.
    r = check(b"secret-alice", user=NOBODY)
    assert r.returncode == 2 and b"may not check passwords" in r.stderr, r
    # A checkpassword client that runs it as root (Dovecot's passdb checkpassword, qmail-popup).
    r = check(b"secret-alice", "sh", "-c", 'id -G; echo "$USER $HOME"; pwd -P', user=None)
    assert r.returncode == 0, r
    groups, who, cwd = r.stdout.decode().splitlines()
    assert str(v.pw_gid) not in groups.split(), groups   # the group is given up
    home = os.path.realpath(os.path.join(inst.dir, "home/alice"))
    assert who.split()[0] == "alice" and os.path.realpath(who.split()[1]) == home and cwd == home


@system_test
def test_authd_runs_as_yubinv_and_answers_only_smtpd_pop3d_and_root(inst):
    inst.start()
    sock = os.path.join(inst.dir, "auth", "socket")
    wait_for(lambda: os.path.exists(sock), 10, "yubin-authd's socket")
    [pid] = wait_for(lambda: inst.pids("yubin-authd"), 10, "yubin-authd")
    v = inst.user["yubinv"]
    # and the session ticket keys, each for the group of the server that reads it
    for name, user in (("smtpd-tickets", "yubind"), ("pop3d-tickets", "yubinv")):
        st = os.stat(os.path.join(inst.dir, "tls", name))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777, st.st_size) == (0, inst.user[user].pw_gid, 0o640, 160), name
    assert ids(pid)[0] == [v.pw_uid] * 4 and ids(pid)[1] == [v.pw_gid] * 4, ids(pid)
    request = b"alice\0secret-alice\0"

    def ask_as(pw):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                if pw:
                    as_user(pw)()
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.settimeout(30)
                s.connect(sock)
                try:
                    s.send(request)
                    answer = s.recv(8192)
                except (BrokenPipeError, ConnectionResetError):   # hung up before or after the request
                    answer = b""
                os.write(w, b"[" + answer + b"]")
            finally:
                os._exit(0)
        os.close(w)
        out = b""
        while True:
            chunk = os.read(r, 8192)
            if not chunk:
                break
            out += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return out
    assert ask_as(inst.user["yubind"]).startswith(b"[K")
    assert ask_as(v).startswith(b"[K")
    assert ask_as(None).startswith(b"[K")          # root
    got = ask_as(NOBODY)
    assert got == b"[]", got                       # anyone else: no answer at all
    assert ask_as(inst.user["yubinr"]) == b"[]"


@system_test
def test_smtpd_as_yubind_authenticates_through_authd_and_without_it(inst):
    """smtpd (yubind) cannot read users/: its AUTH is answered by yubin-authd
    (yubinv), and by the setgid yubin-checkpassword when authd is not running."""
    inst.control("smtpplaintext", "loopback")   # no certificate here: AUTH in clear on loopback
    port = inst.listen("yubind", "smtpd")

    def login(password):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            try:
                return s.login("alice", password)[0]
            except smtplib.SMTPAuthenticationError as e:
                return e.smtp_code
    assert login("secret-alice") == 235          # yubin-authd is not running: the program answers
    assert login("wrong") == 535
    inst.start()
    wait_for(lambda: os.path.exists(os.path.join(inst.dir, "auth", "socket")), 10, "yubin-authd's socket")
    assert login("secret-alice") == 235
    assert login("wrong") == 535
    log = inst.log()
    assert log.count("smtpd: event=auth user=alice mechanism=PLAIN") == 2, log
    assert 'yubin-checkpassword: event=refused user=alice reason="wrong password"' in log, log
    assert 'yubin-authd: event=refused user=alice reason="wrong password"' in log, log


@system_test
def test_setup_gives_each_tls_key_to_the_group_of_its_server(inst):
    control = os.path.join(inst.dir, "control")
    for name in ("tlskey", "pop3tlskey", "sni.key", "sni-both.pem", "pop3sni.key"):
        with open(os.path.join(control, name), "w") as f:
            f.write("not really a key\n")
        os.chmod(os.path.join(control, name), 0o600)
    with open(os.path.join(control, "tlssni"), "w") as f:
        f.write("mail.example sni.pem sni.key\n.example.org sni-both.pem\n/elsewhere.example /etc/ssl/x.pem /etc/ssl/x.key\n")
    with open(os.path.join(control, "pop3tlssni"), "w") as f:
        f.write("pop.example pop3sni.pem pop3sni.key\n")
    r = subprocess.run([inst.bin("yubin-setup"), "--system", inst.dir], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d, v = inst.user["yubind"].pw_gid, inst.user["yubinv"].pw_gid
    for name, gid in (("tlskey", d), ("sni.key", d), ("sni-both.pem", d), ("pop3tlskey", v), ("pop3sni.key", v)):
        st = os.stat(os.path.join(control, name))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), (name, st)


def test_setup_refuses_without_root_or_in_an_unsafe_place():
    r = subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--system", "/tmp/yubin-never-made"],
                       preexec_fn=as_nobody, capture_output=True, timeout=30)
    assert r.returncode == 77 and b"needs root" in r.stderr, r
    assert not os.path.exists("/tmp/yubin-never-made")
    top = tempfile.mkdtemp(prefix="yubin-unsafe.")
    try:
        os.chmod(top, 0o777)  # writable by anyone, not sticky: another user could swap bin/ underneath
        r = subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--system", top + "/inst"],
                           capture_output=True, timeout=30)
        assert r.returncode == 111 and b"writable by others than root" in r.stderr, r
        assert not os.path.exists(top + "/inst/bin/queue-inject")
    finally:
        shutil.rmtree(top, ignore_errors=True)


@system_test
def test_each_program_runs_as_its_user(inst):
    inst.start()
    q, r = inst.user["yubinq"], inst.user["yubinr"]
    [manager] = wait_for(lambda: inst.pids("queue-manager"), 10, "queue-manager")
    [remote] = inst.pids("remote-spawn")
    [local] = inst.pids("local-spawn")
    assert ids(manager) == ([q.pw_uid] * 4, [q.pw_gid] * 4, [])
    assert ids(remote) == ([r.pw_uid] * 4, [q.pw_gid] * 4, [])  # the queue's group: it reads the messages
    assert ids(local)[0] == [0] * 4  # to run each delivery as the mailbox's owner


@system_test
def test_smtpd_runs_as_yubind_and_mail_reaches_the_mailbox(inst):
    inst.start()
    port = inst.listen("yubind", "smtpd", "-m", "100")  # as make run starts it
    d = inst.user["yubind"]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.example")
        [smtpd] = wait_for(lambda: inst.pids("smtpd"), 10, "smtpd")
        assert ids(smtpd) == ([d.pw_uid] * 4, [d.pw_gid] * 4, [])
        s.sendmail("bob@client.example", ["alice@" + HOST], b"Subject: over SMTP\r\n\r\nhello\r\n")
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    [(st, m)] = inst.messages("alice")
    v = inst.user["yubinv"]
    assert (st.st_uid, st.st_mode & 0o777) == (v.pw_uid, 0o600)
    assert body_of(m) == b"hello\n"
    # queue-inject names the real uid of its caller: smtpd's.
    assert any("invoked by uid %d)" % d.pw_uid in x for x in header_values(m, "Received")), m


@system_test
def test_ordinary_user_queues_through_setuid_queue_inject(inst):
    inst.start()
    r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: from nobody\n\nhi\n",
                       preexec_fn=as_nobody, capture_output=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    [(_, m)] = inst.messages("alice")
    assert header_values(m, "Return-Path") == ["<nobody@%s>" % HOST]
    assert any("invoked by uid %d)" % NOBODY.pw_uid in x for x in header_values(m, "Received"))
    # ... but cannot read the queue or list it.
    r = subprocess.run([inst.bin("mailq")], preexec_fn=as_nobody, capture_output=True, timeout=30)
    assert r.returncode == 77 and b"Permission denied" in r.stderr, r
    r = subprocess.run(["ls", os.path.join(inst.dir, "queue", "new")], preexec_fn=as_nobody,
                       capture_output=True, timeout=30)
    assert r.returncode != 0


@system_test
def test_setuid_queue_inject_with_closed_fds(inst):
    # fd 2 closed: queue-inject opens /dev/null there, so the queue file
    # cannot become fd 2 and take an error message.
    def nobody_without_stderr():
        as_nobody()
        os.close(2)
    env = harness.qmail_envelope("nobody@" + HOST, ["alice@" + HOST])
    p = harness.queue_inject(inst, b"Subject: fd\n\nbody\n", env, preexec_fn=nobody_without_stderr)
    assert p.returncode == 0
    # -i with fd 3 closed: refused before anything is created, so the
    # queue file cannot become fd 3 and take the id line.
    r = subprocess.run([inst.bin("queue-inject"), "-i"], input=b"x\n",
                       preexec_fn=as_nobody, capture_output=True, timeout=30)
    assert r.returncode == 81 and b"not open" in r.stderr, r
    # fd 0 closed: glibc puts /dev/full there for a setuid program; the read fails, temporarily.
    r = subprocess.run([inst.bin("queue-inject")], stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: (as_nobody(), os.close(0)), capture_output=True, timeout=30)
    assert r.returncode in (54, 81), r
    q = os.path.join(inst.dir, "queue")
    assert len(os.listdir(os.path.join(q, "new"))) == 1 and os.listdir(os.path.join(q, "tmp")) == []
    [name] = os.listdir(os.path.join(q, "new"))
    st = os.stat(os.path.join(q, "new", name))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (inst.user["yubinq"].pw_uid, inst.user["yubinq"].pw_gid,
                                                           0o640)
    data = open(os.path.join(q, "new", name), "rb").read()
    assert data.startswith(b"Y ") and b" %d\n" % NOBODY.pw_uid in data.split(b"\n")[0] + b"\n"
    assert data.endswith(b"Subject: fd\n\nbody\n")


@system_test
def test_remote_delivery_and_bounce_as_their_users(inst):
    port = free_port()
    server = FakeSmtp("127.0.0.1", port, rcpt=lambda a, n: "550 5.1.1 no such user" if "nobody" in a else "250 2.1.5 ok")
    try:
        inst.control("smtproutes", "remote.example:127.0.0.1:%d" % port)
        inst.start()
        r = subprocess.run([inst.bin("sendmail"), "-f", "alice@" + HOST, "bob@remote.example",
                            "nobody@remote.example"], input=b"Subject: out\n\nto the world\n",
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: server.transactions, 20, "the remote server to get the message")
        assert server.transactions[0]["rcpts"] == ["bob@remote.example"]
        assert b"to the world" in server.transactions[0]["data"]
        # The 550 bounces to alice: queue-manager (yubinq) injects, local-deliver (yubinv) delivers.
        wait_for(lambda: len(inst.messages("alice")) == 1, 20, "the bounce")
        [(_, m)] = inst.messages("alice")
        assert "multipart/report" in header_values(m, "Content-Type")[0]
        assert b"nobody@remote.example" in m and b"550 5.1.1 no such user" in m
    finally:
        server.stop()


@system_test
def test_pop3d_runs_as_yubinv(inst):
    inst.start()
    r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: pop\n\nfor pop\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 0
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    port = inst.listen("yubinv", "pop3d")
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        v = inst.user["yubinv"]
        pids = inst.pids("pop3d")
        assert pids and all(ids(x)[0] == [v.pw_uid] * 4 for x in pids)
        p.user("alice")
        p.pass_("secret-alice")
        assert p.stat()[0] == 1
        assert b"for pop" in b"\n".join(p.retr(1)[1])
    finally:
        p.quit()


@system_test
def test_home_owned_by_root_is_never_delivered_as_root(inst):
    home = os.path.join(inst.dir, "home", "alice")
    for sub in ("", "/Maildir", "/Maildir/tmp", "/Maildir/new", "/Maildir/cur"):
        os.chown(home + sub, 0, 0)
    inst.start()
    r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: x\n\nx\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 0
    wait_for(lambda: "will not deliver as root" in inst.log(), 20, "the refusal")
    assert inst.messages("alice") == []


def as_user(pw):
    def switch():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return switch


@system_test
def test_a_compromised_mailbox_user_cannot_redirect_root(inst):
    """yubinv (pop3d, local-deliver) owns home/ and alias/ but not users/:
    it cannot rewrite where mailboxes are, and links it plants in home/
    lend nobody's rights to root (yubin-user) or to local-spawn."""
    v = inst.user["yubinv"]
    users = os.path.join(inst.dir, "users")
    r = subprocess.run(["sh", "-c", "echo x > passwd.tmp || exit 3; echo x >> passwd || exit 4"], cwd=users,
                       preexec_fn=as_user(v), capture_output=True, timeout=30)
    assert r.returncode == 3, r
    # A directory of another user (nobody) that yubinv points links at.
    other = tempfile.mkdtemp(prefix="yubin-other.")
    try:
        os.chmod(other, 0o755)
        os.makedirs(other + "/Maildir/new")
        for sub in ("", "/Maildir", "/Maildir/new"):
            os.chown(other + sub, NOBODY.pw_uid, NOBODY.pw_gid)
        subprocess.run(["ln", "-s", other, os.path.join(inst.dir, "home", "bob")], preexec_fn=as_user(v),
                       check=True, timeout=30)
        r = subprocess.run([inst.bin("yubin-user"), "add", "bob"], input=b"pw\n", capture_output=True, timeout=30)
        assert r.returncode != 0 and b"Permission denied" in r.stderr, r
        assert sorted(os.listdir(other + "/Maildir")) == ["new"]
        # alice's home swapped for a link: local-spawn refuses, it does not deliver as nobody.
        home = os.path.join(inst.dir, "home")
        subprocess.run(["sh", "-c", "mv alice alice.old && ln -s %s alice" % other], cwd=home,
                       preexec_fn=as_user(v), check=True, timeout=30)
        inst.start()
        r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: x\n\nx\n",
                           capture_output=True, timeout=30)
        assert r.returncode == 0
        wait_for(lambda: "is not a directory" in inst.log(), 20, "the refusal")
        assert os.listdir(other + "/Maildir/new") == []
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_root_s_single_user_instance_becomes_a_system_one_a_user_s_does_not():
    setup = os.path.join(BUILD, "bin", "yubin-setup")
    d = tempfile.mkdtemp(prefix="yubin-convert.")
    try:
        os.chmod(d, 0o755)
        subprocess.run([setup, "--single-user", d], check=True, capture_output=True, timeout=60)
        r = subprocess.run([setup, "--system", d], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert os.stat(os.path.join(d, "bin/local-spawn")).st_uid == 0
        assert os.stat(os.path.join(d, "queue/new")).st_uid == pwd.getpwnam("yubinq").pw_uid
        assert os.stat(os.path.join(d, "bin/queue-inject")).st_mode & 0o7777 == 0o4711
        # A user's instance is refused: its owner could swap a directory for a link under root.
        subprocess.run(["chown", "-R", "nobody:", d], check=True, timeout=30)
        r = subprocess.run([setup, "--system", d], capture_output=True, timeout=60)
        assert r.returncode == 111 and b"belongs to uid %d" % NOBODY.pw_uid in r.stderr, r
        assert os.stat(os.path.join(d, "bin/local-spawn")).st_uid == NOBODY.pw_uid  # untouched
        # And so is a link in place of the directory.
        os.symlink(d, d + ".link")
        r = subprocess.run([setup, "--system", d + ".link"], capture_output=True, timeout=60)
        assert r.returncode == 111 and b"is not a directory" in r.stderr, r
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if os.path.islink(d + ".link"):
            os.unlink(d + ".link")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skip %s: a system instance needs root" % os.path.basename(__file__))
        sys.exit(0)
    harness.run(globals())
