"""smtpd through its real entry points: sendmail -bs (a local session) and
smtpd run directly with the tcpserver variables, dialogs over pipes."""
import os
import subprocess
import time

import harness
from harness import Instance, wait_for, header_values, body_of, HOST, with_instance


def dialog(argv, data, env=None, timeout=30):
    r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, env=env)
    return r.stdout.decode("utf-8", "replace").split("\r\n")


def codes(lines):
    """The reply codes, one per reply (multi-line replies counted once)."""
    return [l[:3] for l in lines if len(l) >= 4 and l[3] == " "]


def network_env(ip="192.0.2.7", relay=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCP") and k != "RELAYCLIENT"}
    env.update(TCPREMOTEIP=ip, TCPREMOTEHOST="client.example", TCPLOCALIP="127.0.0.1")
    if relay is not None:
        env["RELAYCLIENT"] = relay
    return env


@with_instance()
def test_sendmail_bs_session_delivers(inst):
    inst.start()
    lines = dialog([inst.bin("sendmail"), "-bs"],
                   b"EHLO client\r\nMAIL FROM:<bob@other.example>\r\nRCPT TO:<alice@" + HOST.encode() +
                   b">\r\nDATA\r\nSubject: via -bs\r\n\r\n..leading dot\r\nline\r\n.\r\nQUIT\r\n")
    assert codes(lines) == ["220", "250", "250", "250", "354", "250", "221"], lines
    assert any("250 2.0.0 Ok: queued as " in l for l in lines)
    wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
    [m] = inst.messages("alice")
    assert body_of(m) == b".leading dot\nline\n"
    assert header_values(m, "Return-Path") == ["<bob@other.example>"]
    rec = header_values(m, "Received")
    assert any("by " + HOST + " (yubin) with ESMTP id " in r and "uid" in r for r in rec), rec


@with_instance()
def test_network_session_relay_control_and_received_line(inst):
    inst.start()
    data = (b"HELO client.example\r\nMAIL FROM:<bob@other.example>\r\n"
            b"RCPT TO:<victim@elsewhere.example>\r\n"
            b"RCPT TO:<user%elsewhere.example@" + HOST.encode() + b">\r\n"
            b"RCPT TO:<@" + HOST.encode() + b":victim@elsewhere.example>\r\n"
            b"RCPT TO:<alice@" + HOST.upper().encode() + b".>\r\n"
            b"DATA\r\nSubject: n\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    lines = dialog([inst.bin("smtpd")], data, env=network_env())
    assert codes(lines) == ["220", "250", "250", "553", "250", "553", "250", "354", "250", "221"], lines
    assert any(l.startswith("553 5.7.1") for l in lines)
    wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
    [m] = inst.messages("alice")
    rec = header_values(m, "Received")
    assert any("from client.example (client.example [192.0.2.7])" in r and "with SMTP" in r for r in rec), rec
    # the percent-hack recipient is local: it bounces as unknown, it is never relayed
    wait_for(lambda: "rcpt=user%elsewhere.example@" + HOST in inst.read_log(), 10, "percent-hack recipient")
    assert "result=failed" in inst.read_log()


@with_instance()
def test_relayclient_allows_relay(inst):
    lines = dialog([inst.bin("smtpd")], b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@far.example>\r\nQUIT\r\n",
                   env=network_env(relay=""))
    assert codes(lines) == ["220", "250", "250", "250", "221"], lines


@with_instance(controls={"timeoutsmtpd": "1"})
def test_idle_client_is_timed_out(inst):
    p = subprocess.Popen([inst.bin("smtpd")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=network_env())
    try:
        p.stdin.write(b"EHLO c\r\n")
        p.stdin.flush()
        t0 = time.monotonic()
        out = p.stdout.read()   # until smtpd closes
        assert time.monotonic() - t0 < 10
        assert b"421 4.4.2" in out, out
        assert p.wait(10) == 0
    finally:
        p.kill()
        p.wait()


@with_instance()
def test_smuggling_variant_is_refused_not_split(inst):
    inst.start()
    data = (b"EHLO c\r\nMAIL FROM:<bob@other.example>\r\nRCPT TO:<alice@" + HOST.encode() + b">\r\nDATA\r\n"
            b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@other.example>\nRCPT TO:<alice@" + HOST.encode() +
            b">\nDATA\nSubject: smuggled\n\nsecond\r\n.\r\nQUIT\r\n")
    lines = dialog([inst.bin("smtpd")], data, env=network_env())
    assert codes(lines) == ["220", "250", "250", "250", "354", "554", "221"], lines
    time.sleep(0.5)
    assert inst.count("alice") == 0
    assert inst.queue_empty()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Listener:
    """yubin-listen on a free loopback port running the instance's smtpd."""
    def __init__(self, inst, rules=None, limit=None, maxuse=None):
        self.port = free_port()
        args = [inst.bin("yubin-listen")]
        if limit:
            args += ["-c", str(limit)]
        if maxuse:
            args += ["-m", str(maxuse)]
        if rules is not None:
            path = os.path.join(inst.dir, "control", "smtp-rules")
            with open(path, "w") as f:
                f.write(rules)
            args += ["-x", path]
        # The log goes to a file: a pipe nobody reads would fill and stop yubin-listen.
        self.logfile = os.path.join(inst.dir, "yubin-listen.%d.log" % self.port)
        with open(self.logfile, "wb") as log:
            self.proc = subprocess.Popen(args + ["-H", "-R", "127.0.0.1", str(self.port), inst.bin("smtpd")],
                                         stderr=log)
        harness.wait_listening("127.0.0.1", self.port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log = self.log()
        # make check SANITIZE=1: what smtpd's sanitizers report lands in this log
        assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]
        return log

    def log(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode()


@with_instance()
def test_smtplib_through_yubin_listen(inst):
    import smtplib
    inst.start()
    lst = Listener(inst)
    try:
        with smtplib.SMTP("127.0.0.1", lst.port, timeout=10) as s:
            code, _ = s.ehlo("client.example")
            assert code == 250
            assert s.has_extn("pipelining") and s.has_extn("smtputf8") and s.has_extn("chunking")
            assert s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes")
            body = "Subject: caf\u00e9\r\n\r\n8-bit body: \u00e9\u00e8\r\n.starts with dot\r\n".encode()
            s.sendmail("bob@other.example", ["alice@" + HOST], body, mail_options=["BODY=8BITMIME"])
            # an SMTPUTF8 sender
            s.sendmail("b\u00f6b@other.example", ["alice@" + HOST], b"Subject: utf8\r\n\r\nx\r\n",
                       mail_options=["SMTPUTF8"])
            try:
                s.sendmail("bob@other.example", ["victim@elsewhere.example"], b"Subject: relay\r\n\r\nx\r\n")
                raise AssertionError("relayed for a stranger")
            except smtplib.SMTPRecipientsRefused as e:
                code, msg = e.recipients["victim@elsewhere.example"]
                assert code == 553 and msg.startswith(b"5.7.1"), e.recipients
        wait_for(lambda: inst.count("alice") == 2, 10, "deliveries")
        msgs = inst.messages("alice")
        first = [m for m in msgs if b"8-bit body" in m][0]
        assert body_of(first) == "8-bit body: \u00e9\u00e8\n.starts with dot\n".encode()
        assert any(header_values(m, "Return-Path") == ["<b\u00f6b@other.example>"] for m in msgs)
        rec = [r for m in msgs for r in header_values(m, "Received")]
        assert any("[127.0.0.1]" in r and "UTF8SMTP" in r for r in rec), rec
    finally:
        lst.stop()


@with_instance()
def test_swaks_pipelining_and_rules(inst):
    import shutil
    assert shutil.which("swaks"), "swaks is missing (make deps installs it)"
    inst.start()
    lst = Listener(inst, rules='127.0.0.1:allow,RELAYCLIENT=""\n')
    try:
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % lst.port, "--pipeline", "--to",
                            "alice@" + HOST + ",carol@far.example", "--from", "bob@other.example",
                            "--header", "Subject: swaks"], capture_output=True, timeout=30)
        out = r.stdout.decode()
        assert r.returncode == 0, out
        assert "250 2.0.0 Ok: queued as" in out, out
        wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
        # RELAYCLIENT from the rules file let carol@far.example through; it waits for remote delivery
        wait_for(lambda: "rcpt=carol@far.example" in inst.read_log(), 10, "remote recipient queued")
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % lst.port, "--to", "alice@" + HOST,
                            "--quit-after", "RCPT"], capture_output=True, timeout=30)
        assert r.returncode == 0 and b"221 2.0.0" in r.stdout, r.stdout
    finally:
        log = lst.stop()
    assert "event=connect" in log and "remote=127.0.0.1" in log, log


@with_instance()
def test_rules_deny_and_connection_limit(inst):
    import socket
    lst = Listener(inst, rules="127.0.0.1:deny\n")
    try:
        with socket.create_connection(("127.0.0.1", lst.port), 5) as c:
            c.settimeout(5)
            assert c.recv(100) == b""   # closed without a greeting
    finally:
        lst.stop()
    lst = Listener(inst, limit=1)
    try:
        second_client_waits_for_the_first(lst)
    finally:
        lst.stop()


def second_client_waits_for_the_first(lst):
    """A listener with -c 1: a second client gets no greeting until the first has quit."""
    import socket
    a = socket.create_connection(("127.0.0.1", lst.port), 5)
    a.settimeout(5)
    assert a.recv(100).startswith(b"220 ")
    b = socket.create_connection(("127.0.0.1", lst.port), 5)
    b.settimeout(0.5)
    try:
        got = b.recv(100)
    except socket.timeout:
        got = None
    assert got is None, got          # waits: the limit is one session
    a.sendall(b"QUIT\r\n")
    a.settimeout(5)
    assert a.recv(100).startswith(b"221 ")
    a.close()
    b.settimeout(5)
    assert b.recv(100).startswith(b"220 ")
    b.close()


if __name__ == "__main__":
    harness.run(globals())
