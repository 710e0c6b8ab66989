# Floods from ten thousand distinct spoofed sources: bubbles and echo
# requests from Teredo sources (each consistent with its UDP source, as a
# spoofer of IPv4 sources makes them), echo requests from native sources,
# and origin indications relayed by the server.  The peer table, the queue
# pool, the transmit ring and the arena stay at their bounds, replies and
# bubbles stay within their rate limits, nothing goes back to a spoofed
# native source, and the heap is flat (MicroPython: gc.mem_alloc after gc).
# Packets are rewritten in place, so the loop itself allocates little.
import gc

from teredo import proto, wire
from teredo.client import ARENA_BYTES, TX_SLOTS
from harness import SERVER, ip4, ip6, qualified

try:
    import micropython  # noqa: F401
    ON_MP = True
except ImportError:
    ON_MP = False

FLOOD = 10000
STEP_MS = 1          # ten thousand datagrams in ten simulated seconds
HEAP_SLACK = 1024


def cone_qualified(**opts):
    n = qualified("cone", **opts)
    n.c.pop_tx()
    return n


def heap():
    gc.collect()
    return gc.mem_alloc() if ON_MP else 0


def set_teredo_source(pkt, i, src4):
    """Source i: a Teredo address whose mapping is 203.0.(i>>8).(i&255) at
    port 1024+i, and that mapping as the UDP source (§5.2.3 case 3 holds)."""
    port = 1024 + i
    src4[2] = (i >> 8) & 0xFF
    src4[3] = i & 0xFF
    pkt[18] = (port >> 8) ^ 0xFF
    pkt[19] = (port & 0xFF) ^ 0xFF
    for k in range(4):
        pkt[20 + k] = src4[k] ^ 0xFF
    return port


class Bounds:
    """What a flood may never exceed, checked after every datagram."""

    def __init__(self, c):
        self.c = c
        self.sent = 0
        self.to = None   # the one destination allowed, if any
        self.max_peers = 0

    def check(self, ev):
        c = self.c
        assert ev == 0
        assert c.tq_count <= TX_SLOTS and c.arena_used <= ARENA_BYTES
        owners = 0
        for q in c.peers.qowner:
            owners += q >= 0
        assert owners <= len(c.peers.qbufs)
        k = c.pop_tx()
        while k:
            self.sent += 1
            if self.to is not None:
                assert c.tx_addr == self.to, c.tx_addr
            k = c.pop_tx()

    def peers(self):
        p = self.c.peers.count()
        assert p <= self.c.cfg["max_peers"]
        return p


def _teredo_flood(n, pkt, nbytes, reply):
    c = n.c
    b = Bounds(c)
    src4 = bytearray(ip4("203.0.0.0"))
    for i in range(FLOOD):
        port = set_teredo_source(pkt, i, src4)
        if reply:
            wire.set_l4_checksum(pkt, 0, proto.NH_ICMPV6, nbytes - 40, 42)
        n.now += STEP_MS
        b.check(c.on_datagram(pkt, nbytes, src4, port, n.now))
        if i % 1000 == 999:
            assert b.peers() == c.cfg["max_peers"]
    return b


def test_bubble_flood_from_spoofed_teredo_sources():
    n = cone_qualified()
    c = n.c
    pkt = bytearray(40)
    wire.build_bubble(pkt, 0, ip6("2001:0:c633:640a::"), c.address)
    _teredo_flood(n, pkt, 40, False)  # warm up: the table full, strings made
    before = heap()
    rx = c.rx_count
    b = _teredo_flood(n, pkt, 40, False)
    grown = heap() - before
    st = c.status()
    assert c.rx_count - rx == FLOOD
    # valid case 3 bubbles, but new entries have their own bucket and never
    # evict valid trusted ones (review A2): the rest are dropped, counted
    assert set(st["drops"]) <= {"rate_limited", "queue_full"} and st["drops"]
    assert b.sent == 0  # a bubble is never answered: no amplification
    assert st["peers"] == c.cfg["max_peers"] and st["state"] == "qualified"
    assert grown < HEAP_SLACK, grown


def test_echo_flood_from_spoofed_teredo_sources_rate_limited():
    n = cone_qualified()
    c = n.c
    pkt = bytearray(56)
    wire.build_echo(pkt, 0, proto.ICMP_ECHO_REQUEST, ip6("2001:0:c633:640a::"), c.address, 1, 1,
                    b"floodfld", 8)
    _teredo_flood(n, pkt, 56, True)
    before = heap()
    limited = c.drops[wire.RATE_LIMITED]
    full = c.drops[wire.QUEUE_FULL]
    b = _teredo_flood(n, pkt, 56, True)
    grown = heap() - before
    # each new source needs a new entry: those come 5 per second (_PEER_RATE)
    # and never evict valid trusted ones; the replies, from the echo bucket
    rate = 5  # client._PEER_RATE
    assert 0 < b.sent <= c.cfg["max_peers"] + rate * FLOOD * STEP_MS // 1000
    assert b.sent + c.drops[wire.RATE_LIMITED] - limited + c.drops[wire.QUEUE_FULL] - full == FLOOD
    assert c.status()["peers"] == c.cfg["max_peers"]
    assert grown < HEAP_SLACK, grown


def test_echo_flood_from_spoofed_native_sources_never_reflects():
    n = cone_qualified()
    c = n.c
    pkt = bytearray(56)
    wire.build_echo(pkt, 0, proto.ICMP_ECHO_REQUEST, ip6("2001:db8::"), c.address, 1, 1, b"floodfld", 8)
    src4 = bytearray(ip4("198.18.0.0"))

    def flood(b):
        for i in range(FLOOD):
            pkt[20] = (i >> 8) & 0xFF  # 2001:db8::<i>:0, from 198.18.<i>
            pkt[21] = i & 0xFF
            src4[2] = (i >> 8) & 0xFF
            src4[3] = i & 0xFF
            wire.set_l4_checksum(pkt, 0, proto.NH_ICMPV6, 16, 42)
            n.now += STEP_MS
            b.check(c.on_datagram(pkt, 56, src4, 3544 + (i & 7), n.now))
            c.on_timer(n.now)  # connectivity tests repeat and expire
            b.check(0)

    b = Bounds(c)
    b.to = (SERVER, proto.PORT)  # replies wait for the connectivity test (§5.2.4 case 2)
    flood(b)
    before = heap()
    sent = b.sent
    flood(b)
    grown = heap() - before
    tests = b.sent - sent
    # a test goes out only for a reply the echo bucket let through
    assert 0 < tests <= c.cfg["echo_burst"] + c.cfg["echo_rate"] * FLOOD * STEP_MS // 1000
    assert b.peers() <= c.cfg["max_peers"]
    assert c.status()["relay"] is None
    assert grown < HEAP_SLACK, grown


def test_origin_flood_through_the_server_rate_limited():
    n = cone_qualified()
    c = n.c
    pkt = bytearray(48)
    wire.build_origin(pkt, 0, proto.PORT, ip4("198.18.0.0"))
    wire.build_bubble(pkt, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    server = ip4(SERVER)

    def flood(b):
        for i in range(FLOOD):
            pkt[6] = ((i >> 8) & 0xFF) ^ 0xFF  # origin 198.18.<i>
            pkt[7] = (i & 0xFF) ^ 0xFF
            n.now += STEP_MS
            b.check(c.on_datagram(pkt, 48, server, proto.PORT, n.now))

    b = Bounds(c)
    flood(b)
    before = heap()
    sent = b.sent
    limited = c.drops[wire.RATE_LIMITED]
    flood(b)
    grown = heap() - before
    bubbles = b.sent - sent
    rate = c.cfg["bubble_rate"]
    assert 0 < bubbles <= rate + rate * FLOOD * STEP_MS // 1000  # §5.2.6 in spirit
    assert bubbles + c.drops[wire.RATE_LIMITED] - limited == FLOOD
    assert c.status()["peers"] == 0
    assert grown < HEAP_SLACK, grown
