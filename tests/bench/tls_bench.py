#!/usr/bin/env python3
"""make bench, TLS and authentication (issue 13): the submission service
and POP3 logins over TLS, yubin against Postfix (with Dovecot's SASL) and
Dovecot, everything on 127.0.0.1 on ports chosen free at run time.

Certificates: a private CA (EC P-256) and a server certificate for
bench.example (RSA 2048) signed by it, made at run time with openssl
(tests/integration/tls_helpers.py); both servers get the same files, and
the clients verify the chain and the name. Every connection makes a full
handshake (no session resumption: each is a new client). Both servers
negotiate TLS 1.3 with the Python client.

Passwords. yubin: users/passwd, PBKDF2-HMAC-SHA256 with 100,000 rounds,
checked by yubin-authd, which remembers right answers (one PBKDF2 per user
and password, then an HMAC). Dovecot: passwd-file with {PBKDF2} at
100,000 rounds (PBKDF2-HMAC-SHA1, Dovecot's own implementation; the
strongest of its schemes here that compares with yubin's), auth_cache_size
= 10M. Dovecot's passwd-file passdb has no cache key, so the auth cache is
never used for it (SIGUSR2 to auth: "hits 0/0"), and where the cache is
used it holds the hash, which each login verifies again: every Dovecot
login runs the whole PBKDF2, in its one auth process. That caps Postfix's
submission and Dovecot's POP3 near 10 logins/s whatever else they do, so
(a) they run fewer connections there (BENCH_TLS_PBKDF2_CONNECTIONS 300,
BENCH_TLS_PBKDF2_LOGINS 100 a row) and (b) each runs again, as
"postfix/SSHA512" and "dovecot/SSHA512", with {SSHA512} (one salted
SHA-512: about what a remembered answer costs yubin-authd) on the full
counts: the control that compares TLS, SMTP, POP3 and the processes.

1. SMTP submission. N connections (BENCH_TLS_CONNECTIONS, 2000), each
   EHLO, STARTTLS, EHLO, AUTH PLAIN, one message of 4096 bytes (MAIL, RCPT,
   DATA; no pipelining) and QUIT, C at once (BENCH_TLS_CONCURRENCY, 10),
   against
     yubin    a fresh single-user instance (user u, control/tlscert and
              tlskey), yubin-start running (queue-injectd, queue-manager,
              local delivery into u's Maildir, concurrencylocal 10, and
              yubin-authd), `yubin-listen -c 200 -m 100 127.0.0.1 PORT
              smtpd -s` (-c 200 for the 100 idle sessions below);
     postfix  Postfix from build/postfix (postfix.py: its own config, queue
              and Maildir under build/postfix-run.*, inet_interfaces
              loopback-only, smtp_dns_support_level disabled) with smtpd on
              a free port: smtpd_tls_security_level = may,
              smtpd_tls_auth_only = yes, SASL through a private Dovecot's
              auth service (smtpd_sasl_type = dovecot, smtpd_sasl_path =
              its unix_listener), relaying only for permit_sasl_authenticated;
              qmgr and virtual(8) deliver into a Maildir
              (virtual_destination_concurrency_limit 10).
   After the clients, every message must be in the Maildir, each index
   once, its body byte for byte. msg/s is the connections over the clients'
   wall time (a message counts at its 250). "server cpu" is the CPU time of
   every process of the server (yubin: yubin-listen, smtpd, yubin-start and
   all under it: yubin-authd, queue-injectd, queue-manager, the spawners,
   local-deliver; postfix: master and all its daemons, and Dovecot's
   master, auth and the rest), from the clients' start until the last
   message is delivered, per connection: utime+stime of the live processes
   plus cutime+cstime (what they reaped) from /proc, so processes that
   exited in between count too. The split by program comes from samples of
   /proc every 0.2 s ("exited children of P (names)": what exited processes
   used after their last sample, or in all when never sampled). The clients
   are C processes (multiprocessing, one connection at a time each,
   Python's ssl); their CPU is printed too. "EHLO after TLS >= 35 ms": the
   connections whose reply to the EHLO after the handshake came 40 ms late.
   That reply waits in the server's socket (Nagle) until the client's
   delayed ACK of the TLS 1.3 session ticket, which the server sends just
   after the handshake and which the client had not yet received when it
   sent its EHLO; neither server sets TCP_NODELAY.
   Memory: the servers started afresh, 100 sessions held open after EHLO,
   STARTTLS, EHLO and AUTH; the sum of Pss (/proc/PID/smaps_rollup) over
   all the server's processes with them, minus the sum before, over 100.
2. POP3 logins. M logins (BENCH_TLS_LOGINS, 500) of connect, STLS (or
   implicit TLS on the second port), USER, PASS, STAT, QUIT, one at a time
   and C at once, against yubin's pop3d (`yubin-listen -c 200 127.0.0.1
   PORT pop3d` and `... pop3d -T`; yubin-start running for yubin-authd;
   control/pop3plaintext no) and Dovecot's pop3 (ssl = required,
   disable_plaintext_auth = yes, Dovecot's defaults otherwise: a pop3-login
   and a pop3 process for each connection, service_count = 1), on copies of
   the same 10 users' Maildirs of 10 messages (client k logs in as user k:
   yubin's pop3d locks a mailbox for the session). Printed: logins/s, the
   median latency and each step's, the first login after the server's
   start (nothing remembered yet) and the second, the server's CPU per
   login; then the CPU of one start of each of yubin's programs in a login
   (pop3d with and without a certificate, smtpd, /bin/true: pop3d builds
   its TLS context at every start, and a TLS login starts it twice).
3. Where the time goes: each SMTP server once more, one connection at a
   time (BENCH_TLS_SEQUENTIAL, 200), the client timing every step (connect
   and greeting, EHLO and STARTTLS, the handshake, EHLO, AUTH, the message,
   QUIT), and with perf (when it is there; BENCH_TLS_PERF=0 skips it)
   yubin at concurrency C under `perf record -a`: the share of the CPU by
   program, smtpd's samples by object and its top functions.

Environment: BUILD, BENCH_TLS_CONNECTIONS (2000), BENCH_TLS_LOGINS (500),
BENCH_TLS_PBKDF2_CONNECTIONS (300), BENCH_TLS_PBKDF2_LOGINS (100),
BENCH_TLS_CONCURRENCY (10), BENCH_TLS_SEQUENTIAL (200; 0 skips part 3),
BENCH_TLS_PERF (auto; 0 skips perf), BENCH_POSTFIX and BENCH_DOVECOT
(auto; 0 skips, 1 makes a failure to set it up fatal; Postfix needs
Dovecot for SASL), BENCH_TIMEOUT (seconds per run, 600), BENCH_KEEP=1.
Everything started here is stopped at the end, also on failure."""
import base64
import grp
import multiprocessing
import multiprocessing.connection
import os
import pwd
import re
import shutil
import signal
import socket
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import benchlib      # noqa: E402
import postfix       # noqa: E402
import pop3_bench    # noqa: E402  (ensure_dovecot)
import tls_helpers   # noqa: E402
from benchlib import BUILD, HOST, PHASE_TIMEOUT, BenchError, Meter, free_port, spawn, wait_bounded, wait_port  # noqa: E402

N_CONN = int(os.environ.get("BENCH_TLS_CONNECTIONS", "2000"))
N_LOGIN = int(os.environ.get("BENCH_TLS_LOGINS", "500"))
CONC = int(os.environ.get("BENCH_TLS_CONCURRENCY", "10"))
N_SEQ = int(os.environ.get("BENCH_TLS_SEQUENTIAL", "200"))
N_PB_CONN = min(N_CONN, int(os.environ.get("BENCH_TLS_PBKDF2_CONNECTIONS", "300")))
N_PB_LOGIN = min(N_LOGIN, int(os.environ.get("BENCH_TLS_PBKDF2_LOGINS", "100")))
STALL = 0.035                     # a step this long: a delayed-ACK stall (40 ms on Linux)
IDLE = 100
ROUNDS = 100000                  # PBKDF2 rounds, as yubin-user's hashes
PASSWORD = "bench-password"
USER = "u"
RCPT = USER + "@" + HOST
HELO = b"client.example"
POP_USERS = ["p%d" % k for k in range(max(CONC, 1))]
POP_MESSAGES = 10
OWNER = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
SAMPLE = 0.2                      # seconds between /proc samples
HZ = benchlib.HZ

workers = []      # client processes, ended at cleanup
stoppers = []     # servers' stop functions, called at the end whatever happens


class ProtocolError(Exception):
    pass


class Unavailable(Exception):
    pass


def as_owner():
    if OWNER:
        os.setgroups([])
        os.setgid(OWNER.pw_gid)
        os.setuid(OWNER.pw_uid)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- /proc

def snapshot():
    """{pid: (ppid, comm, own cpu ticks, reaped children's cpu ticks)}."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    s = f.read()
            except OSError:
                continue
            head, _, tail = s.rpartition(")")
            x = tail.split()
            comm = head.split("(", 1)[1] if "(" in head else "?"
            # after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            out[int(p)] = (int(x[1]), comm, int(x[11]) + int(x[12]), int(x[13]) + int(x[14]))
    return out


def tree(table, roots):
    """The pids under roots (included) in a snapshot."""
    kids = {}
    for pid, v in table.items():
        kids.setdefault(v[0], []).append(pid)
    todo, seen = [r for r in roots if r in table], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(kids.get(pid, ()))
    return seen


class CpuAccount:
    """The CPU time of the process trees under roots() between start() and
    stop(): exact in total (own plus reaped time of every live member), and
    split by program through samples (sample() as often as you like)."""

    def __init__(self, roots):
        self.roots = roots

    def start(self):
        t = snapshot()
        self.base = {pid: t[pid] for pid in tree(t, self.roots())}
        self.last = dict(self.base)
        self.total0 = sum(v[2] + v[3] for v in self.base.values())

    def sample(self):
        t = snapshot()
        for pid in tree(t, self.roots()):
            self.last[pid] = t[pid]
        return t

    def stop(self):
        t = self.sample()
        alive = tree(t, self.roots())
        self.total = (sum(t[p][2] + t[p][3] for p in alive) - self.total0) / HZ
        split, kinds = {}, {}

        def add(label, ticks):
            split[label] = split.get(label, 0) + ticks
        for pid, (ppid, comm, own, reaped) in self.last.items():
            b = self.base.get(pid, (ppid, comm, 0, 0))
            add(comm, own - b[2])
            add("exited children of " + comm, reaped - b[3])
            if pid not in alive:
                # reaped by its parent, whose reaped time holds all of it
                parent = self.last.get(ppid)
                if parent is not None:
                    add("exited children of " + parent[1], -(own + reaped))
                    kinds.setdefault(parent[1], set()).add(comm)
        named = {}
        for k, v in split.items():
            if k.startswith("exited children of ") and k[19:] in kinds:
                k = "%s (%s)" % (k, "/".join(sorted(kinds[k[19:]])))
            named[k] = v
        self.split = {k: v / HZ for k, v in named.items() if v}
        return self.total

    def describe(self, n, top=8):
        items = sorted(self.split.items(), key=lambda kv: -kv[1])
        shown = ["%s %.2f" % (k, 1000 * v / n) for k, v in items if v > 0.005 * self.total][:top]
        return ", ".join(shown)


def pss(pids):
    """Sum of Pss (KiB) over pids, and how many were read."""
    tot, n = 0, 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        tot += int(line.split()[1])
                        n += 1
                        break
        except OSError:
            pass
    return tot, n


# ---------------------------------------------------------------- clients

class Wire:
    """Lines from a socket (plain or TLS) and the replies of SMTP and POP3."""
    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self.buf[:i]
                self.buf = self.buf[i + 2:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("connection closed (after %r)" % self.buf[-200:])
            self.buf += chunk

    def smtp(self, send, expect):
        if send:
            self.sock.sendall(send)
        while True:
            line = self.line()
            if line[3:4] != b"-":
                break
        if not line.startswith(expect):
            raise ProtocolError("%r: %r" % (send[:40] if send else "greeting", line))
        return line

    def pop(self, send):
        if send:
            self.sock.sendall(send)
        line = self.line()
        if not line.startswith(b"+OK"):
            raise ProtocolError("%r: %r" % (send.split(b" ")[0] if send else "greeting", line))
        return line


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), 30)
    s.settimeout(30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


SMTP_STEPS = ("connect+greeting", "EHLO+STARTTLS", "TLS handshake", "EHLO", "AUTH", "message", "QUIT")
AUTH_PLAIN = b"AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()) + b"\r\n"


def smtp_session(port, ctx, data, hold=False):
    """One submission: returns the times of its steps (or, with hold, the
    connection after AUTH)."""
    now = time.monotonic
    t = [now()]
    s = connect(port)
    w = Wire(s)
    ok = False
    try:
        w.smtp(None, b"220")
        t.append(now())
        w.smtp(b"EHLO " + HELO + b"\r\n", b"250")
        w.smtp(b"STARTTLS\r\n", b"220")
        if w.buf:
            raise ProtocolError("bytes after 220 to STARTTLS")
        t.append(now())
        w.sock = ctx.wrap_socket(s, server_hostname=HOST)
        t.append(now())
        w.smtp(b"EHLO " + HELO + b"\r\n", b"250")
        t.append(now())
        w.smtp(AUTH_PLAIN, b"235")
        t.append(now())
        if hold:
            ok = True
            return w
        w.smtp(b"MAIL FROM:<" + RCPT.encode() + b">\r\n", b"250")
        w.smtp(b"RCPT TO:<" + RCPT.encode() + b">\r\n", b"250")
        w.smtp(b"DATA\r\n", b"354")
        w.smtp(data, b"250")
        t.append(now())
        w.smtp(b"QUIT\r\n", b"221")
        t.append(now())
    finally:
        if not (hold and ok):
            w.sock.close()
    return tuple(b - a for a, b in zip(t, t[1:]))


POP_STEPS = {"stls": ("connect+greeting", "STLS", "TLS handshake", "USER+PASS", "STAT", "QUIT"),
             "tls": ("connect", "TLS handshake", "greeting", "USER+PASS", "STAT", "QUIT")}


def pop3_session(port, ctx, mode, user):
    now = time.monotonic
    t = [now()]
    s = connect(port)
    try:
        if mode == "tls":
            t.append(now())
            s = ctx.wrap_socket(s, server_hostname=HOST)
            t.append(now())
            w = Wire(s)
            w.pop(None)
            t.append(now())
        else:
            w = Wire(s)
            w.pop(None)
            t.append(now())
            w.pop(b"STLS\r\n")
            if w.buf:
                raise ProtocolError("bytes after +OK to STLS")
            t.append(now())
            s = w.sock = ctx.wrap_socket(s, server_hostname=HOST)
            t.append(now())
        w.pop(b"USER " + user.encode() + b"\r\n")
        w.pop(b"PASS " + PASSWORD.encode() + b"\r\n")
        t.append(now())
        stat = w.pop(b"STAT\r\n").split()
        if int(stat[1]) != POP_MESSAGES:
            raise ProtocolError("STAT says %s messages, not %d" % (stat[1], POP_MESSAGES))
        t.append(now())
        w.pop(b"QUIT\r\n")
        t.append(now())
    finally:
        s.close()
    return tuple(b - a for a, b in zip(t, t[1:]))


def worker(k, job, counter, go, out, deadline):
    """A client process: sessions until counter reaches job["n"]."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ctx = client_context(job["ca"])
    recs, errs = [], []
    go.wait(60)
    try:
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            if i >= job["n"]:
                break
            if time.monotonic() > deadline:
                errs.append("client %d: out of time at %d" % (k, i))
                break
            try:
                if job["kind"] == "smtp":
                    recs.append(smtp_session(job["port"], ctx, job["data"][i]))
                else:
                    recs.append(pop3_session(job["port"], ctx, job["mode"], job["users"][k % len(job["users"])]))
            except (OSError, ProtocolError, ssl.SSLError) as e:
                errs.append("connection %d: %s: %s" % (i, type(e).__name__, e))
                if len(errs) >= 10:
                    break
    finally:
        c = os.times()
        out.send({"recs": recs, "errs": errs, "cpu": c.user + c.system, "end": time.monotonic()})
        out.close()


def run_clients(job, conc, account, timeout=PHASE_TIMEOUT):
    """conc client processes on job; account (a CpuAccount) measures the
    server meanwhile. Returns wall, the step times, client CPU, Meter."""
    mp = multiprocessing.get_context("fork")
    counter = mp.Value("i", 0)
    go = mp.Event()
    conns, procs = [], []
    deadline = time.monotonic() + timeout
    for k in range(conc):
        r, w = mp.Pipe(duplex=False)
        p = mp.Process(target=worker, args=(k, job, counter, go, w, deadline))
        p.start()
        w.close()
        conns.append(r)
        procs.append(p)
        workers.append(p)
    account.start()
    meter = Meter(benchlib.TOP)
    t0 = time.monotonic()
    go.set()
    results, pending = [], list(conns)
    next_sample = t0 + SAMPLE
    while pending:
        if time.monotonic() > deadline + 30:
            raise BenchError("clients did not finish in time (BENCH_TIMEOUT=%.0f)" % timeout)
        for c in multiprocessing.connection.wait(pending, timeout=SAMPLE):
            try:
                results.append(c.recv())
            except EOFError:
                results.append({"recs": [], "errs": ["a client process died"], "cpu": 0, "end": time.monotonic()})
            pending.remove(c)
        if time.monotonic() >= next_sample:
            account.sample()
            next_sample = time.monotonic() + SAMPLE
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join(5)
    wall = max(r["end"] for r in results) - t0
    meter.stop(t0 + wall)
    recs = [x for r in results for x in r["recs"]]
    errs = [x for r in results for x in r["errs"]]
    if errs or len(recs) != job["n"]:
        raise BenchError("%d of %d sessions done; errors: %s" % (len(recs), job["n"], " | ".join(errs[:4])))
    return {"wall": wall, "recs": recs, "client_cpu": sum(r["cpu"] for r in results), "meter": meter}


def medians(recs):
    return [statistics.median(col) for col in zip(*recs)]


# ---------------------------------------------------------------- messages

def wire_message(i):
    body = benchlib.make_message(i).replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    return body + b".\r\n"


def verify_maildir(maildir, n):
    """Each message 0..n-1 exactly once in new/ or cur/, body byte for byte."""
    seen = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                head, _, body = f.read().partition(b"\n\n")
            m = benchlib.SUBJECT.search(head)
            if not m:
                raise BenchError("%s: no bench Subject" % name)
            i = int(m.group(1))
            if i in seen:
                raise BenchError("message %d delivered twice" % i)
            seen[i] = name
            if body != benchlib.make_message(i).partition(b"\n\n")[2]:
                raise BenchError("message %d: body differs (%s)" % (i, name))
    if len(seen) != n or set(seen) != set(range(n)):
        raise BenchError("%d of %d messages delivered" % (len(seen), n))


def maildir_count(maildir):
    return sum(len(os.listdir(os.path.join(maildir, s))) for s in ("new", "cur"))


def write_pop_maildir(md, uid=None, gid=None):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i in range(POP_MESSAGES):
        p = os.path.join(md, "new", "%d.M%dP1Q%d.bench.example" % (1700000000 + i, i, i))
        with open(p, "wb") as f:
            f.write(benchlib.make_message(i))
    if uid is not None:
        for root, dirs, files in os.walk(os.path.dirname(md)):
            for x in [root] + [os.path.join(root, y) for y in dirs + files]:
                os.chown(x, uid, gid)


# ---------------------------------------------------------------- yubin

class Yubin:
    """A fresh single-user instance with TLS, yubin-start running, and
    yubin-listen for each of listeners: [(name, [yubin-listen args], [program and args])]."""
    name = "yubin"

    def __init__(self, tmp, tag, cert, users, listeners, pop=False):
        self.dir = os.path.join(tmp, "yubin-" + tag)
        self.procs, self.ports, self.log = [], {}, None
        stoppers.append(self.stop)
        if OWNER:
            os.mkdir(self.dir, 0o755)
            os.chown(self.dir, OWNER.pw_uid, OWNER.pw_gid)
        subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", self.dir, "--hostname", HOST],
                       check=True, stdout=subprocess.DEVNULL, timeout=30, preexec_fn=as_owner)
        for u in users:
            subprocess.run([self.bin("yubin-user"), "add", u], input=(PASSWORD + "\n").encode(), check=True,
                           timeout=30, stdout=subprocess.DEVNULL, preexec_fn=as_owner)
            if pop:
                write_pop_maildir(os.path.join(self.dir, "home", u, "Maildir"),
                                  *((OWNER.pw_uid, OWNER.pw_gid) if OWNER else ()))
        for name, value in (("concurrencylocal", "10"), ("pop3plaintext", "no")):
            with open(os.path.join(self.dir, "control", name), "w") as f:
                f.write(value + "\n")
        for src, name in ((cert[0], "tlscert"), (cert[1], "tlskey")):
            dst = os.path.join(self.dir, "control", name)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if OWNER:
                os.chown(dst, OWNER.pw_uid, OWNER.pw_gid)
        self.maildir = os.path.join(self.dir, "home", USER, "Maildir")
        self.logpath = os.path.join(tmp, "yubin-%s.log" % tag)
        self.log = open(self.logpath, "ab")
        self.start_proc = spawn([self.bin("yubin-start")], stdout=self.log, stderr=self.log, preexec_fn=as_owner)
        self.procs.append(self.start_proc)
        benchlib.wait_until(lambda: self.dead() or (os.path.exists(self.path("auth/socket")) and
                                                     os.path.exists(self.path("public/inject")) and
                                                     b"queue-manager: event=start" in self.read_log()),
                            time.monotonic() + 30, "yubin-start (auth/socket, public/inject)")
        if self.dead():
            raise BenchError(self.dead())
        for name, opts, prog in listeners:
            port = free_port()
            p = spawn([self.bin("yubin-listen")] + opts + ["127.0.0.1", str(port), self.bin(prog[0])] + prog[1:],
                      stdout=self.log, stderr=self.log, preexec_fn=as_owner)
            self.procs.append(p)
            self.ports[name] = port
            wait_port(port, self.dead, "yubin-listen " + name)

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def read_log(self):
        if self.log:
            self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read()

    def dead(self):
        for p in self.procs:
            if p.poll() is not None:
                return "%s exited %s: %s" % (os.path.basename(p.args[0]), p.returncode,
                                             self.read_log()[-1500:].decode(errors="replace"))
        return None

    def roots(self):
        return [p.pid for p in self.procs]

    def pids(self):
        return tree(snapshot(), self.roots())

    def authd_counts(self):
        """(checks, remembered) from yubin-authd's stop line (after stop())."""
        m = re.findall(rb"yubin-authd: event=stop checks=(\d+) remembered=(\d+)", self.read_log())
        return tuple(int(x) for x in m[-1]) if m else None

    def queued(self):
        q = os.path.join(self.dir, "queue")
        return sum(len(os.listdir(os.path.join(q, d))) for d in ("new", "cur"))

    def stop(self):
        if self.stop in stoppers:
            stoppers.remove(self.stop)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                wait_bounded(p, 30)
            benchlib.end_group(p)
        if self.log:
            self.log.close()
            self.log = None


# ---------------------------------------------------------------- dovecot

def dovecot_hash(scheme):
    cmd = ["doveadm", "pw", "-s", scheme, "-p", PASSWORD] + (["-r", str(ROUNDS)] if scheme == "PBKDF2" else [])
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    h = r.stdout.decode().strip()
    if r.returncode != 0 or not h.startswith("{%s}" % scheme):
        raise Unavailable("doveadm pw -s %s failed: %s" % (scheme, r.stderr.decode()[-300:]))
    return h


class Dovecot:
    """A private Dovecot with its own configuration under tmp/dovecot-TAG:
    the auth service (passwd-file, PBKDF2, cache on) and either a
    unix_listener for Postfix (sasl_socket) or POP3 on two free ports.
    scheme PBKDF2: 100,000 rounds; SSHA512: one salted SHA-512, the control.
    Its passwd-file passdb never goes through the auth cache (it has no
    cache key: cache_stats() says hits 0/0), and where the cache is used it
    holds the hash, which every login verifies again; so every login hashes,
    in the one auth process (auth_cache_verify_password_with_worker moves
    only cached verifications to workers, so it would change nothing)."""
    name = "dovecot"

    def __init__(self, tmp, tag, users, sasl_socket=None, cert=None, scheme="PBKDF2"):
        pop3_bench.ensure_dovecot()
        if os.geteuid() != 0:
            raise Unavailable("dovecot's master needs root here")
        d = self.dir = os.path.join(tmp, "dovecot-" + tag)
        home = os.path.join(d, "home")
        os.makedirs(home)
        self.proc = self.log = None
        stoppers.append(self.stop)
        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        with open(os.path.join(d, "passwd"), "w") as f:
            for u in users:
                f.write("%s:%s\n" % (u, dovecot_hash(scheme)))
        self.ports = {}
        common = """instance_name = yubin-tls-bench-{tag}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = 127.0.0.1
auth_mechanisms = plain login
auth_cache_size = 10M
auth_cache_ttl = 1 hour
passdb {{
  driver = passwd-file
  args = scheme={scheme} {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}
"""
        if sasl_socket:
            extra = """protocols =
ssl = no
service auth {{
  unix_listener {sock} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
""".format(sock=sasl_socket)
        else:
            for u in users:
                write_pop_maildir(os.path.join(home, u, "Maildir"), uid, gid)
            self.ports = {"stls": free_port(), "tls": free_port()}
            extra = """protocols = pop3
ssl = required
ssl_cert = <{chain}
ssl_key = <{key}
disable_plaintext_auth = yes
mail_location = maildir:~/Maildir
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {p1}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {p2}
    ssl = yes
  }}
}}
""".format(chain=cert[0], key=cert[1], p1=self.ports["stls"], p2=self.ports["tls"])
        self.conf = os.path.join(d, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(common.format(tag=tag, d=d, uid=uid, gid=gid, home=home, scheme=scheme) + extra)
        self.log = open(os.path.join(d, "dovecot.out"), "ab")
        self.proc = spawn(["/usr/sbin/dovecot", "-F", "-c", self.conf], stdout=self.log, stderr=self.log)
        if sasl_socket:
            benchlib.wait_until(lambda: os.path.exists(sasl_socket) or self.dead(), time.monotonic() + 30,
                                "dovecot's auth socket")
        for name, port in self.ports.items():
            wait_port(port, self.dead, "dovecot " + name)
        if self.dead():
            raise BenchError(self.dead())

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def dead(self):
        if self.proc is not None and self.proc.poll() is not None:
            return "dovecot exited %s: %s" % (self.proc.returncode, self.log_tail())
        return None

    def roots(self):
        return [self.proc.pid] if self.proc else []

    def pids(self):
        return tree(snapshot(), self.roots())

    def cache_stats(self):
        """Dovecot's auth cache hits and misses (SIGUSR2 to auth makes it log them)."""
        t = snapshot()
        mine = tree(t, self.roots())
        pids = [p for p in mine if t[p][1] == "auth"]
        if not pids:
            return "?"
        os.kill(pids[0], signal.SIGUSR2)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            m = re.findall(r"cache hits? .*", self.log_tail())
            if m:
                return m[-1].strip()
            time.sleep(0.05)
        return "?"

    def stop(self):
        if self.stop in stoppers:
            stoppers.remove(self.stop)
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                wait_bounded(self.proc, 20)
            benchlib.end_group(self.proc)
        if self.log:
            self.log.close()


# ---------------------------------------------------------------- postfix

class PostfixSubmission:
    """Postfix's smtpd on a free loopback port with TLS and SASL through a
    private Dovecot; qmgr and virtual(8) deliver into a Maildir."""
    name = "postfix"

    def __init__(self, tmp, tag, cert, scheme="PBKDF2"):
        self.pf = None
        self.name = "postfix" if scheme == "PBKDF2" else "postfix/%s" % scheme
        stoppers.append(self.stop)
        self.port = free_port()
        sock = os.path.join(tmp, "dovecot-%s-auth" % tag)
        self.dovecot = Dovecot(tmp, tag, [USER], sasl_socket=sock, scheme=scheme)
        master_cf = (postfix.MASTER_CF + "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"
                     "127.0.0.1:%d inet n - n - 150 smtpd\n" % self.port)
        extra = ["smtp_dns_support_level = disabled",
                 "smtpd_peername_lookup = no",
                 "smtpd_tls_security_level = may",
                 "smtpd_tls_cert_file = " + cert[0],
                 "smtpd_tls_key_file = " + cert[1],
                 "smtpd_tls_auth_only = yes",
                 "smtpd_tls_received_header = yes",
                 "smtpd_sasl_auth_enable = yes",
                 "smtpd_sasl_type = dovecot",
                 "smtpd_sasl_path = " + sock,
                 "smtpd_recipient_restrictions = permit_sasl_authenticated, reject",
                 "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
                 "smtpd_client_connection_count_limit = 0",
                 "smtpd_client_connection_rate_limit = 0"]
        self.pf = postfix.Postfix(master_cf, extra)
        self.maildir = os.path.dirname(self.pf.maildir_new)
        self.pf.start()
        wait_port(self.port, self.dead, "postfix smtpd")

    def dead(self):
        return self.pf.dead() or self.dovecot.dead()

    def roots(self):
        pid = self.pf.master_pid()
        return ([pid] if pid else []) + self.dovecot.roots()

    def pids(self):
        return tree(snapshot(), self.roots())

    def queued(self):
        return self.pf.queue_count()

    def cache_stats(self):
        return self.dovecot.cache_stats()

    def stop(self):
        if self.stop in stoppers:
            stoppers.remove(self.stop)
        if self.pf is not None:
            self.pf.stop()
            if os.environ.get("BENCH_KEEP") != "1":
                self.pf.remove()
        if getattr(self, "dovecot", None) is not None:
            self.dovecot.stop()


# ---------------------------------------------------------------- the parts

def stalls(recs, step):
    """How many sessions spent STALL or more in the step (index)."""
    return sum(1 for r in recs if r[step] >= STALL)


def smtp_throughput(srv, ca, data, n, conc, verify=True):
    """n submissions at conc; waits for delivery; returns the figures."""
    account = CpuAccount(srv.roots)
    before = maildir_count(srv.maildir)
    job = {"kind": "smtp", "port": srv.port, "n": n, "data": data, "ca": ca}
    r = run_clients(job, conc, account)
    t0 = r["meter"].t0
    deadline = time.monotonic() + PHASE_TIMEOUT
    while maildir_count(srv.maildir) < before + n or srv.queued():
        if time.monotonic() > deadline:
            raise BenchError("%s: %d of %d messages delivered in time" % (srv.name, maildir_count(srv.maildir) - before, n))
        why = srv.dead()
        if why:
            raise BenchError(why)
        account.sample()
        time.sleep(0.05)
    r["delivered_at"] = time.monotonic() - t0
    account.stop()
    r["server_cpu"] = account.total
    r["split"] = account.describe(n)
    if verify:
        verify_maildir(srv.maildir, n)
    return r


def idle_memory(srv, ca, n=IDLE):
    """Pss of all the server's processes with n sessions held after AUTH,
    minus without them, per session."""
    time.sleep(1.0)
    base, nb = pss(srv.pids())
    ctx = client_context(ca)
    held = []
    try:
        for _ in range(n):
            held.append(smtp_session(srv.port, ctx, None, hold=True))
        time.sleep(0.5)
        after, na = pss(srv.pids())
    finally:
        for w in held:
            try:
                w.smtp(b"QUIT\r\n", b"221")
            except (OSError, ProtocolError, ssl.SSLError):
                pass
            w.sock.close()
    return {"per": (after - base) / n, "base": base, "after": after, "nbase": nb, "nafter": na}


def yubin_submission(tmp, tag, cert):
    srv = Yubin(tmp, tag, cert, [USER], [("submission", ["-c", "200", "-m", "100"], ["smtpd", "-s"])])
    srv.port = srv.ports["submission"]
    return srv


def authd_line(srv):
    c = srv.authd_counts()
    if not c:
        return "yubin-authd: no stop line"
    return "yubin-authd: %d checks, %d answered from memory, %d hashed" % (c[0], c[1], c[0] - c[1])


def print_smtp(name, n, r):
    m = medians(r["recs"])
    print("  %-15s %4d connections in %6.2f s = %6.1f msg/s; all delivered at %.2f s, verified; server cpu "
          "%.2f ms/conn [%s]; client cpu %.2f ms/conn"
          % (name, n, r["wall"], n / r["wall"], r["delivered_at"], 1000 * r["server_cpu"] / n, r["split"],
             1000 * r["client_cpu"] / n))
    print("                  median ms: %s; total %.1f; EHLO after TLS >= %.0f ms in %d of %d"
          % (", ".join("%s %.2f" % (s, 1000 * v) for s, v in zip(SMTP_STEPS, m)), 1000 * sum(m), 1000 * STALL,
             stalls(r["recs"], 3), n))
    print("                  %s; %s" % (r["meter"].describe(n, r["server_cpu"] + r["client_cpu"]), r["auth"]),
          flush=True)


def smtp_part(tmp, cert, ca, with_pf):
    data = [wire_message(i) for i in range(N_CONN)]
    res = {}
    print("tls smtp: connections at concurrency %d, each EHLO, STARTTLS, EHLO, AUTH PLAIN, one message of %d "
          "bytes, QUIT; full handshakes (no resumption); %d cpus, load %s"
          % (CONC, benchlib.MSG_SIZE, os.cpu_count(), load()), flush=True)
    print("  yubin: yubin-listen -c 200 -m 100 + smtpd -s, yubin-start (yubin-authd, queue-injectd, local delivery, "
          "concurrencylocal 10)%s; users/passwd PBKDF2-HMAC-SHA256, %d rounds" % (", as nobody" if OWNER else "",
                                                                              ROUNDS))
    plan = [("yubin", lambda tag: yubin_submission(tmp, tag, cert), N_CONN)]
    if with_pf:
        print("  postfix %s: smtpd_tls_security_level may, smtpd_tls_auth_only, SASL by dovecot %s auth, passwd-file, "
              "auth_cache_size 10M; qmgr + virtual(8) into a Maildir.\n"
              "    postfix         {PBKDF2}, %d rounds (PBKDF2-HMAC-SHA1: Dovecot's strongest here that yubin's "
              "cost compares with); %d connections (BENCH_TLS_PBKDF2_CONNECTIONS): passwd-file never "
              "goes through dovecot's auth cache, so every login hashes, in the one auth process\n"
              "    postfix/SSHA512 the control: {SSHA512}, one salted SHA-512, about what a remembered answer costs "
              "yubin-authd; %d connections" % (postfix.ensure_postfix(), dovecot_version(), ROUNDS, N_PB_CONN, N_CONN),
              flush=True)
        plan += [("postfix", lambda tag: PostfixSubmission(tmp, tag, cert, "PBKDF2"), N_PB_CONN),
                 ("postfix/SSHA512", lambda tag: PostfixSubmission(tmp, tag, cert, "SSHA512"), N_CONN)]
    for name, make, n in plan:
        srv = make("smtp-" + name.replace("/", "-"))
        try:
            r = smtp_throughput(srv, ca, data, n, CONC)
            r["auth"] = "" if name == "yubin" else "dovecot's auth cache (SIGUSR2): " + srv.cache_stats()
        finally:
            srv.stop()
        if name == "yubin":
            r["auth"] = authd_line(srv)
        r["n"] = n
        res[name] = r
        print_smtp(name, n, r)
    y = res["yubin"]
    for name in ("postfix", "postfix/SSHA512"):
        if name in res:
            p = res[name]
            print("  ratio yubin/%s: msg/s %.2f, server cpu per connection %.2f"
                  % (name, (y["n"] / y["wall"]) / (p["n"] / p["wall"]),
                     (y["server_cpu"] / y["n"]) / (p["server_cpu"] / p["n"])), flush=True)
    for name, make, n in plan[:2]:
        srv = make("idle-" + name)
        try:
            m = idle_memory(srv, ca)
        finally:
            srv.stop()
        res[name]["idle"] = m
        print("  %-15s %d idle TLS sessions after AUTH: %.0f KiB Pss each (all the server's processes: %d KiB in %d "
              "processes before, %d KiB in %d with the sessions)"
              % (name, IDLE, m["per"], m["base"], m["nbase"], m["after"], m["nafter"]), flush=True)
    return res


def dovecot_version():
    r = subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True, timeout=30)
    return r.stdout.decode().split()[0] if r.returncode == 0 else "?"


def pop3_part(tmp, cert, ca, with_dc):
    print("tls pop3: logins (connect, STLS or implicit TLS, USER, PASS, STAT, QUIT), %d users with %d messages "
          "each (client k logs in as user k); load %s" % (len(POP_USERS), POP_MESSAGES, load()), flush=True)
    print("  yubin: yubin-listen -c 200 pop3d (STLS) and pop3d -T, yubin-start (yubin-authd), pop3plaintext no; "
          "%d logins a row" % N_LOGIN)
    servers, counts = {}, {"yubin": N_LOGIN}
    res = {}
    try:
        servers["yubin"] = Yubin(tmp, "pop3", cert, POP_USERS, [("stls", ["-c", "200"], ["pop3d"]),
                                                                 ("tls", ["-c", "200"], ["pop3d", "-T"])], pop=True)
        if with_dc:
            print("  dovecot %s: ssl required, disable_plaintext_auth yes, passwd-file, auth_cache_size 10M, a "
                  "pop3-login and a pop3 process per connection (service_count 1, its defaults); as above, dovecot "
                  "with {PBKDF2} %d rounds (%d logins a row, BENCH_TLS_PBKDF2_LOGINS) and dovecot/SSHA512 "
                  "(%d logins a row)" % (dovecot_version(), ROUNDS, N_PB_LOGIN, N_LOGIN), flush=True)
            servers["dovecot"] = Dovecot(tmp, "pop3", POP_USERS, cert=cert, scheme="PBKDF2")
            servers["dovecot/SSHA512"] = Dovecot(tmp, "pop3-ssha", POP_USERS, cert=cert, scheme="SSHA512")
            counts.update({"dovecot": N_PB_LOGIN, "dovecot/SSHA512": N_LOGIN})
        ctx = client_context(ca)
        for name, srv in servers.items():
            # the first login after the start (nothing remembered), then the second
            firsts = []
            for _ in range(2):
                t = time.monotonic()
                pop3_session(srv.ports["stls"], ctx, "stls", POP_USERS[0])
                firsts.append(time.monotonic() - t)
            res[name, "first"] = firsts
            for u in POP_USERS[1:]:     # every user once, so that the rows below are all warm
                pop3_session(srv.ports["stls"], ctx, "stls", u)
        rows = [(mode, conc) for mode in ("stls", "tls") for conc in (1, CONC)]
        for k, (mode, conc) in enumerate(rows):
            order = list(servers) if k % 2 == 0 else list(servers)[::-1]
            for name in order:
                srv, n = servers[name], counts[name]
                account = CpuAccount(srv.roots)
                job = {"kind": "pop3", "port": srv.ports[mode], "n": n, "mode": mode, "ca": ca,
                       "users": POP_USERS if conc > 1 else POP_USERS[:1]}
                r = run_clients(job, conc, account)
                account.stop()
                r["n"] = n
                r["server_cpu"] = account.total
                r["split"] = account.describe(n, 5)
                lat = sorted(sum(x) for x in r["recs"])
                r["median"] = statistics.median(lat)
                r["p90"] = lat[int(0.9 * (len(lat) - 1))]
                res[name, mode, conc] = r
                m = medians(r["recs"])
                steps = ", ".join("%s %.2f" % (s, 1000 * v) for s, v in zip(POP_STEPS[mode], m))
                print("  %-15s %-4s c=%-2d %4d logins %6.1f/s, latency median %.2f ms (90%% %.2f) [%s]; server cpu "
                      "%.2f ms/login [%s]; client cpu %.2f ms/login; USER+PASS >= %.0f ms in %d"
                      % (name, mode, conc, n, n / r["wall"], 1000 * r["median"], 1000 * r["p90"], steps,
                         1000 * r["server_cpu"] / n, r["split"], 1000 * r["client_cpu"] / n, 1000 * STALL,
                         stalls(r["recs"], 3)), flush=True)
            a = res["yubin", mode, conc]
            for name in ("dovecot", "dovecot/SSHA512"):
                b = res.get((name, mode, conc))
                if b:
                    print("  ratio yubin/%s %s c=%d: logins/s %.2f, median latency %.2f, server cpu per login %.2f"
                          % (name, mode, conc, (a["n"] / a["wall"]) / (b["n"] / b["wall"]), a["median"] / b["median"],
                             (a["server_cpu"] / a["n"]) / (b["server_cpu"] / b["n"])), flush=True)
        res["starts"] = start_costs(servers["yubin"])
        c = res["starts"]
        print("  yubin's login, program by program: CPU of one start with stdin at its end (greeting, then EOF), "
              "100 each: pop3d %.2f ms (%.2f without control/tlscert: its TLS context, made at every start, costs "
              "%.2f), pop3d -T %.2f, smtpd (static; under -m once per 100 connections) %.2f (%.2f without), "
              "/bin/true %.2f; a TLS login starts pop3d twice (the front end, then the session)"
              % (c["pop3d"], c["pop3d-notls"], c["pop3d"] - c["pop3d-notls"], c["pop3d -T"], c["smtpd"],
                 c["smtpd-notls"], c["true"]), flush=True)
        for name, srv in servers.items():
            f = res[name, "first"]
            extra = "; dovecot's auth cache (SIGUSR2): " + srv.cache_stats() if name != "yubin" else ""
            print("  %-15s first login after the start %.1f ms, second %.1f ms, warm median (stls c=1) %.2f ms %s"
                  % (name, 1000 * f[0], 1000 * f[1], 1000 * res[name, "stls", 1]["median"], extra), flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
    if "yubin" in servers:
        print("  " + authd_line(servers["yubin"]), flush=True)
    return res


def start_costs(y, n=100):
    """CPU per start (stdin /dev/null: greeting, EOF, exit) of pop3d and
    smtpd in y's instance, with and without the certificate, and of /bin/true."""
    env = dict(os.environ, TCPREMOTEIP="127.0.0.1")

    def cost(cmd):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(n):
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=env, preexec_fn=as_owner, timeout=30)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return 1000 * (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n
    out = {"pop3d": cost([y.bin("pop3d")]), "pop3d -T": cost([y.bin("pop3d"), "-T"]), "smtpd": cost([y.bin("smtpd")]),
           "true": cost(["/bin/true"])}
    moved = []
    try:
        for f in ("tlscert", "tlskey"):
            os.rename(y.path("control/" + f), y.path("control/" + f + ".off"))
            moved.append(f)
        out["pop3d-notls"] = cost([y.bin("pop3d")])
        out["smtpd-notls"] = cost([y.bin("smtpd")])
    finally:
        for f in moved:
            os.rename(y.path("control/" + f + ".off"), y.path("control/" + f))
    return out


def perf_wanted():
    return os.environ.get("BENCH_TLS_PERF", "auto") != "0" and shutil.which("perf") is not None


def perf_profile(tmp, tag, run, comm):
    """run() under perf record -a: the share of all samples by program, and
    comm's samples by object and by function. None if perf cannot record."""
    out = os.path.join(tmp, "perf-%s.data" % tag)
    log = open(os.path.join(tmp, "perf-%s.log" % tag), "ab")
    p = spawn(["perf", "record", "-a", "-F", "499", "-o", out], stdout=log, stderr=log)
    time.sleep(1.0)
    if p.poll() is not None:
        return None
    try:
        r = run()
    finally:
        p.send_signal(signal.SIGINT)
        wait_bounded(p, 60)

    def report(*args):
        rep = subprocess.run(["perf", "report", "-i", out, "--stdio"] + list(args), capture_output=True, timeout=120)
        return rep.stdout.decode(errors="replace")
    line = r"^\s+([\d.]+)%\s+(\S.*?)\s*$"
    comms = re.findall(line, report("--sort", "comm", "--percent-limit", "1"), re.M)
    dsos = re.findall(line, report("--comms", comm, "--percentage", "relative", "--sort", "dso",
                                   "--percent-limit", "2"), re.M)
    syms = re.findall(r"^\s+([\d.]+)%\s+\[(.)\]\s+(\S.*?)\s*$",
                      report("--comms", comm, "--percentage", "relative", "--sort", "sym", "--percent-limit", "1.5"),
                      re.M)
    if not os.environ.get("BENCH_KEEP") == "1":
        os.unlink(out)
    return {"r": r, "comms": comms, "dsos": dsos, "syms": syms}


def print_profile(prof, comm, what):
    print("  perf record -a, %s: share of all samples by program (swapper = idle): %s"
          % (what, ", ".join("%s %s%%" % (c, p) for p, c in prof["comms"])))
    if len(prof["dsos"]) > 1:
        print("    %s's samples by object: %s" % (comm, ", ".join("%s %s%%" % (d, p) for p, d in prof["dsos"])))
    print("    %s's top functions ([k] kernel): %s"
          % (comm, ", ".join("%s%s %s%%" % (s, " [k]" if k == "k" else "", p) for p, k, s in prof["syms"][:16])),
          flush=True)


def breakdown(tmp, cert, ca, with_pf):
    """One connection at a time: the client's time for each step, per server;
    then perf on yubin at concurrency CONC."""
    data = [wire_message(i) for i in range(max(N_SEQ, min(N_CONN, 500)))]
    print("tls smtp breakdown: %d connections one at a time, median ms per step as the client sees it; then server "
          "cpu per connection" % N_SEQ, flush=True)
    print("  %-15s %s %8s" % ("", " ".join("%9s" % s[:9] for s in SMTP_STEPS), "total"))
    plan = [("yubin", lambda: yubin_submission(tmp, "seq", cert))]
    if with_pf:
        plan.append(("postfix/SSHA512", lambda: PostfixSubmission(tmp, "seq", cert, "SSHA512")))
    prof = None
    for name, make in plan:
        srv = make()
        try:
            r = smtp_throughput(srv, ca, data[:N_SEQ], N_SEQ, 1)
            m = medians(r["recs"])
            mean = statistics.mean(sum(x) for x in r["recs"])
            print("  %-15s %s %8.2f   mean %.2f ms; EHLO after TLS >= %.0f ms in %d of %d; %.2f ms cpu/conn: %s"
                  % (name, " ".join("%9.2f" % (1000 * v) for v in m), 1000 * sum(m), 1000 * mean, 1000 * STALL,
                     stalls(r["recs"], 3), N_SEQ, 1000 * r["server_cpu"] / N_SEQ, r["split"]), flush=True)
            if name == "yubin" and perf_wanted():
                n = min(N_CONN, 500)
                prof = perf_profile(tmp, "smtp", lambda: smtp_throughput(srv, ca, data, n, CONC, verify=False),
                                    "smtpd")
        finally:
            srv.stop()
    if prof:
        n = min(N_CONN, 500)
        print_profile(prof, "smtpd", "%d more connections to yubin at concurrency %d, %.0f msg/s under perf"
                      % (n, CONC, n / prof["r"]["wall"]))
    elif perf_wanted():
        print("  (no perf profile: perf cannot record here)")


def summary(smtp, pop):
    print()
    print("tls summary (%d cpus; msg/s and logins/s at concurrency %d unless c=1):" % (os.cpu_count(), CONC))
    y = smtp["yubin"]
    print("  %-28s %-15s %8s %13s %15s" % ("", "", "rate", "cpu ms/conn", "KiB/idle sess."))
    for name in ("yubin", "postfix", "postfix/SSHA512"):
        r = smtp.get(name)
        if r:
            print("  %-28s %-15s %8.1f %13.2f %15s" % ("submission STARTTLS+AUTH+4K" if name == "yubin" else "",
                                                     name, r["n"] / r["wall"], 1000 * r["server_cpu"] / r["n"],
                                                     "%.0f" % r["idle"]["per"] if "idle" in r else "-"))
    for name in ("postfix", "postfix/SSHA512"):
        p = smtp.get(name)
        if p:
            mem = ", memory %.2f" % (y["idle"]["per"] / p["idle"]["per"]) if "idle" in p else ""
            print("  %-28s ratio yubin/%s: rate %.2f, cpu %.2f%s" % ("", name, (y["n"] / y["wall"]) / (p["n"] / p["wall"]),
                                                                 (y["server_cpu"] / y["n"]) / (p["server_cpu"] / p["n"]),
                                                                 mem))
    for mode in ("stls", "tls"):
        for conc in (1, CONC):
            a = pop.get(("yubin", mode, conc))
            if not a:
                continue
            line = "  pop3 %-4s c=%-2d logins/s: yubin %6.1f (%.2f ms)" % (mode, conc, a["n"] / a["wall"],
                                                                        1000 * a["median"])
            for name in ("dovecot", "dovecot/SSHA512"):
                b = pop.get((name, mode, conc))
                if b:
                    line += ", %s %6.1f (%.2f ms) ratio %.2f" % (name, b["n"] / b["wall"], 1000 * b["median"],
                                                                (a["n"] / a["wall"]) / (b["n"] / b["wall"]))
            print(line)


def main():
    for prog in ("yubin-setup", "yubin-user", "yubin-listen", "smtpd", "pop3d", "yubin-start", "yubin-authd"):
        if not os.access(os.path.join(BUILD, "bin", prog), os.X_OK):
            raise BenchError("%s/bin/%s is missing: run make first" % (BUILD, prog))
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="yubin-tls-bench.")
    benchlib.tempdirs.append(tmp)
    os.chmod(tmp, 0o755)   # nobody's instance, dovecot's and postfix's users all look in here
    ca = tls_helpers.CA(os.path.join(tmp, "ca"))
    cert = ca.issue("server", [HOST, "mx." + HOST], key="rsa")

    want_dc, want_pf = os.environ.get("BENCH_DOVECOT", "auto"), os.environ.get("BENCH_POSTFIX", "auto")
    with_dc = False
    if want_dc != "0":
        try:
            pop3_bench.ensure_dovecot()
            with_dc = os.geteuid() == 0 and bool(shutil.which("doveadm"))
            if not with_dc:
                raise pop3_bench.Unavailable("needs root and doveadm")
        except pop3_bench.Unavailable as e:
            if want_dc == "1":
                raise BenchError("dovecot: %s" % e)
            print("tls: dovecot skipped: %s" % e, flush=True)
    with_pf = False
    if want_pf != "0":
        try:
            postfix.ensure_postfix()
            if not with_dc:
                raise postfix.Unavailable("its SASL here is Dovecot's, which is skipped")
            with_pf = True
        except postfix.Unavailable as e:
            if want_pf == "1":
                raise BenchError("postfix: %s" % e)
            print("tls: postfix skipped: %s" % e, flush=True)

    smtp = smtp_part(tmp, cert, ca.cert, with_pf)
    pop = pop3_part(tmp, cert, ca.cert, with_dc)
    if N_SEQ > 0:
        breakdown(tmp, cert, ca.cert, with_pf)
    summary(smtp, pop)
    print("tls bench: %.0f s" % (time.monotonic() - t_start), flush=True)
    return 0


def cleanup_all():
    for p in workers:
        if p.is_alive():
            p.kill()
            p.join(5)
    for stop in list(stoppers):
        try:
            stop()
        except Exception as e:   # the others must still stop
            print("tls bench: stopping: %s" % e, flush=True)


if __name__ == "__main__":
    def guarded():
        try:
            return main()
        finally:
            cleanup_all()
    benchlib.run_main(guarded, "tls bench", (BenchError, postfix.Unavailable, Unavailable, pop3_bench.Unavailable,
                                            ProtocolError, ssl.SSLError, subprocess.CalledProcessError))
