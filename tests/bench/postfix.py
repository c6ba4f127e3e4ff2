"""Postfix side by side (part of make bench; see bench.py).

Postfix is never installed: `apt-get download postfix` and `dpkg-deb -x`
put its files under BUILD/postfix/ once (all its libraries are already on a
machine with yubin's build dependencies), and every run gets a temporary
directory BUILD/postfix-run.*/ holding its config_directory (etc/),
queue_directory (spool/), data_directory (data/) and the virtual mailbox
base (vmail/). master.cf has no smtpd and no other listener, so nothing
holds a port; inet_interfaces is loopback-only anyway. Mail for
u@bench.example is delivered by virtual(8) into vmail/u/Maildir/ as nobody.
Everything runs as root with LD_LIBRARY_PATH pointing at the extracted
libraries, so postdrop needs no set-gid bit. The only change outside build/:
the postfix user and the postdrop group are created if missing (Postfix
refuses to run without them).

The same phases as yubin's, on the first BENCH_POSTFIX_MESSAGES (default
2,000) of the same messages, because Postfix's sendmail costs several times
yubin's here and 10,000 would take most of the bench's time: injection with Postfix stopped (sendmail ->
postdrop -> maildrop/), delivery of that backlog from the start of master
until all are in the Maildir and the queue is empty, end to end with Postfix
running, and per-message execve/fsync counts under strace."""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import benchlib
from benchlib import (BUILD, CONC, COST_N, PF_N, PHASE_TIMEOUT, TRACED, BenchError, DirWatch, Meter,
                      count_files, error_lines, injection_failures, per_message, parse_strace_ff, processes,
                      start_injection, verify_maildir, wait_bounded, wait_until, wait_delivered)

ROOT = os.path.join(BUILD, "postfix")
SBIN = os.path.join(ROOT, "usr", "sbin")
DAEMONS = os.path.join(ROOT, "usr", "lib", "postfix", "sbin")
LIBS = os.path.join(ROOT, "usr", "lib", "postfix")
VUID = 65534     # virtual(8) delivers as nobody:nogroup
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


class Unavailable(Exception):
    pass


def sh(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    try:
        return subprocess.run(cmd, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable("%s: %s" % (cmd[0], e))


def ensure_postfix():
    if os.geteuid() != 0:
        raise Unavailable("needs root (the postfix user owns its queue; virtual(8) changes uid)")
    if not os.access(os.path.join(SBIN, "postfix"), os.X_OK):
        print("postfix: fetching it (apt-get download postfix; dpkg-deb -x into %s)" % ROOT, flush=True)
        d = tempfile.mkdtemp(prefix="postfix-deb.", dir=BUILD)
        try:
            r = sh(["apt-get", "download", "postfix"], cwd=d, timeout=300)
            debs = glob.glob(os.path.join(d, "postfix_*.deb"))
            if not debs:
                raise Unavailable("apt-get download postfix failed: %s" % r.stderr.decode()[-300:])
            x = os.path.join(d, "root")
            r = sh(["dpkg-deb", "-x", debs[0], x])
            if r.returncode != 0:
                raise Unavailable("dpkg-deb -x failed: %s" % r.stderr.decode()[-300:])
            shutil.rmtree(ROOT, ignore_errors=True)
            os.rename(x, ROOT)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    r = sh([os.path.join(SBIN, "postconf"), "-d", "-h", "mail_version"], env=dict(os.environ, LD_LIBRARY_PATH=LIBS))
    if r.returncode != 0:
        raise Unavailable("its programs do not run here: %s" % r.stderr.decode()[-300:])
    version = r.stdout.decode().strip()
    if sh(["getent", "group", "postdrop"]).returncode != 0:
        if sh(["groupadd", "--system", "postdrop"]).returncode != 0:
            raise Unavailable("cannot create the postdrop group")
    if sh(["getent", "passwd", "postfix"]).returncode != 0:
        r = sh(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", "postfix"])
        if r.returncode != 0:
            raise Unavailable("cannot create the postfix user: %s" % r.stderr.decode())
    return version


MASTER_CF = """\
# no smtpd, no listener on any port; chroot off (n) everywhere
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """One Postfix run with its own config, queue and data under build/postfix-run.*.
    master_cf replaces MASTER_CF (smtp_bench.py adds an smtpd listener, or
    leaves out qmgr); main_extra are more main.cf lines, after the defaults."""

    def __init__(self, master_cf=MASTER_CF, main_extra=()):
        self.main_extra = list(main_extra)
        self.dir = tempfile.mkdtemp(prefix="postfix-run.", dir=BUILD)
        benchlib.tempdirs.append(self.dir)
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.maillog = os.path.join(self.dir, "maillog")
        self.maildir_new = os.path.join(self.dir, "vmail", "u", "Maildir", "new")
        self.trace = None
        for d in (self.etc, self.spool, os.path.join(self.dir, "data")):
            os.makedirs(d)
        for sub in ("", "/u", "/u/Maildir", "/u/Maildir/tmp", "/u/Maildir/new", "/u/Maildir/cur"):
            p = os.path.join(self.dir, "vmail") + sub
            os.makedirs(p, exist_ok=True)
            os.chown(p, VUID, VUID)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write("u@bench.example u/Maildir/\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master_cf)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(self.main_cf())
        self.env = dict(os.environ, LD_LIBRARY_PATH=LIBS, MAIL_CONFIG=self.etc)
        r = sh([os.path.join(SBIN, "postfix"), "-c", self.etc, "check"], env=self.env)
        if r.returncode != 0 or not os.path.isdir(os.path.join(self.spool, "maildrop")):
            raise Unavailable("postfix check failed: %s %s" % (r.stderr.decode()[-300:], self.log_tail()))

    def main_cf(self):
        d = self.dir
        return "\n".join([
            "compatibility_level = 3.6",
            "queue_directory = %s/spool" % d,
            "data_directory = %s/data" % d,
            "command_directory = " + SBIN,
            "daemon_directory = " + DAEMONS,
            "shlib_directory = " + LIBS,
            "meta_directory = %s/etc/postfix" % ROOT,
            "sendmail_path = %s/sendmail" % SBIN,
            "mailq_path = %s/usr/bin/mailq" % ROOT,
            "newaliases_path = %s/usr/bin/newaliases" % ROOT,
            "manpage_directory = %s/usr/share/man" % ROOT,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = mx.bench.example",
            "mydomain = bench.example",
            "myorigin = bench.example",
            "mydestination =",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "virtual_mailbox_domains = bench.example",
            "virtual_mailbox_base = %s/vmail" % d,
            "virtual_mailbox_maps = texthash:%s/etc/vmailbox" % d,
            "virtual_uid_maps = static:%d" % VUID,
            "virtual_gid_maps = static:%d" % VUID,
            "virtual_minimum_uid = 100",
            "virtual_destination_concurrency_limit = 10",   # yubin's concurrencylocal
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "smtputf8_enable = no",
            "biff = no",
            "maillog_file = %s/maillog" % d,
            "maillog_file_prefixes = " + d,
            "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=" + LIBS,
            "export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH"] + self.main_extra + [""])

    def log_tail(self, n=1500):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()[-n:]
        except FileNotFoundError:
            return ""

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                pid = int(f.read().strip() or 0)
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def start(self, wrap=()):
        """master -w, as postfix start runs it after its checks."""
        log = open(os.path.join(self.dir, "master.out"), "ab")
        p = benchlib.spawn(list(wrap) + [os.path.join(DAEMONS, "master"), "-c", self.etc, "-w"], env=self.env,
                           stdout=log, stderr=log)
        if wrap:
            self.trace = p   # strace stays until master is gone
        elif wait_bounded(p, 30) != 0:
            raise BenchError("postfix master did not start: " + self.log_tail())
        wait_until(self.master_pid, time.monotonic() + 30, "postfix master to start")

    def dead(self):
        return None if self.master_pid() else "postfix master exited: " + self.log_tail()

    def queue_count(self):
        return sum(count_files(os.path.join(self.spool, q)) for q in QUEUES)

    def ours(self):
        """Pids of the Postfix programs of this run (its MAIL_CONFIG)."""
        out = []
        mark = ("MAIL_CONFIG=" + self.etc).encode()
        for pid, exe in processes():
            if exe.startswith(ROOT + "/"):
                try:
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        if mark in f.read().split(b"\0"):
                            out.append(pid)
                except OSError:
                    pass
        return out

    def stop(self):
        """postfix stop; then SIGKILL to whatever of this run is left."""
        sh([os.path.join(SBIN, "postfix"), "-c", self.etc, "stop"], env=self.env, timeout=30)
        end = time.monotonic() + 30
        while self.ours() and time.monotonic() < end:
            time.sleep(0.05)
        for pid in self.ours():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if self.trace is not None:
            wait_bounded(self.trace, 30)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run(tmp, msgdir):
    """The phases; returns results keyed pf_*."""
    version = ensure_postfix()
    res = {}
    errlog = open(os.path.join(tmp, "postfix-inject-errors.log"), "ab")
    sendmail = os.path.join(SBIN, "sendmail")
    print("postfix %s from %s: messages 0..%d of the same set (BENCH_POSTFIX_MESSAGES), virtual(8) into a "
          "Maildir, virtual_destination_concurrency_limit 10:" % (version, ROOT, PF_N - 1), flush=True)

    pf = Postfix()
    try:
        # inject with Postfix stopped: postdrop writes maildrop/ files
        m = Meter(tmp)
        procs = start_injection(sendmail, msgdir, PF_N, CONC, errlog, env=pf.env)
        failed = injection_failures(procs, time.monotonic() + PHASE_TIMEOUT)
        m.stop()
        if failed:
            raise BenchError("postfix: %d sendmail calls failed: %s" % (failed, error_lines(errlog.name)))
        res["pf_inject"] = PF_N / m.wall
        print("postfix inject: %d messages in %.2f s = %.0f msg/s (into maildrop/ only: pickup and cleanup "
              "run in the next phase)" % (PF_N, m.wall, PF_N / m.wall))
        print("  %s" % m.describe(PF_N, m.children_cpu()), flush=True)

        watch = DirWatch(pf.maildir_new)
        m = Meter(tmp)
        pf.start()
        deadline = time.monotonic() + PHASE_TIMEOUT
        t_last = wait_delivered(watch, PF_N, deadline, pf.dead)
        t_empty = wait_until(lambda: pf.queue_count() == 0, deadline, "the postfix queue to empty")
        m.stop(t_empty)
        pf.stop()
        watch.close()
        verify_maildir(pf.maildir_new, msgdir, PF_N)
        res["pf_deliver"] = PF_N / m.wall
        print("postfix deliver: %d messages in %.2f s = %.0f msg/s (last one in the Maildir at %.2f s, "
              "queue empty at %.2f s)" % (PF_N, m.wall, PF_N / m.wall, t_last - m.t0, t_empty - m.t0))
        print("  %s; verified" % m.describe(PF_N), flush=True)
    finally:
        pf.stop()
        pf.remove()

    pf = Postfix()
    try:
        pf.start()
        watch = DirWatch(pf.maildir_new)
        m = Meter(tmp)
        procs = start_injection(sendmail, msgdir, PF_N, CONC, errlog, env=pf.env)
        inject_end = []
        deadline = time.monotonic() + PHASE_TIMEOUT
        t_last = wait_delivered(watch, PF_N, deadline, pf.dead, procs, inject_end)
        m.stop(t_last)
        failed = injection_failures(procs, deadline)
        t_empty = wait_until(lambda: pf.queue_count() == 0, deadline, "the postfix queue to empty")
        pf.stop()
        watch.close()
        if failed:
            raise BenchError("postfix: %d sendmail calls failed: %s" % (failed, error_lines(errlog.name)))
        verify_maildir(pf.maildir_new, msgdir, PF_N)
        res["pf_e2e"] = PF_N / m.wall
        res["pf_e2e_inject"] = PF_N / (inject_end[0] - m.t0)
        print("postfix end-to-end: %d messages in %.2f s = %.0f msg/s (injection done at %.2f s = %.0f msg/s; "
              "queue empty at %.2f s)" % (PF_N, m.wall, PF_N / m.wall, inject_end[0] - m.t0, res["pf_e2e_inject"],
                                         t_empty - m.t0))
        print("  %s; verified" % m.describe(PF_N), flush=True)
    finally:
        pf.stop()
        pf.remove()

    if shutil.which("strace"):
        costs(tmp, msgdir, res, sendmail, errlog)
    return res


def costs(tmp, msgdir, res, sendmail, errlog):
    pf = Postfix()
    sd = tempfile.mkdtemp(prefix="strace.", dir=tmp)
    strace = ["strace", "-qq", "-ff", "-e", "trace=" + TRACED, "-o"]
    try:
        pf.start(wrap=strace + [os.path.join(sd, "deliver")])
        watch = DirWatch(pf.maildir_new)
        procs = start_injection(sendmail, msgdir, COST_N, 1, errlog, env=pf.env,
                                wrap=strace + [os.path.join(sd, "inject")])
        deadline = time.monotonic() + 90
        wait_delivered(watch, COST_N, deadline, pf.dead, procs)
        injection_failures(procs, deadline)
        wait_until(lambda: pf.queue_count() == 0, deadline, "the postfix queue to empty")
        watch.close()
    finally:
        pf.stop()
        pf.remove()
    inj = parse_strace_ff(os.path.join(sd, "inject"))
    dlv = parse_strace_ff(os.path.join(sd, "deliver"))
    i, idet = per_message(inj, COST_N, sorted(p for p in inj if p not in ("sh", "dash", "?")))
    d, ddet = per_message(dlv, COST_N, sorted(dlv), once=("master",))
    res.update(pf_inj_exec=i["execve"], pf_inj_fsync=i["fsync"], pf_dlv_exec=d["execve"], pf_dlv_fsync=d["fsync"])
    print("postfix costs: %d messages end to end under strace -f:" % COST_N)
    print("postfix per message (injection): %.2f program starts (execve), %.2f fsyncs  [forks %.2f, renames %.2f]"
          % (i["execve"], i["fsync"], i["fork"], i["rename"]))
    print("    %s" % idet)
    print("postfix per message (delivery):  %.2f program starts (execve), %.2f fsyncs  [forks %.2f, renames %.2f]"
          % (d["execve"], d["fsync"], d["fork"], d["rename"]))
    print("    %s  (daemon starts are amortized over these %d messages; each daemon serves up to 100 "
          "requests)" % (ddet, COST_N), flush=True)
    shutil.rmtree(sd, ignore_errors=True)
