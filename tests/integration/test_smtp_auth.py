"""SMTP AUTH (RFC 4954) and the submission service (RFC 6409) through
real clients over real TLS: smtplib (starttls + login, SMTP_SSL), swaks
(--auth PLAIN and LOGIN, --tls and --tlsc) and msmtp, against smtpd and
smtpd -s under yubin-listen on loopback, with certificates made at test
time. The passwords are checked by yubin-checkpassword; smtpd never reads
users/. Raw sockets try what a client must not get away with."""
import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import harness
from harness import Instance, wait_for, header_values, body_of, HOST
import tls_helpers

PASSWORD = "secret-alice"


class Setup:
    """An instance with a certificate for HOST (signed by a private CA),
    queue-manager running, and listeners made on demand."""

    def __init__(self, controls=None):
        self.inst = Instance(controls=controls)
        self.listeners = []
        try:
            self.ca = tls_helpers.CA(os.path.join(self.inst.dir, "ca"))
            chain, key = self.ca.issue("server", [HOST])
            tls_helpers.install(self.inst, chain, key)
            self.inst.start()
        except BaseException:
            self.inst.cleanup()   # nothing of a setup that failed stays behind
            raise

    def listen(self, *args, listen_opts=()):
        l = harness.Listener(self.inst, "smtpd", *args, listen_opts=listen_opts)
        self.listeners.append(l)
        return l

    def context(self):
        return self.ca.client_context()

    def cleanup(self):
        for l in self.listeners:
            l.stop()
        self.inst.cleanup()


def with_setup(controls=None):
    def deco(fn):
        def run():
            s = Setup(controls)
            try:
                fn(s)
            except BaseException:
                for l in s.listeners:
                    print("--- %s ---\n%s" % (l.logpath, l.read_log()[-3000:]))
                print("--- yubin-start ---\n" + s.inst.read_log()[-2000:])
                raise
            finally:
                s.cleanup()
        run.__name__ = fn.__name__
        return run
    return deco


def smtp(port, ctx):
    """An smtplib client at 127.0.0.1 whose starttls() checks the
    certificate for HOST (smtplib takes the name from connect())."""
    c = smtplib.SMTP(timeout=30)
    c.connect("127.0.0.1", port)
    c._host = HOST
    return c


def connect_ssl(port, ctx):
    """SMTP_SSL to 127.0.0.1 verifying the name HOST."""
    class Client(smtplib.SMTP_SSL):
        def _get_socket(self, host, port, timeout):
            sock = socket.create_connection(("127.0.0.1", port), timeout)
            return self.context.wrap_socket(sock, server_hostname=HOST)
    return Client(HOST, port, context=ctx, timeout=30)


def message(subject, extra=""):
    return ("From: alice@%s\r\nTo: bob@far.example\r\nSubject: %s\r\n%s\r\nhello\r\n" % (HOST, subject, extra))


class Raw:
    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def starttls(self, ctx):
        self.sock = ctx.wrap_socket(self.sock, server_hostname=HOST)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One whole reply (all its lines) as text."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("closed after %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True


def plain(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password)).encode()).decode()


def raw_tls(port, ctx):
    """A raw client after EHLO, STARTTLS and EHLO again."""
    r = Raw(port)
    assert r.reply().startswith("220 ")
    r.cmd("EHLO client.example")
    assert r.cmd("STARTTLS").startswith("220 2.0.0")
    r.starttls(ctx)
    ehlo = r.cmd("EHLO client.example")
    assert "250-AUTH PLAIN LOGIN" in ehlo, ehlo
    return r


# --- smtplib

@with_setup()
def test_smtplib_starttls_login_relays_and_says_esmtpsa(s):
    l = s.listen()
    c = smtp(l.port, s.context())
    c.ehlo("client.example")
    assert "auth" not in c.esmtp_features and c.has_extn("starttls")
    with_tls = c.starttls(context=s.context())
    assert with_tls[0] == 220
    c.ehlo("client.example")
    assert c.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    assert c.login("alice", PASSWORD)[0] == 235
    # relaying, which a stranger may not do: it goes to the queue for far.example
    refused = c.sendmail("alice@" + HOST, ["bob@far.example", "alice@" + HOST], message("relayed"))
    assert refused == {}
    c.quit()
    wait_for(lambda: s.inst.count("alice") == 1, 15, "local delivery")
    [m] = s.inst.messages("alice")
    rec = [r for r in header_values(m, "Received") if "(yubin) with" in r]
    assert len(rec) == 1 and " with ESMTPSA id " in rec[0] and "(using TLSv1.3 with cipher" in rec[0], rec
    log = l.read_log()
    assert "event=auth user=alice mechanism=PLAIN remote=127.0.0.1" in log, log
    assert PASSWORD not in log and PASSWORD not in s.inst.read_log()
    wait_for(lambda: "bob@far.example" in s.inst.read_log(), 15, "the relayed recipient in the queue")


@with_setup()
def test_smtplib_login_mechanism_and_wrong_passwords_alike(s):
    l = s.listen()
    replies = []
    for user, password in (("alice", "wrong"), ("nobody", PASSWORD)):
        # smtplib tries PLAIN, then LOGIN: two failures per login()
        c = smtp(l.port, s.context())
        c.starttls(context=s.context())
        c.ehlo("client.example")
        try:
            c.login(user, password)
        except smtplib.SMTPAuthenticationError as e:
            replies.append((e.smtp_code, e.smtp_error))
        c.close()
    assert replies[0] == replies[1] == (535, b"5.7.8 Authentication credentials invalid"), replies
    c = smtp(l.port, s.context())
    c.starttls(context=s.context())
    c.ehlo("client.example")
    c.user, c.password = "alice", PASSWORD
    code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
    assert code == 235
    c.quit()
    log = l.read_log()
    assert "event=auth-failed user=nobody mechanism=PLAIN" in log
    assert "event=auth user=alice mechanism=LOGIN" in log
    assert "wrong" not in re.sub(r"reason=\"wrong password\"", "", log), log
    assert PASSWORD not in log


@with_setup()
def test_submission_needs_auth_and_adds_date_and_message_id(s):
    sub = s.listen("-s")
    c = smtp(sub.port, s.context())
    c.starttls(context=s.context())
    c.ehlo("client.example")
    code, text = c.mail("alice@" + HOST)
    assert (code, text) == (530, b"5.7.0 Authentication required"), (code, text)
    c.login("alice", PASSWORD)
    # no Date:, no Message-ID: in what the client sends
    c.sendmail("alice@" + HOST, ["alice@" + HOST],
               "From: alice@%s\r\nTo: alice@%s\r\nSubject: bare\r\n\r\nbody\r\n" % (HOST, HOST))
    c.quit()
    wait_for(lambda: s.inst.count("alice") == 1, 15, "delivery")
    [m] = s.inst.messages("alice")
    [date] = header_values(m, "Date")
    [mid] = header_values(m, "Message-ID")
    assert re.match(r"\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", date), date
    assert re.match(r"<\d+\.[^@\s]+@%s>$" % re.escape(HOST), mid), mid
    assert body_of(m) == b"body\n"


@with_setup()
def test_smtps_implicit_tls_submission_with_smtplib(s):
    l = s.listen("-s", "-T")
    c = connect_ssl(l.port, s.context())
    c.ehlo("client.example")
    assert not c.has_extn("starttls")   # TLS is already on
    assert c.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    c.login("alice", PASSWORD)
    c.sendmail("alice@" + HOST, ["alice@" + HOST], message("smtps"))
    c.quit()
    wait_for(lambda: s.inst.count("alice") == 1, 15, "delivery")
    rec = header_values(s.inst.messages("alice")[0], "Received")
    assert any(" with ESMTPSA id " in r for r in rec), rec


@with_setup(controls={"senderlogins": "alice@%s alice\n@other.example bob\n" % HOST})
def test_senderlogins_limits_the_envelope_sender(s):
    s.inst.add_user("bob", "secret-bob")
    l = s.listen("-s")
    c = smtp(l.port, s.context())
    c.starttls(context=s.context())
    c.ehlo("client.example")
    c.login("bob", "secret-bob")
    code, text = c.mail("alice@" + HOST)
    assert code == 553 and b"is not owned by user bob" in text, (code, text)
    assert c.mail("someone@other.example")[0] == 250
    c.quit()


# --- swaks and msmtp

def swaks(*args, timeout=60):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--helo", "client.example", "--hide-all", *args],
                       capture_output=True, timeout=timeout)
    return r


@with_setup()
def test_swaks_auth_plain_and_login_over_starttls_and_tlsc(s):
    mx, smtps = s.listen(), s.listen("-s", "-T")
    common = ["--from", "alice@" + HOST, "--to", "alice@" + HOST, "--auth-user", "alice",
              "--auth-password", PASSWORD, "--tls-verify", "--tls-ca-path", s.ca.cert]
    r = swaks("--port", str(mx.port), "--tls", "--auth", "PLAIN", "--header", "Subject: swaks plain", *common)
    assert r.returncode == 0, r
    r = swaks("--port", str(smtps.port), "--tlsc", "--auth", "LOGIN", "--header", "Subject: swaks login", *common)
    assert r.returncode == 0, r
    # wrong password: swaks reports the failure (exit 28: AUTH failed)
    bad = [a if a != PASSWORD else "wrong" for a in common]
    r = swaks("--port", str(mx.port), "--tls", "--auth", "PLAIN", *bad)
    assert r.returncode == 28, r
    wait_for(lambda: s.inst.count("alice") == 2, 15, "two deliveries")
    subjects = sorted(header_values(m, "Subject")[0] for m in s.inst.messages("alice"))
    assert subjects == ["swaks login", "swaks plain"]
    assert "event=auth user=alice mechanism=LOGIN" in smtps.read_log()


def msmtp(home, port, starttls, password, recipient):
    rc = os.path.join(home, "msmtprc")
    with open(rc, "w") as f:
        f.write("defaults\ntls on\ntls_trust_file %s\ntls_starttls %s\n"
                "account test\nhost 127.0.0.1\ntls_host_override %s\nport %d\nauth on\nuser alice\npassword %s\n"
                "from alice@%s\n"
                % (os.path.join(home, "ca.pem"), "on" if starttls else "off", HOST, port, password, HOST))
    os.chmod(rc, 0o600)
    return subprocess.run(["msmtp", "-C", rc, "-a", "test", recipient],
                          input=("Subject: msmtp %s\n\nhi\n" % ("starttls" if starttls else "tls")).encode(),
                          capture_output=True, timeout=60,
                          env=dict(os.environ, HOME=home))


@with_setup()
def test_msmtp_submits_with_starttls_and_with_implicit_tls(s):
    sub, smtps = s.listen("-s"), s.listen("-s", "-T")
    home = tempfile.mkdtemp(prefix="yubin-msmtp.")
    try:
        shutil.copy(s.ca.cert, os.path.join(home, "ca.pem"))
        # 127.0.0.1, with the certificate checked for HOST (tls_host_override)
        for port, starttls in ((sub.port, True), (smtps.port, False)):
            r = msmtp(home, port, starttls, PASSWORD, "alice@" + HOST)
            assert r.returncode == 0, r
        r = msmtp(home, sub.port, True, "wrong", "alice@" + HOST)
        assert r.returncode != 0 and b"535" in r.stderr + r.stdout, r
    finally:
        shutil.rmtree(home, ignore_errors=True)
    wait_for(lambda: s.inst.count("alice") == 2, 15, "two deliveries")
    subjects = sorted(header_values(m, "Subject")[0] for m in s.inst.messages("alice"))
    assert subjects == ["msmtp starttls", "msmtp tls"]


# --- what a client must not get away with

@with_setup()
def test_auth_before_tls_is_538_and_not_offered(s):
    l = s.listen()
    r = Raw(l.port)
    r.reply()
    ehlo = r.cmd("EHLO client.example")
    assert "AUTH" not in ehlo and "250-STARTTLS" in ehlo, ehlo
    assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("538 5.7.11 ")
    assert r.cmd("AUTH LOGIN").startswith("538 5.7.11 ")
    assert r.cmd("MAIL FROM:<a@b.example>").startswith("250 ")
    assert r.cmd("RCPT TO:<x@far.example>").startswith("553 5.7.1 ")   # and no relaying
    assert "event=auth" not in l.read_log()


@with_setup(controls={"smtpplaintext": "loopback"})
def test_a_control_file_allows_plaintext_auth_from_loopback(s):
    l = s.listen()
    r = Raw(l.port)
    r.reply()
    assert "250-AUTH PLAIN LOGIN" in r.cmd("EHLO client.example")
    assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("235 2.7.0")


@with_setup(controls={"smtpfaildelay": "400"})
def test_failures_slow_down_then_421(s):
    l = s.listen()
    r = raw_tls(l.port, s.context())
    times, replies = [], []
    for user in ("alice", "nobody", "alice"):
        t0 = time.monotonic()
        replies.append(r.cmd("AUTH PLAIN " + plain(user, "guess-%s-9" % user)))
        times.append(time.monotonic() - t0)
    assert replies[0] == replies[1] == "535 5.7.8 Authentication credentials invalid", replies
    assert replies[2] == "535 5.7.8 Authentication credentials invalid", replies
    assert r.reply().startswith("421 4.7.0 ")
    assert r.closed()
    # the second waits 400 ms more than the first, the third 800 ms
    assert times[1] >= 0.38 and times[2] >= 0.78, times
    assert times[1] - times[0] >= 0.25, times
    log = l.read_log()
    assert log.count("event=auth-failed") == 3, log
    assert "guess-" not in log, log   # never a password


@with_setup()
def test_bad_responses_are_501_and_the_session_goes_on(s):
    l = s.listen()
    r = raw_tls(l.port, s.context())
    cases = [
        ("AUTH PLAIN " + "AGFsaWNl", "501 5.5.2"),                            # one NUL
        ("AUTH PLAIN " + plain("alice", PASSWORD, authzid="bob"), "501 5.5.2"),   # acting as another
        ("AUTH PLAIN not*base64", "501 5.5.2"),
        ("AUTH PLAIN " + plain("alice", PASSWORD).rstrip("="), "501 5.5.2"),   # no padding
        ("AUTH CRAM-MD5", "504 5.5.4"),
        ("AUTH", "501 5.5.4"),
    ]
    for line, code in cases:
        got = r.cmd(line)
        assert got.startswith(code + " "), (line, got)
    assert r.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert r.cmd("*").startswith("501 5.0.0 ")
    assert r.cmd("AUTH PLAIN") == "334 "
    assert r.cmd("A" * 20000).startswith("501 5.5.2 ")   # overlong
    assert r.cmd("NOOP").startswith("250 ")
    assert r.cmd("AUTH PLAIN") == "334 "
    r.send(plain("alice", PASSWORD) + "\nNOOP\r\n")    # a bare LF inside the response
    assert r.reply().startswith("501 5.5.2 ")
    assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("235 2.7.0 ")
    assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("503 5.5.1 ")
    assert r.cmd("QUIT").startswith("221 ")
    log = l.read_log()
    assert log.count("event=auth user=alice") == 1, log
    assert "event=auth-failed" not in log   # none of the malformed ones reached the checker


@with_setup()
def test_checker_that_cannot_run_is_a_temporary_failure(s):
    l = s.listen()
    checker = s.inst.bin("yubin-checkpassword")
    users = os.path.join(s.inst.dir, "users", "passwd")
    os.rename(users, users + ".away")     # the checker cannot read users/passwd: exit 111
    os.mkdir(users)
    try:
        r = raw_tls(l.port, s.context())
        assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("454 4.7.0 ")
    finally:
        os.rmdir(users)
        os.rename(users + ".away", users)
    assert r.cmd("AUTH PLAIN " + plain("alice", PASSWORD)).startswith("235 2.7.0 ")
    assert os.path.exists(checker)
    assert "event=auth-temporary user=alice" in l.read_log()


if __name__ == "__main__":
    harness.run(globals())
