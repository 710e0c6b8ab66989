# Parked (not collected): the tests of tests/core/test_bounds.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto, wire
from teredo.client import ARENA_BYTES, TX_SLOTS, _add
from harness import RELAY, SERVER, V6HOST, Net, ip4, ip6, qualified, with_relay
from test_bounds import *
from test_bounds import _add, _bubbles, _origin_bubble, _teredo_peer


def test_connectivity_test_repeats_every_2_s_three_times():
    for t0 in (5000, TOP - 3000):
        n = qualified()
        c = n.c
        sent(c)
        assert c.ping(ip6(V6HOST), 1, t0) == 0
        got = [len(conn_tests(sent(c)))]
        assert c.next_deadline() == _add(t0, 2000)
        for dt in (1999, 2000, 3999, 4000, 5999):
            c.on_timer(_add(t0, dt))
            got.append(len(conn_tests(sent(c))))
        assert got == [1, 0, 1, 0, 1, 0], (t0, got)
        assert c.status()["peers"] == 1 and drops(c, "unreachable") == 0
        c.on_timer(_add(t0, 6000))
        assert sent(c) == [] and c.status()["peers"] == 0 and drops(c, "unreachable") == 1


def test_bubble_rounds_2_s_apart_then_give_up():
    for t0 in (7000, TOP - 2500):
        n = qualified()
        c = n.c
        sent(c)
        peer = _teredo_peer()
        assert c.send_udp(peer, 9, 9, b"hello", t0) == 0
        out = sent(c)
        assert _bubbles(out) == (1, 1)
        # the direct bubble goes to the mapped address and port in the peer's
        # address, the indirect one to the peer's server; both from us to it
        for ip, port, d in out:
            assert (ip, port) in ((PEER4, 40001), (SERVER, proto.PORT))
            assert d[8:24] == c.address and d[24:40] == peer and len(d) == 40
        got = []
        for dt in (1999, 2000, 3999, 4000, 5999):
            c.on_timer(_add(t0, dt))
            got.append(_bubbles(sent(c)))
        assert got == [(0, 0), (1, 1), (0, 0), (1, 1), (0, 0)], (t0, got)
        c.on_timer(_add(t0, 6000))
        assert sent(c) == [] and c.status()["peers"] == 0 and drops(c, "unreachable") == 1


def test_bubble_bucket_burst_and_refill():
    n = qualified("cone", bubble_rate=20)
    c = n.c
    sent(c)
    t = n.now + 10000
    got = 0
    for i in range(25):
        c.on_datagram(_origin_bubble(c, i), 48, ip4(SERVER), proto.PORT, t)
        got += len(sent(c))
    assert got == 20 and drops(c, "rate_limited") == 5
    for dt, want in ((49, 0), (50, 1), (50, 0), (150, 2)):
        got = 0
        for i in range(want + 1):
            c.on_datagram(_origin_bubble(c, 100 + i), 48, ip4(SERVER), proto.PORT, t + dt)
            got += len(sent(c))
        assert got == want, dt


def test_parser_drops_counted_by_name():
    n = qualified()
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6(V6HOST), c.address)
    cases = (("short", b[:39]), ("not_ipv6", b"\x45" + bytes(b[1:])), ("length", b + b"\x00"),
             ("encap", b"\x00\x05" + bytes(b[2:])))
    for name, d in cases:
        rx = c.rx_count
        c.on_datagram(d, len(d), ip4(RELAY), proto.PORT, n.now)
        assert c.status()["drops"] == {name: 1}, (name, c.status()["drops"])
        assert c.rx_count == rx
        c.drops[wire.DROP_NAMES.index(name)] = 0
    c.on_datagram(b, 40, ip4(RELAY), proto.PORT, n.now)  # a native bubble: nothing to trust
    assert c.status()["drops"] == {"untrusted": 1} and c.rx_count == rx + 1


def test_unsupported_and_length_and_checksum_after_the_parser():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(48)
    wire.build_ipv6(b, 0, 8, 6, 64, ip6(V6HOST), c.address)  # TCP: not handled
    c.on_datagram(b, 48, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "unsupported") == 1
    u = bytearray(52)
    wire.build_udp6(u, 0, ip6(V6HOST), c.address, 1, 2, b"abcd", 4)
    u[45] = 13  # UDP length 13, IPv6 payload 12
    c.on_datagram(u, 52, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "length") == 1
    s = bytearray(44)
    wire.build_ipv6(s, 0, 4, proto.NH_ICMPV6, 64, ip6(V6HOST), c.address)  # ICMPv6 shorter than 8
    c.on_datagram(s, 44, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "length") == 2
    e = echo_request(c)
    e[50] ^= 1
    c.on_datagram(e, len(e), ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "checksum") == 1 and sent(c) == []
    # an echo reply to someone else's ping (another identifier): nothing
    r = bytearray(56)
    other = c.cfg["ping_ident"] + 1
    wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, other, 5, bytes(8), 8)
    assert c.on_datagram(r, 56, ip4(RELAY), proto.PORT, n.now) == 0 and drops(c, "unsupported") == 2
