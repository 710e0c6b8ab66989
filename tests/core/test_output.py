# The client's transmit side (RFC 4380 §5.2.4) where a slip would go
# unnoticed by the scenario tests: which entry a datagram uses, entries that
# stay in the table while in use (LRU), expiry and re-test of a trusted peer,
# two connectivity tests at once, fresh nonces from every random bit, and a
# shared scratch buffer between rounds.  On CPython and the MicroPython unix
# port alike.
from teredo import addr, proto, wire
from teredo.peers import F_TRUSTED, NF
from harness import RELAY, SERVER, V6HOST, ip4, ip6, qualified, with_relay
from harness import Seq, drops, sent, to

PEER4 = "198.51.100.77"


def conn_tests(out):
    return [d for ip, port, d in out if ip == SERVER and port == proto.PORT and len(d) == 56
            and d[6] == proto.NH_ICMPV6 and d[40] == proto.ICMP_ECHO_REQUEST]


def make_reply(c, src, nonce):
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(src), c.address, 0, 0, nonce, 8)
    return b


def _reply_to_test(c, test, now):
    b = make_reply(c, "::", test[48:56])
    b[8:24] = test[24:40]
    wire.set_l4_checksum(b, 0, proto.NH_ICMPV6, 16, 42)
    c.on_datagram(b, 56, ip4(RELAY), proto.PORT, now)


def test_expired_peer_is_tested_again_and_its_queue_sent_on_the_reply():
    n = with_relay()
    c = n.c
    sent(c)
    t = n.now
    b = bytearray(48 + 8)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(8), 8)
    c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, t)  # last reception from the relay
    sent(c)
    assert c.send_udp(ip6(V6HOST), 7, 7, b"later", t + 30000) == 0
    out = sent(c)
    tests = conn_tests(out)
    assert len(tests) == 1 and len(out) == 1 and c.status()["peers"] == 1
    p = c.peers.find(ip6(V6HOST), 0)
    assert not c.peers.v[p * NF + F_TRUSTED]
    _reply_to_test(c, tests[0], t + 30100)
    out = sent(c)
    assert to(out) == [(RELAY, proto.PORT)] and out[0][2][48:] == b"later"
    assert c.peers.v[p * NF + F_TRUSTED] and c.status()["peers"] == 1


def _trusted_teredo_peer(c, port, now, wan=PEER4):
    peer = addr.build_teredo(ip4(SERVER), 0, port, ip4(wan))
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    c.on_datagram(b, 40, ip4(wan), port, now)
    return peer


def test_two_connectivity_tests_at_once_each_with_its_own_nonce():
    n = qualified(queue_slots=3)
    c = n.c
    sent(c)
    n.relay_up = False
    hosts = ("2001:db8::a", "2001:db8::b", "2001:db8::c")
    for h in hosts:
        assert c.ping(ip6(h), 1, n.now) == 0  # in one turn: no pop_tx between them
    tests = conn_tests(sent(c))
    assert [bytes(t[24:40]) for t in tests] == [ip6(h) for h in hosts]
    for t in tests:
        assert wire.l4_sum(t, 0, proto.NH_ICMPV6, 16) == 0xFFFF
    assert len(set([bytes(t[48:56]) for t in tests])) == 3
    for t in reversed(tests):
        _reply_to_test(c, t, n.now)
    out = sent(c)
    # every test answered: each host's queued ping went to the relay
    assert len(out) == 3 and to(out) == [(RELAY, proto.PORT)] * 3
    assert sorted([bytes(d[24:40]) for _, _, d in out]) == sorted([ip6(h) for h in hosts])


def test_bubble_rounds_go_to_the_peer_whatever_was_handled_in_between():
    n = qualified("cone")
    c = n.c
    sent(c)
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
    assert c.send_udp(peer, 9, 9, b"x", n.now) == 0
    sent(c)
    # an origin indication for another address is handled meanwhile
    o = bytearray(48)
    wire.build_origin(o, 0, 3544, ip4("203.0.113.200"))
    wire.build_bubble(o, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    c.on_datagram(o, 48, ip4(SERVER), proto.PORT, n.now + 100)
    assert to(sent(c)) == [("203.0.113.200", 3544)]
    c.on_timer(n.now + 2000)
    out = sent(c)
    assert sorted(to(out)) == sorted([(PEER4, 40001), (SERVER, proto.PORT)])


def test_indirect_bubble_only_through_a_global_server():
    for server, indirect in (("192.168.1.1", False), ("198.10.0.1", True), ("10.0.0.1", False),
                             ("198.51.100.9", True)):
        n = qualified()
        c = n.c
        sent(c)
        peer = addr.build_teredo(ip4(server), 0, 40001, ip4(PEER4))
        assert c.send_udp(peer, 9, 9, b"x", n.now) == 0
        out = sent(c)
        assert (PEER4, 40001) in to(out)
        assert ((server, proto.PORT) in to(out)) == indirect, server
        assert len(out) == (2 if indirect else 1)


def test_refresh_rs_and_a_bubble_in_one_turn_are_both_intact():
    n = qualified("cone")
    c = n.c
    sent(c)
    c.rand = lambda bits: 0
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("2001:db8::1"), c.address)
    t = n.now
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, t)  # refresh due at t + 30000 exactly
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
    c.send_udp(peer, 9, 9, b"x", t + 28000)  # bubble rounds at +28000, +30000
    sent(c)
    c.on_timer(t + 30000)
    out = sent(c)
    assert len(out) == 3
    hdr = [0, 0, 0, 0]
    for _, _, d in out:
        assert wire.parse_encap(d, len(d), hdr) == wire.OK
        ip = hdr[wire.H_IP]
        if d[ip + 6] == proto.NH_ICMPV6:
            assert d[ip + 40] == proto.ICMP_RS and d[ip + 41] == 0 and d[ip + 44:ip + 48] == bytes(4)
            assert wire.l4_sum(d, ip, proto.NH_ICMPV6, 8) == 0xFFFF
        else:
            assert d[ip + 6] == proto.NH_NONE and len(d) == 40


def test_connectivity_test_fits_in_the_last_56_bytes_of_the_arena():
    for size, fits in ((216, True), (217, False)):
        n = with_relay()
        c = n.c
        sent(c)
        assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1232), n.now) == 0       # 1280 bytes
        # a ping of 216 bytes of data (264) to a new host leaves exactly 56 for its test
        assert c.ping(ip6("2001:db8::5"), 1, n.now, size=size) == 0
        out = sent(c)
        assert [len(d) for _, _, d in out] == ([1280, 56] if fits else [1280]), size
        assert drops(c, "tx_full") == (0 if fits else 1)
        for t in conn_tests(out):
            assert t[24:40] == ip6("2001:db8::5") and wire.l4_sum(t, 0, proto.NH_ICMPV6, 16) == 0xFFFF


def test_bubbles_fit_in_the_last_80_bytes_of_the_arena_and_no_more():
    for room, bubbles in ((80, 2), (79, 1), (40, 1), (39, 0)):
        n = with_relay()
        c = n.c
        sent(c)
        assert c.send_udp(ip6(V6HOST), 7, 7, bytes(1232), n.now) == 0            # 1280 bytes
        peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
        assert c.send_udp(peer, 9, 9, bytes(1600 - 1280 - 48 - room), n.now) == 0  # queued
        out = sent(c)
        assert [len(d) for _, _, d in out] == [1280] + [40] * bubbles, room
        assert out[0][2][48:] == bytes(1232) and wire.l4_sum(out[0][2], 0, proto.NH_UDP, 1240) == 0xFFFF
        for _, _, d in out[1:]:
            assert d[0] == 0x60 and d[6] == proto.NH_NONE and d[24:40] == peer
        assert drops(c, "tx_full") == 0 or bubbles < 2




def test_a_new_destination_takes_the_last_entry_once_the_trusted_relay_is_30_s_silent():
    # one entry, holding the trusted relay: while it is valid (a reception
    # within 30 s, §5.2.4) a new destination does not evict it (§7.3.3) and
    # is refused, counted; from 30 s on the entry is reused for its test
    for at, tested in ((29999, False), (30000, True)):
        n = with_relay(max_peers=1)
        c = n.c
        sent(c)
        t = n.now
        r = c.send_udp(ip6("2001:db8::99"), 7, 7, b"x", t + at)
        out = sent(c)
        if tested:
            assert r == 0 and len(conn_tests(out)) == 1 and len(out) == 1
            assert conn_tests(out)[0][24:40] == ip6("2001:db8::99")
            assert c.peers.find(ip6(V6HOST), 0) == -1 and c.status()["peers"] == 1
        else:
            assert r == wire.QUEUE_FULL and out == [] and drops(c, "queue_full") == 1
            p = c.peers.find(ip6(V6HOST), 0)
            assert p == 0 and c.peers.v[p * NF + F_TRUSTED] and c.peers.find(ip6("2001:db8::99"), 0) == -1


def test_peers_in_use_stay_in_the_table():
    # LRU among entries that may go: a and b trusted, both silent for over
    # 30 s by the time a third peer comes; using a (sending to it or hearing
    # from it) makes b the least recently used
    for touch in ("send", "receive", None):
        n = qualified(max_peers=2)
        c = n.c
        sent(c)
        t = n.now
        a = _trusted_teredo_peer(c, 40001, t)
        b = _trusted_teredo_peer(c, 40002, t + 10)
        if touch == "send":
            assert c.send_udp(a, 9, 9, b"x", t + 20) == 0
            assert to(sent(c)) == [(PEER4, 40001)]
        elif touch == "receive":
            _trusted_teredo_peer(c, 40001, t + 20)
            assert sent(c) == []
        _trusted_teredo_peer(c, 40003, t + 30020)
        assert c.peers.find(addr.build_teredo(ip4(SERVER), 0, 40003, ip4(PEER4)), 0) >= 0, touch
        if touch:
            assert c.peers.find(a, 0) >= 0 and c.peers.find(b, 0) == -1, touch
        else:
            assert c.peers.find(a, 0) == -1 and c.peers.find(b, 0) >= 0


def test_connectivity_test_nonce_is_the_random_draws_in_order_for_any_entry():
    # one nonce for the whole test (§5.2.9): drawn once, at the entry's own
    # offset, sent again by every repeat, so a reply to any round counts
    for entries_before in (0, 1, 2):
        n = qualified()
        c = n.c
        sent(c)
        n.relay_up = False
        for i in range(entries_before):
            _trusted_teredo_peer(c, 41000 + i, n.now)
        c.rand = Seq([0x11A3, 0x33C5, 0x55E7, 0x7709])
        c.ping(ip6(V6HOST), 1, n.now)
        (t,) = conn_tests(sent(c))
        assert t[48:56] == bytes([0x11, 0xA3, 0x33, 0xC5, 0x55, 0xE7, 0x77, 0x09]), entries_before
        assert c.rand.i == 4
        # the next round sends the same nonce, drawing nothing
        c.rand = Seq([0x0102, 0x0304, 0x0506, 0x0708])
        c.on_timer(n.now + 2000)
        (t2,) = conn_tests(sent(c))
        assert t2[48:56] == t[48:56] and c.rand.i == 0
        wrong = bytearray(t2)
        wrong[55] ^= 1
        _reply_to_test(c, wrong, n.now + 2001)
        assert c.status()["relay"] is None
        _reply_to_test(c, t, n.now + 2002)  # the first round's reply, late: it counts
        assert c.status()["relay"] == RELAY + ":3544"


def test_random_source_giving_all_its_bits():
    # rand(n) may return any n-bit number: every use must ask for what it
    # can store (16 bits into two bytes, 10 for the refresh jitter)
    n = qualified()
    c = n.c
    sent(c)
    c.rand = lambda bits: (1 << bits) - 1
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("2001:db8::1"), c.address)
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now + 1)  # server contact: refresh rescheduled
    due = n.now + 1 + 30000 - (7500 * 1023 >> 10)
    assert c.next_deadline() == due
    c.on_timer(due)
    rs = [d for _, _, d in sent(c) if len(d) == 61]
    assert len(rs) == 1 and rs[0][4:12] == b"\xff" * 8
    assert c.ping(ip6(V6HOST), 1, due) == 0
    (t,) = conn_tests(sent(c))
    assert t[48:56] == b"\xff" * 8
