"""The local chain end to end: sendmail -> queue-inject -> queue-manager ->
local-spawn -> local-deliver -> Maildir, with retries, bounces and restarts."""
import os
import signal
import subprocess
import threading
import time

import harness
from harness import Instance, wait_for, header_values, body_of, with_instance, HOST


@with_instance()
def test_sendmail_delivers_to_maildir(inst):
    inst.start()
    body = b"line one\nFrom the start\n.dotted\n\n\ttabbed \xc3\xa9 8-bit\nlast line\n"
    r = inst.sendmail(["-i", "alice@" + HOST], b"Subject: hello\nTo: alice@" + HOST.encode() + b"\n\n" + body)
    assert r.returncode == 0, r
    wait_for(lambda: inst.count("alice") == 1, 10, "delivery")
    [m] = inst.messages("alice")
    assert m.startswith(b"Return-Path: <"), m[:200]
    assert header_values(m, "Return-Path")[0].endswith("@" + HOST + ">")
    assert header_values(m, "Delivered-To") == ["alice@" + HOST]
    assert header_values(m, "Received")[0].startswith("(yubin ")
    assert header_values(m, "Subject") == ["hello"]
    for name in ("From", "Date", "Message-ID"):
        assert len(header_values(m, name)) == 1, name
    assert body_of(m) == body
    wait_for(inst.queue_empty, 10, "queue to empty")
    # the Maildir name follows the specification
    name = os.listdir(os.path.join(inst.maildir("alice"), "new"))[0]
    # ... with the size POP3 announces: every LF sent as CRLF (the message has no CR)
    assert b"\r" not in m
    assert ".M" in name and "P" in name and name.endswith(",S=%d,W=%d" % (len(m), len(m) + m.count(b"\n"))), name


@with_instance(users=("alice", "bob", "carol"))
def test_concurrent_senders_all_arrive_exactly_once(inst):
    inst.start()
    total, callers = 1000, 8
    users = ["alice", "bob", "carol"]
    errors = []

    def caller(k):
        for i in range(k, total, callers):
            user = users[i % 3]
            msg = ("Subject: n%d\n\nmessage number %d for %s\n%s\n" % (i, i, user, "x" * (i % 300))).encode()
            r = inst.sendmail([user + "@" + HOST], msg)
            if r.returncode != 0:
                errors.append((i, r.returncode, r.stderr))
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    wait_for(lambda: sum(inst.count(u) for u in users) >= total, 180, "1000 deliveries", 0.2)
    wait_for(inst.queue_empty, 30, "queue to empty", 0.1)
    seen = {}
    for u in users:
        for m in inst.messages(u):
            i = int(header_values(m, "Subject")[0][1:])
            assert i % 3 == users.index(u), (i, u)
            assert body_of(m) == ("message number %d for %s\n%s\n" % (i, u, "x" * (i % 300))).encode()
            seen[i] = seen.get(i, 0) + 1
    assert sorted(seen) == list(range(total)), "missing: %s" % sorted(set(range(total)) - set(seen))[:10]
    dups = [i for i, n in seen.items() if n != 1]
    assert not dups, "delivered more than once: %s" % dups[:10]


@with_instance()
def test_kill_9_queue_manager_loses_nothing(inst):
    inst.start()
    total = 400
    errors = []

    def caller(k):
        for i in range(k, total, 4):
            r = inst.sendmail(["alice@" + HOST], ("Subject: k%d\n\nbody %d\n" % (i, i)).encode())
            if r.returncode != 0:
                errors.append(i)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: inst.count("alice") >= 50, 60, "first deliveries")
    for pid in inst.pids("queue-manager"):
        os.kill(pid, signal.SIGKILL)
    # yubin-start notices, stops local-spawn and exits 111
    inst.proc.wait(30)
    assert inst.proc.returncode == 111, inst.proc.returncode
    inst.proc = None
    inst.log.close()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]   # injection does not need the queue-manager
    inst.start()
    wait_for(lambda: inst.queue_empty(), 120, "queue to empty after restart", 0.1)
    seen = {}
    for m in inst.messages("alice"):
        i = int(header_values(m, "Subject")[0][1:])
        assert body_of(m) == ("body %d\n" % i).encode()
        seen[i] = seen.get(i, 0) + 1
    assert sorted(seen) == list(range(total)), "lost: %s" % sorted(set(range(total)) - set(seen))[:10]
    # at least once: only deliveries running at the kill may repeat
    dups = sum(n - 1 for n in seen.values())
    assert dups <= 10, dups


@with_instance(users=("alice", "bob"), controls={"queuelifetime": "5", "minbackoff": "1", "maxbackoff": "2"})
def test_unwritable_mailbox_retries_then_bounces(inst):
    # bob's Maildir/tmp is a file: every write fails, as it would for root too
    tmp = os.path.join(inst.maildir("bob"), "tmp")
    os.rmdir(tmp)
    open(tmp, "w").close()
    inst.start()
    r = inst.sendmail(["-f", "alice@" + HOST, "bob@" + HOST], b"Subject: doomed\nX-Marker: 42\n\nsecret body\n")
    assert r.returncode == 0
    wait_for(lambda: inst.count("alice") == 1, 30, "the bounce")
    log = inst.read_log()
    assert log.count("result=deferred") >= 2, log
    assert "result=expired" in log
    [b] = inst.messages("alice")
    assert header_values(b, "Return-Path") == ["<>"]
    assert "multipart/report" in header_values(b, "Content-Type")[0]
    assert "report-type=delivery-status" in header_values(b, "Content-Type")[0]
    text = b.decode()
    assert "message/delivery-status" in text and "text/rfc822-headers" in text
    assert "Final-Recipient: rfc822; bob@" + HOST in text
    assert "Action: failed" in text
    assert "Status: 4.4.7" in text
    assert "Diagnostic-Code: x-unix;" in text
    assert "X-Marker: 42" in text          # original headers
    assert "secret body" not in text        # but not the body
    assert inst.count("bob") == 0
    wait_for(inst.queue_empty, 10, "queue to empty")


@with_instance(users=("alice", "bob"))
def test_forged_delivered_to_loop_bounces(inst):
    inst.start()
    msg = b"Delivered-To: someone@else.example\nDelivered-To: Alice@" + HOST.encode() + b"\nSubject: loop\n\nx\n"
    r = inst.sendmail(["-f", "bob@" + HOST, "alice@" + HOST], msg)
    assert r.returncode == 0
    wait_for(lambda: inst.count("bob") == 1, 20, "the bounce")
    assert inst.count("alice") == 0
    [b] = inst.messages("bob")
    assert b"Status: 5.4.6" in b and b"mail loop" in b, b
    assert b"Final-Recipient: rfc822; alice@" + HOST.encode() in b


@with_instance(users=("alice",))
def test_unknown_user_bounces_and_null_sender_goes_to_postmaster(inst):
    inst.start()
    r = inst.sendmail(["-f", "alice@" + HOST, "nosuch@" + HOST], b"Subject: a\n\nx\n")
    assert r.returncode == 0
    wait_for(lambda: inst.count("alice") == 1, 20, "the bounce")
    [b] = inst.messages("alice")
    assert b"Status: 5.1.1" in b
    # a failing message with the null sender goes to the postmaster only
    r = inst.sendmail(["-f", "<>", "nosuch2@" + HOST], b"Subject: b\n\nx\n")
    assert r.returncode == 0
    wait_for(lambda: inst.count("alias") == 1, 20, "the double bounce")
    [d] = inst.messages("alias")
    assert header_values(d, "Return-Path") == ["<#@[]>"]
    assert b"nosuch2@" + HOST.encode() in d
    assert inst.count("alice") == 1
    # and a failing double bounce is dropped, not bounced again
    r = inst.sendmail(["-f", "#@[]", "nosuch3@" + HOST], b"Subject: c\n\nx\n")
    assert r.returncode == 0
    wait_for(lambda: "result=dropped" in inst.read_log(), 20, "the drop")
    wait_for(inst.queue_empty, 10, "queue to empty")
    assert inst.count("alias") == 1 and inst.count("alice") == 1


@with_instance()
def test_second_start_refused_and_sigterm_stops(inst):
    inst.start()
    r = subprocess.run([inst.bin("yubin-start")], capture_output=True, timeout=10)
    assert r.returncode == 111 and b"already running" in r.stderr, r
    inst.proc.send_signal(signal.SIGTERM)
    assert inst.proc.wait(20) == 0
    assert not inst.pids("queue-manager") and not inst.pids("local-spawn")
    inst.proc = None
    inst.log.close()


@with_instance()
def test_mail_queued_while_stopped_is_delivered_at_start(inst):
    for i in range(5):
        assert inst.sendmail(["alice@" + HOST], b"Subject: early\n\nx\n").returncode == 0
    assert len(inst.queue_files()) == 5
    inst.start()
    wait_for(lambda: inst.count("alice") == 5, 20, "deliveries")
    wait_for(inst.queue_empty, 10, "queue to empty")


if __name__ == "__main__":
    harness.run(globals())
