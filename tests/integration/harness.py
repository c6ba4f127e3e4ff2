"""Integration test harness: a temporary single-user yubin instance on this
machine, the real programs, bounded waits, and cleanup of every process.

A test file defines functions named test_*; run() calls each and prints
"ok NAME" or "FAIL NAME" with the reason."""
import os
import shutil
import signal
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


class Instance:
    def __init__(self, controls=None, users=("alice",)):
        self.dir = tempfile.mkdtemp(prefix="yubin-test.")
        self.proc = None
        self.logfile = os.path.join(self.dir, "yubin-start.log")
        subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", self.dir,
                        "--hostname", HOST], check=True, stdout=subprocess.DEVNULL)
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
        """SIGKILL the whole process group (yubin-start and its children)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def pids(self, program):
        """Pids of a program of this instance (by its executable path)."""
        out = []
        exe = os.path.realpath(self.bin(program))
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/exe" % p) == exe:
                    out.append(int(p))
            except OSError:
                pass
        return out

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        for prog in ("queue-manager", "local-spawn", "local-deliver", "yubin-start"):
            for pid in self.pids(prog):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
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
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
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
