"""Shared pieces of the benchmark (tests/bench/bench.py, tests/bench/postfix.py):
processes, measuring, the test messages, the injection driver, strace counts."""
import ctypes
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
N = int(os.environ.get("BENCH_MESSAGES", "10000"))
CONC = int(os.environ.get("BENCH_CONCURRENCY", "8"))
COST_N = 100                    # messages traced for the per-message counts
HOST = "bench.example"
RCPT = "u@" + HOST
MSG_SIZE = 4096
PF_N = int(os.environ.get("BENCH_POSTFIX_MESSAGES", str(min(N, 2000))))  # Postfix's run, see postfix.py
DRIVER_N = min(N, 2000)         # runs of the driver loop with /bin/true
PHASE_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "600"))  # seconds, for each phase
WORKER = os.path.join(HERE, "inject-worker")
TRACED = "execve,fork,vfork,clone,clone3,fsync,fdatasync,rename,renameat,renameat2"
HZ = os.sysconf("SC_CLK_TCK")

started = []    # every Popen made here, each the leader of its own process group
tempdirs = []   # removed at the end unless BENCH_KEEP=1


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

def spawn(cmd, **kw):
    """Popen in a new session, so that cleanup can end the whole group."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    started.append(p)
    return p


def end_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_bounded(p, timeout):
    """Waits for p; on timeout kills its group and waits again. Returns its
    exit status, or None if it would not go."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        end_group(p)
        try:
            return p.wait(10)
        except subprocess.TimeoutExpired:
            return None


def pids_of(exe):
    """Pids of the processes running the executable exe."""
    exe = os.path.realpath(exe)
    return [pid for pid, e in processes() if e == exe]


def processes():
    """(pid, executable path) of every process we can see."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                out.append((int(p), os.readlink("/proc/%s/exe" % p)))
            except OSError:
                pass
    return out


def proc_stat(pid):
    """(cpu seconds, minor page faults) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the name: state ppid ... minflt(8) ... utime(12) stime(13)
    return (int(x[11]) + int(x[12])) / HZ, int(x[7])


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, dead, what, timeout=30):
    """Until something accepts on 127.0.0.1:port, at most timeout seconds;
    dead() says why the server is gone ("" or None while it runs)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        why = dead()
        if why:
            raise BenchError("%s: %s" % (what, why))
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise BenchError("%s does not listen on %d" % (what, port))


def run_main(main, name, errors=(BenchError,)):
    """Runs main() as the script: SIGTERM ends it like Ctrl-C, an exception
    of errors is reported as "NAME: FAILED: ...", and cleanup() runs at the
    end whatever happens. Exits with main's status, 1 after a failure."""
    def on_signal(_sig, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    rc = 1
    try:
        rc = main()
    except errors as e:
        print("%s: FAILED: %s" % (name, e), flush=True)
    except KeyboardInterrupt:
        print("%s: interrupted" % name, flush=True)
    finally:
        cleanup()
    sys.exit(rc)


def cleanup():
    """Ends every process group this script started and removes its files."""
    for p in started:
        end_group(p)    # the group, even when its leader is already gone
    for p in started:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if os.environ.get("BENCH_KEEP") != "1":
        for d in tempdirs:
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- measuring

def cpu_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return {"user": v[0] + v[1], "sys": v[2] + v[5] + v[6], "idle": v[3], "iowait": v[4],
            "steal": v[7] if len(v) > 7 else 0}


def disk_counters(path):
    """(writes completed, ms spent doing I/O) of the block device holding path."""
    st = os.stat(path)
    maj, mi = os.major(st.st_dev), os.minor(st.st_dev)
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                x = line.split()
                if int(x[0]) == maj and int(x[1]) == mi:
                    return int(x[7]), int(x[12])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Meter:
    """Between start and stop: wall time, the machine's CPU split, disk
    writes, and the CPU time of this script's reaped descendants."""

    def __init__(self, path):
        self.path = path
        self.cpu0 = cpu_jiffies()
        self.ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.disk0 = disk_counters(path)
        self.t0 = time.monotonic()
        self.t1 = None

    def stop(self, t=None):
        self.t1 = t if t is not None else time.monotonic()
        self.cpu1 = cpu_jiffies()
        self.self1 = resource.getrusage(resource.RUSAGE_SELF)
        self.disk1 = disk_counters(self.path)

    @property
    def wall(self):
        return self.t1 - self.t0

    def children_cpu(self):
        """CPU seconds of descendants reaped since start (call after reaping them)."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (ru.ru_utime - self.ru0.ru_utime) + (ru.ru_stime - self.ru0.ru_stime)

    def busy_cpu(self):
        """CPU seconds the whole machine spent not idle (iowait counts as idle)."""
        d = {k: self.cpu1[k] - self.cpu0[k] for k in self.cpu1}
        return (d["user"] + d["sys"]) / HZ

    def describe(self, n, child_cpu=None):
        d = {k: self.cpu1[k] - self.cpu0[k] for k in self.cpu1}
        tot = sum(d.values()) or 1
        parts = ["machine: user %d%% sys %d%% iowait %d%% idle %d%%" % tuple(
            round(100.0 * d[k] / tot) for k in ("user", "sys", "iowait", "idle"))]
        busy = self.busy_cpu()
        parts.append("%.2f ms busy cpu/msg" % (1000.0 * busy / n))
        if child_cpu is not None:
            mine = (self.self1.ru_utime - self.self0.ru_utime) + (self.self1.ru_stime - self.self0.ru_stime)
            parts.append("of which the programs %.2f ms" % (1000.0 * child_cpu / n))
            others = busy - child_cpu - mine
            if others > 0.05 * busy:
                parts.append("NOTE %d%% of the busy time was other processes (a shared machine?)"
                             % round(100 * others / busy))
        if self.disk0 and self.disk1:
            w = self.disk1[0] - self.disk0[0]
            io = (self.disk1[1] - self.disk0[1]) / 1000.0
            parts.append("disk %.1f writes/msg, busy %d%%" % (w / n, round(100 * io / max(self.wall, 1e-9))))
        return "; ".join(parts)


class DirWatch:
    """Counts files arriving in a directory (renamed or linked into it) with
    inotify, through libc; falls back to listing the directory."""
    IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW, IN_ISDIR = 0x80, 0x100, 0x4000, 0x40000000

    def __init__(self, path):
        self.path = path
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                if libc.inotify_add_watch(fd, path.encode(), self.IN_MOVED_TO | self.IN_CREATE) >= 0:
                    self.fd = fd
                else:
                    os.close(fd)
        except (OSError, AttributeError):
            pass
        self.count = len(os.listdir(path))

    def wait(self, timeout):
        """Waits up to timeout seconds for arrivals; returns the count."""
        if self.fd < 0:
            time.sleep(min(timeout, 0.05))
            self.count = len(os.listdir(self.path))
            return self.count
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return self.count
        overflow = False
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            pos = 0
            while pos + 16 <= len(buf):
                _wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, pos)
                pos += 16 + ln
                if mask & self.IN_Q_OVERFLOW:
                    overflow = True
                elif mask & (self.IN_MOVED_TO | self.IN_CREATE) and not mask & self.IN_ISDIR:
                    self.count += 1
        if overflow:
            self.count = len(os.listdir(self.path))
        return self.count

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def wait_delivered(watch, n, deadline, alive=None, injectors=(), inject_end=None):
    """Until watch has counted n files; returns the time of the n-th. alive()
    false ends the wait with an error. When injectors are given, inject_end
    (a list) gets the time they had all finished."""
    pending = list(injectors)
    while watch.count < n:
        if time.monotonic() > deadline:
            raise BenchError("timed out: %d of %d messages delivered" % (watch.count, n))
        if alive is not None:
            why = alive()
            if why:
                raise BenchError(why)
        watch.wait(0.05)
        if pending:
            pending = [p for p in pending if p.poll() is None]
            if not pending and inject_end is not None:
                inject_end.append(time.monotonic())
    t = time.monotonic()
    if pending and inject_end is not None:
        # delivery finished first: the last injector is about to exit
        for p in pending:
            wait_bounded(p, max(1.0, deadline - time.monotonic()))
        inject_end.append(time.monotonic())
    return t


def wait_until(pred, deadline, what):
    while not pred():
        if time.monotonic() > deadline:
            raise BenchError("timed out waiting for " + what)
        time.sleep(0.002)
    return time.monotonic()


def count_files(top):
    n = 0
    for _dirpath, _dirs, files in os.walk(top):
        n += len(files)
    return n


# ---------------------------------------------------------------- messages

WORDS = ("the queue manager schedules every message once and local delivery writes it into "
         "a maildir with one fsync for the file and one for the directory while the injector "
         "keeps the envelope apart from the text so that nothing is parsed twice and no message "
         "is lost when the machine stops between two steps of the protocol").split()


def make_message(i):
    """A plausible message of exactly MSG_SIZE bytes, LF line ends, its index in Subject."""
    head = ("Received: from client.bench.example (client.bench.example [192.0.2.7])\n"
            "\tby mx.bench.example with ESMTP; Mon, 23 Nov 2026 12:00:00 +0000\n"
            "From: Bench Sender <sender@bench.example>\n"
            "To: U <u@bench.example>\n"
            "Subject: bench message %05d\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\n"
            "Message-ID: <bench.%05d.1795437000@client.bench.example>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n"
            "\n") % (i, i)
    rnd = random.Random(i)
    lines = []
    size = len(head)
    while True:
        words = []
        while sum(len(w) + 1 for w in words) < 64:
            words.append(rnd.choice(WORDS))
        text = " ".join(words).capitalize() + "\n"
        if size + len(text) > MSG_SIZE - 80:
            break
        lines.append(text)
        size += len(text)
    rest = MSG_SIZE - size           # at least 80: one or two closing lines
    if rest > 72:
        lines.append("-" * 70 + "\n")
        rest -= 71
    lines.append(("Regards, bench %05d " % i + "." * 80)[: rest - 1] + "\n")
    msg = (head + "".join(lines)).encode()
    assert len(msg) == MSG_SIZE, len(msg)
    return msg


def write_messages(d, n):
    os.makedirs(d)
    for i in range(n):
        with open(os.path.join(d, str(i)), "wb") as f:
            f.write(make_message(i))


SUBJECT = re.compile(rb"^Subject: bench message (\d+)$", re.M)


def verify_maildir(maildir_new, msgdir, n):
    """Every message 0..n-1 is there exactly once, its body byte for byte."""
    seen = {}
    for name in os.listdir(maildir_new):
        with open(os.path.join(maildir_new, name), "rb") as f:
            data = f.read()
        head, _, body = data.partition(b"\n\n")
        m = SUBJECT.search(head)
        if not m:
            raise BenchError("%s: no bench Subject" % name)
        i = int(m.group(1))
        if i in seen:
            raise BenchError("message %d delivered twice (%s, %s)" % (i, seen[i], name))
        seen[i] = name
        with open(os.path.join(msgdir, str(i)), "rb") as f:
            if body != f.read().partition(b"\n\n")[2]:
                raise BenchError("message %d: body differs (%s)" % (i, name))
    if set(seen) != set(range(n)):
        missing = sorted(set(range(n)) - set(seen))[:5]
        raise BenchError("%d of %d messages delivered; missing e.g. %s" % (len(seen), n, missing))


# ---------------------------------------------------------------- injection

def start_injection(sendmail, msgdir, n, conc, errlog, wrap=(), env=None):
    """conc inject-worker shells, each running sendmail for its share of 0..n-1."""
    procs = []
    for k in range(conc):
        a, b = n * k // conc, n * (k + 1) // conc
        if a < b:
            procs.append(spawn(list(wrap) + ["/bin/sh", WORKER, sendmail, RCPT, msgdir, str(a), str(b)],
                               stdout=errlog, stderr=errlog, env=env))
    return procs


def error_lines(path, n=6):
    """The last n lines of an injection error log, without Postfix's
    expected complaint that pickup is not running."""
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if "public/pickup" not in l]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def injection_failures(procs, deadline):
    """Waits for the workers; returns how many sendmail calls failed. Past
    the deadline the workers are killed and that is an error."""
    failed = 0
    for p in procs:
        try:
            rc = p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                end_group(q)
                wait_bounded(q, 10)
            raise BenchError("the injection did not finish in time (BENCH_TIMEOUT=%.0f s per phase)" % PHASE_TIMEOUT)
        failed += rc if rc >= 0 else 1
    return failed


# ---------------------------------------------------------------- strace -ff counts

STRACE_LINE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
FORKS = ("clone", "clone3", "fork", "vfork")


def parse_strace_ff(prefix):
    """Reads the PREFIX.PID files of strace -ff. Returns {program: {kind: count}}:
    execve counted for the program it starts, everything else for the program
    the process was running; kind is execve, fork, thread, fsync or rename."""
    d = os.path.dirname(prefix)
    base = os.path.basename(prefix) + "."
    calls = {}
    for f in os.listdir(d):
        if f.startswith(base) and f[len(base):].isdigit():
            with open(os.path.join(d, f), errors="replace") as fh:
                calls[int(f[len(base):])] = [m.groups() for m in map(STRACE_LINE.match, fh) if m]
    parent = {}
    for pid, cs in calls.items():
        for name, args, ret in cs:
            if name in FORKS and ret.isdigit() and "CLONE_THREAD" not in args:
                parent[int(ret)] = pid

    def exec_name(args):
        return os.path.basename(args.split('"')[1]) if '"' in args else "?"

    memo = {}

    def program_at_birth(pid, depth=0):
        if pid not in memo:
            p = parent.get(pid)
            memo[pid] = "?" if p is None or depth > 100 else program_at_end(p, depth + 1)
        return memo[pid]

    def program_at_end(pid, depth=0):
        prog = program_at_birth(pid, depth)
        for name, args, ret in calls.get(pid, []):
            if name == "execve" and ret == "0":
                prog = exec_name(args)
        return prog

    counts = {}
    for pid, cs in calls.items():
        prog = program_at_birth(pid)
        for name, args, ret in cs:
            if name == "execve":
                if ret != "0":
                    continue
                prog = exec_name(args)
                kind = "execve"
            elif name in FORKS:
                kind = "thread" if "CLONE_THREAD" in args else "fork"
            elif name in ("fsync", "fdatasync"):
                kind = "fsync"
            elif name.startswith("rename"):
                kind = "rename"
            else:
                kind = name
            c = counts.setdefault(prog, {})
            c[kind] = c.get(kind, 0) + 1
    return counts


def per_message(counts, n, programs, once=()):
    """Totals per message over programs: execve, fsync, fork, rename; the
    execve of the programs in once (started once, not per message) is left
    out. Also a per-program breakdown string."""
    tot = {"execve": 0, "fsync": 0, "fork": 0, "rename": 0}
    detail = []
    for p in programs:
        c = counts.get(p)
        if not c:
            continue
        for k in tot:
            if k == "execve" and p in once:
                continue
            tot[k] += c.get(k, 0)
        shown = {k: v for k, v in c.items() if not (k == "execve" and p in once)}
        if shown:
            detail.append("%s: %s" % (p, ", ".join("%s %g" % (k, v / n) for k, v in sorted(shown.items()))))
    return {k: v / n for k, v in tot.items()}, "; ".join(detail)
