# Native IPv6 peers of the client (connectivity test through the server, relays).
# Against test doubles with a fake clock, on CPython and MicroPython from this file.
#
from teredo import addr, proto
from teredo.client import EV_ECHO_REPLY
from teredo.peers import F_PROBES, F_Q, NF
from harness import RELAY, SERVER, V6HOST, ip6, qualified


def test_ping_native_host_connectivity_test_then_relay():
    n = qualified()
    assert n.c.ping(ip6(V6HOST), 1, n.now) == 0
    n.flush()
    # the echo test went to the server, the relay's indirect bubble came back
    # with an origin indication, our direct bubble went to the relay, then the
    # relay delivered the test reply and our queued ping went to the relay
    outs = [e for e in n.log if e[0] == "out"]
    to_server = [e for e in outs if e[1] == SERVER and e[3][6] == proto.NH_ICMPV6 and e[3][40] == 128]
    to_relay = [e for e in outs if e[1] == RELAY]
    assert len(to_server) == 1
    assert to_relay[0][3][6] == proto.NH_NONE  # direct bubble first
    assert to_relay[0][3][24:40] == addr.parse_ipv6("fe80::8000:ffff:ffff:fffe")
    assert any(e[3][6] == proto.NH_ICMPV6 and e[3][40] == 128 for e in to_relay[1:])
    assert (EV_ECHO_REPLY, 1) in n.events
    assert n.c.status()["relay"] == RELAY + ":3544"


def test_ping_test_retries_then_gives_up():
    n = qualified()
    n.relay_up = False
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    n.run(10000)
    tests = [e for e in n.log if e[0] == "out" and e[1] == SERVER and e[3][6] == 58 and e[3][40] == 128]
    assert len(tests) == 4  # §5.2.4: 2 s time-out, once and up to 3 repeats
    assert n.c.status()["drops"].get("unreachable") == 1
    p = n.c.peers.find(ip6(V6HOST), 0)  # kept (LRU), untrusted, idle
    assert p >= 0 and n.c.peers.v[p * NF + F_PROBES] == 0 and n.c.peers.v[p * NF + F_Q] < 0


def test_pinged_by_native_host_answers_after_test():
    n = qualified()
    n.native_ping(9)
    n.flush()
    # the reply to an unknown native source waits for the connectivity test
    assert getattr(n, "native_got", 0) == 1
    n.native_ping(10)
    n.flush()
    assert n.native_got == 2


def test_echo_replies_are_rate_limited():
    n = qualified(echo_rate=10, echo_burst=5)
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    for i in range(20):
        n.native_ping(100 + i)
        n.flush()
    assert n.native_got == 5
    assert n.c.status()["drops"]["rate_limited"] == 15
    n.run(1000)
    n.native_ping(200)
    n.flush()
    assert n.native_got == 6




def test_status_says_when_a_relay_last_answered():
    n = qualified()
    assert n.c.status()["relay_ok_s_ago"] is None  # no connectivity test has passed
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    assert n.c.status()["relay_ok_s_ago"] == 0
    n.run(12000)
    assert n.c.status()["relay_ok_s_ago"] == 12
    n.c.stop("test")
    assert n.c.status()["relay_ok_s_ago"] is None
