"""smtpd's replies over a real socket, one transcript per path of smtpd(8):
BDAT (chunks, LAST, 0 LAST, no dot handling, mixing with DATA, size),
SMTPUTF8 and 8-bit mail from smtplib, every error reply with its enhanced
status code, the size, recipient, hop, error and time limits, queue
failures, relay control, smuggling; and what reached the queue and the
Maildir afterwards, compared byte for byte.

Every reply is checked against the rule of smtpd(8): an RFC 3463 code of
the same class after the reply code, except the greeting, HELO/EHLO and 354."""
import contextlib
import os
import re
import shutil
import signal
import socket
import smtplib
import subprocess
import threading
import time

import harness
from harness import wait_for, header_values, HOST, with_instance, queue_dir

from test_smtpd import free_port, network_env
from test_smtpd_launchers import stop

H = HOST.encode()
MAIL = b"MAIL FROM:<bob@other.example>"
RCPT_ALICE = b"RCPT TO:<alice@" + H + b">"

ENHANCED = re.compile(rb"^([2-5])\d\d[ -]([245])\.\d{1,3}\.\d{1,3} ")


class Closed(Exception):
    pass


class Client:
    """A raw SMTP client on a socket: every wait is bounded, every reply is
    recorded in transcript and checked for its enhanced status code."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.transcript = []
        self.greeting = self.reply(enhanced=False)
        assert self.greeting.startswith(b"220 " + H + b" ESMTP yubin"), self.greeting

    def send(self, data):
        shown = data if len(data) <= 400 else data[:200] + b"[... %d octets ...]" % (len(data) - 400) + data[-200:]
        self.transcript.append(b"C: " + shown)
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no reply within the timeout; transcript:\n" + self.text())
            if not got:
                raise Closed("connection closed; transcript:\n" + self.text())
            self.buf += got
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, enhanced=True):
        """One whole reply (multi-line joined by CRLF), without the final CRLF."""
        lines = []
        while True:
            line = self._line()
            assert re.match(rb"^\d\d\d[ -]", line), line
            lines.append(line)
            if line[3:4] == b" ":
                break
        assert all(l[:3] == lines[0][:3] for l in lines), lines
        r = b"\r\n".join(lines)
        self.transcript.append(b"S: " + r)
        if enhanced:
            for l in lines:
                m = ENHANCED.match(l)
                assert m and m.group(1) == m.group(2), \
                    "no enhanced status code of the right class: %r; transcript:\n%s" % (l, self.text())
        return r

    def cmd(self, line, expect=None, prefix=None, enhanced=True):
        """Sends one command line and returns its reply; expect is the whole
        reply, prefix its start."""
        self.send(line + b"\r\n")
        return self.check(self.reply(enhanced), expect, prefix)

    def check(self, r, expect=None, prefix=None):
        if expect is not None:
            assert r == expect, "expected %r, got %r; transcript:\n%s" % (expect, r, self.text())
        if prefix is not None:
            assert r.startswith(prefix), "expected %r..., got %r; transcript:\n%s" % (prefix, r, self.text())
        return r

    def ehlo(self, name=b"client.example"):
        r = self.cmd(b"EHLO " + name, enhanced=False)
        assert r.startswith(b"250-" + H + b" Hello [127.0.0.1]\r\n") and r.endswith(b"250 CHUNKING"), r
        return r

    def transaction(self, sender=MAIL, rcpts=(RCPT_ALICE,)):
        self.cmd(sender, b"250 2.1.0 Sender ok")
        for r in rcpts:
            self.cmd(r, b"250 2.1.5 Recipient ok")

    def data(self, message, expect=None):
        """DATA, then message (which must end with CRLF.CRLF) as sent; the
        reply must be expect, or by default 250 with a queue id."""
        self.cmd(b"DATA", b"354 End data with <CR><LF>.<CR><LF>", enhanced=False)
        self.send(message)
        return self.check(self.reply(), expect, None if expect else b"250 2.0.0 Ok: queued as ")

    def bdat(self, chunk, last=False, expect=None, prefix=None):
        self.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
        return self.check(self.reply(), expect, prefix)

    def wait_closed(self):
        """True once the server closes the connection (within the timeout)."""
        try:
            while True:
                got = self.sock.recv(65536)
                if not got:
                    return True
                self.buf += got
        except (socket.timeout, ConnectionResetError):
            return False

    def quit(self):
        self.cmd(b"QUIT", b"221 2.0.0 " + H + b" closing connection")
        assert self.wait_closed()
        self.close()

    def close(self):
        self.sock.close()

    def text(self):
        return b"\n".join(self.transcript).decode("utf-8", "replace")


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def end_sessions(inst):
    """Waits a moment for the instance's smtpd processes (the sessions this
    test opened) to end, then kills those left, so that no failed test leaves
    one behind."""
    try:
        wait_for(lambda: not inst.pids("smtpd"), 5, "smtpd sessions to end")
    except AssertionError:
        for pid in inst.pids("smtpd"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Listen:
    """yubin-listen (or tcpserver) on a free loopback port running the
    instance's smtpd, no RELAYCLIENT; a context manager that closes its
    clients and stops everything it started."""

    def __init__(self, inst, tcpserver=False):
        self.inst = inst
        self.port = free_port()
        self.clients = []
        env = {k: v for k, v in os.environ.items() if k != "RELAYCLIENT" and not k.startswith("TCP")}
        if tcpserver:
            argv = ["tcpserver", "-H", "-R", "-l", "0"]
        else:
            argv = [inst.bin("yubin-listen"), "-H", "-R"]
        self.err = open(os.path.join(inst.dir, "listener.log"), "ab")
        self.proc = subprocess.Popen(argv + ["127.0.0.1", str(self.port), inst.bin("smtpd")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        try:
            wait_for(lambda: _connectable(self.port) or self.proc.poll() is not None, 10, "the listener")
            assert self.proc.poll() is None, "the listener exited"
        except Exception:
            self.stop()
            raise

    def client(self):
        c = Client(self.port)
        self.clients.append(c)
        return c

    def session(self):
        """A client after EHLO."""
        c = self.client()
        c.ehlo()
        return c

    def stop(self):
        for c in self.clients:
            c.close()
        stop(self.proc)
        self.err.close()
        end_sessions(self.inst)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def queued_id(reply):
    m = re.match(rb"^250 2\.0\.0 Ok: queued as (\d+\.\d+\.\d+)$", reply)
    assert m, reply
    return m.group(1).decode()


def queue_state(inst):
    """Every file of queue/tmp, new and cur."""
    return {sub: queue_dir(inst, sub) for sub in ("tmp", "new", "cur")}


def assert_nothing_queued(inst):
    # queue-inject removes its tmp/ file after smtpd closes its pipes: allow it a moment
    wait_for(lambda: not any(queue_state(inst).values()), 5, "an empty queue")


def queue_message(inst, qid):
    """The message part of queue/new/QID (yubin-queue(5)): after the envelope's
    empty line, starting with queue-inject's and smtpd's Received: lines."""
    with open(os.path.join(inst.dir, "queue", "new", qid), "rb") as f:
        data = f.read()
    head, message = data.split(b"\n\n", 1)
    return head, message


TRACE = re.compile(rb"^Return-Path: <[^\n]*>\nDelivered-To: [^\n]+\n"
                   rb"Received: \(yubin \d+ invoked by uid \d+\); [^\n]+\n"
                   rb"Received: from [^\n]+\n\tby " + re.escape(H) + rb" \(yubin\) with (E?SMTP|UTF8SMTP) id "
                   rb"(\d+\.\d+\.\d+)(\n\tfor <[^\n]*>)?; [^\n]+\n")


def split_trace(message):
    """A delivered message: (its trace fields added on the way, the id in
    smtpd's Received: line, the rest exactly as the client sent it)."""
    m = TRACE.match(message)
    assert m, message[:600]
    return m.group(0), m.group(2).decode(), message[m.end():]


def only_message(inst, user):
    wait_for(lambda: inst.count(user) >= 1, 10, "delivery to " + user)
    msgs = inst.messages(user)
    assert len(msgs) == 1, msgs
    return msgs[0]


# ---------------------------------------------------------------- BDAT

BDAT_CHUNKS = [
    b"Subject: chunks\r\nX-Split: a CRLF split over two chunks\r",
    b"\n\r\n.a dot line stays\r\n..two dots stay\r\n.\r\n",
    b"a line with a CR LF . CR LF inside: \r\n.\r\nMAIL FROM:<evil@other.example>\r\n",
    b"last line without its CRLF",
]
BDAT_STORED = (b"Subject: chunks\nX-Split: a CRLF split over two chunks\n\n.a dot line stays\n"
               b"..two dots stay\n.\na line with a CR LF . CR LF inside: \n.\nMAIL FROM:<evil@other.example>\n"
               b"last line without its CRLF\n")


def bdat_session(inst, lst):
    c = lst.session()
    c.transaction()           # MAIL, RCPT, then BDAT directly: no DATA
    for chunk in BDAT_CHUNKS[:-1]:
        c.bdat(chunk, expect=b"250 2.0.0 Chunk received")
    qid = queued_id(c.bdat(BDAT_CHUNKS[-1], last=True))
    c.quit()
    m = only_message(inst, "alice")
    trace, rid, rest = split_trace(m)
    assert rid == qid, (rid, qid)
    assert rest == BDAT_STORED, rest          # no dot removal, nothing split off
    assert b"with ESMTP id " + qid.encode() + b"\n\tfor <alice@" + H + b">" in trace, trace
    return trace


@with_instance()
def test_bdat_chunks_under_yubin_listen_byte_for_byte(inst):
    inst.start()
    with Listen(inst) as lst:
        trace = bdat_session(inst, lst)
    assert b"from client.example (unknown [127.0.0.1])" in trace, trace
    wait_for(inst.queue_empty, 10, "queue to empty")


@with_instance()
def test_bdat_chunks_under_tcpserver_byte_for_byte(inst):
    assert shutil.which("tcpserver"), "ucspi-tcp is missing (make deps installs it)"
    inst.start()
    with Listen(inst, tcpserver=True) as lst:
        trace = bdat_session(inst, lst)
    assert b"from client.example (unknown [127.0.0.1])" in trace, trace


@with_instance()
def test_bdat_zero_last_pipelined_and_empty(inst):
    with Listen(inst) as lst:
        c = lst.session()
        # the whole transaction in one write (PIPELINING with CHUNKING)
        body = b"Subject: zero\r\n\r\nbody\r\n"
        c.send(MAIL + b"\r\n" + RCPT_ALICE + b"\r\nBDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\n")
        c.check(c.reply(), b"250 2.1.0 Sender ok")
        c.check(c.reply(), b"250 2.1.5 Recipient ok")
        c.check(c.reply(), b"250 2.0.0 Chunk received")
        first = queued_id(c.reply())
        # BDAT 0 LAST as the whole message: an empty message is queued
        c.transaction()
        second = queued_id(c.bdat(b"", last=True))
        # BDAT 0 (not last) is a chunk like any other
        c.transaction()
        c.bdat(b"", expect=b"250 2.0.0 Chunk received")
        c.bdat(b"x: y\r\n", expect=b"250 2.0.0 Chunk received")
        c.bdat(b"", expect=b"250 2.0.0 Chunk received")
        third = queued_id(c.bdat(b"\r\nz\r\n", last=True))
        c.quit()
    assert queue_dir(inst, "new") == [first, second, third]
    head, m = queue_message(inst, first)
    assert head.split(b"\n")[1:] == [b"Fbob@other.example", b"Talice@" + H], head
    assert split_trace(b"Return-Path: <x>\nDelivered-To: x\n" + m)[2] == b"Subject: zero\n\nbody\n"
    _, m = queue_message(inst, second)
    assert split_trace(b"Return-Path: <x>\nDelivered-To: x\n" + m)[2] == b""
    _, m = queue_message(inst, third)
    assert split_trace(b"Return-Path: <x>\nDelivered-To: x\n" + m)[2] == b"x: y\n\nz\n"


@with_instance()
def test_bdat_out_of_sequence_is_503_and_the_chunk_is_swallowed(inst):
    with Listen(inst) as lst:
        c = lst.session()
        # before MAIL: the chunk, which looks like commands, is read and dropped
        evil = MAIL + b"\r\n" + RCPT_ALICE + b"\r\n"
        c.bdat(evil, last=True, expect=b"503 5.5.1 Need MAIL before BDAT")
        c.cmd(MAIL, b"250 2.1.0 Sender ok")
        c.bdat(b"Subject: x\r\n\r\nx\r\n", last=True, expect=b"503 5.5.1 Need RCPT before BDAT")
        # the failed BDAT ended the transaction
        c.cmd(RCPT_ALICE, b"503 5.5.1 Need MAIL before RCPT")
        # DATA after BDAT: 503, and the BDAT transaction goes on (RFC 3030 section 2)
        c.transaction()
        c.bdat(b"Subject: mixed\r\n\r\n", expect=b"250 2.0.0 Chunk received")
        c.cmd(b"DATA", b"503 5.5.1 DATA after BDAT")
        # RCPT after BDAT: 503, the message keeps its one recipient (and the
        # "for <alice@...>" of its Received: line stays true)
        c.cmd(b"RCPT TO:<bob@" + H + b">", b"503 5.5.1 RCPT after BDAT")
        qid = queued_id(c.bdat(b"DATA\r\n.\r\n", last=True))
        # a DATA transaction is over at its dot: BDAT after it needs a new MAIL
        c.transaction()
        qid2 = queued_id(c.data(b"Subject: data\r\n\r\nd\r\n.\r\n"))
        c.bdat(b"after\r\n", last=True, expect=b"503 5.5.1 Need MAIL before BDAT")
        # a BDAT command that does not parse closes the connection
        c.transaction()
        c.cmd(b"BDAT 5 LASTX", b"501 5.5.4 Syntax: BDAT size [LAST]; closing connection")
        assert c.wait_closed()
        c.close()
        for bad in (b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT 5 LAST MORE", b"BDAT 1234567890123456789"):
            c = lst.session()
            c.cmd(bad, b"501 5.5.4 Syntax: BDAT size [LAST]; closing connection")
            assert c.wait_closed(), bad
            c.close()
    assert queue_dir(inst, "new") == [qid, qid2]
    head, m = queue_message(inst, qid)
    assert head.split(b"\n")[1:] == [b"Fbob@other.example", b"Talice@" + H], head
    trace, _, rest = split_trace(b"Return-Path: <x>\nDelivered-To: x\n" + m)
    assert rest == b"Subject: mixed\n\nDATA\n.\n", rest
    assert b"\n\tfor <alice@" + H + b">; " in trace, trace
    assert queue_dir(inst, "tmp") == []


@with_instance(controls={"databytes": "100"})
def test_size_limit_at_mail_in_data_and_in_bdat(inst):
    # 100 octets counted as smtpd(8) says: CRLF counts 2, after dot removal
    exact = b"Subject: s\r\n\r\n.." + b"x" * 83 + b"\r\n"
    assert len(exact) == 101 and len(exact.replace(b"\r\n..", b"\r\n.")) == 100
    over = b"Subject: s\r\n\r\n" + b"x" * 85 + b"\r\n"
    with Listen(inst) as lst:
        c = lst.client()
        r = c.ehlo()
        assert b"\r\n250-SIZE 100\r\n" in r, r
        c.cmd(MAIL + b" SIZE=101", b"552 5.3.4 Message size exceeds fixed maximum message size")
        c.cmd(MAIL + b" SIZE=99999999999999999999", b"552 5.3.4 Message size exceeds fixed maximum message size")
        c.cmd(MAIL + b" SIZE=1x", b"501 5.5.4 Bad SIZE parameter")
        c.cmd(MAIL + b" SIZE=", b"501 5.5.4 Bad SIZE parameter")
        # a refused SIZE leaves no transaction behind
        c.cmd(RCPT_ALICE, b"503 5.5.1 Need MAIL before RCPT")
        c.transaction(sender=MAIL + b" SIZE=100")
        at_limit = queued_id(c.data(exact + b".\r\n"))
        c.transaction()
        c.data(over + b".\r\n", expect=b"552 5.3.4 Message size exceeds fixed maximum message size")
        # the 552 ended the transaction
        c.cmd(b"DATA", b"503 5.5.1 Need MAIL before DATA")
        # BDAT: 100 octets in two chunks pass, 101 do not; dots are not removed in BDAT
        plain = exact.replace(b"\r\n..", b"\r\n.")
        c.transaction()
        c.bdat(plain[:50], expect=b"250 2.0.0 Chunk received")
        bdat_at_limit = queued_id(c.bdat(plain[50:], last=True))
        c.transaction()
        c.bdat(exact[:50], expect=b"250 2.0.0 Chunk received")
        c.bdat(exact[50:], last=True, expect=b"552 5.3.4 Message size exceeds fixed maximum message size")
        # one chunk far over the limit is read to its end, then refused
        c.transaction()
        c.bdat((b"y" * 98 + b"\r\n") * 50, expect=b"250 2.0.0 Chunk received")
        c.bdat(b"", last=True, expect=b"552 5.3.4 Message size exceeds fixed maximum message size")
        # the session goes on
        c.cmd(b"NOOP", b"250 2.0.0 Ok")
        c.quit()
    assert queue_dir(inst, "new") == [at_limit, bdat_at_limit]
    assert queue_dir(inst, "tmp") == []
    for qid in (at_limit, bdat_at_limit):
        _, m = queue_message(inst, qid)
        assert m.endswith(b"\nSubject: s\n\n." + b"x" * 83 + b"\n"), m


@with_instance()
def test_text_line_limit_in_data_and_in_bdat(inst):
    too_long = b"554 5.6.0 Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)"
    with Listen(inst) as lst:
        c = lst.session()
        # 1000 octets with CRLF pass, 1001 do not; a stuffed dot counts, as sent
        c.transaction()
        ok = queued_id(c.data(b"Subject: long\r\n\r\n" + b"a" * 998 + b"\r\n.\r\n"))
        c.transaction()
        c.data(b"Subject: long\r\n\r\n" + b"a" * 999 + b"\r\n.\r\n", too_long)
        c.transaction()
        c.data(b"Subject: long\r\n\r\n.." + b"a" * 997 + b"\r\n.\r\n", too_long)
        # a line of 100000 octets whose tail, arriving apart, is ".": not the end of the message
        c.transaction()
        c.cmd(b"DATA", b"354 End data with <CR><LF>.<CR><LF>", enhanced=False)
        c.send(b"Subject: long\r\n\r\n" + b"b" * 100000)
        time.sleep(0.3)
        c.send(b".\r\nstill the message\r\n.\r\n")
        c.check(c.reply(), too_long)
        c.cmd(b"NOOP", b"250 2.0.0 Ok")
        # BDAT: the same limit, across chunks too
        c.transaction()
        ok2 = queued_id(c.bdat(b"Subject: long\r\n\r\n" + b"a" * 998 + b"\r\n", last=True))
        c.transaction()
        c.bdat(b"Subject: long\r\n\r\n" + b"a" * 500, expect=b"250 2.0.0 Chunk received")
        c.bdat(b"a" * 499 + b"\r\n", last=True, expect=too_long)
        # a last line without CRLF is stored with a line end: the same limit
        c.transaction()
        ok3 = queued_id(c.bdat(b"Subject: long\r\n\r\n" + b"a" * 998, last=True))
        c.transaction()
        c.bdat(b"Subject: long\r\n\r\n" + b"a" * 999, last=True, expect=too_long)
        c.quit()
    assert queue_dir(inst, "new") == [ok, ok2, ok3]
    assert queue_dir(inst, "tmp") == []
    for qid in (ok, ok2, ok3):
        assert queue_message(inst, qid)[1].endswith(b"\nSubject: long\n\n" + b"a" * 998 + b"\n")


# ---------------------------------------------------------------- SMTPUTF8, 8-bit

@with_instance(users=("alice",))
def test_smtplib_smtputf8_and_8bit_into_the_maildir(inst):
    inst.control("aliases", "j\u00f6rg: alice\n")
    r = subprocess.run([inst.bin("yubin-newaliases")], capture_output=True, text=True)
    assert r.returncode == 0, r
    inst.start()
    body_8bit = ("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\n\u00e9t\u00e9 \u65e5\u672c\r\n"
                 ".dot line\r\n\xa0\r\n").encode("utf-8")
    utf8_msg = ("From: b\u00f6b@other.example\r\nTo: j\u00f6rg@" + HOST + "\r\nSubject: gr\u00fc\u00dfe\r\n\r\n"
                "\u00e7a va\r\n").encode("utf-8")
    with Listen(inst) as lst:
        with smtplib.SMTP("127.0.0.1", lst.port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
            # without SMTPUTF8 a UTF-8 address is refused
            s.command_encoding = "utf-8"       # UTF-8 commands without the SMTPUTF8 parameter
            code, msg = s.mail("b\u00f6b@other.example")
            assert (code, msg) == (553, b"5.6.7 Non-ASCII address needs SMTPUTF8"), (code, msg)
            s.rset()
            s.mail("bob@other.example")
            s.command_encoding = "utf-8"       # (RSET set it back to ASCII)
            code, msg = s.rcpt("j\u00f6rg@" + HOST)
            assert (code, msg) == (553, b"5.6.7 Non-ASCII address needs SMTPUTF8"), (code, msg)
            s.rset()
            s.command_encoding = "ascii"
            # an 8-bit body with BODY=8BITMIME
            s.sendmail("bob@other.example", ["alice@" + HOST], body_8bit, mail_options=["BODY=8BITMIME"])
            # SMTPUTF8 sender and recipient, UTF-8 header
            refused = s.sendmail("b\u00f6b@other.example", ["j\u00f6rg@" + HOST], utf8_msg,
                                 mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            assert refused == {}
        wait_for(lambda: inst.count("alice") == 2, 10, "two deliveries")
    by_subject = {}
    for m in inst.messages("alice"):
        # the alias forwarded one (local-deliver, then queue-inject again) has two more trace fields
        forward = re.compile("Received: \\(yubin \\d+ invoked by uid \\d+\\); [^\n]+\n"
                             "Delivered-To: j\u00f6rg@".encode() + H + b"\n")
        m, n = forward.subn(b"", m, 1)
        trace, rid, rest = split_trace(m)
        assert n == (b"UTF8SMTP" in trace), m
        by_subject[header_values(rest, "Subject")[0]] = (trace, rest)
    trace, rest = by_subject["=?utf-8?q?caf=C3=A9?="]
    assert rest == body_8bit.replace(b"\r\n", b"\n"), rest
    assert b" with ESMTP id " in trace and b"Return-Path: <bob@other.example>\n" in trace, trace
    trace, rest = by_subject["gr\u00fc\u00dfe"]
    assert rest == utf8_msg.replace(b"\r\n", b"\n"), rest
    assert trace.startswith("Return-Path: <b\u00f6b@other.example>\n".encode()), trace
    assert b" with UTF8SMTP id " in trace, trace
    assert b"\n\tfor <j__rg@" + H + b">; " in trace, trace  # the Received line is cleaned to ASCII
    wait_for(inst.queue_empty, 10, "queue to empty")


@with_instance(users=("alice", "carol"))
def test_smtplib_pipelined_group_into_the_maildir(inst):
    inst.start()
    message = b"Subject: pipelined\r\nX-Bytes: \xff\xfe\r\n\r\n.one dot\r\n\r\nlast\r\n"
    with Listen(inst) as lst:
        with smtplib.SMTP("127.0.0.1", lst.port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.has_extn("pipelining")
            # one group (RFC 2920): the replies come back in order
            s.send("MAIL FROM:<bob@other.example> BODY=8BITMIME SIZE=%d\r\n"
                   "RCPT TO:<alice@%s>\r\nRCPT TO:<victim@elsewhere.example>\r\n"
                   "RCPT TO:<carol@%s>\r\nDATA\r\n" % (len(message), HOST, HOST))
            replies = [s.getreply() for _ in range(5)]
            assert replies == [(250, b"2.1.0 Sender ok"), (250, b"2.1.5 Recipient ok"),
                               (553, b"5.7.1 Relaying denied: elsewhere.example is not a local domain"),
                               (250, b"2.1.5 Recipient ok"), (354, b"End data with <CR><LF>.<CR><LF>")], replies
            s.send(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            code, text = s.getreply()
            assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), (code, text)
            qid = text.split()[-1].decode()
        for user in ("alice", "carol"):
            trace, rid, rest = split_trace(only_message(inst, user))
            assert rid == qid and rest == message.replace(b"\r\n", b"\n"), rest
            assert b"\n\tfor <" not in trace        # two recipients: no "for"


@with_instance()
def test_smtputf8_over_raw_socket_without_and_with_the_parameter(inst):
    with Listen(inst) as lst:
        c = lst.session()
        c.cmd("MAIL FROM:<b\u00f6b@other.example>".encode(), b"553 5.6.7 Non-ASCII address needs SMTPUTF8")
        c.cmd(MAIL, b"250 2.1.0 Sender ok")
        c.cmd("RCPT TO:<\u00e9l\u00e8ve@test.example>".encode(),
              b"553 5.6.7 Non-ASCII address needs SMTPUTF8")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.cmd("MAIL FROM:<b\u00f6b@other.example> SMTPUTF8".encode(), b"250 2.1.0 Sender ok")
        c.cmd("RCPT TO:<\u00e9l\u00e8ve@test.example>".encode(), b"250 2.1.5 Recipient ok")
        # not UTF-8 at all, even with SMTPUTF8
        c.cmd(b"RCPT TO:<\xe9l\xe8ve@test.example>", b"501 5.1.3 Bad recipient address: address is not valid UTF-8")
        qid = queued_id(c.data("Subject: \u00fc\r\n\r\n\u00fc\r\n.\r\n".encode()))
        c.cmd(b"MAIL FROM:<bob@other.example> SMTPUTF8=yes", b"555 5.5.4 Unsupported MAIL parameter smtputf8")
        c.quit()
    head, m = queue_message(inst, qid)
    assert head.split(b"\n")[1:] == ["Fb\u00f6b@other.example".encode(), "T\u00e9l\u00e8ve@test.example".encode()]
    assert b" with UTF8SMTP id " + qid.encode() in m
    assert m.endswith("\nSubject: \u00fc\n\n\u00fc\n".encode()), m


# ---------------------------------------------------------------- error replies

@with_instance()
def test_every_command_error_reply(inst):
    with Listen(inst) as lst:
        c = lst.client()
        # before HELO/EHLO
        c.cmd(MAIL, b"503 5.5.1 Send HELO or EHLO first")
        c.cmd(b"HELO", b"501 5.5.4 Syntax: HELO hostname")
        c.cmd(b"EHLO   ", b"501 5.5.4 Syntax: EHLO hostname")
        c.cmd(b"NOOP", b"250 2.0.0 Ok")
        c.cmd(b"HELO client.example", b"250 " + H + b" Hello [127.0.0.1]", enhanced=False)
        c.cmd(MAIL + b" SIZE=10", b"555 5.5.4 MAIL parameters need EHLO")
        c.ehlo()
        # out of sequence
        c.cmd(RCPT_ALICE, b"503 5.5.1 Need MAIL before RCPT")
        c.cmd(b"DATA", b"503 5.5.1 Need MAIL before DATA")
        c.cmd(MAIL, b"250 2.1.0 Sender ok")
        c.cmd(MAIL, b"503 5.5.1 Nested MAIL command")
        c.cmd(b"DATA", b"503 5.5.1 Need RCPT before DATA")
        # syntax
        c.cmd(b"RCPT alice@" + H, b"501 5.5.4 Syntax: RCPT TO:<address>")
        c.cmd(b"RCPT TO:alice@" + H, b"501 5.1.3 Bad recipient address: address must be enclosed in <>")
        c.cmd(b"RCPT TO:<alice>", b"501 5.1.3 Bad recipient address: address must include a domain")
        c.cmd(b"RCPT TO:<>", b"501 5.1.3 Bad recipient address: null address not allowed here")
        c.cmd(RCPT_ALICE + b"x", b"501 5.5.4 Bad RCPT parameters")
        c.cmd(RCPT_ALICE + b" NOTIFY=NEVER", b"555 5.5.4 Unsupported RCPT parameter notify")
        c.cmd(b"RSET now", b"501 5.5.4 RSET takes no argument")
        c.cmd(RCPT_ALICE, b"250 2.1.5 Recipient ok")
        c.cmd(b"DATA now", b"501 5.5.4 DATA takes no argument")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.cmd(b"DATA", b"503 5.5.1 Need MAIL before DATA")        # RSET ended it
        c.cmd(b"MAIL TO:<bob@other.example>", b"501 5.5.4 Syntax: MAIL FROM:<address>")
        c.cmd(b"MAIL FROM:bob@other.example", b"501 5.1.7 Bad sender address: address must be enclosed in <>")
        c.cmd(b"MAIL FROM:<bob@other.example", b"501 5.1.7 Bad sender address: missing >")
        c.close()
        c = lst.session()
        c.cmd(MAIL + b" BODY=BINARYMIME", b"555 5.5.4 Unsupported BODY type")
        c.cmd(MAIL + b" RET=HDRS", b"555 5.5.4 Unsupported MAIL parameter ret")
        c.cmd(MAIL + b" =x", b"501 5.5.4 Bad MAIL parameters")
        c.cmd(MAIL + b" BODY=8bitmime SIZE=5", b"250 2.1.0 Sender ok")
        # RFC 5321 4.5.3.1: local part 64, domain 255, path 256 octets
        c.cmd(b"RCPT TO:<" + b"a" * 64 + b"@" + H + b">", b"250 2.1.5 Recipient ok")
        c.cmd(b"RCPT TO:<" + b"a" * 65 + b"@" + H + b">", b"501 5.1.3 Bad recipient address: local part too long")
        long_domain = b"x" * 60 + b"." + b"y" * 60 + b"." + b"z" * 60 + b"." + b"w" * 60 + b"." + H
        c.cmd(b"RCPT TO:<a@" + long_domain + b">", b"501 5.1.3 Bad recipient address: domain too long")
        c.cmd(b"RCPT TO:<" + b"a" * 64 + b"@" + long_domain[-190:].lstrip(b".") + b">",
              b"501 5.1.3 Bad recipient address: address too long")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        # unknown and unimplemented commands
        c.cmd(b"FOO bar", b"500 5.5.2 Unknown command")
        c.cmd(b"MAILFROM:<bob@other.example>", b"500 5.5.2 Unknown command")
        c.cmd(b"STARTTLS", b"502 5.5.1 STARTTLS is not available")   # no certificate here (test_tls_smtpd.py)
        # AUTH needs TLS (test_smtp_auth.py)
        c.cmd(b"AUTH PLAIN AGJvYgBzZWNyZXQ=", b"538 5.7.11 Encryption required for requested authentication mechanism")
        for verb in (b"TURN", b"ETRN " + H, b"SEND FROM:<a@b.c>",
                     b"SAML FROM:<a@b.c>", b"soml FROM:<a@b.c>"):
            c.cmd(verb, b"502 5.5.1 " + verb.split(b" ")[0].lower() + b" is not implemented")
        # lines
        c.cmd(b"NOOP\nQUIT", b"500 5.5.2 Bare CR or LF in a command; lines end with CRLF")
        c.cmd(b"NOOP\rQUIT", b"500 5.5.2 Bare CR or LF in a command; lines end with CRLF")
        c.cmd(b"NOOP " + b"x" * 2041, b"250 2.0.0 Ok")                 # 2048 octets with CRLF
        c.cmd(b"NOOP " + b"x" * 2042, b"500 5.5.2 Line too long")
        c.cmd(b"NOOP " + b"x" * 100000, b"500 5.5.2 Line too long")
        c.cmd(b"noop", b"250 2.0.0 Ok")                                   # verbs in any case
        c.quit()
    assert_nothing_queued(inst)


@with_instance()
def test_vrfy_expn_help_noop_rset_quit(inst):
    with Listen(inst) as lst:
        c = lst.session()
        c.cmd(b"VRFY alice", b"252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery")
        c.cmd(b"VRFY nobody@" + H, b"252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery")
        c.cmd(b"EXPN staff", b"502 5.7.0 EXPN is refused")
        c.cmd(b"HELP", b"214-2.0.0 Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
                       b"214 2.0.0 See smtpd(8)")
        c.cmd(b"NOOP", b"250 2.0.0 Ok")
        c.transaction()
        c.cmd(b"NOOP", b"250 2.0.0 Ok")                 # NOOP keeps the transaction
        c.cmd(b"VRFY alice", b"252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.cmd(b"DATA", b"503 5.5.1 Need MAIL before DATA")
        # RSET in the middle of a BDAT message drops it
        c.transaction()
        c.bdat(b"Subject: dropped\r\n\r\n", expect=b"250 2.0.0 Chunk received")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.bdat(b"more\r\n", last=True, expect=b"503 5.5.1 Need MAIL before BDAT")
        # EHLO ends a transaction too
        c.transaction()
        c.ehlo()
        c.cmd(b"DATA", b"503 5.5.1 Need MAIL before DATA")
        # QUIT in the middle of a BDAT message drops it; nothing after QUIT is read
        c.transaction()
        c.bdat(b"Subject: dropped\r\n\r\n", expect=b"250 2.0.0 Chunk received")
        c.send(b"QUIT\r\nBDAT 3 LAST\r\nx\r\n")
        c.check(c.reply(), b"221 2.0.0 " + H + b" closing connection")
        assert c.wait_closed() and c.buf == b"", c.buf
        c.close()
    assert_nothing_queued(inst)


@with_instance(users=("alice", "bob", "carol", "dave"), controls={"maxrcpt": "3"})
def test_too_many_recipients_452_and_the_rest_in_another_transaction(inst):
    inst.start()
    with Listen(inst) as lst:
        c = lst.session()
        c.transaction(rcpts=[b"RCPT TO:<%s@%s>" % (u, H) for u in (b"alice", b"bob", b"carol")])
        c.cmd(b"RCPT TO:<dave@" + H + b">", b"452 4.5.3 Too many recipients")
        c.cmd(b"RCPT TO:<alice@" + H + b">", b"452 4.5.3 Too many recipients")
        first = queued_id(c.data(b"Subject: three\r\n\r\n3\r\n.\r\n"))
        c.transaction(rcpts=[b"RCPT TO:<dave@" + H + b">"])
        second = queued_id(c.data(b"Subject: the rest\r\n\r\n1\r\n.\r\n"))
        # 452 is not an error of the session: many of them do not close it
        c.transaction(rcpts=[b"RCPT TO:<%s@%s>" % (u, H) for u in (b"alice", b"bob", b"carol")])
        for _ in range(25):
            c.cmd(b"RCPT TO:<dave@" + H + b">", b"452 4.5.3 Too many recipients")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.quit()
        for u in ("alice", "bob", "carol"):
            m = only_message(inst, u)
            assert header_values(m, "Subject") == ["three"] and split_trace(m)[1] == first
        m = only_message(inst, "dave")
        assert header_values(m, "Subject") == ["the rest"] and split_trace(m)[1] == second


@with_instance(controls={"maxhops": "3"})
def test_maxhops_counts_received_and_delivered_to_in_the_header(inst):
    three = b"Received: from a\r\nreceived: from b\r\nDelivered-To: x@y.example\r\n"
    with Listen(inst) as lst:
        c = lst.session()
        c.transaction()
        ok1 = queued_id(c.data(three + b"Subject: 3 hops\r\n\r\nReceived: in the body\r\n"
                               b"Received: does not count\r\n.\r\n"))
        c.transaction()
        c.data(three + b"DELIVERED-TO: z@y.example\r\nSubject: 4 hops\r\n\r\nx\r\n.\r\n",
               expect=b"554 5.4.6 Too many hops: mail loop?")
        c.transaction()
        c.bdat(three, expect=b"250 2.0.0 Chunk received")
        c.bdat(b"Received: from c\r\n\r\nx\r\n", last=True, expect=b"554 5.4.6 Too many hops: mail loop?")
        c.transaction()
        ok2 = queued_id(c.bdat(three + b"\r\nReceived: body\r\n", last=True))
        c.quit()
    assert queue_dir(inst, "new") == [ok1, ok2]
    assert queue_dir(inst, "tmp") == []


@with_instance()
def test_null_sender_and_postmaster(inst):
    inst.start()
    with Listen(inst) as lst:
        c = lst.session()
        c.transaction(sender=b"MAIL FROM:<>", rcpts=[RCPT_ALICE])
        queued_id(c.data(b"Subject: bounce-like\r\n\r\nx\r\n.\r\n"))
        c.transaction(sender=b"MAIL FROM:<> BODY=7BIT", rcpts=[b"RCPT TO:<Postmaster>"])
        queued_id(c.data(b"Subject: to postmaster\r\n\r\nx\r\n.\r\n"))
        c.quit()
        m = only_message(inst, "alice")
        assert m.startswith(b"Return-Path: <>\nDelivered-To: alice@" + H + b"\n"), m
        m = only_message(inst, "alias")
        assert m.startswith(b"Return-Path: <>\n") and header_values(m, "Subject") == ["to postmaster"], m


# ---------------------------------------------------------------- limits of the session

@with_instance()
def test_too_many_errors_is_421_then_hangup_and_drops_the_message(inst):
    with Listen(inst) as lst:
        c = lst.session()
        # the errors of smtpd(8): 500, 501, 502, 503, 553, 555 (452, 552 are not counted)
        c.transaction()
        c.cmd(b"RCPT TO:<v@elsewhere.example>", b"553 5.7.1 Relaying denied: elsewhere.example is not a local domain")
        c.cmd(RCPT_ALICE + b" X=1", b"555 5.5.4 Unsupported RCPT parameter x")
        c.bdat(b"Subject: never\r\n\r\n", expect=b"250 2.0.0 Chunk received")
        errors = [(b"FOO", b"500 5.5.2 Unknown command"),
                  (b"RSET x", b"501 5.5.4 RSET takes no argument"),
                  (b"EXPN x", b"502 5.7.0 EXPN is refused"),
                  (MAIL, b"503 5.5.1 Nested MAIL command"),
                  (b"RCPT TO:<bob@" + H + b">", b"503 5.5.1 RCPT after BDAT"),
                  (b"STARTTLS", b"502 5.5.1 STARTTLS is not available")]
        for i in range(18):
            line, reply = errors[i % len(errors)]
            c.cmd(line, reply)
        c.cmd(b"NOOP", b"250 2.0.0 Ok")             # not an error
        # all pipelined: the 21st error, then 421, then nothing more is read
        c.send(b"FOO\r\nNOOP\r\n")
        c.check(c.reply(), b"500 5.5.2 Unknown command")
        c.check(c.reply(), b"421 4.7.0 " + H + b" Too many errors; closing connection")
        assert c.wait_closed() and c.buf == b"", c.buf
        c.close()
    assert_nothing_queued(inst)


@contextlib.contextmanager
def smtpd_on_socketpair(inst, sndbuf=None):
    """smtpd run directly on one end of a socket pair (as by inetd, with
    tcpserver's variables): yields (process, client socket), and kills
    the process if it is still there at the end."""
    mine, theirs = socket.socketpair()
    if sndbuf:
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    env = network_env("127.0.0.1")
    env.pop("TCPREMOTEHOST")
    p = subprocess.Popen([inst.bin("smtpd")], stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, env=env)
    theirs.close()
    try:
        yield p, mine
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        mine.close()


@with_instance(controls={"timeoutsmtpd": "1"})
def test_slow_clients_are_timed_out_and_their_message_dropped(inst):
    with Listen(inst) as lst:
        def timed_out(c):
            t0 = time.monotonic()
            c.check(c.reply(), b"421 4.4.2 " + H + b" Timeout; closing connection")
            waited = time.monotonic() - t0
            assert c.wait_closed()
            c.close()
            return waited
        # idle between commands
        c = lst.session()
        assert timed_out(c) < 5
        # stalled in the middle of DATA, and in the middle of a BDAT chunk,
        # after some of the message was already written to queue-inject
        c = lst.session()
        c.transaction()
        c.cmd(b"DATA", b"354 End data with <CR><LF>.<CR><LF>", enhanced=False)
        c.send(b"Subject: stalled\r\n\r\nhalf a line")
        assert queue_dir(inst, "tmp"), "queue-inject has not started"   # it reported its id before 354
        assert timed_out(c) < 5
        c = lst.session()
        c.transaction()
        c.send(b"BDAT 100 LAST\r\nSubject: stalled\r\n")
        assert timed_out(c) < 5
        # a slow client that keeps sending is not idle: it gets its message through
        c = lst.session()
        c.transaction()
        c.cmd(b"DATA", b"354 End data with <CR><LF>.<CR><LF>", enhanced=False)
        for piece in (b"Subject: slow\r\n", b"\r\n", b"line 1\r\n", b"line 2\r\n", b"line 3\r\n"):
            c.send(piece)
            time.sleep(0.3)                       # 1.5 s in all, never 1 s idle
        c.send(b".\r\n")
        slow = queued_id(c.reply())
        c.quit()
    wait_for(lambda: queue_state(inst) == {"tmp": [], "new": [slow], "cur": []}, 5, "only the slow message queued")


@with_instance(controls={"timeoutsmtpd": "1"})
def test_a_client_that_does_not_read_is_ended_by_sigalrm(inst):
    sent = []
    with smtpd_on_socketpair(inst, sndbuf=4096) as (p, c):
        def flood():
            try:
                c.settimeout(10)
                for _ in range(2000):
                    c.sendall(b"NOOP\r\n" * 200)
                    sent.append(1)
            except OSError:
                pass
        t = threading.Thread(target=flood)
        t.start()
        try:
            # its replies fill the socket: smtpd blocks in write, and the alarm ends it
            assert p.wait(10) == -signal.SIGALRM
        finally:
            try:
                c.shutdown(socket.SHUT_RDWR)    # unblocks the flood if smtpd is still there
            except OSError:
                pass
            t.join(15)
    assert len(sent) < 2000                     # smtpd stopped reading long before the end


@with_instance()
def test_control_file_error_is_421_4_3_5(inst):
    inst.control("maxrcpt", "many")
    with smtpd_on_socketpair(inst) as (p, c):
        c.settimeout(10)
        out = b""
        while True:
            got = c.recv(4096)
            if not got:
                break
            out += got
        assert out == b"421 4.3.5 Mail system configuration error; try again later\r\n", out
        assert p.wait(10) == 111
        err = p.stderr.read()
        assert b"event=fatal" in err and b"control/maxrcpt" in err, err


# ---------------------------------------------------------------- queue failures

FAKE_INJECT = """#!/bin/sh
# stands in for queue-inject: %s
%s
"""


def fake_queue_inject(inst, what, script):
    path = inst.bin("queue-inject")
    if not os.path.exists(path + ".real"):
        os.rename(path, path + ".real")
    with open(path + ".new", "w") as f:
        f.write(FAKE_INJECT % (what, script))
    os.chmod(path + ".new", 0o755)
    os.rename(path + ".new", path)


def real_queue_inject(inst):
    os.rename(inst.bin("queue-inject") + ".real", inst.bin("queue-inject"))


# reports an id on fd 3, reads the message and the envelope, then exits CODE
WITH_ID = ('echo "$(date +%%s).1.$$" >&3; exec 3>&-; cat >/dev/null; cat <&1 >/dev/null; %s')


@with_instance()
def test_queue_failures_are_451_or_554(inst):
    # queue-inject's failures: the instance (and its queue-injectd) starts
    # only at the end, to deliver; queue-injectd's are in test_queue_injectd.py.
    with Listen(inst) as lst:
        c = lst.session()
        # queue-inject reports no id: 451 at DATA and at the first BDAT
        fake_queue_inject(inst, "no id", "exit 111")
        c.transaction()
        c.cmd(b"DATA", b"451 4.3.0 Queue temporarily unavailable: temporary queue failure")
        c.cmd(RCPT_ALICE, b"503 5.5.1 Need MAIL before RCPT")   # the transaction is over
        c.transaction()
        c.bdat(b"Subject: x\r\n\r\nx\r\n", last=True,
               expect=b"451 4.3.0 Queue temporarily unavailable: temporary queue failure")
        c.cmd(RCPT_ALICE, b"503 5.5.1 Need MAIL before RCPT")
        # it starts, then fails at the end
        for code, reply in ((53, b"451 4.3.0 Queue temporarily unavailable: write error or disk full"),
                            (75, b"451 4.3.0 Queue temporarily unavailable: temporary queue failure"),
                            (31, b"554 5.3.0 Message refused: message refused: no recipients"),
                            (11, b"554 5.3.0 Message refused: address too long or contains CR, LF or NUL")):
            fake_queue_inject(inst, "exit %d" % code, WITH_ID % ("exit %d" % code))
            c.transaction()
            c.data(b"Subject: x\r\n\r\nx\r\n.\r\n", expect=reply)
            c.transaction()
            c.bdat(b"Subject: x\r\n", expect=b"250 2.0.0 Chunk received")
            c.bdat(b"\r\nx\r\n", last=True, expect=reply)
        # killed: 451
        fake_queue_inject(inst, "killed", WITH_ID % "kill -9 $$")
        c.transaction()
        c.data(b"Subject: x\r\n\r\nx\r\n.\r\n", expect=b"451 4.3.0 Queue temporarily unavailable: internal error",
)
        # back to the real one: the same session now queues
        real_queue_inject(inst)
        c.transaction()
        qid = queued_id(c.data(b"Subject: after\r\n\r\nok\r\n.\r\n"))
        c.quit()
    inst.start()
    m = only_message(inst, "alice")
    assert split_trace(m)[1:] == (qid, b"Subject: after\n\nok\n")


# ---------------------------------------------------------------- relay control

LOCAL_FORMS = [
    # (RCPT argument, the mailbox it must reach)
    (b"<alice@" + H + b">", "alice"),
    (b"<ALICE@TEST.Example>", "alice"),
    (b"<alice@" + H + b".>", "alice"),
    (b"<alice@localhost>", "alice"),
    (b"<\"alice\"@" + H + b">", "alice"),
    (b"<@relay.example:alice@" + H + b">", "alice"),
    (b"<@relay.example,@other.example:alice@" + H + b">", "alice"),
    (b"<postmaster>", "alias"),
    (b"<Postmaster@" + H + b">", "alias"),
]
# local domain, odd local part: accepted, never relayed, bounced as unknown (5.1.1)
LOCAL_ODD = [
    (b"<victim%elsewhere.example@" + H + b">", "victim%elsewhere.example@" + HOST),
    (b"<elsewhere.example!victim@" + H + b">", "elsewhere.example!victim@" + HOST),
    (b"<\"victim@elsewhere.example\"@" + H + b">", "\"victim@elsewhere.example\"@" + HOST),
    (b"<\"victim%elsewhere.example\"@" + H + b">", "victim%elsewhere.example@" + HOST),
]
STRANGERS_553 = [
    (b"<victim@elsewhere.example>", b"elsewhere.example"),
    (b"<victim@elsewhere.example.>", b"elsewhere.example"),
    (b"<victim@ELSEWHERE.example>", b"elsewhere.example"),
    (b"<alice%" + H + b"@elsewhere.example>", b"elsewhere.example"),
    (b"<" + H + b"!alice@elsewhere.example>", b"elsewhere.example"),
    (b"<@" + H + b":victim@elsewhere.example>", b"elsewhere.example"),
    (b"<@" + H + b",@localhost:victim@elsewhere.example>", b"elsewhere.example"),
    (b"<\"alice@" + H + b"\"@elsewhere.example>", b"elsewhere.example"),
    (b"<\"alice%" + H + b"\"@elsewhere.example>", b"elsewhere.example"),
    (b"<alice@" + H + b".elsewhere.example>", b"test.example.elsewhere.example"),
    (b"<alice@x" + H + b">", b"xtest.example"),
    (b"<alice@sub." + H + b">", b"sub.test.example"),
    (b"<alice@[127.0.0.1]>", b"[127.0.0.1]"),
]
STRANGERS_501 = [
    b"<victim@elsewhere.example..>",
    b"<victim@elsewhere.example@" + H + b">",
    b"<elsewhere.example!victim>",
    b"<victim%elsewhere.example>",
    b"<@elsewhere.example:victim>",
    b"<victim@.elsewhere.example>",
    b"<victim@elsewhere..example>",
    b"<alice@" + H + b" >",
]


@with_instance(users=("alice", "bob"))
def test_relay_control_for_a_stranger_and_local_forms(inst):
    inst.start()
    with Listen(inst) as lst:
        c = lst.session()
        c.transaction(sender=b"MAIL FROM:<bob@" + H + b">", rcpts=[])
        for arg, domain in STRANGERS_553:
            c.cmd(b"RCPT TO:" + arg, b"553 5.7.1 Relaying denied: " + domain + b" is not a local domain")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        c.close()
        c = lst.session()
        c.transaction(sender=b"MAIL FROM:<bob@" + H + b">", rcpts=[])
        for arg in STRANGERS_501:
            c.cmd(b"RCPT TO:" + arg, prefix=b"501 5.1.3 Bad recipient address: ")
        c.cmd(b"DATA", b"503 5.5.1 Need RCPT before DATA")
        c.cmd(b"RSET", b"250 2.0.0 Ok")
        # the forms that name a local mailbox: one message each, to the right mailbox
        for arg, _ in LOCAL_FORMS + LOCAL_ODD:
            c.transaction(sender=b"MAIL FROM:<bob@" + H + b">", rcpts=[b"RCPT TO:" + arg])
            queued_id(c.data(b"Subject: " + arg + b"\r\n\r\nx\r\n.\r\n"))
        c.quit()
        n_alice = sum(1 for _, box in LOCAL_FORMS if box == "alice")

        def deliveries():     # logged after the Maildir file appears: wait for both
            return [l for l in inst.read_log().splitlines() if "event=delivery" in l]
        wait_for(lambda: inst.count("alice") == n_alice and inst.count("alias") == 2
                 and inst.count("bob") == len(LOCAL_ODD)
                 and len(deliveries()) == len(LOCAL_FORMS) + 2 * len(LOCAL_ODD), 20, "deliveries and bounces")
        got = sorted(header_values(m, "Subject")[0].encode() for m in inst.messages("alice"))
        assert got == sorted(a for a, box in LOCAL_FORMS if box == "alice"), got
        # each odd form was tried locally and bounced, never relayed
        log = inst.read_log()
        for _, rcpt in LOCAL_ODD:
            assert ("rcpt=%s result=failed status=5.1.1" % rcpt) in log or \
                   ("rcpt=\"%s\" result=failed status=5.1.1" % rcpt.replace("\"", "\\\"")) in log, (rcpt, log)
        # and nothing went anywhere but to a local mailbox
        for l in deliveries():
            m = re.search(r' rcpt=("(?:[^"\\]|\\.)*"|\S+) result=(\S+) status=(\S+)', l)
            assert m, l
            assert re.search(r'(@%s|@localhost|^postmaster)"?$' % re.escape(HOST), m.group(1), re.I), l
            assert (m.group(2), m.group(3)) in (("ok", "2.0.0"), ("failed", "5.1.1")), l
        wait_for(inst.queue_empty, 10, "queue to empty")


# ---------------------------------------------------------------- smuggling

SMUGGLED = (b"MAIL FROM:<evil@other.example>\r\nRCPT TO:<alice@" + H + b">\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsecond\r\n")
# a line end that is not CRLF, then a dot, then another that is not CRLF (or is)
SMUGGLING = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r", b"\r.\n",
             b"\n..\n", b"\r\n.\n\r\n", b"\n.\n\r\n", b"\r\n \r\n.\n", b"\r\n.\r\r\n", b"\r\n.\x00\n"]


@with_instance()
def test_smuggling_variants_are_refused_and_never_split(inst):
    inst.start()
    with Listen(inst) as lst:
        c = lst.session()
        for v in SMUGGLING:
            c.transaction()
            # each variant, then a second message, then the real end
            c.data(b"Subject: first\r\n\r\nfirst" + v + SMUGGLED + b".\r\n",
                   b"554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF")
            c.cmd(b"NOOP", b"250 2.0.0 Ok")             # the next reply is to the next command
            # in BDAT too: the chunk is data, a bare LF or CR refuses it
            c.transaction()
            c.bdat(b"Subject: first\r\n\r\nfirst" + v + SMUGGLED, last=True,
                   expect=b"554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF")
            c.cmd(b"NOOP", b"250 2.0.0 Ok")
        # the control: with a real CRLF.CRLF the same bytes are two messages (so the check can fail)
        c.transaction()
        c.cmd(b"DATA", b"354 End data with <CR><LF>.<CR><LF>", enhanced=False)
        c.send(b"Subject: first\r\n\r\nfirst\r\n.\r\n" + SMUGGLED + b".\r\n")
        one = queued_id(c.reply())
        c.check(c.reply(), b"250 2.1.0 Sender ok")
        c.check(c.reply(), b"250 2.1.5 Recipient ok")
        c.check(c.reply(enhanced=False), b"354 End data with <CR><LF>.<CR><LF>")
        two = queued_id(c.reply())
        c.quit()
        wait_for(lambda: inst.count("alice") == 2, 10, "the two control messages")
        time.sleep(0.3)
        msgs = inst.messages("alice")
        assert len(msgs) == 2, msgs
        rests = sorted(split_trace(m)[2] for m in msgs)
        assert rests == [b"Subject: first\n\nfirst\n", b"Subject: smuggled\n\nsecond\n"], rests
        assert sorted(split_trace(m)[1] for m in msgs) == sorted([one, two])
        wait_for(inst.queue_empty, 10, "queue to empty")
        assert queue_dir(inst, "tmp") == []


# ---------------------------------------------------------------- clients

@with_instance()
def test_swaks_quit_after_variants_queue_nothing(inst):
    assert shutil.which("swaks"), "swaks is missing (make deps installs it)"
    with Listen(inst) as lst:
        for step, last in (("CONNECT", b"220 "), ("FIRST-HELO", b"250 CHUNKING"), ("HELO", b"250 CHUNKING"),
                           ("MAIL", b"250 2.1.0 Sender ok"), ("RCPT", b"250 2.1.5 Recipient ok")):
            r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % lst.port, "--to", "alice@" + HOST,
                                "--from", "bob@other.example", "--quit-after", step],
                               capture_output=True, timeout=30)
            out = r.stdout
            assert r.returncode == 0, out
            assert b"<-  221 2.0.0 " + H + b" closing connection" in out, out
            assert last in out, (step, out)
            assert b" -> DATA" not in out and b"354" not in out, out
        # --pipeline, an 8-bit body from a file, and a refused relay in the same group
        body = os.path.join(inst.dir, "body.eml")
        with open(body, "wb") as f:
            f.write("Subject: swaks 8bit\r\n\r\nna\u00efve\r\n.dotted\r\n".encode())
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % lst.port, "--pipeline",
                            "--to", "alice@" + HOST, "--from", "bob@other.example", "--data", "@" + body],
                           capture_output=True, timeout=30)
        assert r.returncode == 0 and b"250 2.0.0 Ok: queued as" in r.stdout, r.stdout
        qid = re.search(rb"queued as (\S+)", r.stdout).group(1).decode()
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % lst.port, "--pipeline",
                            "--to", "victim@elsewhere.example", "--from", "bob@other.example"],
                           capture_output=True, timeout=30)
        assert r.returncode != 0 and b"553 5.7.1 Relaying denied" in r.stdout, r.stdout
    assert queue_dir(inst, "new") == [qid]
    _, m = queue_message(inst, qid)
    # swaks dot-stuffs (..dotted) and ends the data with CRLF CRLF . CRLF: one empty line more
    assert m.endswith("\nSubject: swaks 8bit\n\nna\u00efve\n.dotted\n\n".encode()), m


if __name__ == "__main__":
    harness.run(globals())
