"""queue-inject driven directly: message on fd 0, envelope on fd 1 (pipes),
the queue file it writes, its exit codes, what a killed injection leaves,
the cleanup of tmp/ and the trigger that wakes the queue-manager."""
import email.utils
import fcntl
import os
import re
import resource
import signal
import stat
import subprocess
import termios
import time

import harness
from harness import (HOST, header_values, qmail_envelope, queue_dir, queue_inject, wait_for,
                     with_instance)

ALICE = "alice@" + HOST
ID_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def queue_file(inst, sub, name):
    with open(os.path.join(inst.dir, "queue", sub, name), "rb") as f:
        return f.read()


def check_received(line, pid):
    m = re.fullmatch(r"Received: \(yubin (\d+) invoked by uid (\d+)\); (.+)", line)
    assert m, line
    assert int(m.group(1)) == pid, (line, pid)
    assert int(m.group(2)) == os.getuid(), line
    when = email.utils.parsedate_to_datetime(m.group(3)).timestamp()
    assert abs(when - time.time()) < 60, line


@with_instance()
def test_good_envelope_makes_the_documented_queue_file(inst):
    # bytes queue-inject must not touch: CRLF, a NUL, 8-bit, "From " lines
    message = (b"Subject: direct\r\nX-Bin: \x00\xff\xfe\n\nbody line\r\nFrom here\n"
               b".\n..\nno final newline")
    t0 = time.time()
    p = queue_inject(inst, message, qmail_envelope("bob@else.example", [ALICE, "carol@remote.example"]))
    assert p.returncode == 0, (p.returncode, p.err)
    assert queue_dir(inst, "tmp") == [] and queue_dir(inst, "cur") == []
    [name] = queue_dir(inst, "new")
    m = ID_RE.match(name)
    assert m and int(m.group(3)) == p.pid, (name, p.pid)
    assert abs(int(m.group(1)) - t0) < 60 and len(m.group(2)) <= 6, name
    st = os.stat(os.path.join(inst.dir, "queue", "new", name))
    # Readable by the owner and the queue's group (remote-spawn in a system instance), nobody else.
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    data = queue_file(inst, "new", name)
    head, rest = data.split(b"\n\n", 1)
    y, f, t1, t2 = head.decode().split("\n")
    ym = re.fullmatch(r"Y (\d+) (\d+)", y)
    assert ym, y
    assert abs(int(ym.group(1)) - t0) < 60 and int(ym.group(2)) == os.getuid(), y
    assert (f, t1, t2) == ("Fbob@else.example", "T" + ALICE, "Tcarol@remote.example"), head
    received, stored = rest.split(b"\n", 1)
    check_received(received.decode(), p.pid)
    assert stored == message          # byte for byte, nothing rewritten

    # the null sender is an empty F line; a second file gets its own ID
    p2 = queue_inject(inst, b"Subject: null\n\nx\n", qmail_envelope("", [ALICE]))
    assert p2.returncode == 0, (p2.returncode, p2.err)
    names = queue_dir(inst, "new")
    assert len(names) == 2
    [name2] = [n for n in names if n != name]
    y2, f2, t2, blank, received2, stored2 = queue_file(inst, "new", name2).split(b"\n", 5)
    assert y2.startswith(b"Y ") and (f2, t2, blank) == (b"F", b"T" + ALICE.encode(), b""), y2
    check_received(received2.decode(), p2.pid)
    assert stored2 == b"Subject: null\n\nx\n"

    # and both are delivered as they are
    inst.start()
    wait_for(lambda: inst.count("alice") == 2, 20, "both deliveries")
    got = sorted(inst.messages("alice"), key=lambda m: b"Subject: null" in m)
    assert got[0] == (b"Return-Path: <bob@else.example>\nDelivered-To: " + ALICE.encode() + b"\n" +
                      received + b"\n" + message), got[0]
    assert got[1] == (b"Return-Path: <>\nDelivered-To: " + ALICE.encode() + b"\n" +
                      received2 + b"\n" + stored2), got[1]


def expect_code(inst, envelope, code, what, message=b"Subject: x\n\nx\n", quiet=False):
    p = queue_inject(inst, message, envelope)
    assert p.returncode == code, (what, p.returncode, code, p.err)
    if quiet:
        assert p.err == b"", (what, p.err)
    else:
        assert p.err.startswith(b"queue-inject: "), (what, p.err)
    for sub in ("tmp", "new", "cur"):
        assert queue_dir(inst, sub) == [], (what, sub)


@with_instance()
def test_exit_codes(inst):
    a = ALICE.encode()
    expect_code(inst, b"Fbob@x\0\0", 31, "no recipients")
    expect_code(inst, b"F\0\0", 31, "null sender, no recipients")
    # envelope format errors: 91
    # an empty envelope is a caller dropping its message: refused, quietly
    expect_code(inst, b"", 91, "empty envelope", quiet=True)
    expect_code(inst, b"Fbob@x\0T" + a + b"\0", 91, "no terminating NUL")
    expect_code(inst, b"Fbob@x\0T" + a, 91, "truncated in an item")
    expect_code(inst, b"Tbob@x\0T" + a + b"\0\0", 91, "first item not F")
    expect_code(inst, b"Fbob@x\0X" + a + b"\0\0", 91, "item letter not T")
    expect_code(inst, b"Fbob@x\0F" + a + b"\0\0", 91, "a second F")
    expect_code(inst, b"Fbob@x\0T" + a + b"\0\0junk", 91, "bytes after the end")
    expect_code(inst, b"Fbob@x\0T" + a + b"\0\0\0", 91, "a NUL after the end")
    expect_code(inst, b"\0", 91, "no sender item")
    # bad addresses: 11
    expect_code(inst, b"Fbob@x\0Tal\rice@x\0\0", 11, "CR in a recipient")
    expect_code(inst, b"Fbob@x\0Talice@x\n\0\0", 11, "LF in a recipient")
    expect_code(inst, b"Fbob@x\0T" + a + b"\0T\0\0", 11, "empty recipient")
    expect_code(inst, b"Fbob\n@x\0T" + a + b"\0\0", 11, "LF in the sender")
    long_rcpt = b"x" * (1001 - len(b"@" + HOST.encode())) + b"@" + HOST.encode()
    assert len(long_rcpt) == 1001
    expect_code(inst, b"Fbob@x\0T" + long_rcpt + b"\0\0", 11, "1001-octet recipient")
    # the limit itself is accepted
    p = queue_inject(inst, b"Subject: long\n\nx\n", b"Fbob@x\0T" + long_rcpt[1:] + b"\0\0")
    assert p.returncode == 0, p.err
    [name] = queue_dir(inst, "new")
    assert queue_file(inst, "new", name).split(b"\n")[2] == b"T" + long_rcpt[1:]


def pipe_level(fd):
    """Bytes waiting in the pipe whose write end is fd."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, "little")


def sentinel_delivered(inst):
    """Sends a sentinel through sendmail and waits until it has arrived: after
    that, anything else queued would have been delivered too."""
    r = inst.sendmail(["alice"], b"Subject: sentinel\n\nsentinel\n")
    assert r.returncode == 0, r
    wait_for(lambda: any(b"Subject: sentinel" in m for m in inst.messages("alice")), 20, "the sentinel")
    wait_for(inst.queue_empty, 10, "queue to empty")


@with_instance()
def test_kill_9_while_reading_leaves_nothing_deliverable(inst):
    msg_r, msg_w = os.pipe()
    env_r, env_w = os.pipe()
    p = subprocess.Popen([inst.bin("queue-inject")], stdin=msg_r, stdout=env_r, stderr=subprocess.DEVNULL)
    os.close(msg_r)
    os.close(env_r)
    try:
        os.write(msg_w, b"Subject: half\n\nthe first half of the message\n" * 100)
        wait_for(lambda: pipe_level(msg_w) == 0, 10, "queue-inject to read the half message")
        assert p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(10) == -signal.SIGKILL
    finally:
        os.close(msg_w)
        os.close(env_w)
        if p.poll() is None:
            p.kill()
            p.wait()
    # the queue file was created in tmp/ before the message was read: it
    # stays there, and nothing is in new/ or cur/
    [left] = queue_dir(inst, "tmp")
    assert ID_RE.match(left) and int(ID_RE.match(left).group(3)) == p.pid, left
    assert queue_dir(inst, "new") == [] and queue_dir(inst, "cur") == []
    inst.start()
    sentinel_delivered(inst)
    assert inst.count("alice") == 1
    assert b"first half" not in inst.messages("alice")[0]
    assert queue_dir(inst, "tmp") == [left]      # fresh: kept by the cleanup
    assert "event=cleanup" not in inst.read_log()


@with_instance()
def test_death_while_writing_leaves_tmp_file_that_is_cleaned_up_later(inst):
    # RLIMIT_FSIZE makes the kernel kill queue-inject (SIGXFSZ) in the middle
    # of writing its queue file: a crash after the file exists in tmp/.
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    message = b"Subject: partial\n\n" + b"partial body line\n" * 4000
    p = queue_inject(inst, message, qmail_envelope("bob@x", [ALICE]), preexec_fn=limit)
    assert p.returncode == -signal.SIGXFSZ, (p.returncode, p.err)
    [partial] = queue_dir(inst, "tmp")
    assert ID_RE.match(partial) and int(ID_RE.match(partial).group(3)) == p.pid, partial
    assert os.path.getsize(os.path.join(inst.dir, "queue", "tmp", partial)) == 4096
    assert queue_dir(inst, "new") == [] and queue_dir(inst, "cur") == []

    # leftovers of older crashes: 2 days old (removed), 35 hours old (kept)
    tmp = os.path.join(inst.dir, "queue", "tmp")
    now = time.time()
    for name, age in (("1000.1.1", 2 * 86400), ("1000.2.2", 35 * 3600)):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(b"Y 1000 0\nFbob@x\nT" + ALICE.encode() + b"\n\nSubject: old\n\nold\n")
        os.utime(os.path.join(tmp, name), (now - age, now - age))

    inst.start()
    sentinel_delivered(inst)
    log = inst.read_log()
    assert "event=cleanup file=tmp/1000.1.1" in log, log
    assert log.count("event=cleanup") == 1, log
    assert queue_dir(inst, "tmp") == sorted(["1000.2.2", partial])
    assert inst.count("alice") == 1           # only the sentinel: tmp/ is never delivered

    # once the partial file is old too, the next start removes it
    inst.stop()
    os.utime(os.path.join(tmp, partial), (now - 37 * 3600, now - 37 * 3600))
    inst.start()
    wait_for(lambda: "event=cleanup file=tmp/" + partial in inst.read_log(), 10, "the cleanup")
    assert queue_dir(inst, "tmp") == ["1000.2.2"]
    assert inst.count("alice") == 1


@with_instance()
def test_trigger_wakes_the_running_manager(inst):
    inst.start()
    for i in range(3):
        t0 = time.monotonic()
        p = queue_inject(inst, b"Subject: trig%d\n\nwake up\n" % i, qmail_envelope("bob@x", [ALICE]))
        assert p.returncode == 0, p.err
        wait_for(lambda: inst.count("alice") == i + 1, 10, "delivery %d after the trigger" % i)
        assert time.monotonic() - t0 < 10
    wait_for(inst.queue_empty, 10, "queue to empty")
    subjects = sorted(header_values(m, "Subject")[0] for m in inst.messages("alice"))
    assert subjects == ["trig0", "trig1", "trig2"], subjects


def test_not_in_an_instance_exits_55():
    p = subprocess.run([os.path.join(harness.BUILD, "bin", "queue-inject")], input=b"Subject: x\n\nx\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    assert p.returncode == 55, p


if __name__ == "__main__":
    harness.run(globals())
