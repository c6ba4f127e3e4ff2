"""queue-manager and remote delivery: nothing delivered is sent again after
a restart (and a bounce after it still names the Remote-MTA), expiry
bounces carry the server's last reply, control/concurrencyremote holds,
and postfix's smtp-sink takes 100-recipient batches."""
import re

import harness
from harness import wait_for, queue_dir

from fake_smtp import FakeSmtp
from remote_helpers import bounces, fresh_ip, run_sender, send, sender_instance, smtp_sink, stop_proc


def two_domains(controls=None):
    """one.example -> ip[0], two.example -> ip[1] (each its own MX)."""
    def deco(fn):
        def run():
            ip = [fresh_ip(), fresh_ip()]
            run_sender(fn, {"one.example": {"MX": [(10, "mx.one.example")]}, "mx.one.example": {"A": [ip[0]]},
                            "two.example": {"MX": [(10, "mx.two.example")]}, "mx.two.example": {"A": [ip[1]]}},
                       ip, **(controls or {}))
        run.__name__ = fn.__name__
        return run
    return deco


@two_domains({"minbackoff": "60", "maxbackoff": "60"})
def test_restart_never_sends_a_delivered_recipient_again(inst, ip):
    one = FakeSmtp(ip[0], rcpt=lambda a, n: "550 5.1.1 unknown" if a.startswith("gone") else "250 ok")
    two = FakeSmtp(ip[1], rcpt=lambda a, n: "451 4.3.0 not now" if n < 2 else "250 ok")
    try:
        inst.start()
        send(inst, ["a@one.example", "gone@one.example", "b@two.example"])
        wait_for(lambda: "rcpt=b@two.example result=deferred" in inst.read_log(), 20, "b deferred")
        wait_for(lambda: one.delivered_to() == ["a@one.example"], 20, "a delivered")
        [qid] = queue_dir(inst, "cur")
        wait_for(lambda: queue_dir(inst, "info") == [qid], 10, "the delivery log")
        with open("%s/queue/info/%s" % (inst.dir, qid)) as f:
            info = f.read()
        assert info.startswith("D 0\n") or "\nD 0\n" in info, info
        assert re.search(r"^P 1 5\.1\.1 smtp; mx\.one\.example; 550 5\.1\.1 unknown$", info, re.M), info
        # a crash: everything killed at once; b waits 60 s in memory, which is lost
        inst.kill_all()
        inst.stop()
        inst.start()
        wait_for(inst.queue_empty, 20, "b delivered after the restart")
        assert one.delivered_to() == ["a@one.example"] and one.connections == 1, one.transactions
        assert two.delivered_to() == ["b@two.example"]
        wait_for(lambda: bounces(inst), 20, "the bounce for gone@")
        text = bounces(inst)[0].decode().replace("\n ", " ")
        assert "Final-Recipient: rfc822; gone@one.example" in text, text
        assert "Remote-MTA: dns; mx.one.example" in text and "Diagnostic-Code: smtp; 550 5.1.1 unknown" in text, text
        assert "b@two.example" not in text.split("text/rfc822-headers")[0].split("delivery-status")[-1]
    finally:
        one.stop()
        two.stop()


@two_domains({"queuelifetime": "3"})
def test_expiry_bounce_has_the_last_smtp_reply(inst, ip):
    server = FakeSmtp(ip[0], rcpt=lambda a, n: ["451-4.2.2 mailbox full", "451 4.2.2 come back later"])
    try:
        inst.start()
        send(inst, ["full@one.example"])
        wait_for(lambda: bounces(inst), 30, "the expiry bounce")
        text = bounces(inst)[0].decode().replace("\n ", " ")
        assert "Status: 4.4.7" in text and "Action: failed" in text, text
        assert "Remote-MTA: dns; mx.one.example" in text, text
        assert "Diagnostic-Code: smtp; 451 4.2.2 mailbox full come back later" in text, text
        assert server.rcpt_attempts["full@one.example"] >= 2
        wait_for(inst.queue_empty, 10, "the queue to empty")
    finally:
        server.stop()


@two_domains({"concurrencyremote": "2"})
def test_concurrencyremote_limits_connections(inst, ip):
    server = FakeSmtp(ip[0], delay=0.1)
    try:
        inst.start()
        for i in range(6):
            send(inst, ["u%d@one.example" % i])
        wait_for(lambda: len(server.delivered_to()) == 6, 60, "six deliveries")
        assert server.max_active <= 2, server.max_active
        assert "concurrencyremote=2" in inst.read_log()
    finally:
        server.stop()


@two_domains()
def test_smtp_sink_takes_batches_of_100_recipients(inst, ip):
    inst.control("smtproutes", "sink.example:%s" % ip[0])
    sink = smtp_sink(ip[0])
    try:
        inst.start()
        for m in range(3):
            send(inst, ["r%d.%d@sink.example" % (m, i) for i in range(150)],
                 b"Subject: sink %d\n\n" % m + b"x" * 4000 + b"\n")
        wait_for(inst.queue_empty, 60, "the queue to empty", 0.1)
        log = inst.read_log()
        assert log.count("result=ok relay=") == 450, log[-2000:]
    finally:
        out = stop_proc(sink).decode(errors="replace").replace("\r", "\n")
    counts = [int(x) for x in re.findall(r"mesg=(\d+)", out)]
    assert counts and max(counts) == 6, out[-500:]     # 3 messages x (100 + 50)


if __name__ == "__main__":
    harness.run(globals())
