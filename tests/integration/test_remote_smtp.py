"""The SMTP client against scripted servers on loopback: per-recipient
results and bounces with the server's reply, multi-line and malformed
replies, dropped connections, silence, HELO fallback, SIZE, one
transaction per message and domain, dot-stuffing and CRLF on the wire."""
import time

import harness
from harness import wait_for, HOST

from fake_smtp import FakeSmtp
from remote_helpers import bounces, fresh_ip, run_sender, send


def two_mx(fn):
    """Decorator: far.example with MX 10 -> ip[0] and MX 20 -> ip[1],
    other.example -> ip[0] too; runs fn(inst, ip)."""
    def run():
        ip = [fresh_ip(), fresh_ip()]
        run_sender(fn, {"far.example": {"MX": [(10, "mx1.far.example"), (20, "mx2.far.example")]},
                        "other.example": {"MX": [(10, "mx1.far.example")]},
                        "mx1.far.example": {"A": [ip[0]]}, "mx2.far.example": {"A": [ip[1]]}},
                   ip, timeoutremote="2")
    run.__name__ = fn.__name__
    return run


@two_mx
def test_per_recipient_results_bounce_with_the_servers_reply(inst, ip):
    def rcpt(addr, attempt):
        if addr.startswith("bad"):
            return ["550-5.1.1 <%s>: no such user" % addr, "550 5.1.1 see the directory"]
        if addr.startswith("later") and attempt == 1:
            return "451 4.2.1 mailbox busy, try later"
        return "250 2.1.5 ok"
    server = FakeSmtp(ip[0], rcpt=rcpt)
    try:
        inst.start()
        send(inst, ["good@far.example", "bad@far.example", "later@far.example"])
        wait_for(inst.queue_empty, 30, "the message to be finished")
        # good went once, later once more in a second attempt, bad never
        assert server.delivered_to() == ["good@far.example", "later@far.example"], server.transactions
        assert len(server.transactions) == 2
        assert server.transactions[0]["rcpts"] == ["good@far.example"]
        wait_for(lambda: bounces(inst), 20, "the bounce")
        [b] = bounces(inst)
        text = b.decode().replace("\n ", " ")   # unfolded
        assert "Final-Recipient: rfc822; bad@far.example" in text, text
        assert "Status: 5.1.1" in text, text
        assert "Remote-MTA: dns; mx1.far.example" in text, text
        assert "Diagnostic-Code: smtp; 550 5.1.1 <bad@far.example>: no such user see the directory" in text, text
        assert "good@far.example" not in text.split("Content-Type: text/rfc822-headers")[0].split(
            "delivery-status")[1], text
        log = inst.read_log()
        assert "rcpt=later@far.example result=deferred relay=mx1.far.example status=4.2.1" in log, log
    finally:
        server.stop()


@two_mx
def test_one_transaction_per_message_and_domain_on_the_wire(inst, ip):
    server = FakeSmtp(ip[0])
    try:
        inst.start()
        body = b"Subject: wire\n\n.one\n..two\nthree.\n.\nlast line without end"
        send(inst, ["a@far.example", "b@far.example", "c@far.example", "d@other.example"], body)
        wait_for(inst.queue_empty, 20, "deliveries")
        txs = sorted(server.transactions, key=lambda t: len(t["rcpts"]))
        assert [t["rcpts"] for t in txs] == [["d@other.example"],
                                             ["a@far.example", "b@far.example", "c@far.example"]], txs
        data = txs[1]["data"]
        assert data.endswith(b"\r\n\r\n..one\r\n...two\r\nthree.\r\n..\r\nlast line without end\r\n"), data
        assert b"\n" not in data.replace(b"\r\n", b""), data
        assert txs[1]["mail"].startswith("<alice@%s> SIZE=" % HOST), txs[1]["mail"]
        assert server.connections == 2
        # pipelining: on the connection of the three recipients, MAIL, the
        # RCPTs and DATA came in one batch (one write, one read here)
        [three] = [sess for sess in server.sessions if sum(l.startswith("RCPT TO") for l, _ in sess) == 3]
        batch = [(l.split(":")[0], n) for l, n in three if l.split(":")[0] in ("MAIL FROM", "RCPT TO", "DATA")]
        assert [v for v, _ in batch] == ["MAIL FROM", "RCPT TO", "RCPT TO", "RCPT TO", "DATA"], three
        assert len({n for _, n in batch}) == 1, three
    finally:
        server.stop()


@two_mx
def test_next_mx_after_4xx_greeting_malformed_reply_drop_and_silence(inst, ip):
    good = FakeSmtp(ip[1])
    try:
        inst.start()
        for n, opts in enumerate([{"greeting": "421 4.3.2 too busy"},
                                  {"greeting": [b"220 fine\n"]},
                                  {"ehlo": ["250-fake"] * 500 + ["250 end"]},
                                  {"drop_after": "RCPT"},
                                  {"greeting": ["220-hello", b"999 what\r\n"]},
                                  {"greeting": None}]):
            bad = FakeSmtp(ip[0], **opts)
            try:
                t0 = time.monotonic()
                send(inst, ["n%d@far.example" % n])
                wait_for(lambda: "n%d@far.example" % n in good.delivered_to(), 20, "fallback %r" % opts)
                assert time.monotonic() - t0 < 15
                assert bad.transactions == []
            finally:
                bad.stop()
        log = inst.read_log()
        assert "event=session-failed" in log and "421 4.3.2 too busy" in log, log
        assert "bare LF" in log and "too many lines" in log and "timed out" in log, log
    finally:
        good.stop()


@two_mx
def test_lost_after_the_end_of_data_is_retried_not_sent_elsewhere(inst, ip):
    flaky = FakeSmtp(ip[0], drop_after=".")
    other = FakeSmtp(ip[1])
    try:
        inst.start()
        send(inst, ["x@far.example"])
        wait_for(lambda: "rcpt=x@far.example result=deferred" in inst.read_log(), 20, "the deferral")
        assert other.connections == 0
        assert "after the end of the message" in inst.read_log()
    finally:
        flaky.stop()
        other.stop()


@two_mx
def test_helo_fallback_without_pipelining_and_size_limit(inst, ip):
    server = FakeSmtp(ip[0], ehlo="500 5.5.1 EHLO? never heard of it")
    try:
        inst.start()
        send(inst, ["a@far.example", "b@far.example"])
        wait_for(lambda: len(server.delivered_to()) == 2, 20, "delivery over HELO")
        assert any(c.startswith("HELO ") for c in server.commands)
        assert not any("SIZE=" in c or "BODY=" in c for c in server.commands), server.commands
    finally:
        server.stop()
    small = FakeSmtp(ip[0], ehlo=["250-fake", "250 SIZE 100"])
    try:
        send(inst, ["big@far.example"], b"Subject: big\n\n" + b"x" * 500 + b"\n")
        wait_for(lambda: bounces(inst), 20, "the size bounce")
        text = bounces(inst)[0].decode().replace("\n ", " ")
        assert "Status: 5.3.4" in text and "Remote-MTA: dns; mx1.far.example" in text, text
        assert not any(c.startswith("MAIL") for c in small.commands)
    finally:
        small.stop()


@two_mx
def test_data_refusal_and_multiline_reply(inst, ip):
    server = FakeSmtp(ip[0], end=["554-5.7.1 this message", "554-5.7.1 looks like spam", "554 5.7.1 to us"])
    try:
        inst.start()
        send(inst, ["a@far.example", "b@far.example"])
        wait_for(lambda: bounces(inst), 20, "the bounce")
        text = bounces(inst)[0].decode().replace("\n ", " ")
        assert text.count("Diagnostic-Code: smtp; 554 5.7.1 this message looks like spam to us") == 2, text
    finally:
        server.stop()


if __name__ == "__main__":
    harness.run(globals())
