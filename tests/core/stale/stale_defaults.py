# Parked (not collected): the tests of tests/core/test_defaults.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto, wire
from teredo.client import Client
from harness import RELAY, SERVER, V6HOST, Net, Rand, ip4, ip6, qualified, with_relay
from test_defaults import *


def test_documented_defaults():
    # README "What the client does": 8 peers, queues of 1280 bytes for up to
    # two peers, echo replies 200/s (burst 50), unsolicited bubbles 20/s,
    # refresh 30 s, back-off 8 s doubling to 128 s, symmetric retry 120 s
    c = Client(SERVER, rand=Rand(1))
    cfg = c.cfg
    want = (("refresh_s", 30), ("qual_timeout_ms", 4000), ("qual_tries", 3), ("cone_probe", True),
            ("cone_grace_ms", 5), ("backoff_min_ms", 8000), ("backoff_max_ms", 128000),
            ("symmetric_retry_ms", 120000), ("max_peers", 8), ("queue_slots", 2), ("queue_bytes", 1280),
            ("echo_rate", 200), ("echo_burst", 50), ("bubble_rate", 20), ("ping_ident", 0x7464))
    for k, v in want:
        assert cfg[k] == v, k
    assert c.peers.n == 8 and len(c.peers.qbufs) == 2 and c.peers.queue_bytes == 1282
    assert c.status()["refresh_s"] == 30


def test_default_backoff_doubles_from_8_s_to_128_s():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    t = 1000
    c.start(t)
    waits = []
    for _ in range(6):
        for k in (4000, 8000, 12000):
            c.on_timer(t + k)
        t += 12000
        assert c.status()["state"] == "offline"
        waits.append(c.next_deadline() - t)
        t = c.next_deadline()
        c.on_timer(t)
        sent(c)
    assert waits == [8000, 16000, 32000, 64000, 128000, 128000]
