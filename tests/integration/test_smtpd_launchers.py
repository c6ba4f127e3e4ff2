"""smtpd unchanged under ucspi-tcp's tcpserver, openbsd-inetd (nowait) and
yubin-listen, with real clients: msmtp and postfix's smtp-source; and smtpd
serving one connection after another under yubin-listen -m (handoff)."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import harness
from harness import wait_for, header_values, body_of, HOST, with_instance, deb_program

from test_smtpd import free_port, Listener, second_client_waits_for_the_first


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def smtp_source(port, count, sessions, to):
    prog = deb_program("postfix", "/usr/sbin/smtp-source")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(harness.DEBS, "postfix", "usr", "lib", "postfix"))
    return subprocess.run([prog, "-l", "1024", "-m", str(count), "-s", str(sessions), "-f", "src@other.example",
                           "-t", to, "127.0.0.1:%d" % port], env=env, capture_output=True, timeout=120)


@with_instance()
def test_tcpserver_launches_smtpd(inst):
    assert shutil.which("tcpserver"), "ucspi-tcp is missing (make deps installs it)"
    inst.start()
    port = free_port()
    p = subprocess.Popen(["tcpserver", "-H", "-R", "-l", "0", "127.0.0.1", str(port), inst.bin("smtpd")],
                         stderr=subprocess.DEVNULL)
    try:
        harness.wait_listening("127.0.0.1", port)
        r = smtp_source(port, 20, 4, "alice@" + HOST)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: inst.count("alice") == 20, 30, "20 deliveries")
        m = inst.messages("alice")[0]
        # tcpserver set TCPREMOTEIP, and -H left TCPREMOTEHOST unset
        assert any("(unknown [127.0.0.1])" in r for r in header_values(m, "Received")), m[:400]
    finally:
        stop(p)


@with_instance()
def test_inetd_nowait_launches_smtpd(inst):
    inetd = deb_program("openbsd-inetd", "/usr/sbin/inetd")
    inst.start()
    port = free_port()
    conf = os.path.join(inst.dir, "inetd.conf")
    with open(conf, "w") as f:
        user = __import__("pwd").getpwuid(os.getuid()).pw_name
        f.write("127.0.0.1:%d stream tcp nowait %s %s smtpd\n" % (port, user, inst.bin("smtpd")))
    err = open(os.path.join(inst.dir, "inetd.err"), "w+b")
    p = subprocess.Popen([inetd, "-d", conf], stdout=subprocess.DEVNULL, stderr=err)
    try:
        try:
            harness.wait_listening("127.0.0.1", port)
        except AssertionError:
            if p.poll() is None:
                raise
            err.seek(0)
            raise AssertionError("inetd exited %d: %s" % (p.returncode, err.read().decode(errors="replace")))
        import smtplib
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("bob@other.example", ["alice@" + HOST], b"Subject: via inetd\r\n\r\nhello\r\n")
        wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
        m = inst.messages("alice")[0]
        # no TCP variables: smtpd took the client's address from the socket
        assert any("[127.0.0.1]" in r for r in header_values(m, "Received")), m[:400]
        assert body_of(m) == b"hello\n"
    finally:
        stop(p)
        err.close()


@with_instance()
def test_msmtp_through_yubin_listen(inst):
    assert shutil.which("msmtp"), "msmtp is missing (make deps installs it)"
    inst.start()
    lst = Listener(inst)
    try:
        conf = os.path.join(inst.dir, "msmtprc")
        with open(conf, "w") as f:
            f.write("defaults\nauth off\ntls off\naccount default\nhost 127.0.0.1\nport %d\n"
                    "from carol@other.example\ndomain client.example\n" % lst.port)
        os.chmod(conf, 0o600)
        msg = b"Subject: msmtp\nTo: alice@" + HOST.encode() + b"\n\n.leading\nbody\n"
        r = subprocess.run(["msmtp", "-C", conf, "alice@" + HOST], input=msg, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
        m = inst.messages("alice")[0]
        assert header_values(m, "Return-Path") == ["<carol@other.example>"]
        assert body_of(m) == b".leading\nbody\n"
        # msmtp reports a refused recipient and exits with a failure status
        r = subprocess.run(["msmtp", "-C", conf, "victim@elsewhere.example"], input=msg,
                           capture_output=True, timeout=30)
        assert r.returncode != 0 and b"553" in r.stderr, (r.returncode, r.stderr)
    finally:
        lst.stop()


@with_instance(users=("alice",))
def test_smtp_source_many_sessions(inst):
    two_hundred_messages(inst, Listener(inst, limit=20))


def two_hundred_messages(inst, lst):
    """smtp-source sends 200 messages, 10 connections at a time; returns the listener's log."""
    inst.start()
    try:
        r = smtp_source(lst.port, 200, 10, "alice@" + HOST)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: inst.count("alice") == 200, 60, "200 deliveries", 0.1)
        wait_for(inst.queue_empty, 20, "queue to empty")
    finally:
        log = lst.stop()
    return log


@with_instance(users=("alice",))
def test_smtp_source_many_sessions_handed_over(inst):
    """-m: 200 connections, 10 at a time, served by few smtpd processes."""
    log = two_hundred_messages(inst, Listener(inst, limit=20, maxuse=50))
    pids = connect_pids(log)[1:]  # the first is Listener's probe
    assert len(pids) == 200, (len(pids), log[-2000:])
    # each smtpd served several connections, none more than 50
    counts = {p: pids.count(p) for p in set(pids)}
    assert 4 <= len(counts) <= 20 * 2, counts
    assert max(counts.values()) <= 50, counts
    assert max(counts.values()) > 1, counts


def connect_pids(log):
    return re.findall(r"event=connect pid=(\d+) ", log)


def smtp(port, source="127.0.0.1"):
    return smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))


@with_instance(users=("alice",))
def test_handoff_keeps_nothing_between_connections(inst):
    """One smtpd serves every connection in turn (-c 1 -m 10); what one
    client did (a half transaction, a half message, relay rights given by a
    rule for its address) is gone for the next."""
    inst.start()
    lst = Listener(inst, limit=1, maxuse=10, rules='127.0.0.2:allow,RELAYCLIENT=""\n')
    try:
        # 1: MAIL and RCPT, then the client vanishes without QUIT
        a = socket.create_connection(("127.0.0.1", lst.port), 5)
        a.settimeout(5)
        assert a.recv(200).startswith(b"220 ")
        a.sendall(b"EHLO one\r\nMAIL FROM:<x@other.example>\r\nRCPT TO:<alice@" + HOST.encode() + b">\r\n")
        got = b""
        while got.count(b"\r\n250") < 2 or not got.endswith(b"\r\n"):
            got += a.recv(4096)
        a.close()
        # 2: no transaction is open: DATA without MAIL is a bad sequence
        with smtp(lst.port) as s:
            code, _ = s.docmd("DATA")
            assert code == 503, code
        # 3: half a message, then the client vanishes
        b = socket.create_connection(("127.0.0.1", lst.port), 5)
        b.settimeout(5)
        b.recv(200)
        b.sendall(b"HELO three\r\nMAIL FROM:<x@other.example>\r\nRCPT TO:<alice@" + HOST.encode() +
                  b">\r\nDATA\r\n")
        got = b""
        while b"354" not in got:
            got += b.recv(4096)
        b.sendall(b"Subject: half\r\n\r\nnever ended\r\n")
        b.close()
        # 4: from 127.0.0.2 the rule lets the client relay
        with smtp(lst.port, "127.0.0.2") as s:
            s.ehlo("four")
            s.mail("x@other.example")
            code, _ = s.rcpt("someone@elsewhere.example")
            assert code == 250, code
            s.rset()
        # 5: from 127.0.0.1, on the same smtpd, it may not
        with smtp(lst.port) as s:
            s.ehlo("five")
            s.mail("x@other.example")
            code, msg = s.rcpt("someone@elsewhere.example")
            assert code == 553, (code, msg)
            code, _ = s.rcpt("alice@" + HOST)
            assert code == 250
            code, _ = s.data(b"Subject: whole\r\n\r\nbody\r\n")
            assert code == 250
        wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
        m = inst.messages("alice")[0]
        assert b"Subject: whole" in m and b"half" not in m
        # the Received line names this connection's client and HELO
        assert b"from five (unknown [127.0.0.1])" in m, m[:400]
        time.sleep(0.5)
        assert inst.count("alice") == 1
    finally:
        log = lst.stop()
    pids = connect_pids(log)
    assert len(pids) == 6 and len(set(pids)) == 1, log  # 5 and Listener's probe


@with_instance(users=("alice",))
def test_handoff_replaces_an_smtpd_that_dies(inst):
    """A killed smtpd costs only its own connection; the next is served by
    a new one. -m 2: an smtpd ends after its second connection."""
    inst.start()
    lst = Listener(inst, maxuse=2)
    try:
        a = socket.create_connection(("127.0.0.1", lst.port), 5)
        a.settimeout(5)
        assert a.recv(200).startswith(b"220 ")
        wait_for(lambda: len(connect_pids(lst.log())) == 2, 5, "the connect line")
        victim = int(connect_pids(lst.log())[-1])
        os.kill(victim, signal.SIGKILL)
        assert a.recv(200) == b""           # that connection is gone
        a.close()
        for i in range(5):
            with smtp(lst.port) as s:
                s.sendmail("x@other.example", ["alice@" + HOST], b"Subject: %d\r\n\r\nbody\r\n" % i)
        wait_for(lambda: inst.count("alice") == 5, 20, "5 deliveries")
        wait_for(lambda: lst.log().count("event=exit") >= 3, 10, "used-up smtpds to end")
    finally:
        log = lst.stop()
    pids = connect_pids(log)
    assert len(pids) == 7, log  # the probe, the killed one, 5
    counts = {p: pids.count(p) for p in set(pids)}
    assert max(counts.values()) <= 2, counts
    assert 'status="signal 9"' in log, log


@with_instance()
def test_handoff_connection_limit(inst):
    """-c 1 -m 5: a second client waits until the first has ended."""
    lst = Listener(inst, limit=1, maxuse=5)
    try:
        second_client_waits_for_the_first(lst)
    finally:
        log = lst.stop()
    assert len(set(connect_pids(log))) == 1, log


@with_instance()
def test_handoff_idle_client_timed_out_then_next_served(inst):
    """timeoutsmtpd ends an idle session with 421 under -m too, and the same
    smtpd then serves the next client."""
    inst.control("timeoutsmtpd", "1")
    lst = Listener(inst, limit=1, maxuse=5)
    try:
        a = socket.create_connection(("127.0.0.1", lst.port), 5)
        a.settimeout(10)
        got = b""
        while not got.endswith(b"\r\n") or got.count(b"\r\n") < 2:
            chunk = a.recv(200)
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"220 ") and b"\r\n421 " in got, got
        assert a.recv(100) == b""
        a.close()
        with smtp(lst.port) as s:
            code, _ = s.noop()
            assert code == 250
    finally:
        log = lst.stop()
    assert len(set(connect_pids(log))) == 1, log


if __name__ == "__main__":
    harness.run(globals())
