#!/usr/bin/env python3
"""make bench, POP3 part: RETR of N messages of 4 KiB over one session,
yubin's pop3d and Dovecot's POP3 server side by side on copies of the same
Maildir, each on its own free loopback port.

Each session logs in, STATs, then RETRs every message; the rate is timed
from the first RETR to the last octet of the last reply, in two modes:
  sequential  one RETR at a time, the next sent when the reply is complete
              (what poplib, fetchmail and getmail do)
  pipelined   32 RETRs in flight (RFC 2449 PIPELINING; what mpop does)
Each server gets two sessions per mode, in the order yubin, dovecot,
dovecot, yubin, and the better of the two counts, so that a change in the
machine's load during the run favours neither. "login+STAT first" is the
time to the STAT reply in each server's first session (yubin counts every
file's size; dovecot builds its index), "last" that in its last one.
Every reply is checked byte for byte against the message file converted
to CRLF and byte-stuffed; the messages are kept (no DELE). The server CPU is that of the session process (yubin's pop3d
session, dovecot's pop3), from /proc.

Dovecot: Debian's dovecot-core and dovecot-pop3d. When they are missing
and this runs as root, they are installed with service starts refused
(policy-rc.d) and the system service disabled, so no daemon holds port
110; the bench runs its own dovecot with its own configuration, state and
log under the temporary directory, and stops it at the end.

Environment: BUILD (build directory, default build), BENCH_POP3_MESSAGES
(10000), BENCH_DOVECOT (auto: run Dovecot if it can be set up; 0: skip;
1: required), BENCH_TIMEOUT (seconds per session, 240), BENCH_KEEP=1
keeps the temporary directory. Exits non-zero when a check fails."""
import os
import pwd
import grp
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
N = int(os.environ.get("BENCH_POP3_MESSAGES", "10000"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "240"))
MSG_SIZE = 4096
WINDOW = 32
PASSWORD = "bench-password"
HZ = os.sysconf("SC_CLK_TCK")
started = []


class BenchError(Exception):
    pass


class Unavailable(Exception):
    pass


# ------------------------------------------------------------- processes

def spawn(cmd, log):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    started.append(p)
    return p


def stop_all():
    """SIGTERM to each server (dovecot's master stops its children itself),
    then SIGKILL to whatever is left in its process group."""
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(10)


def wait_port(port, proc, what):
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError("%s does not listen on %d" % (what, port))


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(ppid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(p))
            except (OSError, ValueError):
                pass
    return out


def descendants_running(root_pid, exe):
    """Pids under root_pid (any depth) whose executable is exe."""
    exe = os.path.realpath(exe)
    todo, out = [root_pid], []
    while todo:
        for c in children(todo.pop()):
            todo.append(c)
            try:
                if os.readlink("/proc/%d/exe" % c) == exe:
                    out.append(c)
            except OSError:
                pass
    return out


# -------------------------------------------------------------- messages

def message(i):
    """Message i: exactly MSG_SIZE octets, LF line ends, one dotted line."""
    head = ("Return-Path: <bench@bench.example>\nFrom: bench@bench.example\nTo: u@bench.example\n"
            "Subject: bench message %d\nMessage-ID: <%d@bench.example>\n\n.a line that starts with a dot\n"
            % (i, i)).encode()
    line = b"%05d the quick brown fox jumps over the lazy dog, again and again.\n" % i
    body = head
    while len(body) + len(line) <= MSG_SIZE - 1:
        body += line
    return body + b"x" * (MSG_SIZE - 1 - len(body)) + b"\n"


def wire(content):
    """What RETR must send after its +OK line: CRLF, byte-stuffed, terminated."""
    out = content.replace(b"\n", b"\r\n")
    return out.replace(b"\r\n.", b"\r\n..") + b".\r\n"   # no message starts with a dot


def write_maildir(md):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    t = 1700000000
    for i in range(N):
        name = "%d.M%dP%dQ%d.bench.example,S=%d" % (t + i, i, os.getpid(), i + 1, MSG_SIZE)
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(message(i))


# ---------------------------------------------------------------- client

class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 60)
        self.sock.settimeout(60)
        self.buf = b""
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, c):
        self.sock.sendall(c.encode() + b"\r\n")
        r = self.line()
        if not r.startswith(b"+OK"):
            raise BenchError("%s: %r" % (c, r))
        return r

    def retr_sequential(self, n, deadline):
        out = []
        for i in range(1, n + 1):
            self.sock.sendall(b"RETR %d\r\n" % i)
            buf = b""
            while not buf.endswith(b"\r\n.\r\n"):
                chunk = self.sock.recv(262144)
                if not chunk:
                    raise BenchError("connection closed at RETR %d" % i)
                buf += chunk
            out.append(buf)
            if i % 1000 == 0 and time.monotonic() > deadline:
                raise BenchError("timed out at RETR %d" % i)
        return out

    def retr_pipelined(self, n, deadline):
        chunks, sent, done, tail = [], 0, 0, b""
        while sent < min(WINDOW, n):
            sent += 1
            self.sock.sendall(b"RETR %d\r\n" % sent)
        while done < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise BenchError("connection closed after %d replies" % done)
            chunks.append(chunk)
            ends = (tail + chunk).count(b"\r\n.\r\n")
            tail = (tail + chunk)[-4:]
            done += ends
            more = b"".join(b"RETR %d\r\n" % i for i in range(sent + 1, min(n, sent + ends) + 1))
            if more:
                sent = min(n, sent + ends)
                self.sock.sendall(more)
            if time.monotonic() > deadline:
                raise BenchError("timed out after %d replies" % done)
        data = b"".join(chunks)
        return [r + b"\r\n.\r\n" for r in data.split(b"\r\n.\r\n")[:-1]]


def session(port, mode, server_pid_of):
    """One timed session: login and STAT, then RETR 1..N. Returns the figures."""
    t0 = time.monotonic()
    c = Client(port)
    c.cmd("USER u")
    c.cmd("PASS " + PASSWORD)
    count = int(c.cmd("STAT").split()[1])
    login = time.monotonic() - t0
    if count != N:
        raise BenchError("STAT says %d messages, not %d" % (count, N))
    pid = server_pid_of()
    cpu0 = cpu_ticks(pid) if pid else None
    client0 = time.process_time()
    t1 = time.monotonic()
    deadline = t1 + TIMEOUT
    replies = (c.retr_sequential if mode == "sequential" else c.retr_pipelined)(N, deadline)
    wall = time.monotonic() - t1
    client = time.process_time() - client0
    cpu = (cpu_ticks(pid) - cpu0) / HZ if pid else None
    c.cmd("QUIT")
    c.sock.close()
    octets = sum(len(r) for r in replies)
    bad = sum(1 for i, r in enumerate(replies) if r.split(b"\r\n", 1)[1] != wire(message(i)))
    if len(replies) != N:
        bad += N - len(replies)
    return {"mode": mode, "wall": wall, "login": login, "cpu": cpu, "client": client, "octets": octets, "bad": bad}


# --------------------------------------------------------------- servers

def start_yubin(tmp):
    """A single-user instance with user u and N messages; pop3d behind
    yubin-listen. Returns the port and a function giving the session's pid."""
    inst = os.path.join(tmp, "yubin")
    subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", inst, "--hostname",
                    "bench.example"], check=True, stdout=subprocess.DEVNULL, timeout=30)
    subprocess.run([os.path.join(inst, "bin", "yubin-user"), "add", "u"], input=(PASSWORD + "\n").encode(),
                   check=True, timeout=30)
    md = os.path.join(inst, "home", "u", "Maildir")
    write_maildir(md)
    shutil.copytree(md, os.path.join(tmp, "maildir-copy"), symlinks=True)
    port = free_port()
    log = open(os.path.join(tmp, "yubin-pop3d.log"), "ab")
    lst = spawn([os.path.join(inst, "bin", "yubin-listen"), "127.0.0.1", str(port),
                 os.path.join(inst, "bin", "pop3d")], log)
    wait_port(port, lst, "yubin-listen")

    def pid():
        found = descendants_running(lst.pid, os.path.join(inst, "bin", "pop3d"))
        return found[0] if found else None
    return port, pid


def ensure_dovecot():
    if os.path.exists("/usr/sbin/dovecot") and os.path.exists("/usr/lib/dovecot/pop3"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("dovecot-pop3d is not installed and cannot be installed here")
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:                 # refuse service starts during the install
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "dovecot-core", "dovecot-pop3d"], env=env,
                           capture_output=True, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            r = subprocess.run(["apt-get", "install", "-y", "-qq", "dovecot-core", "dovecot-pop3d"], env=env,
                               capture_output=True, timeout=600)
        if r.returncode != 0:
            raise Unavailable("apt-get install dovecot-pop3d failed: %s" % r.stderr.decode()[-300:])
    finally:
        if made_policy:
            os.unlink(policy)
    # the system service stays off: this bench runs its own dovecot
    subprocess.run(["update-rc.d", "dovecot", "disable"], capture_output=True)
    if os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "disable", "--now", "dovecot.service", "dovecot.socket"], capture_output=True)


def start_dovecot(tmp):
    """Dovecot with its own configuration on a copy of yubin's Maildir.
    Returns the port and a function giving the pop3 process's pid."""
    ensure_dovecot()
    if os.geteuid() != 0:
        raise Unavailable("dovecot's master needs root here")
    d = os.path.join(tmp, "dovecot")
    home = os.path.join(d, "home")
    os.makedirs(home)
    shutil.copytree(os.path.join(tmp, "maildir-copy"), os.path.join(home, "Maildir"), symlinks=True)
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    for root, dirs, files in os.walk(home):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(n, uid, gid)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("u:{PLAIN}%s\n" % PASSWORD)
    port = free_port()
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""instance_name = yubin-bench-dovecot
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
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
""".format(d=d, uid=uid, gid=gid, home=home, port=port))
    log = open(os.path.join(d, "dovecot.out"), "ab")
    master = spawn(["/usr/sbin/dovecot", "-F", "-c", conf], log)
    wait_port(port, master, "dovecot")

    def pid():
        found = descendants_running(master.pid, "/usr/lib/dovecot/pop3")
        return found[0] if found else None
    return port, pid


# ---------------------------------------------------------------- report

def report(results):
    size = len(message(0).replace(b"\n", b"\r\n"))
    print("pop3: RETR of %d messages of %d bytes (%d with CRLF, %d octets a reply on the wire), one session each"
          % (N, MSG_SIZE, size, len(b"+OK %d octets\r\n" % size) + len(wire(message(0)))))
    print("  %-14s %-11s %8s %7s %11s %11s %13s %8s" % ("server", "mode", "msg/s", "MB/s", "server CPU",
                                                         "client CPU", "login+STAT", "checked"))
    print("  %-14s %-11s %8s %7s %11s %11s %13s" % ("", "", "", "", "us/msg", "us/msg", "first/last ms"))
    for r in results:
        cpu = "%.1f" % (r["cpu"] * 1e6 / N) if r["cpu"] is not None else "?"
        print("  %-14s %-11s %8.0f %7.1f %11s %11.1f %6.0f/%-6.0f %8s" % (
            r["server"], r["mode"], N / r["wall"], r["octets"] / r["wall"] / 1e6, cpu, r["client"] * 1e6 / N,
            r["login"] * 1e3, r["last_login"] * 1e3, "ok" if r["bad"] == 0 else "%d BAD" % r["bad"]))
    by = {(r["server"], r["mode"]): r for r in results}
    for mode in ("sequential", "pipelined"):
        y, d = by.get(("yubin pop3d", mode)), by.get(("dovecot pop3", mode))
        if y and d:
            cpu = "; server CPU per message, dovecot/yubin: %.2f" % (d["cpu"] / y["cpu"]) if y["cpu"] and d["cpu"] else ""
            print("  ratio %s: msg/s yubin/dovecot: %.2f%s" % (mode, d["wall"] / y["wall"], cpu))
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    if load > os.cpu_count():
        print("  NOTE: load average %.1f on %d CPUs: other processes took CPU time; the rates are low, "
              "the CPU figures less affected" % (load, os.cpu_count()))


def main():
    tmp = tempfile.mkdtemp(prefix="yubin-pop3-bench.")
    os.chmod(tmp, 0o755)      # dovecot's auth and mail processes run as other users
    results = []
    failed = False
    try:
        servers = {"yubin pop3d": start_yubin(tmp)}
        want = os.environ.get("BENCH_DOVECOT", "auto")
        if want != "0":
            try:
                servers["dovecot pop3"] = start_dovecot(tmp)
            except (Unavailable, BenchError) as e:
                print("pop3: dovecot %s: %s" % ("skipped" if isinstance(e, Unavailable) else "failed", e),
                      flush=True)
                if want == "1":
                    raise BenchError("dovecot: %s" % e)
        order = ["yubin pop3d", "dovecot pop3", "dovecot pop3", "yubin pop3d"]
        first_login, last_login = {}, {}
        for mode in ("sequential", "pipelined"):
            best, bad = {}, {}
            for name in [n for n in order if n in servers]:
                port, pid = servers[name]
                r = dict(session(port, mode, pid), server=name)
                first_login.setdefault(name, r["login"])
                last_login[name] = r["login"]
                bad[name] = bad.get(name, 0) + r["bad"]
                if name not in best or r["wall"] < best[name]["wall"]:
                    best[name] = r
            for name, r in best.items():
                r["bad"] = bad[name]       # a bad reply in either session counts
                results.append(r)
        for r in results:
            r["login"] = first_login[r["server"]]
            r["last_login"] = last_login[r["server"]]
        report(results)
        failed = any(r["bad"] for r in results if r["server"] == "yubin pop3d")
    except BenchError as e:
        print("pop3 bench FAILED: %s" % e, flush=True)
        failed = True
    finally:
        stop_all()
        if os.environ.get("BENCH_KEEP") == "1":
            print("pop3: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
