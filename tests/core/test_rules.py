# RFC 4380 §5.2.3 (reception) and §5.2.4 (transmission) rules against
# spoofing, with the gaps the other core tests leave: a Teredo source at the
# wrong port, look-alikes of the server, RAs from elsewhere or replayed,
# every non-global range, and connectivity-test replies that do not match.
# Against harness.Net with a fake clock, on CPython and MicroPython alike.
from teredo import addr, proto, wire
from teredo.client import EV_UDP
from teredo.peers import F_TRUSTED, NF
from harness import (NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Net, build_ra, ip4, ip6, qualified,
                     with_relay)
from harness import drops, sent

PEER4 = "198.51.100.77"
ATTACKER = "203.0.113.66"
# RFC 4380 §5.2.4's list, plus 100.64/10 and 240/4 (addr.is_global_ipv4)
NON_GLOBAL = ("0.1.2.3", "127.0.0.1", "10.1.1.1", "172.16.5.5", "172.31.0.1", "192.168.0.1",
              "169.254.1.1", "192.88.99.1", "224.0.0.1", "239.255.255.250", "255.255.255.255",
              "100.64.0.1", "240.0.0.1")


def feed(n, data, src, port):
    return n.c.on_datagram(data, len(data), ip4(src), port, n.now)


def peer_bubble(c, port, mapped=PEER4):
    b = bytearray(40)
    wire.build_bubble(b, 0, addr.build_teredo(ip4(SERVER), 0, port, ip4(mapped)), c.address)
    return bytes(b)


def origin_bubble(c, origin4, port=proto.PORT):
    """A bubble relayed by the server with an origin indication (§5.1.1)."""
    b = bytearray(48)
    wire.build_origin(b, 0, port, ip4(origin4))
    wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    return bytes(b)


def rs_nonces(n):
    """(cone bit, nonce, destination) of every RS the client sent."""
    out = []
    for e in n.log:
        if e[0] == "out" and e[2] == proto.PORT and e[3][1] == proto.AUTH_TYPE and e[3][53] == proto.ICMP_RS:
            d = e[3]
            out.append((d[13 + 16] & 0x80 != 0, d[4:12], e[1]))
    return out


def test_teredo_source_at_the_wrong_port_is_spoofed():
    n = qualified()
    c = n.c
    feed(n, peer_bubble(c, 40001), PEER4, 40002)  # the address says 40001
    assert drops(c, "spoofed") == 1 and c.status()["peers"] == 0
    feed(n, peer_bubble(c, 40001), PEER4, 40001)  # case 3: matches, trusted
    p = c.peers.find(peer_bubble(c, 40001), 8)
    assert p >= 0 and c.peers.addr[p] == (PEER4, 40001)
    # now trusted: the same source from another port or address is still refused
    feed(n, peer_bubble(c, 40001), PEER4, 40009)
    feed(n, peer_bubble(c, 40001), ATTACKER, 40001)
    assert drops(c, "spoofed") == 3
    assert c.peers.addr[p] == (PEER4, 40001)  # not re-pointed


def test_server_look_alikes_are_not_the_server():
    n = qualified("cone")
    c = n.c
    sent(c)
    last = c.last_server
    n.now += 500
    # an origin indication counts only from the server's address and port
    for src, port in ((SERVER, proto.PORT + 1), (RELAY, proto.PORT), (ATTACKER, proto.PORT)):
        feed(n, origin_bubble(c, "198.51.100.99"), src, port)
        assert sent(c) == [], (src, port)
    assert c.last_server == last
    assert drops(c, "untrusted") == 3
    # the genuine server: last interaction updated, bubble to the origin (§5.2.3)
    feed(n, origin_bubble(c, "198.51.100.99"), SERVER2, proto.PORT)
    assert c.last_server == n.now
    assert [(ip, port) for ip, port, _ in sent(c)] == [("198.51.100.99", proto.PORT)]


def test_ra_from_elsewhere_does_not_qualify():
    n = Net("restricted")
    n.server_up = False
    n.start()
    c = n.c
    _, nonce, _ = [x for x in rs_nonces(n) if not x[0]][-1]
    forged = build_ra(SERVER_LL, proto.LL_NONCONE, nonce, ip4(ATTACKER), 4444, ip4(SERVER))
    for src, port in ((RELAY, proto.PORT), (SERVER, proto.PORT + 1), (ATTACKER, proto.PORT)):
        feed(n, forged, src, port)
    st = c.status()
    assert st["state"] == "qualifying" and st["address"] is None
    assert drops(c, "not_qualified") == 3
    n.server_up = True
    n.run(9000)
    st = c.status()
    assert st["state"] == "qualified" and st["mapped"] == NAT_WAN + ":50000"
    # qualified: an RA with the current nonce from a non-server is refused too
    nonce = bytes(c.nonce_nc)
    forged = build_ra(SERVER_LL, proto.LL_NONCONE, nonce, ip4(ATTACKER), 4444, ip4(SERVER))
    changes = c.changes
    feed(n, forged, RELAY, proto.PORT)
    assert drops(c, "not_for_us") == 1
    assert c.changes == changes and c.status()["mapped"] == NAT_WAN + ":50000"


def test_replayed_ra_is_stale():
    n = qualified("restricted")
    c = n.c
    changes = c.changes
    # the RA the secondary address sent (the one that qualified us), again
    _, nonce, to = [x for x in rs_nonces(n) if not x[0]][-1]
    assert to == SERVER2
    genuine = build_ra(SERVER_LL, proto.LL_NONCONE, nonce, ip4(NAT_WAN), 50000, ip4(SERVER))
    feed(n, genuine, SERVER2, proto.PORT)
    assert drops(c, "ra_nonce") == 1 and c.changes == changes
    # the cone RA the restricted NAT dropped, arriving late: its nonce is
    # stale, so it cannot relabel the NAT as cone
    _, nonce, _ = [x for x in rs_nonces(n) if x[0]][0]
    late = build_ra(SERVER_LL, proto.LL_CONE, nonce, ip4(NAT_WAN), 50000, ip4(SERVER))
    feed(n, late, SERVER2, proto.PORT)
    st = c.status()
    assert drops(c, "ra_nonce") == 2 and st["nat"] == "restricted" and c.changes == changes


def test_no_datagram_to_any_non_global_address():
    n = qualified("cone")
    c = n.c
    sent(c)
    for i, a in enumerate(NON_GLOBAL):
        # an origin indication naming a non-global address: no bubble (§5.2.4)
        n.now += 1000
        feed(n, origin_bubble(c, a), SERVER, proto.PORT)
        # a Teredo peer whose mapped address is non-global (cases 4 and 5)
        for cone in (0, proto.FLAG_CONE):
            peer = addr.build_teredo(ip4(SERVER), cone, 40000 + i, ip4(a))
            assert c.send_udp(peer, 9, 9, b"x", n.now) == wire.NON_GLOBAL, a
            assert c.ping(peer, i, n.now) == wire.NON_GLOBAL, a
        assert sent(c) == [], a
    assert drops(c, "non_global") == len(NON_GLOBAL) * 5
    # control: a global origin gets its bubble
    feed(n, origin_bubble(c, "198.51.100.99"), SERVER, proto.PORT)
    assert len(sent(c)) == 1


def _test_sent(n):
    """The connectivity test (§5.2.9) the client sent to the server: its nonce."""
    tests = [e[3] for e in n.log if e[0] == "out" and e[1] == SERVER and e[3][6] == proto.NH_ICMPV6
             and e[3][40] == proto.ICMP_ECHO_REQUEST and e[3][24:40] == ip6(V6HOST)]
    assert len(tests) == 1
    return tests[0][48:56]


def _test_reply(c, nonce, src=V6HOST, spoil=False):
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(src), c.address, 0, 0, nonce, 8)
    if spoil:
        b[42] ^= 1  # the ICMPv6 checksum
    return bytes(b)


def test_connectivity_test_reply_must_match():
    n = qualified()
    c = n.c
    n.relay_up = False
    assert c.ping(ip6(V6HOST), 1, n.now) == 0
    n.flush()
    nonce = _test_sent(n)
    wrong = bytes([nonce[0] ^ 1]) + nonce[1:]
    n.now += 100
    feed(n, _test_reply(c, wrong), RELAY, proto.PORT)                 # wrong nonce
    feed(n, _test_reply(c, nonce, "2001:db8::bad"), RELAY, proto.PORT)  # another source
    feed(n, _test_reply(c, nonce, spoil=True), RELAY, proto.PORT)     # bad checksum
    p = c.peers.find(ip6(V6HOST), 0)
    assert p >= 0 and not c.peers.v[p * NF + F_TRUSTED]
    assert c.status()["relay"] is None and sent(c) == []
    assert drops(c, "checksum") == 1
    # control: the right reply makes the relay trusted and sends the ping
    feed(n, _test_reply(c, nonce), RELAY, proto.PORT)
    assert c.status()["relay"] == RELAY + ":3544"
    out = sent(c)
    assert [(ip, port) for ip, port, _ in out] == [(RELAY, proto.PORT)]
    assert out[0][2][40] == proto.ICMP_ECHO_REQUEST


def test_trusted_native_peer_not_repointed_by_another_source():
    n = qualified()
    c = n.c
    c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    assert c.status()["relay"] == RELAY + ":3544"
    c.bind(7)  # delivered, so nothing (no port unreachable) answers it
    b = bytearray(52)
    wire.build_udp6(b, 0, ip6(V6HOST), c.address, 53, 7, b"spam", 4)
    feed(n, bytes(b), ATTACKER, proto.PORT)  # §5.2.3 case 6 at most, never case 1
    p = c.peers.find(ip6(V6HOST), 0)
    assert c.peers.addr[p] == (RELAY, proto.PORT)
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", n.now) == 0
    assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)]


def test_spoofed_test_reply_without_a_test_is_dropped():
    # found by the fuzzer: a native peer entry left untrusted with no test
    # running (its queue was full) must not accept an echo reply (§5.2.3 case 2)
    n = Net("restricted")
    n.start()
    n.run(2000)
    n.relay_up = False
    for src in ("2001:db8::a", "2001:db8::b"):
        b = bytearray(56)
        wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(src), n.c.address, 1, 1, bytes(8), 8)
        n.c.on_datagram(bytes(b), 56, ip4(RELAY), proto.PORT, n.now)
        n.flush()
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6("2001:db8::b"), n.c.address, 0, 0, bytes(8), 8)
    n.c.on_datagram(bytes(b), 56, ip4("203.0.113.66"), 6666, n.now)
    st = n.c.status()
    assert st["relay"] is None


def test_no_bubble_to_port_zero():
    n = Net("restricted")
    n.start()
    n.run(2000)
    peer = addr.build_teredo(ip4(SERVER), 0, 0, ip4("198.51.100.77"))
    assert n.c.send_udp(peer, 9, 9, b"x", n.now) == wire.NON_GLOBAL
    n.flush()
    assert not [e for e in n.log if e[0] == "out" and e[2] == 0]


def test_bubble_with_rfc6081_trailers_from_a_teredo_peer_is_trusted():
    # review A3: Windows peers append trailers (RFC 6081 §4) to bubbles
    n = qualified()
    c = n.c
    c.bind(9)  # the UDP datagram below is for a bound port
    for i, tail in enumerate((b"\x01\x04\x01\x02\x03\x04", b"\x04\x04\x01\x00\x00\x00\x05\x02\x9c\x41")):
        d = peer_bubble(c, 40001 + i) + tail
        feed(n, d, PEER4, 40001 + i)
        p = c.peers.find(d, 8)
        assert p >= 0 and c.peers.v[p * NF + F_TRUSTED], tail
    # a malformed trailer drops the datagram, counted
    d = peer_bubble(c, 40009) + b"\x01\x04\x01"
    feed(n, d, PEER4, 40009)
    assert c.peers.find(d, 8) < 0 and drops(c, "trailer") == 1
    assert drops(c, "length") == 0
    # a trusted peer's UDP datagram with a trailer is delivered, without it
    b = bytearray(48 + 3)
    wire.build_udp6(b, 0, addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4)), c.address, 9, 9, b"abc", 3)
    d = bytes(b) + b"\x01\x04\x01\x02\x03\x04"
    assert feed(n, d, PEER4, 40001) == EV_UDP
    assert c.ev_len == 3 and d[c.ev_off:c.ev_off + 3] == b"abc"


def _tests_sent(n):
    return [e[3] for e in n.log if e[0] == "out" and e[1] == SERVER and e[3][6] == proto.NH_ICMPV6
            and e[3][40] == proto.ICMP_ECHO_REQUEST and e[3][24:40] == ip6(V6HOST)]


def test_connectivity_test_once_plus_three_repeats_with_one_nonce():
    # review A7: §5.2.4 case 2 "repeated up to 3 times", 2 s apart
    n = qualified()
    c = n.c
    n.relay_up = False
    assert c.ping(ip6(V6HOST), 1, n.now) == 0
    n.flush()
    n.run(7000)
    tests = _tests_sent(n)
    assert len(tests) == 4
    assert len(set(t[48:56] for t in tests)) == 1
    assert drops(c, "unreachable") == 0
    n.run(2000)
    assert drops(c, "unreachable") == 1 and len(_tests_sent(n)) == 4


def test_late_reply_to_the_first_test_still_counts():
    n = qualified()
    c = n.c
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    first = _tests_sent(n)[0][48:56]
    n.run(2500)  # repeated once already: an RTT over 2 s
    assert len(_tests_sent(n)) == 2
    sent(c)
    feed(n, _test_reply(c, first), RELAY, proto.PORT)
    assert c.status()["relay"] == RELAY + ":3544"
    assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)]  # the ping, dequeued


# ---- review issue 13, A2: §5.2.3 case 6 and §7.3.3 ---------------------------

def _echo_from(c, src6, i=0):
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, src6, c.address, 1, i, bytes(8), 8)
    return bytes(b)


def test_spoofed_native_sources_do_not_evict_the_trusted_relay():
    # the review's demo: 50 echo requests from new native sources, through
    # the server's address (no nonce needed to spoof that)
    n = with_relay()
    c = n.c
    n.log = []
    for i in range(50):
        feed(n, _echo_from(c, ip6("2001:db8:bad::%x" % (i + 1)), i), SERVER, proto.PORT)
        n.flush()
        n.now += 10
    p = c.peers.find(ip6(V6HOST), 0)
    assert p >= 0 and c.peers.v[p * NF + F_TRUSTED]  # still the relay's, still trusted
    # tests to third parties through the server: only as many as new entries
    # may be made (burst max_peers, then 5 per second)
    tests = [e for e in n.log if e[0] == "out" and e[1] == SERVER and e[3][6] == proto.NH_ICMPV6
             and e[3][40] == proto.ICMP_ECHO_REQUEST]
    assert 0 < len(tests) <= c.cfg["max_peers"] + 5  # client._PEER_RATE a second
    assert drops(c, "rate_limited") + drops(c, "queue_full") > 0
    # and the relay still carries our traffic directly
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", n.now) == 0
    assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)]


def test_non_global_native_sources_are_dropped():
    n = with_relay()
    c = n.c
    peers = c.peers.count()
    bad = ("ff02::1", "fe80::1", "::", "::1", "::ffff:198.51.100.9", "fc00::1", "fd12::1", "fec0::1")
    for i, a in enumerate(bad):
        for src, port in ((SERVER, proto.PORT), (RELAY, proto.PORT), (ATTACKER, 4000)):
            feed(n, _echo_from(c, ip6(a), i), src, port)
            assert sent(c) == [], (a, src)
    assert drops(c, "non_global") == len(bad) * 3
    assert c.peers.count() == peers
    # nor does the client send a connectivity test to such an address
    for a in bad:
        assert c.ping(ip6(a), 1, n.now) == wire.NON_GLOBAL
    assert sent(c) == [] and c.peers.count() == peers
