# Peer timers and every bound of the client at its exact size: the 30 s peer
# validity and the connectivity test and bubble rounds, once and 3 repeats 2 s apart (RFC 4380
# §5.2.4, §5.2.6, §5.2.9), every byte of the connectivity-test nonce, the echo
# and bubble token buckets, the transmit ring, the arena, the receive size,
# the MTU, and every drop reason under its own name.  The client is driven
# directly at exact times.  On CPython and the MicroPython unix port alike.
from teredo import addr, proto, wire
from teredo.client import ARENA_BYTES, EV_NONE, EV_TCP, TX_SLOTS, _add
from harness import RELAY, SERVER, V6HOST, Net, ip4, ip6, qualified, with_relay
from harness import drops, sent

PEER4 = "198.51.100.77"
TOP = 1 << 30

# Tests that show a known bug (tests/core/conftest.py; tests/mp_run.py).


def conn_tests(out):
    return [d for ip, port, d in out if ip == SERVER and port == proto.PORT and len(d) == 56
            and d[6] == proto.NH_ICMPV6 and d[40] == proto.ICMP_ECHO_REQUEST]


def echo_request(c, src=V6HOST, size=8, seq=1):
    b = bytearray(48 + size)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(src), c.address, 0x1234, seq, bytes(size), size)
    return b


def test_trusted_peer_valid_for_30_s_after_the_last_reception():
    for t0 in (0, TOP - 20000):
        n = with_relay()
        c = n.c
        sent(c)
        # a datagram from the relay at t0: the last reception
        b = echo_request(c)
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, t0)
        assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)]
        assert c.send_udp(ip6(V6HOST), 7, 7, b"x", _add(t0, 29999)) == 0
        assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)], t0
        # at exactly 30 s the mapping is no longer trusted: test it again (§5.2.4)
        assert c.send_udp(ip6(V6HOST), 7, 7, b"y", _add(t0, 30000)) == 0
        out = sent(c)
        assert len(conn_tests(out)) == 1 and len(out) == 1, t0


def test_connectivity_test_nonce_every_byte():
    n = qualified()
    c = n.c
    sent(c)
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, n.now)
    test = conn_tests(sent(c))[0]
    nonce = test[48:56]
    assert test[24:40] == ip6(V6HOST) and test[8:24] == c.address
    for k in range(8):
        wrong = bytearray(nonce)
        wrong[k] ^= 0x01
        b = bytearray(56)
        wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0, 0, wrong, 8)
        c.on_datagram(b, 56, ip4(RELAY), proto.PORT, n.now)
        assert c.status()["relay"] is None and sent(c) == [], k
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0, 0, nonce, 8)
    c.on_datagram(b, 56, ip4(RELAY), proto.PORT, n.now)
    assert c.status()["relay"] == RELAY + ":3544"
    # the queued ping goes to the relay now
    out = sent(c)
    assert [(ip, port) for ip, port, _ in out] == [(RELAY, proto.PORT)] and out[0][2][40] == 128


def test_connectivity_test_reply_must_be_exactly_an_echo_reply_with_8_bytes():
    n = qualified()
    c = n.c
    sent(c)
    c.ping(ip6(V6HOST), 1, n.now)
    nonce = conn_tests(sent(c))[0][48:56]
    for size, typ in ((9, proto.ICMP_ECHO_REPLY), (8, proto.ICMP_ECHO_REQUEST)):
        b = bytearray(48 + size)
        wire.build_echo(b, 0, typ, ip6(V6HOST), c.address, 0, 0, nonce + bytes(size - 8), size)
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now)
        assert c.status()["relay"] is None, (size, typ)


def test_connectivity_test_goes_once_then_repeats_every_2_s_three_times():
    # §5.2.4 / §5.2.9: the test once, repeated up to 3 times 2 s apart, and
    # a last 2 s for the answer; then the queued packet is lost, counted, and
    # the entry stays (LRU) without a test running
    for t0 in (5000, TOP - 3000):
        n = qualified()
        c = n.c
        sent(c)
        assert c.ping(ip6(V6HOST), 1, t0) == 0
        got = [len(conn_tests(sent(c)))]
        assert c.next_deadline() == _add(t0, 2000)
        for dt in (1999, 2000, 3999, 4000, 5999, 6000, 7999):
            c.on_timer(_add(t0, dt))
            got.append(len(conn_tests(sent(c))))
        assert got == [1, 0, 1, 0, 1, 0, 1, 0], (t0, got)
        assert c.status()["peers"] == 1 and drops(c, "unreachable") == 0
        assert c.next_deadline() == _add(t0, 8000)
        c.on_timer(_add(t0, 8000))
        assert sent(c) == [] and drops(c, "unreachable") == 1
        assert c.status()["peers"] == 1 and c.peers.qowner == [-1]


def _teredo_peer(port=40001, wan=PEER4, server=SERVER):
    return addr.build_teredo(ip4(server), 0, port, ip4(wan))


def _bubbles(out, wan=PEER4):
    direct = [(ip, port) for ip, port, d in out if ip == wan and d[6] == proto.NH_NONE]
    indirect = [(ip, port) for ip, port, d in out if port == proto.PORT and d[6] == proto.NH_NONE
                and ip != wan]
    return len(direct), len(indirect)


def test_bubble_rounds_go_once_then_2_s_apart_three_times_then_give_up():
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
        for dt in (1999, 2000, 3999, 4000, 5999, 6000, 7999):
            c.on_timer(_add(t0, dt))
            got.append(_bubbles(sent(c)))
        assert got == [(0, 0), (1, 1), (0, 0), (1, 1), (0, 0), (1, 1), (0, 0)], (t0, got)
        assert drops(c, "unreachable") == 0
        c.on_timer(_add(t0, 8000))
        # the 4 rounds are §5.2.6's 4 bubbles in 300 s: the entry keeps its count
        assert sent(c) == [] and drops(c, "unreachable") == 1 and c.status()["peers"] == 1
        assert drops(c, "rate_limited") == 0


def test_no_indirect_bubble_through_a_non_global_server():
    n = qualified()
    c = n.c
    sent(c)
    assert c.send_udp(_teredo_peer(server="10.0.0.1"), 9, 9, b"x", n.now) == 0
    assert _bubbles(sent(c)) == (1, 0)


def test_at_most_4_bubbles_to_a_silent_peer_in_300_s():
    n = qualified()
    c = n.c
    sent(c)
    peer = _teredo_peer()
    direct = 0
    t = n.now
    for _ in range(6):  # the application sends every 2 s; the peer never answers
        c.send_udp(peer, 9, 9, b"x", t)
        direct += _bubbles(sent(c))[0]
        t += 2000
        c.on_timer(t)
        direct += _bubbles(sent(c))[0]
    assert direct <= proto.BUBBLE_MAX_IN_WINDOW, direct


def test_a_peer_answering_is_trusted_and_its_queue_sent_in_order():
    n = qualified()
    c = n.c
    sent(c)
    peer = _teredo_peer()
    for i in range(3):
        assert c.send_udp(peer, 9, 1000 + i, bytes([i]) * (300 + i), n.now) == 0
    assert _bubbles(sent(c)) == (1, 1)
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    c.on_datagram(b, 40, ip4(PEER4), 40001, n.now + 10)
    out = sent(c)
    assert [(ip, port) for ip, port, _ in out] == [(PEER4, 40001)] * 3
    for i, (_, _, d) in enumerate(out):
        assert len(d) == 48 + 300 + i and d[40:42] == bytes([0x03, 0xE8 + i])
        assert d[48:] == bytes([i]) * (300 + i)
    # trusted: straight to it, no more bubbles
    assert c.send_udp(peer, 9, 9, b"z", n.now + 20) == 0
    assert [(ip, port) for ip, port, _ in sent(c)] == [(PEER4, 40001)]
    c.on_timer(n.now + 2010)
    assert sent(c) == []


def _echo_replies(c, count, now, src=V6HOST):
    got = 0
    for i in range(count):
        b = echo_request(c, src, seq=i)
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, now)
        got += len(sent(c))
    return got


def test_echo_bucket_burst_rate_and_exact_refill():
    n = with_relay(echo_rate=200, echo_burst=50)
    c = n.c
    sent(c)
    t = n.now + 10000  # full after a long idle
    assert _echo_replies(c, 60, t) == 50
    assert drops(c, "rate_limited") == 10
    assert _echo_replies(c, 1, t + 4) == 0   # 200/s: one token per 5 ms
    assert _echo_replies(c, 1, t + 5) == 1   # (4 ms of 5 ms kept, +1 ms: exactly one token)
    assert _echo_replies(c, 1, t + 5) == 0
    assert _echo_replies(c, 3, t + 20) == 3
    assert _echo_replies(c, 1, t + 20) == 0
    # a clock that went back refills nothing
    assert _echo_replies(c, 1, t + 10) == 0


def test_echo_bucket_never_rounds_a_refill_up():
    # 199/s: 5 ms after one reply from a full bucket it holds 49.995 tokens
    n = with_relay(echo_rate=199, echo_burst=50)
    c = n.c
    sent(c)
    t = n.now + 10000
    assert _echo_replies(c, 1, t) == 1
    assert _echo_replies(c, 60, t + 5) == 49


def test_echo_bucket_refill_counts_at_most_10_s_of_idle():
    n = with_relay(echo_rate=1, echo_burst=50)
    c = n.c
    sent(c)
    t = n.now + 100000
    assert _echo_replies(c, 60, t) == 50
    # 20 s idle at 1/s: refill stops at 10 s (keeps the arithmetic in small ints)
    assert _echo_replies(c, 20, t + 20000) == 10
    assert _echo_replies(c, 2, t + 21000) == 1


def test_echo_rate_0_means_no_limit():
    n = with_relay(echo_rate=0)
    c = n.c
    sent(c)
    assert _echo_replies(c, 120, n.now) == 120 and drops(c, "rate_limited") == 0


def _origin_bubble(c, i):
    b = bytearray(48)
    wire.build_origin(b, 0, 3544, bytes([198, 18, i >> 8, i & 0xFF]))
    wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    return b


def test_bubble_bucket_burst_and_refill():
    # 20 unsolicited bubbles a second, a burst of 20; each refill step
    # answers new origins (one origin gets at most one bubble per 2 s)
    n = qualified("cone", bubble_rate=20)
    c = n.c
    sent(c)
    t = n.now + 10000
    got = 0
    for i in range(25):
        c.on_datagram(_origin_bubble(c, i), 48, ip4(SERVER), proto.PORT, t)
        got += len(sent(c))
    assert got == 20 and drops(c, "rate_limited") == 5
    og = 100
    for dt, want in ((49, 0), (50, 1), (50, 0), (150, 2)):
        got = 0
        for _ in range(want + 1):
            c.on_datagram(_origin_bubble(c, og), 48, ip4(SERVER), proto.PORT, t + dt)
            og += 1
            got += len(sent(c))
        assert got == want, dt
    assert drops(c, "rate_limited") == 5 + 4


def test_transmit_ring_holds_exactly_8_in_order():
    n = with_relay()
    c = n.c
    sent(c)
    assert TX_SLOTS == 8
    for rounds in range(3):  # the ring's head moves round
        for i in range(TX_SLOTS + 1 - rounds):
            r = c.send_udp(ip6(V6HOST), 7, 100 + i, b"p", n.now)
            assert r == (0 if i < TX_SLOTS else wire.TX_FULL), (rounds, i, r)
        out = sent(c)
        assert [(d[40] << 8) | d[41] for _, _, d in out] == list(range(100, 100 + min(TX_SLOTS, 9 - rounds)))
    assert drops(c, "tx_full") == 1


def test_arena_holds_exactly_its_size():
    n = with_relay()
    c = n.c
    sent(c)
    assert ARENA_BYTES == 1600
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1232), n.now) == 0
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1600 - 1280 - 48 + 1), n.now) == wire.TX_FULL
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1600 - 1280 - 48), n.now) == 0
    assert c.send_udp(ip6(V6HOST), 7, 7, b"", n.now) == wire.TX_FULL
    assert [len(d) for _, _, d in sent(c)] == [1280, 320]
    # drained: the arena is whole again
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1232), n.now) == 0


def test_send_udp_up_to_the_mtu():
    n = with_relay()
    c = n.c
    sent(c)
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1233), n.now) == wire.TOO_BIG
    assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1232), n.now) == 0
    assert drops(c, "too_big") == 1
    assert [len(d) for _, _, d in sent(c)] == [1280]


def test_receive_size_limit():
    n = with_relay(echo_rate=0)
    c = n.c
    sent(c)
    for size, counted in ((1536 - 48, True), (1536 - 47, False)):  # datagrams up to 1536 bytes are read
        b = echo_request(c, size=size)
        rx = c.rx_count
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now)
        assert (c.rx_count == rx + 1) == counted, size
        sent(c)
    assert drops(c, "too_big") == 2  # the 1536-byte request's reply is over the MTU; 1537 is not read


def test_echo_reply_to_a_full_size_request():
    n = with_relay(echo_rate=0)
    c = n.c
    sent(c)
    for size in (1232, 1233):
        b = echo_request(c, size=size)
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now)
        out = sent(c)
        assert len(out) == (1 if size == 1232 else 0), size
    assert drops(c, "too_big") == 1


def test_unqualified_client_sends_nothing():
    n = Net("restricted")
    c = n.c
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", 0) == wire.NOT_QUALIFIED
    assert c.ping(ip6(V6HOST), 1, 0) == wire.NOT_QUALIFIED
    assert drops(c, "not_qualified") == 2 and c.pop_tx() == 0


def test_parser_drops_counted_by_name():
    n = qualified()
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6(V6HOST), c.address)
    longer = bytearray(b)
    longer[5] = 1  # an IPv6 payload of 1 byte that is not there
    cases = (("short", b[:39]), ("not_ipv6", b"\x45" + bytes(b[1:])), ("length", longer),
             ("trailer", b + b"\x00"),  # one byte after the packet: no RFC 6081 trailer
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
    wire.build_ipv6(b, 0, 8, 6, 64, ip6(V6HOST), c.address)  # TCP: handed to the TCP, not dropped
    assert c.on_datagram(b, 48, ip4(RELAY), proto.PORT, n.now) == EV_TCP
    assert c.ev_off == 0 and c.ev_len == 48 and c.status()["drops"] == {}
    b[6] = 132  # SCTP: not handled
    assert c.on_datagram(b, 48, ip4(RELAY), proto.PORT, n.now) == EV_NONE
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
    assert c.status()["drops"] == {"unsupported": 2, "length": 2, "checksum": 1}


def test_every_drop_reason_has_its_own_name():
    names = wire.DROP_NAMES
    assert names[wire.OK] == "ok" and names[wire.SHORT] == "short" and names[wire.ENCAP] == "encap"
    assert names[wire.NOT_IPV6] == "not_ipv6" and names[wire.LENGTH] == "length"
    assert names[wire.CHECKSUM] == "checksum" and names[wire.RA_INVALID] == "ra_invalid"
    assert names[wire.RA_NONCE] == "ra_nonce" and names[wire.NOT_FOR_US] == "not_for_us"
    assert names[wire.SPOOFED] == "spoofed" and names[wire.UNTRUSTED] == "untrusted"
    assert names[wire.NON_GLOBAL] == "non_global" and names[wire.NOT_QUALIFIED] == "not_qualified"
    assert names[wire.UNSUPPORTED] == "unsupported" and names[wire.QUEUE_FULL] == "queue_full"
    assert names[wire.TX_FULL] == "tx_full" and names[wire.RATE_LIMITED] == "rate_limited"
    assert names[wire.FROM_SERVER] == "from_server" and names[wire.TOO_BIG] == "too_big"
    # the RFC 6081 trailer reason comes last (its constant is private to wire.py)
    assert names[wire.TOO_BIG + 1] == "trailer" and len(names) == wire.TOO_BIG + 2
    assert len(set(names)) == len(names)
