# Teredo peers of the client: bubbles, the peer table and queues.
# Against test doubles with a fake clock, on CPython and MicroPython from this file.
#
from teredo import addr, proto, wire
from teredo.client import EV_UDP, Client
from harness import LOCAL, RELAY, SERVER, SERVER2, V6HOST, Net, Rand, ip4, ip6, qualified


def _teredo_peer(port=40001, wan="198.51.100.77", cone=False):
    return addr.build_teredo(ip4(SERVER), 0x8000 if cone else 0, port, ip4(wan))


def test_bubbles_to_teredo_peer_rate_limited():
    n = qualified()
    peer = _teredo_peer()
    n.c.send_udp(peer, 9, 1000, b"hello", n.now)
    n.flush()
    n.run(30000, step=500)
    direct = [e for e in n.log if e[0] == "out" and e[1] == "198.51.100.77" and e[3][6] == 59]
    indirect = [e for e in n.log if e[0] == "out" and e[1] == SERVER and len(e[3]) == 40 and e[3][6] == 59]
    # first round and up to 3 repeats 2 s apart; §5.2.6 never more than 4
    assert 1 <= len(direct) <= 4 and len(direct) == len(indirect)
    gaps = [direct[i + 1] for i in range(len(direct) - 1)]
    assert len(gaps) == len(direct) - 1


def test_teredo_peer_bubble_makes_trusted_and_flushes_queue():
    n = qualified()
    peer = _teredo_peer()
    n.c.send_udp(peer, 9, 1000, b"hello", n.now)
    n.flush()
    # the peer answers with a direct bubble from its mapped address
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, n.c.address)
    n.opened.append(("198.51.100.77", 40001))
    n.inbound(bytes(b), "198.51.100.77", 40001)
    n.flush()
    data = [e for e in n.log if e[0] == "out" and e[1] == "198.51.100.77" and e[3][6] == 17]
    assert len(data) == 1 and data[0][3][48:] == b"hello"


def test_spoofed_teredo_source_dropped():
    n = qualified()
    peer = _teredo_peer()
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, n.c.address)
    n.opened.append(("198.51.100.78", 40001))
    n.inbound(bytes(b), "198.51.100.78", 40001)  # wrong IPv4 for that address
    n.flush()
    assert n.c.status()["drops"]["spoofed"] == 1
    assert n.c.status()["peers"] == 0


def test_non_global_peer_not_sent_to():
    n = qualified()
    peer = _teredo_peer(wan="192.168.1.5")
    assert n.c.send_udp(peer, 9, 1000, b"x", n.now) == wire.NON_GLOBAL
    n.flush()
    assert not [e for e in n.log if e[0] == "out" and e[1] == "192.168.1.5"]


def test_origin_bubble_from_non_global_origin_ignored():
    n = qualified()
    b = bytearray(48)
    wire.build_origin(b, 0, 3544, ip4("10.1.2.3"))
    wire.build_bubble(b, 8, ip6("fe80::1"), n.c.address)
    n.inbound(bytes(b), SERVER, proto.PORT)
    n.flush()
    assert n.c.status()["drops"]["non_global"] == 1


def test_peer_table_bounded_lru():
    n = qualified(max_peers=4)
    for i in range(20):  # 10 s apart: the oldest are no longer valid (30 s)
        peer = _teredo_peer(port=41000 + i)
        b = bytearray(40)
        wire.build_bubble(b, 0, peer, n.c.address)
        n.now += 10000
        n.c.on_datagram(b, 40, ip4("198.51.100.77"), 41000 + i, n.now)
    assert n.c.status()["peers"] == 4 and n.c.status()["drops"] == {}
    # the most recent is still known
    assert n.c.peers.find(_teredo_peer(port=41019), 0) >= 0
    assert n.c.peers.find(_teredo_peer(port=41000), 0) == -1


def test_queue_bounded():
    n = qualified()
    assert n.c.cfg["queue_slots"] == 1
    n.relay_up = False
    r1 = n.c.send_udp(ip6(V6HOST), 9, 1000, bytes(1000), n.now)
    n.flush()
    r2 = n.c.send_udp(ip6(V6HOST), 9, 1000, bytes(1000), n.now)
    n.flush()
    r3 = n.c.send_udp(ip6("2001:db8::5"), 9, 1000, bytes(10), n.now)
    n.flush()
    assert r1 == 0
    assert r2 == wire.QUEUE_FULL and r3 == wire.QUEUE_FULL
    assert n.c.status()["drops"]["queue_full"] == 2


def test_udp_receive_event():
    n = qualified()
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    b = bytearray(48 + 4)
    wire.build_udp6(b, 0, ip6(V6HOST), n.c.address, 5353, 7, b"abcd", 4)
    n.c.bind(7)
    ev = n.c.on_datagram(bytes(b), len(b), ip4(RELAY), proto.PORT, n.now)
    assert ev == EV_UDP
    c = n.c
    assert c.ev_sport == 5353 and c.ev_dport == 7 and c.ev_len == 4
    assert bytes(c.rx[c.ev_off:c.ev_off + 4]) == b"abcd"
    b[50] ^= 1  # checksum now wrong
    assert n.c.on_datagram(bytes(b), len(b), ip4(RELAY), proto.PORT, n.now) == 0
    assert n.c.status()["drops"]["checksum"] == 1


def test_not_for_us_and_not_qualified_dropped():
    n = Net()
    n.server_up = False
    n.start()
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("2001::1"), ip6("2001::2"))
    n.c.on_datagram(b, 40, ip4(RELAY), 3544, n.now)
    assert n.c.status()["drops"]["not_qualified"] == 1
    n.server_up = True
    n.run(5000)
    n.c.on_datagram(b, 40, ip4(RELAY), 3544, n.now)
    assert n.c.status()["drops"]["not_for_us"] == 1


def test_config_errors_say_what_to_change():
    for bad, word in (("10.0.0.1", "global"), ("300.1.1.1", "IPv4"), ("", "IPv4")):
        try:
            Client(bad, rand=Rand())
            raise AssertionError(bad)
        except ValueError as e:
            assert word in str(e), (bad, str(e))
    try:
        Client(SERVER, rand=Rand(), refresh_s=1)
        raise AssertionError("accepted")
    except ValueError as e:
        assert "refresh_s" in str(e)
    try:
        Client(SERVER, rand=Rand(), bogus=1)
        raise AssertionError("accepted")
    except ValueError as e:
        assert "bogus" in str(e)
    c = Client(SERVER, rand=Rand())
    assert c.server2_addr[0] == SERVER2
    assert Client("198.51.100.255", rand=Rand()).server2_addr[0] == "198.51.101.0"


def test_status_fields():
    n = qualified()
    n.c.set_local(LOCAL + ":40000")
    st = n.c.status()
    for k in ("state", "server", "server2", "nat", "address", "mapped", "local", "relay",
              "refresh_s", "uptime_s", "peers", "rx", "tx", "drops", "error"):
        assert k in st, k
    assert st["local"] == LOCAL + ":40000"
    assert st["uptime_s"] == 5


def _udp_to(n, dport, src=V6HOST, data=b"abcd"):
    b = bytearray(48 + len(data))
    wire.build_udp6(b, 0, ip6(src), n.c.address, 5353, dport, data, len(data))
    return bytes(b)


def test_udp_demultiplexed_by_port_and_unbound_answered_with_port_unreachable():
    n = qualified()
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    n.c.bind(7)
    n.c.bind(9)
    for port in (7, 9):
        d = _udp_to(n, port)
        assert n.c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now) == EV_UDP
        assert n.c.ev_dport == port
    d = _udp_to(n, 8)
    assert n.c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now) == 0
    assert n.c.status()["drops"]["no_port"] == 1
    k = n.c.pop_tx()
    assert k == 40 + 8 + len(d)  # the error carries the whole (small) datagram
    err = bytes(n.c.tx_mv[n.c.tx_off:n.c.tx_off + k])
    assert n.c.tx_addr == (RELAY, proto.PORT)
    assert err[6] == proto.NH_ICMPV6 and err[8:24] == n.c.address and err[24:40] == ip6(V6HOST)
    assert err[40] == 1 and err[41] == 4 and err[44:48] == bytes(4)  # RFC 4443 §3.1
    assert err[48:] == d
    assert wire.l4_sum(err, 0, proto.NH_ICMPV6, len(err) - 40) == 0xFFFF
    n.c.unbind(7)
    d = _udp_to(n, 7)
    assert n.c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now) == 0
    assert n.c.status()["drops"]["no_port"] == 2


def test_port_unreachable_is_rate_limited_and_never_to_multicast():
    n = qualified(unreach_rate=3)
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    sent = 0
    for _ in range(10):
        d = _udp_to(n, 8)
        n.c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now)
        while n.c.pop_tx():
            sent += 1
    assert sent == 3 and n.c.status()["drops"]["no_port"] == 10
    assert n.c.status()["drops"]["rate_limited"] == 7
    n.now += 1000  # the bucket refills: one more a third of a second
    d = _udp_to(n, 8)
    n.c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now)
    assert n.c.pop_tx() > 0


def test_bind_rejects_bad_and_duplicate_ports():
    c = qualified().c
    for bad in (0, 65536, -1, "7"):
        try:
            c.bind(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("bound %r" % (bad,))
    c.bind(7)
    try:
        c.bind(7)
    except ValueError as e:
        assert "already" in str(e)
    else:
        raise AssertionError("bound 7 twice")


class _Tracked(int):
    """An int that records the largest product it takes part in."""
    top = [0]

    def __mul__(self, other):
        v = int(self) * int(other)
        _Tracked.top[0] = max(_Tracked.top[0], abs(v))
        return v

    __rmul__ = __mul__


def test_refresh_jitter_stays_in_small_ints():
    # review A12: rand(16) * (r // 4) is a big int (a heap allocation on a
    # 32-bit board) once refresh_s >= 66.  The check needs CPython's
    # reflected operators on int subclasses; MicroPython skips it.
    import sys
    if sys.implementation.name != "cpython":
        return
    for refresh_s in (10, 66, 3600):
        _Tracked.top[0] = 0
        c = Client(SERVER, rand=lambda bits: _Tracked((1 << bits) - 1), refresh_s=refresh_s)
        c._schedule_refresh(1000)
        assert 0 < _Tracked.top[0] < 2 ** 30, (refresh_s, _Tracked.top[0])
        r = refresh_s * 1000
        assert 1000 + r * 3 // 4 <= c.refresh_at <= 1000 + r


def test_udp_with_zero_checksum_is_dropped():
    # RFC 8200 §8.1: a zero UDP checksum over IPv6 is not "no checksum"; even
    # one whose data make the sum come out right is discarded
    n = qualified()
    c = n.c
    c.bind(9)  # a bound port: the control datagram is delivered
    peer = _teredo_peer()
    b = bytearray(48 + 2)
    wire.build_udp6(b, 0, peer, c.address, 9, 9, b"\x00\x00", 2)
    k = (b[46] << 8) | b[47]
    b[46] = b[47] = 0
    b[48] = k >> 8  # move the checksum into the data: the sum still holds
    b[49] = k & 0xFF
    assert wire.l4_sum(b, 0, proto.NH_UDP, 10) == 0xFFFF
    n.opened.append(("198.51.100.77", 40001))
    n.inbound(bytes(b), "198.51.100.77", 40001)
    n.flush()
    assert n.c.status()["drops"].get("checksum") == 1 and not n.events
    b[46] = b[47] = 0xFF  # control: 0xFFFF is the same sum, and accepted
    n.inbound(bytes(b), "198.51.100.77", 40001)
    n.flush()
    assert n.events and n.events[0][0] == EV_UDP


# ---- review issue 13, A4 and A9: §5.2.6 ---------------------------------------

def _bubbles_to(n, ip):
    return [e for e in n.log if e[0] == "out" and e[1] == ip and len(e[3]) == 40 and e[3][6] == 59]


def test_silent_teredo_peer_gets_at_most_4_bubbles_in_300_s():
    # an application sending once a second to a silent Teredo peer: the
    # failed entry keeps its count, so §5.2.6's 4 per 300 s holds
    n = qualified()
    peer = _teredo_peer()
    for _ in range(290):  # (the window is 300 s from the first bubble)
        n.c.send_udp(peer, 9, 1000, b"x", n.now)
        n.flush()
        n.run(1000, step=500)
    assert len(_bubbles_to(n, "198.51.100.77")) == 4  # direct
    assert len(_bubbles_to(n, SERVER)) == 4           # indirect, via the peer's server
    for _ in range(20):  # a new 300 s window
        n.c.send_udp(peer, 9, 1000, b"x", n.now)
        n.flush()
        n.run(1000, step=500)
    assert 5 <= len(_bubbles_to(n, "198.51.100.77")) <= 8


def _relayed_bubble(c, src6, origin=None):
    b = bytearray(48)
    o = 0
    if origin:
        wire.build_origin(b, 0, proto.PORT, ip4(origin))
        o = 8
    wire.build_bubble(b, o, src6, c.address)
    return bytes(b[:o + 40])


def test_origin_replies_at_most_one_per_origin_per_2_s():
    n = qualified()
    c = n.c
    d = _relayed_bubble(c, ip6("fe80::8000:ffff:ffff:fffe"), RELAY)
    for _ in range(5):  # five in 80 ms
        c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
        n.flush()
        n.now += 20
    assert len(_bubbles_to(n, RELAY)) == 1
    n.now += 2000
    c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
    n.flush()
    assert len(_bubbles_to(n, RELAY)) == 2
    # another origin is not held back by the first one's gap
    d2 = _relayed_bubble(c, ip6("fe80::8000:ffff:ffff:fffe"), "198.51.100.21")
    c.on_datagram(d2, len(d2), ip4(SERVER), proto.PORT, n.now)
    n.flush()
    assert len(_bubbles_to(n, "198.51.100.21")) == 1


def test_relayed_bubble_without_origin_answered_at_the_teredo_mapping():
    # review A9: some servers add no origin indication; the mapping is in the
    # Teredo source address.  Answered under §5.2.6 (gap and count).
    n = qualified()
    c = n.c
    peer = _teredo_peer()
    d = _relayed_bubble(c, peer)
    for _ in range(3):
        c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
        n.flush()
        n.now += 500
    out = _bubbles_to(n, "198.51.100.77")
    assert len(out) == 1 and out[0][2] == 40001
    assert out[0][3][24:40] == peer and out[0][3][8:24] == c.address
    for _ in range(10):
        n.now += 2100
        c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
        n.flush()
    assert len(_bubbles_to(n, "198.51.100.77")) == 4
    # a native source without origin: nothing to answer to
    d = _relayed_bubble(c, ip6(V6HOST))
    c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
    assert c.pop_tx() == 0
