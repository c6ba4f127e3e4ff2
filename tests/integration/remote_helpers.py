"""Shared pieces of the remote delivery tests (test_remote*.py), all on
loopback: a fake DNS (ldns-testns on a random port), fake remote hosts each
on its own 127.x.y.z address at port 25 (we run as root), a scripted SMTP
server, a second yubin instance as a real receiving host (yubin-listen +
smtpd -> Maildir), and postfix's smtp-sink."""
import os
import random
import re
import select
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import Instance, wait_for, deb_program

# ---------------------------------------------------------------- addresses


def fresh_ip():
    """An unused loopback address whose port 25 is free (127.0.0.0/8 is all
    loopback on Linux), so that concurrent runs do not meet."""
    for _ in range(200):
        ip = "127.%d.%d.%d" % (random.randint(100, 250), random.randint(0, 255), random.randint(2, 254))
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, 25))
                return ip
            except OSError:
                continue
    raise RuntimeError("no free loopback address with port 25")


def wait_listening(ip, port=25, timeout=10):
    harness.wait_listening(ip, port, timeout)

# ---------------------------------------------------------------- DNS


class NameServer:
    """ldns-testns serving a zone given as {name: {"MX": [(pref, host)],
    "A": [ip], "AAAA": [ip]}} or {name: "NXDOMAIN" | "SERVFAIL"}. Every name
    answers MX, A and AAAA (NOERROR without records when absent), so no
    query waits for a timeout; unknown names get NXDOMAIN."""

    def __init__(self, zone):
        self.dir = tempfile.mkdtemp(prefix="yubin-dns.")
        path = os.path.join(self.dir, "data")
        with open(path, "w") as f:
            f.write(self.datafile(zone))
        # ldns-testns -r picks a random port and gives up (exits) when that
        # one is taken, which a busy machine makes likely now and then: so
        # it gets a few tries.
        for attempt in range(5):
            self.proc = subprocess.Popen(["ldns-testns", "-r", path], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            out = b""
            end = time.monotonic() + 10
            while b"Listening on port" not in out or not out.endswith(b"\n"):
                r, _, _ = select.select([self.proc.stdout], [], [], max(0, end - time.monotonic()))
                chunk = self.proc.stdout.read1(4096) if r else b""
                if not chunk:
                    break
                out += chunk
            m = re.search(rb"Listening on port (\d+)\n", out)
            if m:
                self.port = int(m.group(1))
                return
            self.proc.kill()
            self.proc.wait(10)
        raise RuntimeError("ldns-testns did not start: %r" % out)

    @staticmethod
    def entry(name, qtype, rcode, answers=()):
        lines = ["ENTRY_BEGIN", "MATCH opcode qtype qname", "ADJUST copy_id", "REPLY QR AA RA " + rcode,
                 "SECTION QUESTION", "%s. IN %s" % (name, qtype), "SECTION ANSWER"]
        lines += list(answers)
        return "\n".join(lines + ["ENTRY_END", ""])

    def datafile(self, zone):
        out = []
        for name, rr in zone.items():
            for qtype in ("MX", "A", "AAAA"):
                if isinstance(rr, str):
                    out.append(self.entry(name, qtype, rr))
                    continue
                answers = []
                for v in rr.get(qtype, ()):
                    if qtype == "MX":
                        answers.append("%s. IN MX %d %s" % (name, v[0], v[1] if v[1] == "." else v[1] + "."))
                    else:
                        answers.append("%s. IN %s %s" % (name, qtype, v))
                out.append(self.entry(name, qtype, "NOERROR", answers))
        out.append("ENTRY_BEGIN\nMATCH opcode\nADJUST copy_id\nREPLY QR AA RA NXDOMAIN\nENTRY_END\n")
        return "".join(out)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def sender_instance(ns, **controls):
    """The sending instance: DNS only from ns, no smarthost, short timers."""
    c = {"dnsservers": "127.0.0.1:%d" % ns.port, "smtproutes": "# none", "timeoutdns": "1",
         "timeoutconnect": "3", "timeoutremote": "5", "minbackoff": "1", "maxbackoff": "2"}
    c.update(controls)
    return Instance(controls=c, users=("alice",))

# ---------------------------------------------------------------- receiving hosts


class Receiver:
    """A second yubin instance receiving for `domains` at ip:port through
    yubin-listen and smtpd, delivering to its users' Maildirs."""

    def __init__(self, ip, domains, users=("bob",), port=25):
        self.inst = Instance(controls={"locals": "\n".join(domains), "rcpthosts": "\n".join(domains)},
                             users=users)
        self.inst.start()
        self.log = open(os.path.join(self.inst.dir, "listen.log"), "ab")
        self.proc = subprocess.Popen([self.inst.bin("yubin-listen"), "-H", "-R", ip, str(port), self.inst.bin("smtpd")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_listening(ip, port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.inst.cleanup()


def smtp_sink(ip, port=25, extra=()):
    """postfix's smtp-sink on ip:port (fetched with apt-get download, never installed)."""
    prog = deb_program("postfix", "/usr/sbin/smtp-sink")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(harness.DEBS, "postfix", "usr", "lib", "postfix"))
    p = subprocess.Popen([prog, "-u", "nobody", "-c"] + list(extra) + ["%s:%d" % (ip, port), "256"], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    wait_listening(ip, port)
    return p


def stop_proc(p):
    p.terminate()
    try:
        return p.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        return p.communicate()[0]


def bounces(inst, user="alice"):
    """The bounces in user's Maildir (messages from MAILER-DAEMON)."""
    return [m for m in inst.messages(user) if b"\nFrom: MAILER-DAEMON@" in b"\n" + m]


def send(inst, rcpts, body=b"Subject: remote\n\nhello\n", sender="alice@" + harness.HOST):
    r = inst.sendmail(["-oi", "-f", sender] + list(rcpts), body)
    assert r.returncode == 0, r


def run_sender(fn, zone, ips, **controls):
    """Runs fn(inst, ips) with a nameserver serving zone and a sending
    instance pointed at it; prints the sender's log on failure and always
    stops both."""
    ns = NameServer(zone)
    inst = sender_instance(ns, **controls)
    try:
        fn(inst, ips)
    except Exception:
        print("--- sender log (tail) ---\n" + inst.read_log()[-4000:])
        raise
    finally:
        inst.cleanup()
        ns.stop()
