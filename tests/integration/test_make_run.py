"""make run (tests/run-instance) as a new user meets it: an instance with
a self-signed certificate, and the commands it prints work: swaks submits
over STARTTLS with AUTH on the submission port, smtplib over TLS from the
first byte on the SMTPS port, poplib fetches with POP3_SSL and with STLS,
all verifying the certificate with the file itself. Run by root (as CI
does) the instance is a system one, so the keys are each read by the user
of its server. Free loopback ports; everything it starts is stopped."""
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import harness
from harness import BUILD, wait_for, free_port

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Run:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-run.")
        os.chmod(self.dir, 0o755)
        self.rundir = os.path.join(self.dir, "run")
        self.ports = {name: free_port() for name in ("SMTP_PORT", "POP3_PORT", "SUBMISSION_PORT", "SMTPS_PORT",
                                                     "POP3S_PORT")}
        self.out = open(os.path.join(self.dir, "out"), "wb")
        self.proc = None

    def start(self):
        env = dict(os.environ, BUILD=os.path.abspath(BUILD), RUNDIR=self.rundir,
                   **{k: str(v) for k, v in self.ports.items()})
        self.proc = subprocess.Popen([os.path.join(TOP, "tests", "run-instance")], cwd=TOP, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        for port in self.ports.values():
            harness.wait_listening("127.0.0.1", port, timeout=30)
        wait_for(lambda: "Stop with Ctrl-C" in self.output(), 30, "the instructions")

    def output(self):
        with open(os.path.join(self.dir, "out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        harness.kill_programs(self.rundir, ["yubin-listen", "smtpd", "pop3d", "yubin-start", "queue-manager",
                                            "local-spawn", "remote-spawn", "queue-injectd"])

    def cleanup(self):
        self.stop()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cafile(self):
        return os.path.join(self.rundir, "control", "tlscert")

    def count(self):
        new = os.path.join(self.rundir, "home", "you", "Maildir", "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0


def test_make_run_serves_tls_on_every_port_and_its_commands_work():
    r = Run()
    try:
        r.start()
        out = r.output()
        # the printed swaks line, run as printed (the ports are this run's)
        m = re.search(r"^  (swaks --server 127\.0\.0\.1:%d --tls .*?--to \S+)$" % r.ports["SUBMISSION_PORT"],
                      out.replace("\\\n        ", ""), re.M)
        assert m, out
        cmd = m.group(1).split()
        p = subprocess.run(cmd + ["--hide-all"], capture_output=True, timeout=60)
        assert p.returncode == 0, p
        ctx = ssl.create_default_context(cafile=r.cafile())
        # SMTPS: TLS from the first byte, AUTH, and submission's rules
        with smtplib.SMTP_SSL("127.0.0.1", r.ports["SMTPS_PORT"], context=ctx, timeout=30) as s:
            s.ehlo("client.example")
            assert s.mail("you@localhost")[0] == 530   # AUTH first
            s.rset()
            s.login("you", "password")
            s.sendmail("you@localhost", ["you@localhost"], "Subject: smtps\r\n\r\nhi\r\n")
        # port 2525's STARTTLS
        with smtplib.SMTP("127.0.0.1", r.ports["SMTP_PORT"], timeout=30) as s:
            s.ehlo("client.example")
            assert s.has_extn("starttls")
            s.starttls(context=ctx)
            s.sendmail("me@example.org", ["you@localhost"], "Subject: starttls\r\n\r\nhi\r\n")
        wait_for(lambda: r.count() == 3, 30, "three deliveries")
        # the printed poplib line: POP3 over TLS
        m = re.search(r"^  (python3 -c '(import poplib, ssl.*)')$", out, re.M)
        assert m, out
        p = subprocess.run(["python3", "-c", m.group(2)], capture_output=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip().startswith(b"(3, "), p
        # and STLS on the POP3 port
        c = poplib.POP3("127.0.0.1", r.ports["POP3_PORT"], timeout=30)
        c.stls(context=ctx)
        c.user("you")
        c.pass_("password")
        assert c.stat()[0] == 3
        c.quit()
        key = os.stat(os.path.join(r.rundir, "control", "tlskey"))
        assert key.st_mode & 0o077 in (0, 0o040), oct(key.st_mode)   # never readable by others
        # the certificate is made once: a second start keeps it
        before = open(r.cafile()).read()
        r.stop()
        r.start()
        assert open(r.cafile()).read() == before
        with smtplib.SMTP_SSL("127.0.0.1", r.ports["SMTPS_PORT"], context=ctx, timeout=30) as s:
            s.login("you", "password")
    except BaseException:
        print("--- make run output ---\n" + r.output()[-4000:])
        raise
    finally:
        r.cleanup()


if __name__ == "__main__":
    harness.run(globals())
