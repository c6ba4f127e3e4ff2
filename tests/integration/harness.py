"""Integration test harness: a temporary single-user yubin instance on this
machine, the real programs, bounded waits, and cleanup of every process.

A test file defines functions named test_*; run() calls each and prints
"ok NAME" or "FAIL NAME" with the reason."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
HOST = "test.example"


def wait_for(pred, timeout=30.0, what="condition", interval=0.02):
    """Polls pred() until true; raises AssertionError after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_listening(ip, port, timeout=10):
    """Waits until ip:port accepts a connection (one probe connection, closed at once)."""
    def up():
        try:
            socket.create_connection((ip, port), 1).close()
            return True
        except OSError:
            return False
    wait_for(up, timeout, "%s:%d to listen" % (ip, port))


def program_pids(path):
    """Pids of the processes running the executable at path."""
    out = []
    exe = os.path.realpath(path)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % p) == exe:
                out.append(int(p))
        except OSError:
            pass
    return out


def maildir_files(maildir):
    """Paths of the messages in a Maildir: new/ then cur/, each sorted by name."""
    return [os.path.join(maildir, sub, name) for sub in ("new", "cur")
            for name in sorted(os.listdir(os.path.join(maildir, sub)))]


# What yubin-start runs, directly or through the spawners.
INSTANCE_PROGRAMS = ("queue-injectd", "queue-manager", "local-spawn", "local-deliver", "remote-spawn", "remote-deliver", "yubin-start")


def kill_programs(instance_dir, programs):
    """SIGKILL every process running one of the instance's programs."""
    for prog in programs:
        for pid in program_pids(os.path.join(instance_dir, "bin", prog)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Instance:
    def __init__(self, controls=None, users=("alice",)):
        self.dir = tempfile.mkdtemp(prefix="yubin-test.")
        self.proc = None
        self.logfile = os.path.join(self.dir, "yubin-start.log")
        subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", self.dir,
                        "--hostname", HOST], check=True, stdout=subprocess.DEVNULL)
        # Nothing leaves this machine: remote mail goes to a closed loopback
        # port (refused at once, so it is deferred), and DNS, if a test's own
        # routes need it, only to loopback. test_remote*.py set their own.
        self.control("smtproutes", ":127.0.0.1:1")
        self.control("dnsservers", "127.0.0.1:1")
        self.control("timeoutdns", "1")
        for name, value in (controls or {}).items():
            self.control(name, value)
        for u in users:
            self.add_user(u, "secret-" + u)

    # --- setup
    def control(self, name, value):
        with open(os.path.join(self.dir, "control", name), "w") as f:
            f.write(value if value.endswith("\n") else value + "\n")

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def add_user(self, name, password):
        subprocess.run([self.bin("yubin-user"), "add", name], input=(password + "\n").encode(),
                       check=True)

    def maildir(self, user):
        if user == "alias":
            return os.path.join(self.dir, "alias", "Maildir")
        return os.path.join(self.dir, "home", user, "Maildir")

    # --- running
    def start(self):
        assert self.proc is None
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.bin("yubin-start")], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        wait_for(lambda: "event=start" in self.read_log() or self.proc.poll() is not None,
                 10, "queue-manager to start")
        assert self.proc.poll() is None, "yubin-start exited: " + self.read_log()[-2000:]

    def stop(self, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_all()
        self.proc = None
        self.log.close()

    def kill_all(self):
        """SIGKILL the whole process group (yubin-start and its children),
        and wait until every one of them is gone: until then one of them
        still holds queue/lock/run, and a new yubin-start would refuse."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            wait_for(lambda: not any(self.pids(p) for p in INSTANCE_PROGRAMS), 10, "the instance's processes to end")

    def pids(self, program):
        """Pids of a program of this instance (by its executable path)."""
        return program_pids(self.bin(program))

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        kill_programs(self.dir, INSTANCE_PROGRAMS)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- mail
    def sendmail(self, args, message, timeout=30):
        if isinstance(message, str):
            message = message.encode()
        return subprocess.run([self.bin("sendmail")] + list(args), input=message,
                              capture_output=True, timeout=timeout)

    def messages(self, user):
        """Contents of every message in the user's Maildir (new/ and cur/)."""
        out = []
        for path in maildir_files(self.maildir(user)):
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    def count(self, user):
        return sum(len(os.listdir(os.path.join(self.maildir(user), s))) for s in ("new", "cur"))

    def queue_files(self):
        q = os.path.join(self.dir, "queue")
        return [n for d in ("new", "cur") for n in os.listdir(os.path.join(q, d))]

    def queue_empty(self):
        return not self.queue_files()


def body_of(message):
    """The body of a delivered message (after the first blank line)."""
    return message.split(b"\n\n", 1)[1] if b"\n\n" in message else b""


def header_values(message, name):
    """Unfolded values of every header field called name (case-insensitive)."""
    head = message.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += line
        elif ":" in line:
            k, v = line.split(":", 1)
            fields.append([k, v])
    return [v.strip() for k, v in fields if k.lower() == name.lower()]


def run(module_globals):
    tests = sorted((n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f))
    only = sys.argv[1:]
    failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
            print("ok %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
    sys.exit(1 if failed else 0)


# --- shared helpers for the test files (added after the functions above)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Listener:
    """yubin-listen [listen_opts] on 127.0.0.1:<free port> running one of
    the instance's programs (smtpd, pop3d) with args; its stderr (and so
    every session's log lines) goes to DIR/PROGRAM-PORT.log."""

    def __init__(self, inst, program, *args, listen_opts=()):
        self.inst = inst
        self.program = program
        self.port = free_port()
        self.logpath = os.path.join(inst.dir, "%s-%d.log" % (program, self.port))
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([inst.bin("yubin-listen"), *listen_opts, "127.0.0.1", str(self.port),
                                      inst.bin(program), *args],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_listening("127.0.0.1", self.port)

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, 9)     # the listener and any session it left
        except ProcessLookupError:
            pass
        self.proc.wait()
        for pid in self.inst.pids(self.program):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.log.close()


def with_instance(**kw):
    """Decorator: runs the test with a fresh Instance(**kw), prints the tail of
    the yubin-start log when it fails, and always cleans the instance up."""
    def deco(fn):
        def run():
            inst = Instance(**kw)
            try:
                fn(inst)
            except Exception:
                print("--- yubin-start log (tail) ---\n" + inst.read_log()[-3000:])
                raise
            finally:
                inst.cleanup()
        run.__name__ = fn.__name__
        return run
    return deco


def qmail_envelope(sender, recipients):
    """The envelope of queue-inject(8): F sender NUL, T rcpt NUL ..., NUL."""
    def b(s):
        return s.encode() if isinstance(s, str) else s
    return b"F" + b(sender) + b"\0" + b"".join(b"T" + b(r) + b"\0" for r in recipients) + b"\0"


def queue_inject(inst, message, envelope, timeout=30, preexec_fn=None):
    """Runs INSTANCE/bin/queue-inject with fd 0 = a pipe carrying message and
    fd 1 = a pipe carrying envelope (raw bytes). Returns the finished
    subprocess.Popen (returncode, pid) with its stderr output in .err."""
    msg_r, msg_w = os.pipe()
    env_r, env_w = os.pipe()
    try:
        p = subprocess.Popen([inst.bin("queue-inject")], stdin=msg_r, stdout=env_r,
                             stderr=subprocess.PIPE, preexec_fn=preexec_fn)
    finally:
        os.close(msg_r)
        os.close(env_r)
    import threading

    def feed(fd, data):
        try:
            _write_all(fd, data)
        except OSError:
            pass        # queue-inject went away: its exit code tells why
        finally:
            os.close(fd)
    # Both pipes are fed at once: queue-inject reads the message first, so a
    # large envelope must not block the message.
    threads = [threading.Thread(target=feed, args=(msg_w, message)),
               threading.Thread(target=feed, args=(env_w, envelope))]
    for t in threads:
        t.start()
    try:
        err = p.communicate(timeout=timeout)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for t in threads:
            t.join(timeout)
    p.err = err
    return p


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def queue_dir(inst, sub):
    """Names in INSTANCE/queue/SUB (tmp, new, cur, info), queue ids
    (SECONDS.MICROSECONDS.PID) in the order they were made."""
    def key(name):
        parts = name.split(".")
        return [int(p) for p in parts] if all(p.isdigit() for p in parts) else [name]
    return sorted(os.listdir(os.path.join(inst.dir, "queue", sub)), key=key)


DEBS = os.path.join(TOP, "build", "debs")


def deb_program(package, path):
    """A program from a Debian package that must not be installed (it would
    pull in another MTA): `apt-get download` it and `dpkg-deb -x` it into
    build/debs/PACKAGE/. Returns the path of PATH inside it; raises
    RuntimeError with the reason when the package cannot be had."""
    root = os.path.join(DEBS, package)
    prog = os.path.join(root, path.lstrip("/"))
    if os.path.exists(prog):
        return prog
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise RuntimeError("apt-get/dpkg-deb not available to fetch %s" % package)
    tmp = tempfile.mkdtemp(prefix="yubin-deb.")
    try:
        def download():
            return subprocess.run(["apt-get", "download", "-q", package], cwd=tmp,
                                  capture_output=True, timeout=300)
        r = download()
        if r.returncode != 0:       # stale or missing package lists
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
            r = download()
        debs = [n for n in os.listdir(tmp) if n.endswith(".deb")]
        if r.returncode != 0 or not debs:
            raise RuntimeError("cannot download %s: %s" % (package, r.stderr.decode(errors="replace")[-300:]))
        os.makedirs(DEBS, exist_ok=True)
        part = tempfile.mkdtemp(prefix=package + ".", dir=DEBS)
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), part], check=True)
        try:
            os.rename(part, root)   # atomic: a concurrent run sees all or nothing
        except OSError:
            shutil.rmtree(part, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.exists(prog):
        raise RuntimeError("%s has no %s" % (package, path))
    return prog


def missing_libraries(program):
    """Shared libraries that ldd cannot find for program (empty if none)."""
    r = subprocess.run(["ldd", program], capture_output=True, text=True)
    return [l.split()[0] for l in r.stdout.splitlines() if "not found" in l]
