#!/usr/bin/env python3
"""Remote delivery throughput, yubin and Postfix side by side (issue 5).

N messages of 4 KiB (BENCH_REMOTE_MESSAGES, default 10000), each to R
recipients at one remote domain (BENCH_REMOTE_RCPTS, default 100), injected
with sendmail by BENCH_CONCURRENCY callers (default 8) while the system
runs, and relayed by SMTP to postfix's smtp-sink on a loopback port. The
rate is end to end: from the first injection until the last message has
left the queue (the queue is empty), in messages per second.

  yubin    a fresh single-user instance; control/smtproutes sends the
           domain to the sink; concurrencyremote 20 (the default); one
           remote-deliver and one SMTP transaction per message.
  postfix  Postfix from the Debian package, unpacked under build/debs/postfix
           (never installed) with its own config and queue under
           build/postfix-remote.*; relayhost = the sink; the smtp client at
           its default destination concurrency (20), with
           smtp_destination_recipient_limit = R so that it too sends each
           message in one transaction. Needs root; BENCH_POSTFIX=0 skips it.

Checked after each run: the sink counted N messages, and the sender logged
N * R delivered recipients. Nothing leaves the machine: both relay to an
address on loopback (no DNS, no MX lookup). Only the processes this script
started are stopped, by their process groups.

Usage: tests/bench/remote_bench.py   (BUILD selects the build directory).
As a module: run() returns {"yubin": msg/s, "postfix": msg/s or None}."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
N = int(os.environ.get("BENCH_REMOTE_MESSAGES", "10000"))
RCPTS = int(os.environ.get("BENCH_REMOTE_RCPTS", "100"))
CONC = int(os.environ.get("BENCH_CONCURRENCY", "8"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "600"))
DOMAIN = "remote.example"
SENDER = "bench@bench.example"
SIZE = 4096

sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import harness  # noqa: E402  (deb_program: apt-get download + dpkg-deb -x, never installed)

PF_ROOT = os.path.join(harness.DEBS, "postfix")
PF_LIBS = os.path.join(PF_ROOT, "usr", "lib", "postfix")
started = []


class BenchError(Exception):
    pass


def spawn(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    started.append(p)
    return p


def end_all():
    for p in started:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    started.clear()


def wait_until(pred, deadline, what, interval=0.01):
    while not pred():
        if time.monotonic() > deadline:
            raise BenchError("timed out waiting for " + what)
        time.sleep(interval)
    return time.monotonic()


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def write_messages(d):
    os.makedirs(d)
    for i in range(N):
        head = b"From: <%s>\nTo: <list@%s>\nSubject: remote bench message %d\n\n" % (
            SENDER.encode(), DOMAIN.encode(), i)
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\n"
        body = (line * (SIZE // len(line) + 1))[:SIZE - len(head) - 1] + b"\n"
        with open(os.path.join(d, str(i)), "wb") as f:
            f.write(head + body)


WORKER = r'''sm=$1 dir=$2 i=$3 end=$4; shift 4; failed=0
while [ "$i" -lt "$end" ]; do
  "$sm" -oi -f "''' + SENDER + r'''" "$@" <"$dir/$i" || failed=$((failed + 1)); i=$((i + 1))
done
[ "$failed" -gt 100 ] && failed=100; exit "$failed"'''


def inject(sendmail, msgdir, env=None):
    rcpts = ["r%d@%s" % (k, DOMAIN) for k in range(RCPTS)]
    procs = []
    for k in range(CONC):
        a, b = N * k // CONC, N * (k + 1) // CONC
        procs.append(spawn(["/bin/sh", "-c", WORKER, "worker", sendmail, msgdir, str(a), str(b)] + rcpts,
                           env=env, stderr=subprocess.DEVNULL))
    return procs


class Sink:
    """smtp-sink on 127.0.0.1:<free port>; -c prints its message counter."""

    def __init__(self, tmp):
        prog = harness.deb_program("postfix", "/usr/sbin/smtp-sink")
        self.port = free_port()
        self.out = open(os.path.join(tmp, "sink-%d.out" % self.port), "w+b")
        env = dict(os.environ, LD_LIBRARY_PATH=PF_LIBS)
        self.proc = spawn([prog, "-u", "nobody", "-c", "127.0.0.1:%d" % self.port, "1024"], env=env,
                          stdout=self.out, stderr=subprocess.STDOUT)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        wait_until(up, time.monotonic() + 10, "smtp-sink to listen")

    def messages(self):
        self.out.flush()
        with open(self.out.name, "rb") as f:
            counts = re.findall(rb"mesg=(\d+)", f.read()[-4096:])
        return int(counts[-1]) if counts else 0


def measure(name, queue_count, sendmail, msgdir, sink, delivered_count, env=None, dead=None):
    """Injection and delivery at once; returns msg/s end to end."""
    before = sink.messages()
    b0, t0j = busy_jiffies()
    t0 = time.monotonic()
    procs = inject(sendmail, msgdir, env)
    deadline = t0 + TIMEOUT
    for p in procs:
        p.wait(max(0.1, deadline - time.monotonic()))
        if p.returncode:
            raise BenchError("%s: %d sendmail calls failed" % (name, p.returncode))
    t_inj = time.monotonic()

    def done():
        if dead and dead():
            raise BenchError(name + " died: " + dead())
        return queue_count() == 0 and sink.messages() - before >= N
    t_end = wait_until(done, deadline, name + " to deliver every message", 0.02)
    b1, t1j = busy_jiffies()
    wall = t_end - t0
    got = sink.messages() - before
    rcpts = delivered_count()
    if got != N or rcpts != N * RCPTS:
        raise BenchError("%s: the sink took %d messages (expected %d); %d recipients delivered (expected %d)"
                         % (name, got, N, rcpts, N * RCPTS))
    print("%s: %d messages x %d recipients in %.2f s = %.0f msg/s end to end (injection done at %.2f s = "
          "%.0f msg/s); machine %.0f%% busy; verified: %d messages at the sink, %d recipients delivered"
          % (name, N, RCPTS, wall, N / wall, t_inj - t0, N / (t_inj - t0), 100.0 * (b1 - b0) / max(1, t1j - t0j),
             got, rcpts), flush=True)
    return N / wall


# ---------------------------------------------------------------- yubin

def run_yubin(tmp, msgdir, sink):
    d = os.path.join(tmp, "yubin")
    subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", d, "--hostname", "bench.example"],
                   check=True, stdout=subprocess.DEVNULL, timeout=30)
    for name, value in (("smtproutes", "%s:127.0.0.1:%d" % (DOMAIN, sink.port)), ("dnsservers", "127.0.0.1:1"),
                        ("concurrencyremote", "20")):
        with open(os.path.join(d, "control", name), "w") as f:
            f.write(value + "\n")
    logpath = os.path.join(tmp, "yubin.log")
    log = open(logpath, "ab")
    proc = spawn([os.path.join(d, "bin", "yubin-start")], stdout=log, stderr=log)
    wait_until(lambda: b"queue-manager: event=start" in open(logpath, "rb").read(), time.monotonic() + 20,
               "yubin-start")

    def count():
        q = os.path.join(d, "queue")
        return sum(len(os.listdir(os.path.join(q, s))) for s in ("new", "cur"))

    def delivered():
        with open(logpath, "rb") as f:
            return f.read().count(b" result=ok relay=")
    try:
        return measure("yubin", count, os.path.join(d, "bin", "sendmail"), msgdir, sink, delivered,
                       dead=lambda: proc.poll() is not None and "yubin-start exited")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------- postfix

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def ensure_postfix_accounts():
    if os.geteuid() != 0:
        raise BenchError("Postfix needs root (its queue belongs to the postfix user)")
    if subprocess.run(["getent", "group", "postdrop"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "--system", "postdrop"], check=True, capture_output=True)
    if subprocess.run(["getent", "passwd", "postfix"], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "postfix"], check=True, capture_output=True)


def run_postfix(msgdir, sink):
    harness.deb_program("postfix", "/usr/sbin/postfix")
    ensure_postfix_accounts()
    sbin, daemons = os.path.join(PF_ROOT, "usr", "sbin"), os.path.join(PF_ROOT, "usr", "lib", "postfix", "sbin")
    d = tempfile.mkdtemp(prefix="postfix-remote.", dir=BUILD)
    try:
        os.chmod(d, 0o755)
        etc = os.path.join(d, "etc")
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(d, sub))
        shutil.chown(os.path.join(d, "data"), "postfix")
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(MASTER_CF)
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6", "queue_directory = %s/spool" % d, "data_directory = %s/data" % d,
                "command_directory = " + sbin, "daemon_directory = " + daemons, "shlib_directory = " + PF_LIBS,
                "meta_directory = %s/etc/postfix" % PF_ROOT, "sendmail_path = %s/sendmail" % sbin,
                "mailq_path = %s/usr/bin/mailq" % PF_ROOT, "newaliases_path = %s/usr/bin/newaliases" % PF_ROOT,
                "manpage_directory = %s/usr/share/man" % PF_ROOT, "mail_owner = postfix",
                "setgid_group = postdrop", "myhostname = bench.example", "mydomain = bench.example",
                "myorigin = bench.example", "mydestination =", "alias_maps =", "alias_database =",
                "local_recipient_maps =", "relayhost = [127.0.0.1]:%d" % sink.port,
                "smtp_destination_recipient_limit = %d" % RCPTS, "relay_destination_recipient_limit = %d" % RCPTS,
                "default_destination_concurrency_limit = 20", "smtp_tls_security_level = none",
                "inet_interfaces = loopback-only", "inet_protocols = ipv4", "smtputf8_enable = no",
                "biff = no", "maillog_file = %s/maillog" % d, "maillog_file_prefixes = " + d,
                "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=" + PF_LIBS,
                "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH", ""]))
        env = dict(os.environ, LD_LIBRARY_PATH=PF_LIBS, MAIL_CONFIG=etc)
        r = subprocess.run([os.path.join(sbin, "postfix"), "-c", etc, "check"], env=env, capture_output=True,
                           timeout=120)
        if r.returncode != 0:
            raise BenchError("postfix check failed: " + r.stderr.decode(errors="replace")[-500:])
        spool = os.path.join(d, "spool")
        master = spawn([os.path.join(daemons, "master"), "-c", etc, "-w"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        master.wait(30)
        wait_until(lambda: os.path.exists(os.path.join(spool, "pid", "master.pid")), time.monotonic() + 30,
                   "postfix master")

        def count():
            return sum(len(files) for q in ("maildrop", "incoming", "active", "deferred", "hold")
                       for _p, _d, files in os.walk(os.path.join(spool, q)))

        def delivered():
            try:
                with open(os.path.join(d, "maillog"), "rb") as f:
                    return f.read().count(b" status=sent ")
            except FileNotFoundError:
                return 0
        try:
            return measure("postfix", count, os.path.join(sbin, "sendmail"), msgdir, sink, delivered,
                           env=env)
        finally:
            subprocess.run([os.path.join(sbin, "postfix"), "-c", etc, "stop"], env=env, capture_output=True,
                           timeout=60)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(d, ignore_errors=True)


def run(tmp=None):
    own = tmp is None
    tmp = tmp or tempfile.mkdtemp(prefix="yubin-remote-bench.")
    try:
        msgdir = os.path.join(tmp, "remote-messages")
        write_messages(msgdir)
        sink = Sink(tmp)
        print("remote: %d messages of %d bytes, each to %d recipients at %s, %d injecting callers, relayed to "
              "smtp-sink on 127.0.0.1:%d" % (N, SIZE, RCPTS, DOMAIN, CONC, sink.port), flush=True)
        res = {"yubin": run_yubin(tmp, msgdir, sink), "postfix": None}
        if os.environ.get("BENCH_POSTFIX", "auto") != "0":
            try:
                res["postfix"] = run_postfix(msgdir, sink)
            except (BenchError, OSError, RuntimeError, subprocess.SubprocessError) as e:
                if os.environ.get("BENCH_POSTFIX") == "1":
                    raise
                print("postfix: skipped (%s)" % e, flush=True)
        if res["postfix"]:
            print("remote summary: yubin %.0f msg/s, postfix %.0f msg/s, ratio yubin/postfix %.2f"
                  % (res["yubin"], res["postfix"], res["yubin"] / res["postfix"]), flush=True)
        return res
    finally:
        end_all()
        if own and os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        run()
    except BenchError as e:
        print("remote bench failed: %s" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        end_all()
        sys.exit(130)
