"""queue-injectd (queue-injectd(8)): with yubin-start running, smtpd and
sendmail queue through INSTANCE/public/inject; the daemon records the
client's uid from the socket; a client that goes away, sends garbage or too
much, or stalls, gets its error and leaves nothing in the queue, while
other clients are served; with no daemon, QueueInjection runs queue-inject.

Most of these tests use a system instance (queue-injectd as yubinq, its
clients as other users): they need root (CI runs as root); otherwise they
say "skip" and test nothing. Root's own single-user instance, which every
other test file uses, runs queue-injectd as root."""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import harness
from harness import HOST, wait_for, header_values, body_of
from test_system_instance import NOBODY, SystemInstance, as_nobody, system_test

TIMEOUT = 3   # control/timeoutinjectd for these tests


def netstring(b):
    return str(len(b)).encode() + b":" + b + b","


def envelope(sender, rcpts):
    return harness.qmail_envelope(sender, rcpts)


class Client:
    """A raw client of INSTANCE/public/inject."""

    def __init__(self, inst):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(os.path.join(inst.dir, "public", "inject"))

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        """One reply line, or b"" when the daemon closed first."""
        out = b""
        while not out.endswith(b"\n"):
            b = self.s.recv(1)
            if not b:
                break
            out += b
        return out

    def eof(self):
        return self.s.recv(100) == b""

    def close(self):
        self.s.close()


def injectd_test(controls=None):
    """A test with a fresh system instance running (yubin-start), its
    queue-injectd listening."""
    def deco(fn):
        def body(inst):
            inst.control("timeoutinjectd", str(TIMEOUT))
            for k, v in (controls or {}).items():
                inst.control(k, v)
            inst.start()
            wait_for(lambda: "queue-injectd: event=start" in inst.log(), 10, "queue-injectd")
            fn(inst)
        body.__name__ = fn.__name__
        return system_test(body)
    return deco


def queue_dir(inst, sub):
    return sorted(os.listdir(os.path.join(inst.dir, "queue", sub)))


def queue_is_empty(inst):
    return not any(queue_dir(inst, d) for d in ("tmp", "new", "cur", "info"))


def queued_ids(inst):
    return re.findall(r"queue-injectd: event=queued id=(\S+) uid=(\d+)", inst.log())


def smtp_dialog(inst, user, message):
    """smtpd run directly as user on pipes (as a network session); its replies."""
    u = inst.user[user]

    def drop():
        os.setgroups([])
        os.setgid(u.pw_gid)
        os.setuid(u.pw_uid)
    env = {"PATH": "/usr/bin:/bin", "TCPREMOTEIP": "192.0.2.1", "TCPLOCALIP": "127.0.0.1"}
    data = (b"HELO client.example\r\nMAIL FROM:<bob@client.example>\r\nRCPT TO:<alice@" + HOST.encode() +
            b">\r\nDATA\r\n" + message + b".\r\nQUIT\r\n")
    r = subprocess.run([inst.bin("smtpd")], input=data, capture_output=True, timeout=30, env=env,
                       preexec_fn=drop, cwd="/")
    return r.stdout.decode()


@injectd_test()
def test_smtpd_queues_through_the_daemon_as_its_uid(inst):
    st = os.stat(os.path.join(inst.dir, "public"))
    q = inst.user["yubinq"]
    assert (st.st_uid, st.st_mode & 0o7777) == (q.pw_uid, 0o755)
    assert os.stat(os.path.join(inst.dir, "public", "inject")).st_mode & 0o777 == 0o666
    # the supervisor and its two workers (it logs its start before the forks)
    pids = wait_for(lambda: len(inst.pids("queue-injectd")) == 3 and inst.pids("queue-injectd"), 10, "3 processes")
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            assert re.search(r"^Uid:\s+%d\s+%d\s+%d\s+%d$" % ((q.pw_uid,) * 4), f.read(), re.M)
    out = smtp_dialog(inst, "yubind", b"Subject: via the daemon\r\n\r\nhello\r\n")
    m = re.search(r"250 2\.0\.0 Ok: queued as (\S+)", out)
    assert m, out
    d = inst.user["yubind"]
    assert (m.group(1), str(d.pw_uid)) in queued_ids(inst), inst.log()
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    [(_, msg)] = inst.messages("alice")
    assert body_of(msg) == b"hello\n"
    assert any("invoked by uid %d)" % d.pw_uid in x for x in header_values(msg, "Received")), msg


@injectd_test()
def test_peer_uid_of_a_client_running_as_nobody(inst):
    r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: from nobody\n\nhi\n",
                       preexec_fn=as_nobody, capture_output=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    [(_, m)] = inst.messages("alice")
    assert any("invoked by uid %d)" % NOBODY.pw_uid in x for x in header_values(m, "Received")), m
    assert [u for _, u in queued_ids(inst)] == [str(NOBODY.pw_uid)], inst.log()

    # A raw client as nobody: the uid in the queue file's header is nobody's.
    pid = os.fork()
    if pid == 0:
        try:
            as_nobody()
            c = Client(inst)
            c.send(netstring(envelope("n@" + HOST, ["nowhere@" + HOST])))
            ok = c.line()
            c.send(netstring(b"Subject: raw\n\nx\n") + b"0:,")
            os._exit(0 if c.line() == b"0 queued\n" and ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    assert [u for _, u in queued_ids(inst)] == [str(NOBODY.pw_uid)] * 2


@injectd_test()
def test_client_gone_mid_message_leaves_nothing(inst):
    # Closed inside a netstring, and closed after whole netstrings but before 0:,
    for tail in (b"100:Subject: cut", netstring(b"Subject: whole\n\nbody\n")):
        c = Client(inst)
        c.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
        qid = c.line().strip().decode()
        assert qid and os.path.exists(os.path.join(inst.dir, "queue", "tmp", qid))
        c.send(tail)
        c.close()
        wait_for(lambda: not queue_dir(inst, "tmp"), 10, "the tmp file to go")
    assert inst.log().count("queue-injectd: event=dropped") == 2
    time.sleep(0.5)
    assert queue_is_empty(inst) and not queued_ids(inst)
    assert inst.messages("alice") == []


@injectd_test()
def test_stopping_serves_the_clients_already_connected(inst):
    """SIGTERM to yubin-start: the socket's name goes at once (a new client
    runs queue-inject), and a client in the middle of its message is served
    to its end and its message queued."""
    c = Client(inst)
    c.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
    qid = c.line().strip().decode()
    c.send(netstring(b"Subject: across the stop\n\n"))
    [yubin_start] = [p for p in inst.procs if p.args[0].endswith("yubin-start")]
    yubin_start.send_signal(signal.SIGTERM)
    sock = os.path.join(inst.dir, "public", "inject")
    wait_for(lambda: not os.path.exists(sock), 10, "the socket's name to go")
    time.sleep(0.3)
    assert yubin_start.poll() is None          # still serving c
    c.send(netstring(b"body\n") + b"0:,")
    assert c.line() == b"0 queued\n"
    assert os.path.exists(os.path.join(inst.dir, "queue", "new", qid))
    c.close()
    yubin_start.wait(20)
    assert yubin_start.returncode == 0, inst.log()
    # With nothing listening, sendmail runs queue-inject (set-user-ID yubinq).
    r = subprocess.run([inst.bin("sendmail"), "alice@" + HOST], input=b"Subject: after\n\nhi\n",
                       preexec_fn=as_nobody, capture_output=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    assert len(queue_dir(inst, "new")) == 2


@injectd_test()
def test_a_dead_worker_stops_the_instance(inst):
    """A worker killed: its supervisor stops the other and exits 111, and
    yubin-start stops the instance (exit 111), for a supervisor to restart."""
    pids = wait_for(lambda: len(inst.pids("queue-injectd")) == 3 and inst.pids("queue-injectd"), 10, "3 processes")
    ppid = {}
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            ppid[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
    workers = [p for p in pids if ppid[p] in pids]
    assert len(workers) == 2, ppid
    os.kill(workers[0], signal.SIGKILL)
    [yubin_start] = [p for p in inst.procs if p.args[0].endswith("yubin-start")]
    yubin_start.wait(30)
    assert yubin_start.returncode == 111, inst.log()
    log = inst.log()
    assert "queue-injectd: event=worker-exit" in log, log
    assert "yubin-start: event=exit program=queue-injectd status=111" in log, log
    assert not os.path.exists(os.path.join(inst.dir, "public", "inject"))


@injectd_test()
def test_bad_input_gets_the_error_reply(inst):
    def refused(data):
        c = Client(inst)
        c.send(data)
        line = c.line()
        assert c.eof()
        c.close()
        return line
    assert refused(b"GET / HTTP/1.0\r\n\r\n").startswith(b"!91 ")
    assert refused(b"05:hello,").startswith(b"!91 ")
    assert refused(b"1048577:").startswith(b"!91 ")       # over the 1 MiB envelope
    assert refused(netstring(b"Fa@b\0Tc@d\0\0junk")).startswith(b"!91 ")
    assert refused(netstring(b"Fa@b\0\0")).startswith(b"!31 ")
    assert refused(netstring(envelope("a@b", ["bad\r\naddress@" + HOST]))).startswith(b"!11 ")
    assert refused(netstring(envelope("a" * 1001, ["x@" + HOST]))).startswith(b"!11 ")
    # A message netstring over 64 KiB, and garbage in the message: an error
    # reply after the id, and the file is gone.
    for bad in (b"65537:", netstring(b"ok") + b"x"):
        c = Client(inst)
        c.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
        assert re.fullmatch(rb"\d+\.\d+\.\d+\n", c.line())
        c.send(bad)
        assert c.line().startswith(b"54 ")
        assert c.eof()
        c.close()
    # Random bytes, at any point of the protocol: an error reply or a close,
    # never a crash or a hang, and the daemon serves on.
    rnd = random.Random(7)
    pids = sorted(inst.pids("queue-injectd"))
    for i in range(200):
        c = Client(inst)
        head = netstring(envelope("a@" + HOST, ["alice@" + HOST])) if i % 2 else b""
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        if i % 3 == 0:
            junk = str(rnd.randrange(1, 70000)).encode() + b":" + junk
        c.send(head + junk)
        c.close()
    wait_for(lambda: not queue_dir(inst, "tmp"), 10, "no tmp files")
    assert sorted(inst.pids("queue-injectd")) == pids
    # The biggest netstring is fine.
    c = Client(inst)
    c.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
    assert c.line()
    c.send(netstring(b"Subject: big\n\n" + b"x" * (65536 - 14)) + b"0:,")
    assert c.line() == b"0 queued\n"
    wait_for(lambda: len(inst.messages("alice")) == 1, 20, "delivery")
    wait_for(lambda: queue_is_empty(inst), 10, "an empty queue")


@injectd_test(controls={"injectdprocesses": "1"})   # one loop serves the others
def test_stalled_client_is_dropped_while_others_are_served(inst):
    stalled = Client(inst)
    stalled.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
    qid = stalled.line().strip().decode()
    stalled.send(b"10:Subj")       # and nothing more
    t0 = time.monotonic()
    for i in range(3):
        c = Client(inst)
        c.send(netstring(envelope("b@" + HOST, ["alice@" + HOST])))
        assert c.line()
        c.send(netstring(b"Subject: meanwhile %d\n\nx\n" % i) + b"0:,")
        assert c.line() == b"0 queued\n"
        c.close()
    assert time.monotonic() - t0 < TIMEOUT - 1
    assert os.path.exists(os.path.join(inst.dir, "queue", "tmp", qid))
    stalled.s.settimeout(TIMEOUT + 10)
    assert stalled.line().startswith(b"52 ")
    assert TIMEOUT - 0.5 < time.monotonic() - t0 < TIMEOUT + 5
    assert stalled.eof()
    assert not os.path.exists(os.path.join(inst.dir, "queue", "tmp", qid))
    wait_for(lambda: len(inst.messages("alice")) == 3, 20, "delivery")


@injectd_test(controls={"concurrencyinjectd": "1", "injectdprocesses": "1"})
def test_a_client_over_the_limit_waits_for_a_place(inst):
    first = Client(inst)
    first.send(netstring(envelope("a@" + HOST, ["alice@" + HOST])))
    assert first.line()
    second = Client(inst)      # connected (the backlog), not yet accepted
    second.send(netstring(envelope("b@" + HOST, ["alice@" + HOST])))
    second.s.settimeout(1)
    try:
        second.s.recv(1)
        raise AssertionError("served over the limit")
    except socket.timeout:
        pass
    first.send(b"0:,")
    assert first.line() == b"0 queued\n"
    second.s.settimeout(10)
    assert re.fullmatch(rb"\d+\.\d+\.\d+\n", second.line())
    second.send(b"0:,")
    assert second.line() == b"0 queued\n"


@injectd_test()
def test_fallback_to_queue_inject_without_the_daemon(inst):
    # Stopping the instance removes the socket: smtpd runs queue-inject.
    for p in inst.procs:
        p.terminate()
        p.wait(20)
    assert not os.path.exists(os.path.join(inst.dir, "public", "inject"))
    n = len(queued_ids(inst))
    out = smtp_dialog(inst, "yubind", b"Subject: no daemon\r\n\r\nhello\r\n")
    assert "250 2.0.0 Ok: queued as" in out, out
    # A stale socket nobody listens on (ECONNREFUSED) is the same.
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(inst.dir, "public", "inject"))
    s.close()
    os.chmod(os.path.join(inst.dir, "public", "inject"), 0o666)
    out = smtp_dialog(inst, "yubind", b"Subject: stale socket\r\n\r\nhello\r\n")
    assert "250 2.0.0 Ok: queued as" in out, out
    assert len(queue_dir(inst, "new")) == 2 and len(queued_ids(inst)) == n
    # queue-inject's own Received: line names its own pid, not smtpd's.
    # And the next start replaces the stale socket.
    inst.procs = []
    inst.start()
    wait_for(lambda: inst.log().count("queue-injectd: event=start") == 2, 10, "queue-injectd")
    assert "event=stale-socket-removed" in inst.log()
    wait_for(lambda: len(inst.messages("alice")) == 2, 20, "delivery")
    out = smtp_dialog(inst, "yubind", b"Subject: daemon again\r\n\r\nhello\r\n")
    assert "250 2.0.0 Ok: queued as" in out and len(queued_ids(inst)) == n + 1, out


def test_refuses_to_run_as_root_on_a_queue_not_roots():
    inst = SystemInstance()
    try:
        r = subprocess.run([inst.bin("queue-injectd")], capture_output=True, timeout=10)
        assert r.returncode == 111 and b"refusing to run as root on a queue" in r.stderr, r
        assert not os.path.exists(os.path.join(inst.dir, "public", "inject"))
    finally:
        inst.cleanup()


@harness.with_instance()
def test_roots_own_instance_queues_through_the_daemon(inst):
    """Root's single-user instance: queue-injectd runs as root, public/ is
    root's alone, and sendmail and smtpd queue through it."""
    inst.start()
    wait_for(lambda: "queue-injectd: event=start" in inst.read_log(), 10, "queue-injectd")
    st = os.stat(os.path.join(inst.dir, "public"))
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    r = inst.sendmail(["alice@" + HOST], b"Subject: by sendmail\n\nhi\n")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([inst.bin("smtpd")], capture_output=True, timeout=30,
                       input=b"HELO x\r\nMAIL FROM:<a@other.example>\r\nRCPT TO:<alice@" + HOST.encode() +
                       b">\r\nDATA\r\nSubject: by smtpd\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    assert b"250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    wait_for(lambda: inst.count("alice") == 2, 20, "delivery")
    assert inst.read_log().count("queue-injectd: event=queued") == 2, inst.read_log()



@harness.with_instance()
def test_ctrl_c_to_the_whole_group_is_a_clean_stop(inst):
    """Ctrl-C under make run reaches every process of the group at once:
    queue-injectd's workers may end before their supervisor hears of it,
    which is a stop, not a failure."""
    inst.start()
    wait_for(lambda: "queue-injectd: event=start" in inst.read_log(), 10, "queue-injectd")
    r = inst.sendmail(["alice@" + HOST], b"Subject: before\n\nhi\n")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: inst.count("alice") == 1, 20, "delivery")
    os.killpg(inst.proc.pid, signal.SIGINT)
    inst.proc.wait(30)
    log = inst.read_log()
    assert inst.proc.returncode == 0, log
    assert "worker-exit" not in log and "queue-injectd status=0" in log, log
    inst.proc = None


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skip %s: a system instance needs root" % os.path.basename(__file__))
        sys.exit(0)
    harness.run(globals())
