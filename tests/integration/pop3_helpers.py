"""Shared pieces of the pop3d tests (test_pop3d.py, test_pop3d_clients.py):
an instance with pop3d behind yubin-listen on a free loopback port, mail
delivered through the real chain, a raw POP3 client, and what a message
must look like on the wire."""
import os
import re
import socket
import subprocess
import time

import harness
from harness import Instance, wait_for, HOST

PASSWORD = "secret-alice"


free_port = harness.free_port


class Pop3Listener(harness.Listener):
    """yubin-listen on 127.0.0.1:<free port> running the instance's pop3d;
    its stderr (and so every pop3d's log lines) goes to a file."""

    def __init__(self, inst, *args, listen_opts=()):
        super().__init__(inst, "pop3d", *args, listen_opts=listen_opts)


def with_pop3(controls=None, users=("alice",)):
    """Decorator: runs the test as fn(inst, listener) with a fresh instance
    (failed logins delayed 50 ms unless controls say otherwise) and pop3d
    listening; prints the logs when it fails; always stops everything."""
    c = {"pop3faildelay": "50"}
    c.update(controls or {})

    def deco(fn):
        def run():
            inst = Instance(controls=c, users=users)
            lst = None
            try:
                lst = Pop3Listener(inst)
                fn(inst, lst)
            except Exception:
                print("--- yubin-start log (tail) ---\n" + inst.read_log()[-2000:])
                if lst:
                    print("--- pop3d log (tail) ---\n" + lst.read_log()[-3000:])
                raise
            finally:
                if lst:
                    lst.stop()
                inst.cleanup()
        run.__name__ = fn.__name__
        return run
    return deco


def deliver(inst, messages, user="alice"):
    """Sends each message through sendmail -oi with yubin-start running, and
    waits until all are in the user's Maildir."""
    if inst.proc is None:
        inst.start()
    before = inst.count(user)
    for m in messages:
        r = inst.sendmail(["-oi", "-f", "bob@other.example", user + "@" + HOST], m)
        assert r.returncode == 0, r.stderr
    wait_for(lambda: inst.count(user) == before + len(messages), 20, "delivery")


def maildir_files(inst, user="alice"):
    """{unique id (base name): (path, content)} of every message in new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(inst.maildir(user), sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out[name.split(":", 1)[0]] = (os.path.join(d, name), f.read())
    return out


def ordered_files(inst, user="alice"):
    """The messages as pop3d numbers them: by delivery time, then name."""
    files = maildir_files(inst, user)
    key = lambda uid: (int(re.match(r"\d*", uid).group(0) or 0), uid)
    return [(uid,) + files[uid] for uid in sorted(files, key=key)]


def crlf(content):
    """A Maildir file as POP3 must send it (before byte-stuffing): LF becomes
    CRLF, CRLF stays, a last line without an end gets one."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", content)
    if out and not out.endswith(b"\n"):
        out += b"\n" if out.endswith(b"\r") else b"\r\n"
    return out


def stuff(data):
    """Byte-stuffing of RFC 1939 section 3 and the terminator."""
    return re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"


class Raw:
    """A raw POP3 client on a socket: send lines, read replies exactly."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; had %r" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def multi(self):
        """The body of a multi-line response, raw (stuffed), terminator included."""
        while True:
            end = self.buf.find(b"\r\n.\r\n")
            if end >= 0 or self.buf.startswith(b".\r\n"):
                n = end + 5 if end >= 0 else 3
                body, self.buf = self.buf[:n], self.buf[n:]
                return body
            self._fill()

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def login(self, user="alice", password=PASSWORD):
        assert self.cmd("USER " + user).startswith("+OK")
        r = self.cmd("PASS " + password)
        assert r.startswith("+OK"), r
        return r

    def closed(self, timeout=10):
        """True when the server closes the connection within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()


def mail_set():
    """Messages whose transfer tests the edges: dot lines, a line that is a
    single dot, no final newline, CRLF and a bare CR, 8-bit bytes, a long
    line, an empty body."""
    return [b"Subject: plain\n\nfirst body\n",
            b"Subject: dots\n\n.\n..\n.leading dot\nend\n",
            b"Subject: nonl\n\nlast line without newline",
            b"Subject: crlf\r\n\r\nbody\r\nbare\rcr\n",
            "Subject: 8bit\n\ncaf\u00e9 \u00e8\n".encode() + b"\x01\x7f\n",
            b"Subject: long\n\n" + b"x" * 1500 + b"\n",
            b"Subject: empty\n\n"]


def wait_unlocked(inst, user="alice", timeout=10):
    """Waits until no pop3d session holds the user's mailbox lock."""
    import fcntl
    path = os.path.join(inst.maildir(user), "yubin-pop3d.lock")

    def free():
        if not os.path.exists(path):
            return True
        with open(path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError:
                return False
    wait_for(free, timeout, "the mailbox lock to be released")
