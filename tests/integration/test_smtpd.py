"""smtpd through its real entry points: sendmail -bs (a local session) and
smtpd run directly with the tcpserver variables, dialogs over pipes."""
import os
import subprocess
import time

import harness
from harness import Instance, wait_for, header_values, body_of, HOST


def with_instance(**kw):
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


if __name__ == "__main__":
    harness.run(globals())
