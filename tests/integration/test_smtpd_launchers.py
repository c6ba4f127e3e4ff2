"""smtpd unchanged under ucspi-tcp's tcpserver, openbsd-inetd (nowait) and
yubin-listen, with real clients: msmtp and postfix's smtp-source."""
import os
import shutil
import socket
import subprocess

import harness
from harness import wait_for, header_values, body_of, HOST, with_instance, deb_program

from test_smtpd import free_port, Listener


def wait_port(port):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False
    wait_for(up, 10, "port %d to listen" % port)


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
        wait_port(port)
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
    p = subprocess.Popen([inetd, "-d", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
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
    inst.start()
    lst = Listener(inst, limit=20)
    try:
        r = smtp_source(lst.port, 200, 10, "alice@" + HOST)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: inst.count("alice") == 200, 60, "200 deliveries", 0.1)
        wait_for(inst.queue_empty, 20, "queue to empty")
    finally:
        lst.stop()


if __name__ == "__main__":
    harness.run(globals())
