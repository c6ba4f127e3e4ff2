"""pop3d's TLS for real: STLS (RFC 2595) and TLS from the first byte
(pop3d -T), with Python's poplib and ssl, fetchmail, mpop, openssl s_client
and testssl.sh, against certificates of a private CA made at test time.
Everything runs on 127.0.0.1 (or on a socket pair), on free ports, with
bounded waits; every process is stopped.

Covered: retrieval byte for byte under TLS (through the front end's relay
to the mailbox session), CAPA before and after TLS, a second STLS, AUTH
PLAIN (initial response, continuation, "*"), control/pop3plaintext (no,
loopback, yes, and a client that is not on loopback), SNI from
control/tlssni and a new certificate picked up without a restart, bytes
pipelined behind STLS, garbage instead of a ClientHello, handshakes that
never finish (control/timeoutpop3d bounds them), a broken key, and
testssl.sh's findings."""
import atexit
import base64
import json
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import Instance, wait_for
from pop3_helpers import (PASSWORD, Raw, crlf, deliver, mail_set, maildir_files, ordered_files, stuff,
                          wait_unlocked)
from tls_helpers import CA, install, peer_names

NAME = "pop.test.example"           # the default certificate: NAME and localhost
NAMES = [NAME, "localhost"]
PLAINTEXT_REFUSED = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use STLS"
PIPELINED = "-ERR commands pipelined after STLS; closing connection"


free_port = harness.free_port


# --- certificates: one CA and its certificates for the whole file

_certs = {}


def _certdir():
    if "dir" not in _certs:
        d = tempfile.mkdtemp(prefix="yubin-tls-pop3d.")
        atexit.register(shutil.rmtree, d, True)
        _certs["dir"] = d
    return _certs["dir"]


def ca():
    if "ca" not in _certs:
        _certs["ca"] = CA(os.path.join(_certdir(), "ca"))
    return _certs["ca"]


def other_ca():
    """A CA that signed nothing the server has: a client trusting only it must refuse."""
    if "other" not in _certs:
        _certs["other"] = CA(os.path.join(_certdir(), "other"), name="another CA")
    return _certs["other"]


def cert(stem, names=None, key="ec"):
    """(chain, key) of a certificate for names signed by ca(), made once."""
    if stem not in _certs:
        _certs[stem] = ca().issue(stem, names or [stem], key=key)
    return _certs[stem]


def leaf_der(chain):
    """The DER of the first certificate (the server's) in a PEM chain file."""
    with open(chain) as f:
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", f.read(), re.S).group(0)
    return ssl.PEM_cert_to_DER_cert(pem)


def context(hostname_check=True, authority=None):
    return (authority or ca()).client_context(hostname_check)


# --- listeners, clients, logs

class Listener(harness.Listener):
    """yubin-listen on 127.0.0.1:<free port> running INSTANCE/bin/pop3d ARGS.
    Waits until the pop3d of wait_listening's probe connection has ended,
    so that the log holds nothing a test did not cause beyond that one end."""

    def __init__(self, inst, *args):
        super().__init__(inst, "pop3d", *args)
        try:
            wait_for(lambda: self.ends(), 10, "the probe connection's pop3d to end")
        except Exception:
            self.stop()
            raise

    def ends(self):
        """The exit status of every pop3d that ended, as yubin-listen logged it ("0", "signal 11")."""
        return re.findall(r"yubin-listen: event=end pid=\d+ status=([^\n]*)", self.read_log())

    def wait_ends(self, n, timeout=15):
        """Waits until n pop3d processes have ended (the probe included); returns their statuses."""
        wait_for(lambda: len(self.ends()) >= n, timeout, "%d pop3d processes to end" % n)
        return self.ends()

    def pop3d_lines(self):
        return [l for l in self.read_log().splitlines() if l.startswith("pop3d: ")]


def with_tls(controls=None, certificate=True):
    """Decorator: fn(inst, stls, implicit) with a fresh instance, its
    control/tlscert and tlskey the default certificate (unless
    certificate=False), yubin-listen running pop3d (stls) and pop3d -T
    (implicit); prints the logs when the test fails; stops everything."""
    c = {"pop3faildelay": "50"}
    c.update(controls or {})

    def deco(fn):
        def run():
            inst = Instance(controls=c)
            listeners = []
            try:
                if certificate:
                    install(inst, *cert("pop", NAMES))
                listeners.append(Listener(inst))
                listeners.append(Listener(inst, "-T"))
                fn(inst, *listeners)
            except Exception:
                print("--- yubin-start log (tail) ---\n" + inst.read_log()[-2000:])
                for l in listeners:
                    print("--- %s (tail) ---\n%s" % (os.path.basename(l.logpath), l.read_log()[-3000:]))
                raise
            finally:
                for l in listeners:
                    l.stop()
                inst.cleanup()
        run.__name__ = fn.__name__
        return run
    return deco


def plain_b64(user, password, authz=""):
    return base64.b64encode(("%s\0%s\0%s" % (authz, user, password)).encode()).decode()


def raw_on(sock):
    """A Raw client on a connected socket (plain or TLS): reads the greeting."""
    r = Raw.__new__(Raw)
    r.sock = sock
    r.buf = b""
    r.greeting = r.line()
    return r


def tls_raw(port, ctx=None, name=NAME, timeout=10):
    """A Raw client on a TLS connection from the first byte (pop3d -T)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    return raw_on((ctx or context()).wrap_socket(s, server_hostname=name))


def starttls(raw, ctx=None, name=NAME):
    """STLS on a Raw client, then the handshake on its socket."""
    r = raw.cmd("STLS")
    assert r == "+OK Begin TLS negotiation", r
    assert raw.buf == b"", raw.buf      # nothing after the +OK in clear text
    raw.sock = (ctx or context()).wrap_socket(raw.sock, server_hostname=name)
    return raw


def capa(raw):
    r = raw.cmd("CAPA")
    assert r == "+OK Capability list follows", r
    body = raw.multi().decode()
    assert body.endswith(".\r\n")
    return body[:-3].split("\r\n")[:-1]


def read_to_close(sock, timeout):
    """Everything the server sends until it closes, within timeout seconds:
    (bytes, closed, seconds until it closed or the timeout)."""
    t0 = time.monotonic()
    data = b""
    sock.settimeout(timeout)
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                return data, False, time.monotonic() - t0
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                return data, True, time.monotonic() - t0
            data += chunk
    except socket.timeout:
        return data, False, time.monotonic() - t0
    except (ConnectionResetError, ssl.SSLError, OSError):
        return data, True, time.monotonic() - t0


def client_hello():
    """The bytes of a real TLS ClientHello (from Python's ssl, never sent by it)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context().wrap_bio(incoming, outgoing, server_hostname=NAME)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def big_message():
    """About 400 KB: more than the relay and the session keep in their
    buffers, with dot lines for the byte-stuffing."""
    lines = [b"Subject: big\n", b"\n"]
    for i in range(5000):
        lines.append((b"." if i % 97 == 0 else b"") + b"line %05d " % i + b"y" * 64 + b"\n")
    return b"".join(lines)


def login_poplib(p):
    assert p.user("alice") == b"+OK send PASS"
    r = p.pass_(PASSWORD)
    assert r.startswith(b"+OK maildrop has "), r


def retr_all(p, files):
    """RETR of every message through poplib equals its file (CRLF)."""
    count, _ = p.stat()
    assert count == len(files), (count, len(files))
    for i, (uid, path, content) in enumerate(files, 1):
        resp, lines, octets = p.retr(i)
        assert resp == b"+OK %d octets" % len(crlf(content)), (i, resp)
        assert b"\r\n".join(lines) + b"\r\n" == crlf(content), i
    assert [l.split()[1].decode() for l in p.uidl()[1]] == [uid for uid, _, _ in files]


def tls_events(lst):
    return [l for l in lst.pop3d_lines() if l.startswith("pop3d: event=tls ")]


# --- poplib

@with_tls()
def test_poplib_stls_then_user_pass_retrieves_byte_for_byte(inst, lst, implicit):
    deliver(inst, mail_set() + [big_message()])
    files = ordered_files(inst)
    p = poplib.POP3("localhost", lst.port, timeout=10)
    try:
        caps = p.capa()
        assert "STLS" in caps and "USER" in caps and caps.get("SASL") == ["PLAIN"], caps
        assert p.stls(context=context()) == b"+OK Begin TLS negotiation"
        assert peer_names(p.sock) == sorted(NAMES)
        assert p.sock.version() in ("TLSv1.2", "TLSv1.3"), p.sock.version()
        caps = p.capa()
        assert "STLS" not in caps, caps
        assert "USER" in caps and caps.get("SASL") == ["PLAIN"], caps
        # poplib itself refuses a second stls(): send the command by hand
        try:
            p._shortcmd("STLS")
            raise AssertionError("a second STLS was accepted")
        except poplib.error_proto as e:
            assert e.args[0] == b"-ERR TLS is already active", e
        login_poplib(p)
        retr_all(p, files)
        assert p.quit().startswith(b"+OK yubin POP3 server signing off")
    finally:
        p.close()
    assert set(lst.wait_ends(2)) == {"0"}
    log = lst.read_log()
    assert re.search(r"pop3d: event=tls remote=127\.0\.0\.1 version=TLSv1\.[23] cipher=\S+", log), log
    assert "pop3d: event=login user=alice method=user remote=127.0.0.1" in log, log
    assert "reason=quit retrieved=%d deleted=0" % len(files) in log, log
    # the same with the wrong trust anchor, and with a name the certificate does not have
    for ctx, host, what in ((context(authority=other_ca()), "localhost", "another CA"),
                            (context(), "127.0.0.1", "an IP address not in the certificate")):
        p = poplib.POP3(host, lst.port, timeout=10)
        try:
            p.stls(context=ctx)
            raise AssertionError("the certificate was accepted with " + what)
        except ssl.SSLCertVerificationError:
            pass
        finally:
            try:
                p.close()
            except OSError:     # the failed wrap_socket took the socket with it
                pass


@with_tls()
def test_poplib_pop3_ssl_against_pop3d_T(inst, lst, implicit):
    deliver(inst, mail_set())
    files = ordered_files(inst)
    p = poplib.POP3_SSL("localhost", implicit.port, context=context(), timeout=10)
    try:
        assert p.getwelcome() == b"+OK yubin POP3 server ready", p.getwelcome()
        assert peer_names(p.sock) == sorted(NAMES)
        caps = p.capa()
        assert "STLS" not in caps and "USER" in caps and caps.get("SASL") == ["PLAIN"], caps
        try:
            p._shortcmd("STLS")
            raise AssertionError("STLS accepted under TLS")
        except poplib.error_proto as e:
            assert e.args[0] == b"-ERR TLS is already active", e
        login_poplib(p)
        retr_all(p, files)
        p.dele(1)
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    assert inst.count("alice") == len(files) - 1
    log = implicit.read_log()
    assert "pop3d: event=login user=alice method=user remote=127.0.0.1" in log, log
    assert len(tls_events(implicit)) == 1
    # a client that trusts another CA refuses the server
    try:
        poplib.POP3_SSL("localhost", implicit.port, context=context(authority=other_ca()), timeout=10).close()
        raise AssertionError("POP3_SSL trusted a certificate of another CA")
    except ssl.SSLCertVerificationError:
        pass
    wait_for(lambda: "event=tls-failed" in implicit.read_log(), 10, "the refused handshake in the log")
    assert set(implicit.wait_ends(3)) == {"0"}


# --- AUTH PLAIN under TLS


@with_tls()
def test_a_long_password_fits_in_the_response_after_the_continuation(inst, lst, implicit):
    """RFC 5034 section 4: the response after "+ " is not a 255-octet command line."""
    long_password = "p" * 300
    inst.add_user("carol", long_password)
    c = tls_raw(implicit.port)
    response = plain_b64("carol", long_password)
    assert len(response) > 400
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd(response).startswith("+OK maildrop has 0 messages"), response
    c.close()
    c = tls_raw(implicit.port)
    assert c.cmd("AUTH PLAIN " + response) == "-ERR line too long"   # as a command it is still too long
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("A" * 3000) == "-ERR line too long"   # and a response is bounded too
    c.close()


@with_tls()
def test_auth_plain_over_tls_initial_response_continuation_and_cancel(inst, lst, implicit):
    deliver(inst, [b"Subject: one\n\nbody one\n", b"Subject: two\n\n.dot\n"])
    files = ordered_files(inst)
    # STLS, then AUTH PLAIN with an initial response and commands pipelined behind it
    c = starttls(Raw(lst.port))
    c.send("AUTH PLAIN %s\r\nSTAT\r\nRETR 2\r\nQUIT\r\n" % plain_b64("alice", PASSWORD))
    assert c.line().startswith("+OK maildrop has 2 messages")
    assert c.line() == "+OK 2 %d" % sum(len(crlf(x)) for _, _, x in files)
    assert c.line() == "+OK %d octets" % len(crlf(files[1][2]))
    assert c.multi() == stuff(crlf(files[1][2]))
    assert c.line().startswith("+OK yubin POP3 server signing off")
    assert c.closed(10)
    c.close()
    assert "pop3d: event=login user=alice method=plain remote=127.0.0.1" in lst.read_log()

    # pop3d -T: AUTH lists PLAIN; "+ " continuation; "*" cancels; a wrong password; then it works
    c = tls_raw(implicit.port)
    assert c.cmd("AUTH") == "+OK SASL mechanisms follow"
    assert c.multi() == b"PLAIN\r\n.\r\n"
    assert c.cmd("AUTH CRAM-MD5") == "-ERR unsupported SASL mechanism"
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("*") == "-ERR AUTH cancelled"
    assert c.cmd("NOOP") == "-ERR log in first"         # back in AUTHORIZATION, not logged in
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd(plain_b64("alice", "Wr0ng-Pa55")) == "-ERR [AUTH] authentication failed"
    assert c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORD, authz="bob")).startswith("-ERR AUTH: ")
    assert c.cmd("AUTH PLAIN !!!!") == "-ERR AUTH: malformed base64"
    assert c.cmd("auth plain") == "+ "
    r = c.cmd(plain_b64("alice", PASSWORD, authz="alice"))
    assert r.startswith("+OK maildrop has 2 messages"), r
    assert c.cmd("RETR 1") == "+OK %d octets" % len(crlf(files[0][2]))
    assert c.multi() == stuff(crlf(files[0][2]))
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    log = implicit.read_log()
    assert "event=login-failed user=alice method=plain" in log, log
    assert "event=login user=alice method=plain" in log, log
    assert "Wr0ng-Pa55" not in log and PASSWORD not in log      # no password in the log
    # poplib's USER/PASS under TLS on the same port
    p = poplib.POP3_SSL("localhost", implicit.port, context=context(), timeout=10)
    login_poplib(p)
    assert p.stat()[0] == 2
    p.quit()


@with_tls()
def test_pipelined_retrs_through_the_relay_and_a_dropped_tls_client(inst, lst, implicit):
    deliver(inst, [big_message(), b"Subject: small\n\nsmall\n"])
    files = ordered_files(inst)
    big = [f for f in files if b"Subject: big" in f[2]][0]
    n = files.index(big) + 1
    # login and 20 RETRs of ~400 KB in one write: ~8 MB back through the relay,
    # which must stop reading from the client while the session is behind
    c = tls_raw(implicit.port)
    c.send("USER alice\r\nPASS %s\r\n" % PASSWORD + "RETR %d\r\n" % n * 20 + "QUIT\r\n")
    assert c.line() == "+OK send PASS"
    assert c.line().startswith("+OK maildrop has 2 messages")
    for i in range(20):
        assert c.line() == "+OK %d octets" % len(crlf(big[2])), i
        assert c.multi() == stuff(crlf(big[2])), i
    assert c.line().startswith("+OK yubin POP3 server signing off")
    assert c.closed(10)         # after QUIT: close_notify, then the end
    c.close()
    # DELE, then the client goes away without QUIT: nothing is removed
    before = sorted(maildir_files(inst))
    c = starttls(Raw(lst.port))
    c.login()
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("RETR 2").startswith("+OK")
    c.sock.close()
    wait_for(lambda: "reason=dropped" in lst.read_log(), 15, "the session to see the client gone")
    wait_unlocked(inst)
    assert sorted(maildir_files(inst)) == before
    assert set(lst.wait_ends(2)) == {"0"} and set(implicit.wait_ends(2)) == {"0"}


# --- control/pop3plaintext

@with_tls(controls={"pop3plaintext": "no"})
def test_pop3plaintext_no_refuses_a_loopback_login_before_stls(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nx\n"])
    c = Raw(lst.port)
    caps = capa(c)
    assert "STLS" in caps and "USER" not in caps and "SASL PLAIN" not in caps, caps
    for line in ("USER alice", "PASS " + PASSWORD, "APOP alice " + "0" * 32,
                 "AUTH PLAIN " + plain_b64("alice", PASSWORD), "AUTH PLAIN"):
        assert c.cmd(line) == PLAINTEXT_REFUSED, line
    starttls(c)
    caps = capa(c)
    assert "STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps, caps
    c.login()
    assert c.cmd("STAT").startswith("+OK 1 ")
    c.cmd("QUIT")
    c.close()
    # the refused commands never reached yubin-checkpassword: no login-failed
    log = lst.read_log()
    assert log.count("event=login ") == 1 and "login-failed" not in log, log
    # under -T a login is allowed from the first command
    c = tls_raw(implicit.port)
    assert "USER" in capa(c)
    c.login()
    c.cmd("QUIT")
    c.close()


@with_tls()
def test_pop3plaintext_default_allows_loopback_in_clear(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nx\n"])
    for source in ("127.0.0.1", "127.0.0.2"):     # both count as loopback (127.0.0.0/8)
        s = socket.socket()
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", lst.port))
        c = raw_on(s)
        caps = capa(c)
        assert "STLS" in caps and "USER" in caps and "SASL PLAIN" in caps, caps
        c.login()
        assert c.cmd("STAT").startswith("+OK 1 ")
        c.cmd("QUIT")
        c.close()
        wait_for(lambda: "event=login user=alice method=user remote=%s" % source in lst.read_log(), 10,
                 "the login from %s" % source)
    assert not tls_events(lst)


def direct_pop3d(inst, remote, log):
    """pop3d run as tcpserver runs it, with the connection on fds 0 and 1
    (here a socket pair) and TCPREMOTEIP=remote: a client at that address.
    Returns (process, Raw client)."""
    a, b = socket.socketpair()
    a.settimeout(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCP")}
    env.update(PROTO="TCP", TCPREMOTEIP=remote, TCPREMOTEPORT="40000", TCPLOCALIP="192.0.2.1", TCPLOCALPORT="110")
    with open(log, "ab") as f:
        p = subprocess.Popen([inst.bin("pop3d")], stdin=b, stdout=b, stderr=f, env=env, start_new_session=True)
    b.close()
    return p, raw_on(a)


def finish(p, timeout=10):
    try:
        return p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@with_tls()
def test_a_client_off_loopback_must_use_tls_unless_pop3plaintext_says_yes(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nx\n"])
    log = os.path.join(inst.dir, "direct.log")
    # default (loopback): 192.0.2.7 is not loopback
    p, c = direct_pop3d(inst, "192.0.2.7", log)
    caps = capa(c)
    assert "STLS" in caps and "USER" not in caps and "SASL PLAIN" not in caps, caps
    assert c.cmd("USER alice") == PLAINTEXT_REFUSED
    assert c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORD)) == PLAINTEXT_REFUSED
    starttls(c)
    assert "USER" in capa(c)
    c.login()
    assert c.cmd("STAT").startswith("+OK 1 ")
    assert c.cmd("QUIT").startswith("+OK")
    assert c.closed(10)
    c.close()
    assert finish(p) == 0
    text = open(log).read()
    assert "event=tls remote=192.0.2.7" in text and "event=login user=alice method=user remote=192.0.2.7" in text, text
    # an IPv6 address off loopback too
    p, c = direct_pop3d(inst, "2001:db8::7", log)
    assert c.cmd("USER alice") == PLAINTEXT_REFUSED
    c.cmd("QUIT")
    c.close()
    assert finish(p) == 0
    # yes: logins in clear from anywhere
    inst.control("pop3plaintext", "yes")
    p, c = direct_pop3d(inst, "192.0.2.7", log)
    caps = capa(c)
    assert "STLS" in caps and "USER" in caps, caps
    c.login()
    c.cmd("QUIT")
    c.close()
    assert finish(p) == 0
    # and loopback, said explicitly, lets ::1 in
    inst.control("pop3plaintext", "loopback")
    p, c = direct_pop3d(inst, "::1", log)
    c.login()
    c.cmd("QUIT")
    c.close()
    assert finish(p) == 0


# --- fetchmail and mpop

def need(program, package):
    if not shutil.which(program):
        raise AssertionError("%s is missing (make deps installs %s)" % (program, package))


def workdir():
    d = tempfile.mkdtemp(prefix="yubin-tls-client.")
    os.chmod(d, 0o700)
    return d


def write_private(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def run_client(argv, cwd, env=None, timeout=60):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def read_dir(d):
    return sorted(open(os.path.join(d, n), "rb").read() for n in os.listdir(d))


def as_received(content):
    return content if content.endswith(b"\n") else content + b"\n"


@with_tls(controls={"pop3plaintext": "no"})      # so that a login in clear would fail
def test_fetchmail_ssl_and_stls_with_certificate_checks(inst, lst, implicit):
    need("fetchmail", "fetchmail")
    deliver(inst, mail_set())
    originals = [c for _, _, c in ordered_files(inst)]
    expected = sorted(as_received(c).replace(b"\r", b"") for c in originals)     # stripcr
    w = workdir()
    try:
        mda = os.path.join(w, "mda.sh")
        with open(mda, "w") as f:
            f.write('#!/bin/sh\nexec cat > "$(mktemp "$1/msg.XXXXXX")"\n')
        os.chmod(mda, 0o755)
        env = dict(os.environ, FETCHMAILHOME=w, HOME=w)
        env.pop("FETCHMAIL_INCLUDE_DEFAULT_X509_CA_CERTS", None)

        def fetch(label, port, tls_options, keep, trust):
            """fetchmail with the TLS options on its command line, the rest in an rc file."""
            out = os.path.join(w, label)
            os.makedirs(out, exist_ok=True)
            rc = os.path.join(w, label + ".rc")
            write_private(rc, 'set invisible\nset no bouncemail\n'
                              'poll localhost service %d protocol pop3 uidl auth password\n'
                              '    user "alice" there with password "%s" is "root" here\n'
                              '    options %s no rewrite stripcr\n    mda "%s %s"\n'
                          % (port, PASSWORD, "keep" if keep else "no keep fetchall", mda, out))
            # its own lock file: as root fetchmail would take /var/run/fetchmail.pid, shared with any other run
            code, text = run_client(["fetchmail", "-f", rc, "-i", os.path.join(w, label + ".ids"), "--nodetach",
                                     "--pidfile", os.path.join(w, "fetchmail.pid"), *tls_options, "--sslcertck", "--sslcertfile", trust], w, env)
            return code, text, out

        # TLS from the first byte (--ssl), TLS 1.2 or newer, keeping the mail
        code, text, out = fetch("ssl", implicit.port, ["--ssl", "--sslproto", "TLS1.2+"], True, ca().cert)
        assert code == 0, text
        assert read_dir(out) == expected, text
        assert len(tls_events(implicit)) == 1 and "method=user" in implicit.read_log()
        # STLS on the plain port (no --ssl; --sslproto TLS1.2+ requires TLS, so by STLS), deleting
        code, text, out = fetch("stls", lst.port, ["--sslproto", "TLS1.2+"], False, ca().cert)
        assert code == 0, text
        assert read_dir(out) == expected, text
        assert len(tls_events(lst)) == 1, lst.read_log()
        assert "event=login user=alice method=user remote=127.0.0.1" in lst.read_log()
        wait_for(lambda: inst.count("alice") == 0, 10, "the fetched messages to be deleted")
        # a CA that did not sign the server's certificate: fetchmail gives up, nothing is fetched
        deliver(inst, [b"Subject: again\n\nagain\n"])
        code, text, out = fetch("wrongca", lst.port, ["--sslproto", "auto"], False, other_ca().cert)
        assert code != 0 and os.listdir(out) == [], (code, text)
        assert "certificate verify failed" in text, text
        assert inst.count("alice") == 1
    finally:
        shutil.rmtree(w, ignore_errors=True)


@with_tls(controls={"pop3plaintext": "no"})
def test_mpop_starttls_and_tls_from_the_first_byte(inst, lst, implicit):
    need("mpop", "mpop")
    deliver(inst, mail_set())
    originals = [c for _, _, c in ordered_files(inst)]
    expected = sorted(as_received(c) for c in originals)
    w = workdir()
    try:
        def fetch(label, port, starttls_on, auth, keep, trust, host_name=NAME):
            md = os.path.join(w, label)
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(md, sub), exist_ok=True)
            rc = os.path.join(w, label + ".rc")
            write_private(rc, "defaults\naccount %s\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls %s\n"
                              "tls_trust_file %s\ntls_host_override %s\nuser alice\nauth %s\npassword %s\n"
                              "delivery maildir %s\nkeep %s\nreceived_header off\nuidls_file %s\n"
                          % (label, port, "on" if starttls_on else "off", trust, host_name, auth, PASSWORD, md,
                             "on" if keep else "off", os.path.join(w, label + ".uidls")))
            code, text = run_client(["mpop", "-C", rc, label], w)
            return code, text, os.path.join(md, "new")

        code, text, new = fetch("starttls", lst.port, True, "user", True, ca().cert)
        assert code == 0, text
        assert read_dir(new) == expected, text
        assert len(tls_events(lst)) == 1 and "method=user" in lst.read_log(), lst.read_log()
        code, text, new = fetch("implicit", implicit.port, False, "plain", False, ca().cert)
        assert code == 0, text
        assert read_dir(new) == expected, text
        assert len(tls_events(implicit)) == 1 and "method=plain" in implicit.read_log(), implicit.read_log()
        wait_for(lambda: inst.count("alice") == 0, 10, "the fetched messages to be deleted")
        # checks that fail: another CA, and a name the certificate does not have
        deliver(inst, [b"Subject: again\n\nagain\n"])
        code, text, new = fetch("wrongca", implicit.port, False, "user", True, other_ca().cert)
        assert code != 0 and os.listdir(new) == [], (code, text)
        assert "certificate issuer is unknown" in text, text
        code, text, new = fetch("wrongname", lst.port, True, "user", True, ca().cert, host_name="mail.other.example")
        assert code != 0 and os.listdir(new) == [], (code, text)
        assert "name in the certificate does not match" in text, text
        assert inst.count("alice") == 1
    finally:
        shutil.rmtree(w, ignore_errors=True)


# --- SNI and a new certificate

def s_client(port, servername=None, starttls=True, verify_name=None):
    """openssl s_client's view: (return code, DER of the server's certificate, output)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca().cert, "-verify_return_error"]
    if starttls:
        argv += ["-starttls", "pop3"]
    argv += ["-servername", servername] if servername else ["-noservername"]
    if verify_name:
        argv += ["-verify_hostname", verify_name]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    return r.returncode, ssl.PEM_cert_to_DER_cert(m.group(0)) if m else None, out


@with_tls()
def test_sni_picks_the_certificate_and_a_new_one_is_used_without_a_restart(inst, lst, implicit):
    control = os.path.join(inst.dir, "control")
    one, two, sub = cert("one", ["mail.one.example"]), cert("two", ["mail.two.example"], key="rsa"), \
        cert("sub", ["x.sub.example", "y.sub.example"])
    os.makedirs(os.path.join(control, "sni"))
    for stem, (chain, key) in (("one", one), ("two", two), ("sub", sub)):
        shutil.copy(chain, os.path.join(control, "sni", stem + ".pem"))
        shutil.copy(key, os.path.join(control, "sni", stem + ".key"))
    # two: the key in the same file as the chain
    with open(os.path.join(control, "sni", "two.pem"), "a") as f, open(two[1]) as k:
        f.write(k.read())
    inst.control("tlssni", "mail.one.example sni/one.pem sni/one.key\n"
                           "mail.two.example %s/sni/two.pem\n"
                           ".sub.example sni/sub.pem sni/sub.key\n" % control)
    default = leaf_der(cert("pop")[0])
    cases = [("mail.one.example", leaf_der(one[0]), True), ("MAIL.Two.Example", leaf_der(two[0]), True),
             ("y.sub.example", leaf_der(sub[0]), True), (NAME, default, True),
             ("unknown.example", default, False), (None, default, False)]
    for name, der, matches in cases:
        code, got, out = s_client(lst.port, name, verify_name=name.lower() if matches else None)
        assert code == 0 and "Verify return code: 0 (ok)" in out, (name, out[-1500:])
        assert got == der, (name, out[-1500:])
    code, got, out = s_client(implicit.port, "mail.two.example", starttls=False, verify_name="mail.two.example")
    assert code == 0 and got == leaf_der(two[0]), out[-1500:]
    # the hostname check of s_client does fail for a name the certificate lacks
    code, got, out = s_client(lst.port, "unknown.example", verify_name="unknown.example")
    assert code != 0 and "hostname mismatch" in out, out[-1500:]

    # a new default certificate, with yubin-listen left running
    pids = (lst.proc.pid, implicit.proc.pid)
    new = cert("new", ["pop2.test.example"])
    install(inst, *new)
    for port, starttls in ((lst.port, True), (implicit.port, False)):
        code, got, out = s_client(port, "pop2.test.example", starttls, verify_name="pop2.test.example")
        assert code == 0 and got == leaf_der(new[0]), out[-1500:]
        code, got, out = s_client(port, "mail.one.example", starttls, verify_name="mail.one.example")
        assert code == 0 and got == leaf_der(one[0]), out[-1500:]
    assert (lst.proc.pid, implicit.proc.pid) == pids and lst.proc.poll() is None and implicit.proc.poll() is None
    # and a client checking the new certificate logs in
    p = poplib.POP3_SSL("127.0.0.1", implicit.port, timeout=10,
                        context=_named(context(), "pop2.test.example"))
    login_poplib(p)
    p.quit()


class _named:
    """An SSLContext that always asks for (and checks) one server name."""

    def __init__(self, ctx, name):
        self.ctx, self.name = ctx, name

    def wrap_socket(self, sock, server_hostname=None, **kw):
        return self.ctx.wrap_socket(sock, server_hostname=self.name, **kw)


# --- bad clients

@with_tls()
def test_bytes_pipelined_after_stls_end_the_connection(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nx\n"])
    for tail in (b"USER x\r\n", b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\n", client_hello()):
        c = Raw(lst.port)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"STLS\r\n" + tail)       # one segment
        data, closed, _ = read_to_close(c.sock, 10)
        c.close()
        assert closed, data
        assert data == (PIPELINED + "\r\n").encode(), data     # no +OK, no reply to USER, no TLS
    statuses = lst.wait_ends(4)
    assert set(statuses) == {"0"}, statuses
    lines = lst.pop3d_lines()
    assert not [l for l in lines if "login" in l or "event=tls" in l], lines


@with_tls()
def test_garbage_instead_of_a_client_hello(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nx\n"])
    hello = client_hello()
    garbage = [b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\n",       # a client that forgot TLS
               b"GET / HTTP/1.0\r\n\r\n",
               bytes(range(256)) * 4,
               b"\x16\x03\x01\xff\xff" + b"\x00" * 64,                    # a record length past the data
               hello[:5] + b"\x01" + b"\xee" * (len(hello) - 6)]          # a ClientHello with a mangled body
    for port, stls in ((lst.port, True), (implicit.port, False)):
        for g in garbage:
            if stls:
                c = Raw(lst.port)
                assert c.cmd("STLS") == "+OK Begin TLS negotiation"
                s = c.sock
            else:
                s = socket.create_connection(("127.0.0.1", port), 10)
            s.sendall(g)
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            data, closed, _ = read_to_close(s, 10)
            s.close()
            assert closed, (port, g[:20])
            assert b"+OK" not in data and b"-ERR" not in data, (g[:20], data)   # nothing taken as a command
            # at most a TLS alert record (content type 21)
            assert data == b"" or data[:1] == b"\x15", (g[:20], data)
    for l in (lst, implicit):
        statuses = l.wait_ends(1 + len(garbage))
        assert set(statuses) == {"0"}, statuses      # no signal, no 111
    def failures(l):
        return [x for x in l.pop3d_lines() if x.startswith("pop3d: event=tls-failed ")]
    fails = failures(lst) + failures(implicit)[1:]      # [0]: the probe of pop3d -T's listener
    assert len(fails) == 2 * len(garbage), fails
    # each with OpenSSL's reason
    assert all(re.search(r'error="handshake: error:[0-9A-F]+:SSL routines::[a-z ]+"$', x) for x in fails), fails
    assert not [l for l in lst.pop3d_lines() + implicit.pop3d_lines()
                if "event=fatal" in l or "event=login" in l], lst.read_log() + implicit.read_log()
    assert not inst.pids("pop3d")
    # the listeners still serve
    p = poplib.POP3_SSL("localhost", implicit.port, context=context(), timeout=10)
    login_poplib(p)
    p.quit()


@with_tls()
def test_a_client_that_leaves_during_the_handshake_is_logged_as_such(inst, lst, implicit):
    hello = client_hello()
    for port, stls in ((lst.port, True), (implicit.port, False)):
        for part in (b"", hello[:len(hello) // 2]):       # nothing, or half a ClientHello
            s = socket.create_connection(("127.0.0.1", port), 10)
            if stls:
                assert raw_on(s).cmd("STLS").startswith("+OK")
            s.sendall(part)
            s.close()
    assert set(lst.wait_ends(3)) == {"0"} and set(implicit.wait_ends(3)) == {"0"}
    fails = [x for l in (lst, implicit) for x in l.pop3d_lines() if x.startswith("pop3d: event=tls-failed ")]
    assert len(fails) == 5, fails       # and the probe of pop3d -T's listener
    # what lib/tls.cpp means to say (TlsStream::handshake) for a client that closes
    expected = 'pop3d: event=tls-failed remote=127.0.0.1 error="the client closed the connection during the handshake"'
    assert fails == [expected] * 5, fails


@with_tls(controls={"timeoutpop3d": "2"})
def test_a_handshake_that_never_finishes_is_timed_out(inst, lst, implicit):
    hello = client_hello()
    results = {}

    def silent_tls_port():        # connects to pop3d -T and sends nothing
        s = socket.create_connection(("127.0.0.1", implicit.port), 10)
        return s

    def silent_after_stls():      # STLS, then no ClientHello
        c = Raw(lst.port)
        assert c.cmd("STLS").startswith("+OK")
        return c.sock

    def half_hello():             # half a ClientHello on pop3d -T
        s = socket.create_connection(("127.0.0.1", implicit.port), 10)
        s.sendall(hello[:len(hello) // 2])
        return s

    def idle_under_tls():         # the handshake done, then no command
        return starttls(Raw(lst.port)).sock

    def run(name, start):
        t0 = time.monotonic()
        try:
            s = start()
            data, closed, _ = read_to_close(s, 15)
            results[name] = (data, closed, time.monotonic() - t0)
            s.close()
        except Exception as e:
            results[name] = e

    threads = [threading.Thread(target=run, args=(f.__name__, f))
               for f in (silent_tls_port, silent_after_stls, half_hello, idle_under_tls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name, r in sorted(results.items()):
        assert not isinstance(r, Exception), (name, r)
        data, closed, seconds = r
        assert closed and 1.5 <= seconds <= 8, (name, closed, seconds)
        if name == "idle_under_tls":
            assert data == b"-ERR disconnected for inactivity\r\n", data
        else:
            assert data == b"" or data[:1] == b"\x15", (name, data)
    assert len(results) == 4
    text = lst.read_log() + implicit.read_log()
    assert text.count("error=\"handshake timed out\"") == 3, text
    assert "pop3d: event=timeout remote=127.0.0.1" in lst.read_log(), lst.read_log()
    assert set(lst.wait_ends(3)) == {"0"} and set(implicit.wait_ends(3)) == {"0"}
    wait_for(lambda: not inst.pids("pop3d"), 10, "every pop3d to end")


@with_tls(certificate=False)
def test_a_broken_key_means_no_tls_and_plain_pop3_still_works(inst, lst, implicit):
    deliver(inst, [b"Subject: x\n\nbody\n"])
    files = ordered_files(inst)

    def no_stls():
        c = Raw(lst.port)
        caps = capa(c)
        assert "STLS" not in caps and "USER" in caps, caps
        assert c.cmd("STLS") == "-ERR STLS is not available"
        c.login()
        assert c.cmd("RETR 1") == "+OK %d octets" % len(crlf(files[0][2]))
        assert c.multi() == stuff(crlf(files[0][2]))
        assert c.cmd("QUIT").startswith("+OK")
        c.close()
        s = socket.create_connection(("127.0.0.1", implicit.port), 10)
        data, closed, _ = read_to_close(s, 10)
        s.close()
        assert closed and data == b"", data          # nothing in clear text on a TLS port

    # no certificate at all: not an error, no STLS
    no_stls()
    assert "tls-unavailable" not in lst.read_log()
    # a key that is not the certificate's
    chain = cert("pop", NAMES)[0]
    install(inst, chain, cert("one", ["mail.one.example"])[1])
    mark = len(lst.read_log())
    no_stls()
    log = lst.read_log()[mark:]
    assert re.search(r"pop3d: event=tls-unavailable error=\"[^\n]*(does not belong|mismatch)", log), log
    assert "no usable certificate" in implicit.read_log()
    # a key file that holds no key
    install(inst, chain, chain)
    with open(os.path.join(inst.dir, "control", "tlskey"), "w") as f:
        f.write("not a key\n")
    mark = len(lst.read_log())
    no_stls()
    log = lst.read_log()[mark:]
    assert re.search(r"pop3d: event=tls-unavailable error=\"[^\n]*private key", log), log
    # no key at all: control/tlskey missing, and no key in control/tlscert
    os.unlink(os.path.join(inst.dir, "control", "tlskey"))
    mark = len(lst.read_log())
    no_stls()
    log = lst.read_log()[mark:]
    assert re.search(r"pop3d: event=tls-unavailable error=\"private key [^\n]*/control/tlscert", log), log
    # a key that cannot be read (root reads any file: a directory stands for it)
    os.mkdir(os.path.join(inst.dir, "control", "tlskey"))
    mark = len(lst.read_log())
    no_stls()
    log = lst.read_log()[mark:]
    assert re.search(r"pop3d: event=tls-unavailable error=\"private key [^\n]*/control/tlskey", log), log
    os.rmdir(os.path.join(inst.dir, "control", "tlskey"))
    # the right key again: STLS is back, without a restart
    install(inst, *cert("pop", NAMES))
    c = Raw(lst.port)
    assert "STLS" in capa(c)
    starttls(c)
    c.login()
    c.cmd("QUIT")
    c.close()
    assert set(lst.wait_ends(7)) == {"0"} and set(implicit.wait_ends(6)) == {"0"}


# --- testssl.sh

def testssl_program():
    for p in ("testssl.sh", "testssl"):      # Debian's package installs it as /usr/bin/testssl
        if shutil.which(p):
            return shutil.which(p)
    raise AssertionError("testssl.sh is missing (make deps installs testssl.sh)")


def issue_with_crl(authority, stem, names):
    """A server certificate as CA.issue makes it, but with a CRL distribution
    point (a loopback URL that nothing fetches: testssl.sh does not phone
    out): without one testssl.sh rates the certificate HIGH, which says
    nothing about the server."""
    d = authority.dir
    key, csr, crt, ext = (os.path.join(d, stem + x) for x in (".key", ".csr", ".crt", ".ext"))

    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + names[0])
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "crlDistributionPoints=URI:http://127.0.0.1:1/yubin-test.crl\n"
                % ",".join("DNS:" + n for n in names))
    openssl("x509", "-req", "-in", csr, "-CA", authority.cert, "-CAkey", authority.key, "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", ext)
    chain = os.path.join(d, stem + ".pem")
    with open(chain, "w") as out, open(crt) as a, open(authority.cert) as b:
        out.write(a.read() + b.read())
    return chain, key


@with_tls()
def test_testssl_finds_no_high_or_critical_weakness_on_pop3d_T(inst, lst, implicit):
    program = testssl_program()
    install(inst, *issue_with_crl(ca(), "testssl", [NAME]))
    w = workdir()
    jsonfile = os.path.join(w, "testssl.json")
    env = dict(os.environ, PHONE_OUT="false",        # no CRL or OCSP fetching (the default, said again)
               DAYS2WARN1="1", DAYS2WARN2="1",      # the test certificate lives two days by design
               HOME=w, TMPDIR=w)
    argv = [program, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none", "--ip", "127.0.0.1",
            "--connect-timeout", "5", "--openssl-timeout", "5", "--add-ca", ca().cert,
            "--jsonfile", jsonfile, "-p", "-s", "-S", "-P", "-U", "%s:%d" % (NAME, implicit.port)]
    p = subprocess.Popen(argv, cwd=w, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out = p.communicate(timeout=150)[0].decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("testssl.sh took longer than 150 s")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    try:
        with open(jsonfile) as f:
            findings = json.load(f)
    except (OSError, ValueError) as e:
        raise AssertionError("no JSON from testssl.sh (%s): %s" % (e, out[-3000:]))
    finally:
        shutil.rmtree(w, ignore_errors=True)
    by_id = {f["id"]: f for f in findings}
    for f in findings:
        if f["severity"] in ("LOW", "MEDIUM", "WARN"):
            print("  testssl %s %s: %s" % (f["severity"], f["id"], f["finding"]))
    for fid in ("TLS_session_ticket", "sessionresumption_ticket", "sessionresumption_ID"):
        if fid in by_id:
            print("  testssl (note) %s %s: %s" % (by_id[fid]["severity"], fid, by_id[fid]["finding"]))
    bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL") or "NOT ok" in f["finding"]]
    assert not bad, bad
    # it really looked: the protocols, the certificate, the vulnerabilities
    for fid in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert by_id[fid]["finding"].startswith("not offered"), by_id.get(fid)
    assert by_id["TLS1_2"]["finding"].startswith("offered"), by_id["TLS1_2"]
    assert by_id["TLS1_3"]["finding"].startswith("offered"), by_id["TLS1_3"]
    assert by_id["cert_chain_of_trust"]["severity"] == "OK", by_id["cert_chain_of_trust"]
    assert by_id["cert_commonName"]["finding"] == NAME, by_id["cert_commonName"]
    for fid in ("heartbleed", "CCS", "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "SWEET32", "FREAK",
                "BEAST", "LUCKY13", "RC4", "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):
        assert fid in by_id and by_id[fid]["severity"] in ("OK", "INFO"), (fid, by_id.get(fid))
    # every connection testssl.sh made ended normally
    statuses = implicit.ends()
    assert len(statuses) > 20 and set(statuses) == {"0"}, statuses[:50]
    assert "event=fatal" not in implicit.read_log()


if __name__ == "__main__":
    harness.run(globals())
