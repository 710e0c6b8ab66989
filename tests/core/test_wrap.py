# Ticks wrap at 2**30 ms on the ESP32 (6.2 days of difference): an always-on
# client must age what it stores (review issue 13, A5).  The clock runs for
# days here, on_timer at least once a minute as next_deadline asks, and
# tests also start just before the wrap.  CPython and MicroPython alike.
from teredo import addr, proto
from teredo.client import Client
from harness import RELAY, SERVER, V6HOST, Net, Rand, ip4, ip6, qualified, with_relay

DAY_MS = 86400000
WAKE_MS = 60000  # client._WAKE_MS: next_deadline is never further away
WRAP = 1 << 30


def _ping_goes_to(n, seq):
    c = n.c
    while c.pop_tx():
        pass
    assert c.ping(ip6(V6HOST), seq, n.now) == 0
    k = c.pop_tx()
    assert k
    to = c.tx_addr
    while c.pop_tx():
        pass
    return to


def _days(n, days):
    for _ in range(days * 4):
        n.run(DAY_MS // 4, step=WAKE_MS)
        n.log = []  # what crossed the NAT: not needed, and it would fill the heap


def test_idle_trusted_relay_is_tested_again_after_6_days():
    # the review's demo: at 6.3 and 12 days the stale relay looked fresh
    n = with_relay(refresh_s=3600)
    for d, total in ((1, 1), (5, 6), (1, 7), (5, 12)):
        _days(n, d)
        # not valid any more (§5.2.4: 30 s): a new test through the server
        assert _ping_goes_to(n, total) == (SERVER, proto.PORT), total
        st = n.c.status()
        assert st["state"] == "qualified"
        assert total * 86400 - 60 <= st["uptime_s"] <= total * 86400 + 60, (total, st["uptime_s"])
        n.run(3000)  # the test completes: the relay is trusted again


def test_next_deadline_never_more_than_a_minute_away():
    n = with_relay()
    c = n.c
    c.stop("test")
    d = c.next_deadline()
    assert 0 < (d - n.now) % WRAP <= WAKE_MS
    n.run(30 * 60000, step=WAKE_MS)
    assert c.status()["state"] == "offline"  # stopped stays stopped


def test_stopped_client_stays_stopped_past_the_wrap():
    n = qualified()
    c = n.c
    c.stop("test")
    _days(n, 7)
    assert c.status()["state"] == "offline" and c.status()["error"] == "test"
    assert c.status()["uptime_s"] >= 7 * 86400 - 120


def test_everything_works_across_the_wrap():
    # start 3 s before the wrap: qualify, trust the relay, ping, bubbles
    n = Net("restricted", now=WRAP - 3000)
    n.start()
    n.run(5000)
    c = n.c
    st = c.status()
    assert st["state"] == "qualified" and st["nat"] == "restricted" and n.now < 5000
    assert c.ping(ip6(V6HOST), 1, n.now) == 0
    n.flush()
    assert c.status()["relay"] == RELAY + ":3544"
    assert _ping_goes_to(n, 2) == (RELAY, proto.PORT)  # valid: straight to the relay
    # a silent Teredo peer: §5.2.6's 4 per 300 s holds across the wrap
    n2 = Net("restricted", now=WRAP - 60000)
    n2.start()
    n2.run(5000)
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4("198.51.100.77"))
    for _ in range(120):
        n2.c.send_udp(peer, 9, 9, b"x", n2.now)
        n2.flush()
        n2.run(1000, step=500)
    direct = [e for e in n2.log if e[0] == "out" and e[1] == "198.51.100.77" and e[3][6] == 59]
    assert len(direct) == 4


def test_lru_and_validity_right_after_the_wrap():
    c = Client(SERVER, rand=Rand(), max_peers=2)
    c.start(WRAP - 1000)
    t = c.peers
    a = bytearray(addr.build_teredo(ip4(SERVER), 0, 40001, ip4("198.51.100.77")))
    b = bytearray(addr.build_teredo(ip4(SERVER), 0, 40002, ip4("198.51.100.77")))
    x = bytearray(addr.build_teredo(ip4(SERVER), 0, 40003, ip4("198.51.100.77")))
    pa = c._new_peer(a, 0, WRAP - 500)        # before the wrap
    pb = c._new_peer(b, 0, 100)               # after it: more recent
    assert pa >= 0 and pb >= 0
    px = c._new_peer(x, 0, 200)
    assert px == pa  # the least recently used one, across the wrap
    assert t.find(b, 0) == pb and t.find(a, 0) < 0
