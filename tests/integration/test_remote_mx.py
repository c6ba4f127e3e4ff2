"""Remote delivery routing, checked from the receiving side: MX preference
and fallback, random order among equal preferences, implicit MX, null MX,
NXDOMAIN, SERVFAIL, an MX pointing back here, control/smtproutes. DNS is
ldns-testns on loopback; remote hosts are loopback addresses at port 25."""
import harness
from harness import wait_for, header_values, body_of, HOST

from fake_smtp import FakeSmtp
from remote_helpers import Receiver, bounces, fresh_ip, run_sender, send, sender_instance


def scenario(zone_fn, controls=None):
    """Decorator: fresh addresses, a name server with zone_fn(ips), the
    sending instance; cleans everything up and shows the log on failure."""
    def deco(fn):
        def run():
            ips = [fresh_ip() for _ in range(4)]
            run_sender(fn, zone_fn(ips), ips, **(controls or {}))
        run.__name__ = fn.__name__
        return run
    return deco


@scenario(lambda ip: {"far.example": {"MX": [(10, "mx1.far.example"), (20, "mx2.far.example")]},
                      "mx1.far.example": {"A": [ip[0]]}, "mx2.far.example": {"A": [ip[1]]}})
def test_best_mx_down_next_one_takes_it_into_a_maildir(inst, ip):
    # mx1 (preference 10) does not listen; mx2 is a real yubin instance
    rx = Receiver(ip[1], ["far.example"])
    try:
        inst.start()
        body = b"Subject: over smtp\nTo: bob@far.example\n\n.leading dot\nline two\n"
        send(inst, ["bob@far.example"], body)
        wait_for(lambda: rx.inst.count("bob") == 1, 20, "delivery at mx2")
        [m] = rx.inst.messages("bob")
        assert body_of(m) == b".leading dot\nline two\n", m
        assert header_values(m, "Return-Path") == ["<alice@%s>" % HOST]
        assert any("by " + HOST in r for r in header_values(m, "Received")), m[:600]
        wait_for(inst.queue_empty, 10, "the sender's queue to empty")
        log = inst.read_log()
        assert "relay=mx2.far.example" in log, log
        assert "event=connect-failed" in log and "mx1.far.example" in log, log
    finally:
        rx.stop()


@scenario(lambda ip: {"pref.example": {"MX": [(30, "c.pref.example"), (5, "a.pref.example"), (20, "b.pref.example")]},
                      "a.pref.example": {"A": [ip[0]]}, "b.pref.example": {"A": [ip[1]]},
                      "c.pref.example": {"A": [ip[2]]}})
def test_lowest_preference_wins_while_it_answers(inst, ip):
    servers = [FakeSmtp(x) for x in ip[:3]]
    try:
        inst.start()
        for i in range(3):
            send(inst, ["u%d@pref.example" % i])
        wait_for(lambda: len(servers[0].delivered_to()) == 3, 20, "three deliveries at a.pref.example")
        assert servers[1].connections == 0 and servers[2].connections == 0
    finally:
        for s in servers:
            s.stop()


@scenario(lambda ip: {"eq.example": {"MX": [(10, "one.eq.example"), (10, "two.eq.example")]},
                      "one.eq.example": {"A": [ip[0]]}, "two.eq.example": {"A": [ip[1]]}})
def test_equal_preferences_in_random_order(inst, ip):
    servers = [FakeSmtp(x) for x in ip[:2]]
    try:
        inst.start()
        for i in range(16):
            send(inst, ["u%d@eq.example" % i])
        wait_for(lambda: sum(len(s.delivered_to()) for s in servers) == 16, 30, "16 deliveries")
        counts = [len(s.delivered_to()) for s in servers]
        assert min(counts) > 0, counts       # (1/2)^15 to fail by chance
    finally:
        for s in servers:
            s.stop()


@scenario(lambda ip: {"plain.example": {"A": [ip[0]]}})
def test_no_mx_means_the_domains_own_address(inst, ip):
    server = FakeSmtp(ip[0])
    try:
        inst.start()
        send(inst, ["x@plain.example"])
        wait_for(lambda: server.delivered_to() == ["x@plain.example"], 20, "delivery to the implicit MX")
        wait_for(lambda: "relay=plain.example" in inst.read_log(), 10, "the result in the log")
    finally:
        server.stop()


@scenario(lambda ip: {"null.example": {"MX": [(0, ".")]}, "servfail.example": "SERVFAIL"})
def test_null_mx_and_nxdomain_bounce_servfail_waits(inst, ip):
    inst.start()
    send(inst, ["a@null.example", "b@gone.example", "c@servfail.example"])
    wait_for(lambda: all(x in inst.read_log() for x in ("rcpt=a@null.example result=failed",
                                                        "rcpt=b@gone.example result=failed",
                                                        "rcpt=c@servfail.example result=deferred")),
             20, "the three results")
    assert "status=4.4.3" in inst.read_log()
    log = inst.read_log()
    assert "rcpt=a@null.example result=failed" in log and "status=5.1.10" in log, log
    assert "rcpt=b@gone.example result=failed" in log and "status=5.1.2" in log, log
    assert len(inst.queue_files()) == 1      # c waits; no bounce before every recipient is finished
    # make c fail for good: the bounce then lists all three
    inst.stop()
    inst.control("queuelifetime", "1")
    inst.start()
    wait_for(lambda: bounces(inst), 30, "the bounce")
    [b] = bounces(inst)
    text = b.decode()
    assert "Final-Recipient: rfc822; a@null.example" in text and "Status: 5.1.10" in text, text
    assert "Final-Recipient: rfc822; b@gone.example" in text and "Status: 5.1.2" in text, text
    assert "Final-Recipient: rfc822; c@servfail.example" in text and "Status: 4.4.7" in text, text
    assert "Diagnostic-Code: x-unix; " in text and "Remote-MTA" not in text, text


@scenario(lambda ip: {"mine.example": {"MX": [(10, harness.HOST)]}, harness.HOST: {"A": [ip[0]]}})
def test_mx_pointing_back_here_is_a_configuration_error(inst, ip):
    server = FakeSmtp(ip[0])
    try:
        inst.start()
        send(inst, ["x@mine.example"])
        wait_for(lambda: "rcpt=x@mine.example result=deferred" in inst.read_log(), 20, "the deferral")
        log = inst.read_log()
        assert "status=4.3.5" in log and "configuration error" in log, log
        assert server.connections == 0       # never a loop to ourselves
        assert not bounces(inst)
    finally:
        server.stop()


@scenario(lambda ip: {}, controls={})
def test_smtproutes_relay_with_port_and_smarthost_need_no_dns(inst, ip):
    routed = FakeSmtp(ip[0], port=2525)
    smart = FakeSmtp(ip[1])
    try:
        inst.control("smtproutes", "routed.example:%s:2525\n:%s\n" % (ip[0], ip[1]))
        inst.start()
        send(inst, ["a@routed.example", "b@anywhere.example"])
        wait_for(lambda: routed.delivered_to() == ["a@routed.example"], 20, "the routed delivery")
        wait_for(lambda: smart.delivered_to() == ["b@anywhere.example"], 20, "the smarthost delivery")
        wait_for(inst.queue_empty, 10, "the queue to empty")
    finally:
        routed.stop()
        smart.stop()


if __name__ == "__main__":
    harness.run(globals())
