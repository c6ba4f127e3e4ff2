#!/usr/bin/env python3
"""make bench, SMTP part (issue 3): messages accepted by SMTP per second,
yubin and Postfix side by side, and the memory of one idle SMTP session.

postfix's smtp-source sends N messages (BENCH_SMTP_MESSAGES, 5000) with a
payload of 4096 bytes each (-l 4096; smtp-source adds its few header lines),
one recipient each, to each server:

  queue     at every session count of BENCH_SMTP_SESSIONS (1,10,50:
            smtp-source -s), one message per connection (smtp-source's
            default, and what most clients do), nothing delivering
  reuse     at BENCH_SMTP_REUSE (10): smtp-source -d, each connection sends
            messages until all N are sent, so the cost of a connection drops
            out and what is left is the cost of a message
  delivery  at BENCH_SMTP_DELIVERY (10): one message per connection while
            each system delivers into a Maildir

The rate is the wall time of the smtp-source run: a message counts when its
250 came, and neither server says 250 before the message is in its queue
and fsynced (yubin: queue-injectd, an fsync of the file and one of
queue/new shared by the messages committed together; Postfix: cleanup, an
fsync of the file).

  yubin    a fresh single-user instance (yubin-setup, yubin-user add u,
           control/rcpthosts bench.example) for each run; `yubin-listen -c
           100 -m 100 127.0.0.1 PORT smtpd` on a free port: each smtpd
           serves up to 100 connections in turn, as under make run
           (BENCH_SMTP_MAXUSE=0: a new smtpd for each connection). yubin-start is not
           running (except in "delivery"): the messages stay in queue/new.
           queue-injectd runs (started from the instance's bin, stopped at
           the end; in "delivery" yubin-start runs it), so smtpd queues
           through it, as it does in a running instance; its CPU counts
           in "server cpu". When the bench runs as root the instance
           belongs to, and every yubin program runs as, the user nobody (as
           Postfix's daemons run as postfix). BENCH_SMTP_INJECTD=0: no queue-injectd, smtpd
           runs queue-inject for each message (as before queue-injectd);
           BENCH_SMTP_INJECTD=N (> 1): control/injectdprocesses N.
  postfix  Postfix from the Debian package in build/postfix (postfix.py),
           its own config and queue for each run, smtpd in master.cf on
           another free loopback port; no qmgr (except in "delivery"), so
           the messages stay in incoming/ as yubin's stay in queue/new.
           Without qmgr nobody hands out in_flow_delay tokens, so
           in_flow_delay = 0 (else each MAIL waits a second).
           smtpd_peername_lookup = no (yubin-listen looks up no names
           either); smtpd_reject_unlisted_recipient stays on (Postfix checks
           u in its virtual map, yubin's smtpd only the domain).
  delivery yubin-start running (concurrencylocal 10, local-deliver into u's
           Maildir); Postfix with qmgr and virtual(8) into a Maildir
           (virtual_destination_concurrency_limit 10, in_flow_delay at its
           default); after smtp-source, every message must arrive in the
           Maildir and the queue must empty.

Checked after each run: smtp-source exited 0 (it stops at the first reply
that is not the expected one), its counter says N, and exactly N queue files
are there (N files in the Maildir with delivery). Any other count fails.

"server cpu" is the CPU time of the server's whole process tree during the
run (yubin-listen and everything under it, queue-injectd, yubin-start's tree
when it runs; Postfix's master and its daemons), per message, from /proc: unlike the
rates it suffers little when others use the machine. The runs of each row
alternate which server goes first; BENCH_SMTP_ROUNDS (1) runs each more
often, turning the order each time, and keeps the better rate.

Idle session: one connection to each server, greeting read, EHLO sent and
its reply read; then VmRSS and VmPTE (/proc/PID/status), Pss and Anonymous
(/proc/PID/smaps_rollup) of the process serving it (yubin's smtpd;
Postfix's smtpd, whose sessions also share the cleanup, trivial-rewrite and
anvil processes, not counted). Anonymous is the memory the session itself
has written; the rest is program text shared with every other session
(with only one session, Pss counts all of it).

Environment: BUILD, BENCH_SMTP_MESSAGES, BENCH_SMTP_SESSIONS,
BENCH_SMTP_REUSE, BENCH_SMTP_DELIVERY (empty skips a kind), BENCH_SMTP_INJECTD, BENCH_SMTP_MAXUSE,
BENCH_SMTP_ROUNDS, BENCH_POSTFIX (auto; 0 skips Postfix; 1: required),
BENCH_TIMEOUT (seconds per run, 600), BENCH_KEEP=1. Everything started here
runs in its own process group and is stopped at the end, also on failure."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import benchlib
import postfix
from benchlib import BUILD, HOST, PHASE_TIMEOUT, BenchError, DirWatch, Meter, free_port, spawn, wait_bounded, wait_port

N = int(os.environ.get("BENCH_SMTP_MESSAGES", "5000"))
SESSIONS = [int(x) for x in os.environ.get("BENCH_SMTP_SESSIONS", "1,10,50").split(",") if x.strip()]
REUSE = [int(x) for x in os.environ.get("BENCH_SMTP_REUSE", "10").split(",") if x.strip()]
DELIVERY = [int(x) for x in os.environ.get("BENCH_SMTP_DELIVERY", "10").split(",") if x.strip()]
PLAN = [("queue", s) for s in SESSIONS] + [("reuse", s) for s in REUSE] + [("delivery", s) for s in DELIVERY]
LABELS = {"queue": "", "reuse": ", -d", "delivery": ", delivering"}
ROUNDS = int(os.environ.get("BENCH_SMTP_ROUNDS", "1"))
PAYLOAD = 4096
SENDER = "bench@client.example"
RCPT = "u@" + HOST
HELO = "client.example"
SMTP_SOURCE = os.path.join(postfix.SBIN, "smtp-source")
INJECTD = int(os.environ.get("BENCH_SMTP_INJECTD", "1"))  # queue-injectd's processes; 0: none
MAXUSE = int(os.environ.get("BENCH_SMTP_MAXUSE", "100"))  # yubin-listen -m; 0: an smtpd per connection
# As root, yubin's instance belongs to nobody (Postfix's daemons run as postfix, not root).
OWNER = pwd.getpwnam("nobody") if os.geteuid() == 0 else None


def as_owner():
    if OWNER:
        os.setgroups([])
        os.setgid(OWNER.pw_gid)
        os.setuid(OWNER.pw_uid)


def smtp_source_args(sessions, port, reuse=False):
    return (["-d"] if reuse else []) + ["-s", str(sessions), "-m", str(N), "-l", str(PAYLOAD), "-M", HELO,
                                        "-f", SENDER, "-t", RCPT, "127.0.0.1:%d" % port]


# ---------------------------------------------------------------- processes

def proc_table():
    """{pid: (ppid, cpu ticks of the process and its reaped children)}."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    x = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            out[int(p)] = (int(x[1]), sum(int(v) for v in x[11:15]))
    return out


def tree_cpu(roots):
    """CPU seconds of the processes under roots (included), with every child
    they have reaped: the difference of two calls is what the tree used in
    between, short-lived children too."""
    table = proc_table()
    kids = {}
    for pid, (ppid, _t) in table.items():
        kids.setdefault(ppid, []).append(pid)
    todo, seen, ticks = [r for r in roots if r in table], set(), 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ticks += table[pid][1]
        todo.extend(kids.get(pid, ()))
    return ticks / benchlib.HZ


def descendants(root, exe_suffix):
    table = proc_table()
    out, todo = [], [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _t) in table.items():
            if ppid == parent:
                todo.append(pid)
                try:
                    if os.readlink("/proc/%d/exe" % pid).endswith(exe_suffix):
                        out.append(pid)
                except OSError:
                    pass
    return out


def serving(sock, pids):
    """Which of pids holds the server end of the TCP connection sock."""
    me = "%08X:%04X" % (socket.htonl(0x7f000001), sock.getsockname()[1])
    server = "%08X:%04X" % (socket.htonl(0x7f000001), sock.getpeername()[1])
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if x[1] == server and x[2] == me:
                inode = x[9]
    if inode:
        for pid in pids:
            try:
                fds = os.listdir("/proc/%d/fd" % pid)
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                        return pid
                except OSError:
                    pass
    return None


def memory(pid):
    """{VmRSS, VmPTE, Pss, Anonymous} in KiB of a live process."""
    m = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmPTE"):
                m[k] = int(v.split()[0])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Pss", "Anonymous"):
                m[k] = int(v.split()[0])
    return m


def memory_line(m):
    return "VmRSS %5d KiB, Pss %5d KiB, anonymous %5d KiB, page tables %3d KiB" % (
        m["VmRSS"], m["Pss"], m["Anonymous"], m["VmPTE"])


# ---------------------------------------------------------------- servers

class YubinServer:
    """A fresh single-user instance with user u, smtpd behind yubin-listen;
    with deliver, yubin-start too."""
    name = "yubin"

    def __init__(self, tmp, tag, deliver=False):
        self.dir = os.path.join(tmp, "yubin-" + tag)
        self.start_proc = self.injectd = None
        if OWNER:
            os.chmod(tmp, 0o711)
            os.mkdir(self.dir, 0o755)
            os.chown(self.dir, OWNER.pw_uid, OWNER.pw_gid)
        subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", self.dir, "--hostname", HOST],
                       check=True, stdout=subprocess.DEVNULL, timeout=30, preexec_fn=as_owner)
        subprocess.run([self.bin("yubin-user"), "add", "u"], input=b"bench-password\n", check=True, timeout=30,
                       stdout=subprocess.DEVNULL, preexec_fn=as_owner)
        with open(os.path.join(self.dir, "control", "rcpthosts"), "w") as f:
            f.write(HOST + "\n")
        with open(os.path.join(self.dir, "control", "concurrencylocal"), "w") as f:
            f.write("10\n")
        if INJECTD > 1:
            with open(os.path.join(self.dir, "control", "injectdprocesses"), "w") as f:
                f.write("%d\n" % INJECTD)
        self.maildir_new = os.path.join(self.dir, "home", "u", "Maildir", "new")
        self.logpath = os.path.join(tmp, "yubin-%s.log" % tag)
        self.log = open(self.logpath, "ab")
        if deliver:
            self.start_proc = spawn([self.bin("yubin-start")], stdout=self.log, stderr=self.log, preexec_fn=as_owner)
            benchlib.wait_until(lambda: b"queue-manager: event=start" in open(self.logpath, "rb").read()
                                or self.start_proc.poll() is not None, time.monotonic() + 20, "yubin-start")
            if self.start_proc.poll() is not None:
                raise BenchError("yubin-start exited: " + self.log_tail())
        elif INJECTD:
            self.injectd = spawn([self.bin("queue-injectd")], stdout=self.log, stderr=self.log, preexec_fn=as_owner)
        if INJECTD:
            sock = os.path.join(self.dir, "public", "inject")
            benchlib.wait_until(lambda: os.path.exists(sock) or self.dead(), time.monotonic() + 20, "queue-injectd")
            if self.dead():
                raise BenchError(self.dead())
        self.port = free_port()
        self.listen = spawn([self.bin("yubin-listen"), "-c", "100", "-m", str(MAXUSE), "127.0.0.1", str(self.port),
                             self.bin("smtpd")],
                            stdout=self.log, stderr=self.log, preexec_fn=as_owner)
        wait_port(self.port, lambda: self.listen.poll() is not None and "exited", "yubin-listen")

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def log_tail(self):
        with open(self.logpath, "rb") as f:
            return f.read()[-1500:].decode(errors="replace")

    def roots(self):
        return [p.pid for p in (self.listen, self.start_proc, self.injectd) if p is not None]

    def queued(self):
        q = os.path.join(self.dir, "queue")
        return sum(len(os.listdir(os.path.join(q, d))) for d in ("new", "cur"))

    def dead(self):
        if self.injectd is not None and self.injectd.poll() is not None:
            return "queue-injectd exited: " + self.log_tail()
        if getattr(self, "listen", None) is not None and self.listen.poll() is not None:
            return "yubin-listen exited: " + self.log_tail()
        if self.start_proc is not None and self.start_proc.poll() is not None:
            return "yubin-start exited: " + self.log_tail()
        return None

    def candidates(self):
        return descendants(self.listen.pid, "/bin/smtpd")

    def stop(self):
        for p in (self.listen, self.start_proc, self.injectd):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                wait_bounded(p, 30)
            if p is not None:
                benchlib.end_group(p)   # smtpd children still running, if any
        self.log.close()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class PostfixServer:
    """Postfix (postfix.py's setup) with smtpd on a free loopback port; without
    deliver also without qmgr, so that the messages stay in incoming/."""
    name = "postfix"

    def __init__(self, deliver=False):
        self.port = free_port()
        master_cf = postfix.MASTER_CF + "127.0.0.1:%d inet n - n - - smtpd\n" % self.port
        extra = ["smtpd_peername_lookup = no", "smtp_dns_support_level = disabled"]
        if not deliver:
            master_cf = "".join(l + "\n" for l in master_cf.splitlines() if not l.startswith("qmgr "))
            extra.append("in_flow_delay = 0")
        self.pf = postfix.Postfix(master_cf, extra)
        self.maildir_new = self.pf.maildir_new
        try:
            self.pf.start()
            wait_port(self.port, lambda: self.pf.master_pid() is None and "exited", "postfix master")
        except BaseException:
            self.stop()     # master runs in its own session: benchlib.cleanup would miss it
            raise

    def roots(self):
        pid = self.pf.master_pid()
        return [pid] if pid else []

    def queued(self):
        return self.pf.queue_count()

    def dead(self):
        return self.pf.dead()

    def candidates(self):
        return self.pf.ours()

    def stop(self):
        self.pf.stop()
        self.pf.remove()


# ---------------------------------------------------------------- measuring

def idle_session(server):
    """Memory of the process serving one idle session after EHLO."""
    s = socket.create_connection(("127.0.0.1", server.port), 10)
    s.settimeout(10)
    f = s.makefile("rb")
    try:
        for expect in (None, b"EHLO " + HELO.encode() + b"\r\n"):
            if expect:
                s.sendall(expect)
            while True:
                line = f.readline()
                if not line.startswith((b"220", b"250")):
                    raise BenchError("%s: unexpected reply %r" % (server.name, line))
                if line[3:4] == b" ":
                    break
        pid = None
        end = time.monotonic() + 5
        while pid is None and time.monotonic() < end:
            pid = serving(s, server.candidates())
            time.sleep(0.01 if pid is None else 0)
        if pid is None:
            raise BenchError("%s: cannot find the smtpd process of the session" % server.name)
        m = memory(pid)
        s.sendall(b"QUIT\r\n")
        f.readline()
        return m
    finally:
        f.close()
        s.close()


def run_source(server, sessions, tmp, label):
    """One smtp-source run against server; returns its figures. Fails unless
    smtp-source exited 0 and exactly N messages are in the queue (or, with
    delivery, in the Maildir once the queue is empty)."""
    deliver = label == "delivery"
    watch = DirWatch(server.maildir_new) if deliver else None
    out = open(os.path.join(tmp, "smtp-source-%s-%s-%d.out" % (server.name, label, sessions)), "w+b")
    env = dict(os.environ, LD_LIBRARY_PATH=postfix.LIBS)
    roots = server.roots()
    cpu0 = tree_cpu(roots)
    m = Meter(tmp)
    p = spawn([SMTP_SOURCE, "-c"] + smtp_source_args(sessions, server.port, label == "reuse"), stdout=out,
              stderr=subprocess.STDOUT, env=env)
    rc = wait_bounded(p, PHASE_TIMEOUT)
    m.stop()
    src_cpu = m.children_cpu()
    out.seek(0)
    text = out.read().decode(errors="replace")
    if rc != 0:
        raise BenchError("%s: smtp-source -s %d exited %s: %s" % (server.name, sessions, rc,
                                                                 text.replace("\r", " ")[-500:]))
    why = server.dead()
    if why:
        raise BenchError(why)
    counts = re.findall(r"\d+", text)
    counted = int(counts[-1]) if counts else -1
    if deliver:
        t_last = benchlib.wait_delivered(watch, N, time.monotonic() + PHASE_TIMEOUT, server.dead)
        benchlib.wait_until(lambda: server.queued() == 0, time.monotonic() + 60, "the queue to empty")
        watch.close()
        got = len(os.listdir(server.maildir_new))
        where = "in the Maildir (the last at %.2f s), queue empty" % (t_last - m.t0)
    else:
        # the connections are closed: wait for the servers' processes to finish their exits
        time.sleep(0.2)
        got = server.queued()
        where = "queued"
    cpu = tree_cpu(roots) - cpu0
    if got != N or counted != N:
        raise BenchError("%s -s %d: %d messages %s, smtp-source counted %d; expected %d"
                         % (server.name, sessions, got, where, counted, N))
    return {"label": "-d" if label == "reuse" else "  ", "rate": N / m.wall, "wall": m.wall, "cpu": cpu / N,
            "source_cpu": src_cpu / N, "machine": m.describe(N), "verified": "%d %s" % (got, where)}


def print_run(server, sessions, r):
    print("  %-7s -s %-3d%s %5d messages in %6.2f s = %5.0f msg/s; server cpu %.2f ms/msg, smtp-source %.2f "
          "ms/msg; verified: %s" % (server, sessions, r["label"], N, r["wall"], r["rate"], 1000 * r["cpu"],
                                    1000 * r["source_cpu"], r["verified"]))
    print("          %s" % r["machine"], flush=True)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run(tmp):
    want_pf = os.environ.get("BENCH_POSTFIX", "auto")
    pf_version = None
    if want_pf != "0":
        try:
            pf_version = postfix.ensure_postfix()
        except postfix.Unavailable as e:
            if want_pf == "1":
                raise BenchError("postfix: %s" % e)
            print("smtp: postfix skipped: %s" % e, flush=True)
    if not os.access(SMTP_SOURCE, os.X_OK):
        postfix.ensure_postfix()    # smtp-source comes from the same package
    print("smtp: %d messages, payload %d bytes, 1 recipient; %d cpus, load %s" % (N, PAYLOAD, os.cpu_count(), load()))
    print("  smtp-source -c [-d] %s" % " ".join(smtp_source_args("S", 0)).replace("127.0.0.1:0", "127.0.0.1:PORT"))
    print("  yubin: yubin-listen -c 100 -m %d + smtpd, yubin-start not running (accepted = in queue/new), %s%s"
          % (MAXUSE, "queue-injectd running (%d processes)" % max(INJECTD, 2) if INJECTD else
             "no queue-injectd (queue-inject per message)",
             ", as nobody" if OWNER else ""))
    if pf_version:
        print("  postfix %s: smtpd, no qmgr (accepted = in incoming/), in_flow_delay 0, smtpd_peername_lookup no"
              % pf_version, flush=True)

    results = {}
    # idle session first, while each server has no other session
    y = YubinServer(tmp, "idle")
    try:
        results["idle", "yubin"] = idle_session(y)
    finally:
        y.stop()
    if pf_version:
        p = PostfixServer()
        try:
            results["idle", "postfix"] = idle_session(p)
        finally:
            p.stop()
    for name in ("yubin", "postfix"):
        m = results.get(("idle", name))
        if m:
            print("  idle session (after EHLO), %-7s smtpd: %s" % (name, memory_line(m)), flush=True)

    for i, (label, sessions) in enumerate(PLAN):
        deliver = label == "delivery"
        if i == 0 or label != PLAN[i - 1][0]:
            print({"queue": "smtp, one message per connection, nothing delivering:",
                   "reuse": "smtp, smtp-source -d: every session sends messages until the %d are sent, nothing "
                            "delivering:" % N,
                   "delivery": "smtp with delivery running (yubin-start, local-deliver into a Maildir; Postfix qmgr "
                               "and virtual(8) into a Maildir, in_flow_delay 1s), concurrency 10 each, one message "
                               "per connection:"}[label] + " load %s" % load(), flush=True)
        # yubin first in even rows, Postfix first in odd ones; with more
        # rounds the order turns each time and the better run counts
        order = ["yubin", "postfix"] if pf_version else ["yubin"]
        runs = []
        for k in range(ROUNDS):
            runs += order if (i + k) % 2 == 0 else order[::-1]
        for k, name in enumerate(runs):
            if name == "yubin":
                srv = YubinServer(tmp, "%s-%d-%d" % (label, sessions, k), deliver)
            else:
                srv = PostfixServer(deliver)
            try:
                r = run_source(srv, sessions, tmp, label)
            finally:
                srv.stop()
            print_run(srv.name, sessions, r)
            best = results.get((label, sessions, name))
            if best is None or r["rate"] > best["rate"]:
                results[label, sessions, name] = r
        y, p = results.get((label, sessions, "yubin")), results.get((label, sessions, "postfix"))
        if y and p:
            print("  ratio yubin/postfix -s %d%s: msg/s %.2f, server cpu per message %.2f  (load %s)"
                  % (sessions, LABELS[label], y["rate"] / p["rate"], y["cpu"] / p["cpu"], load()), flush=True)
    summary(results)
    return results


def summary(results):
    print()
    print("smtp summary: %d messages of %d bytes payload, one per connection unless -d, smtp-source -s SESSIONS"
          % (N, PAYLOAD))
    print("  %-22s %8s %8s %6s   %s" % ("accepted msg/s", "yubin", "postfix", "ratio", "server cpu ms/msg y/p"))
    for label, sessions in PLAN:
        y, p = results.get((label, sessions, "yubin")), results.get((label, sessions, "postfix"))
        if not y:
            continue
        name = "-s %d%s" % (sessions, LABELS[label])
        print("  %-22s %8.0f %8s %6s   %.2f / %s" % (
            name, y["rate"], "%.0f" % p["rate"] if p else "-", "%.2f" % (y["rate"] / p["rate"]) if p else "-",
            1000 * y["cpu"], "%.2f" % (1000 * p["cpu"]) if p else "-"))
    for name in ("yubin", "postfix"):
        m = results.get(("idle", name))
        if m:
            print("  idle session, %-7s  %s" % (name, memory_line(m)))


def main():
    for prog in ("yubin-setup", "yubin-user", "yubin-listen", "smtpd", "yubin-start"):
        if not os.access(os.path.join(BUILD, "bin", prog), os.X_OK):
            raise BenchError("%s/bin/%s is missing: run make first" % (BUILD, prog))
    tmp = tempfile.mkdtemp(prefix="yubin-smtp-bench.")
    benchlib.tempdirs.append(tmp)
    run(tmp)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main, "smtp bench", (BenchError, postfix.Unavailable))
