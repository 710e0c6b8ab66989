# Mutation tests for the client core (teredo/client.py), the second half of
# test_mut_client_b (split so that each fits a 32-bit heap of 96K): bubble
# rounds and limits, reply bubbles, the connectivity test, rank RAs, LRU,
# the NAT re-test.  On CPython and the MicroPython unix port alike.
from teredo import addr, proto, wire
from teredo.client import Client
from teredo.peers import F_PROBES
from harness import NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Net, Rand, build_ra, ip4, ip6
from harness import qualified, with_relay
from harness import arena_filled, drops, origin_packet, rs_sent_to as rs_to, sent, symmetric_retest



TEREDO_WAN = "198.51.100.77"


def direct_bubbles(out, wan=TEREDO_WAN):
    return len([1 for ip, port, d in out if ip == wan and d[6] == proto.NH_NONE])


def bubble_rounds(c, peer, t):
    """Send to a silent Teredo peer: how many direct bubbles in 8 s."""
    got = 0
    assert c.send_udp(peer, 9, 9, b"x", t) == 0
    got += direct_bubbles(sent(c))
    for dt in (2000, 4000, 6000, 8000):
        c.on_timer(t + dt)
        got += direct_bubbles(sent(c))
    return got


def test_four_bubbles_again_after_an_answer_or_after_300_s():
    n = qualified(refresh_s=3600)  # no refresh in the way
    c = n.c
    sent(c)
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(TEREDO_WAN))
    t = n.now
    assert bubble_rounds(c, peer, t) == 4
    # the peer's bubble makes it trusted (§5.2.3 case 3); it goes silent
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    c.on_datagram(b, 40, ip4(TEREDO_WAN), 40001, t + 9000)
    sent(c)
    assert bubble_rounds(c, peer, t + 40000) == 4
    # after 300 s without an answer, 4 more
    assert bubble_rounds(c, peer, t + 340000) == 4
    assert bubble_rounds(c, peer, t + 350000) == 0


def test_refresh_rs_with_the_arena_full_is_counted_not_sent():
    n = qualified()
    c = n.c
    sent(c)
    assert c.tx_alloc(1600) == 0
    before = drops(c, "tx_full")
    c.on_timer(c.deadline)
    assert drops(c, "tx_full") == before + 1
    assert sent(c) == []


def relayed_teredo(c, wan, port):
    """An echo request from a Teredo peer, relayed by our server without an origin indication."""
    src = addr.build_teredo(ip4(SERVER), 0, port, ip4(wan))
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, src, c.address, 1, 1, bytes(8), 8)
    return b


def test_reply_bubble_without_an_origin_to_any_entry_and_after_an_echo_reply():
    n = qualified()
    c = n.c
    sent(c)
    for wan in ("198.51.100.81", "198.51.100.82"):
        b = relayed_teredo(c, wan, 40001)
        c.on_datagram(b, 56, ip4(SERVER), proto.PORT, n.now)
        assert direct_bubbles(sent(c), wan) == 1, wan
    # the bubble after an echo reply in the same turn (second in the arena)
    n = with_relay()
    c = n.c
    sent(c)
    e = bytearray(56)
    wire.build_echo(e, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(8), 8)
    c.on_datagram(e, 56, ip4(RELAY), proto.PORT, n.now)
    c.on_datagram(origin_packet(c, "198.51.100.83", 3544), 48, ip4(SERVER), proto.PORT, n.now)
    out = sent(c)
    assert [ip for ip, port, d in out] == [RELAY, "198.51.100.83"]


def test_reply_bubble_with_the_arena_full_is_counted_not_sent():
    n, _ = arena_filled()
    c = n.c
    before = drops(c, "tx_full")
    c.on_datagram(origin_packet(c, "198.51.100.83", 3544), 48, ip4(SERVER), proto.PORT, n.now)
    assert drops(c, "tx_full") == before + 1
    out = sent(c)
    assert len(out) == 5 and len(c.arena) == 1600 and RELAY in [ip for ip, _, _ in out]


def test_no_bubble_within_2_s_of_sending_a_peer_its_queue():
    n = qualified()
    c = n.c
    sent(c)
    wan = "198.51.100.84"
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(wan))
    t = n.now
    assert c.send_udp(peer, 9, 9, b"x", t) == 0
    assert direct_bubbles(sent(c), wan) == 1
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    c.on_datagram(b, 40, ip4(wan), 40001, t + 1500)
    assert len(sent(c)) == 1  # the queued datagram
    b = relayed_teredo(c, wan, 40001)
    c.on_datagram(b, 56, ip4(SERVER), proto.PORT, t + 2500)
    out = sent(c)
    assert direct_bubbles(out, wan) == 0 and drops(c, "rate_limited") == 1


def conn_test(out):
    (d,) = [d for ip, port, d in out if ip == SERVER and port == proto.PORT and len(d) == 56
            and d[6] == proto.NH_ICMPV6 and d[40] == proto.ICMP_ECHO_REQUEST]
    return d


def test_connectivity_test_answered_from_a_new_address_is_used_whatever_the_table():
    h2 = "2001:db8:f::200"
    for new in (RELAY, "20.198.51.100", "51.100.21.0"):
        n = with_relay(queue_slots=2)
        c = n.c
        sent(c)
        t = n.now
        assert c.send_udp(ip6(h2), 9, 9, b"x", t) == 0
        d = conn_test(sent(c))
        r = bytearray(56)
        wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, ip6(h2), c.address, 0, 0, d[48:56], 8)
        c.on_datagram(r, 56, ip4("198.51.100.21"), proto.PORT, t + 10)
        assert [ip for ip, _, _ in sent(c)] == ["198.51.100.21"]
        assert c.peers.find(ip6(h2), 0) == 1
        # 30 s on: tested again, answered from elsewhere
        assert c.send_udp(ip6(h2), 9, 9, b"y", t + 31000) == 0
        d = conn_test(sent(c))
        wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, ip6(h2), c.address, 0, 0, d[48:56], 8)
        c.on_datagram(r, 56, ip4(new), proto.PORT, t + 31010)
        assert [ip for ip, _, _ in sent(c)] == [new], new


def silent_relay_test():
    """A qualified client pinging the IPv6 host while the relay is silent:
    (client, ping time, the connectivity test it sent)."""
    n = qualified()
    c = n.c
    n.relay_up = False
    sent(c)
    t = n.now
    c.ping(ip6(V6HOST), 1, t)
    return c, t, conn_test(sent(c))


def late_test_reply(steps, at):
    """A connectivity test with the relay silent, its timers run at steps
    (ms after the ping), then the relay's reply at `at`: the client."""
    c, t, d = silent_relay_test()
    for dt in steps:
        c.on_timer(t + dt)
        sent(c)
    r = bytearray(56)
    wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0, 0, d[48:56], 8)
    c.on_datagram(r, 56, ip4(RELAY), proto.PORT, t + at)
    return c


def test_late_connectivity_test_reply_after_giving_up_is_not_trusted():
    assert late_test_reply((2000, 4000, 6000, 8000), 8100).status()["relay"] is None


def test_connectivity_test_reply_in_its_last_2_s_is_trusted():
    assert late_test_reply((2000, 4000, 6000), 7900).status()["relay"] == RELAY + ":3544"


def test_a_failed_test_leaves_the_other_entries_alone():
    n = with_relay(queue_slots=2)
    c = n.c
    sent(c)
    t = n.now
    assert c.send_udp(ip6("2001:db8:f::200"), 9, 9, b"x", t) == 0
    for dt in (2000, 4000, 6000, 8000):
        c.on_timer(t + dt)
        sent(c)
    assert drops(c, "unreachable") == 1
    e = bytearray(56)
    wire.build_echo(e, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(8), 8)
    for dt in (10000, 20000, 30000, 40000, 50000):
        c.on_datagram(e, 56, ip4(RELAY), proto.PORT, t + dt)
        assert [(ip, d[40]) for ip, _, d in sent(c)] == [(RELAY, proto.ICMP_ECHO_REPLY)], dt


def test_connectivity_test_reply_behind_an_auth_header_is_trusted():
    c, t, d = silent_relay_test()
    r = bytearray(69)
    k = wire.build_auth(r, 0, bytes(8))
    wire.build_echo(r, k, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0, 0, d[48:56], 8)
    c.on_datagram(r, k + 56, ip4(RELAY), proto.PORT, t + 10)
    assert c.status()["relay"] == RELAY + ":3544"


S3 = "198.51.100.30"


def two_servers():
    c = Client(SERVER + "," + S3, rand=Rand(3), queue_slots=1)
    c.start(1000)
    out = sent(c)
    (rs3,) = rs_to(out, S3)
    return c, rs3


def test_rank_ra_from_the_other_server_sets_the_mapping_and_mtu():
    c, rs3 = two_servers()
    ra = build_ra(SERVER_LL, rs3[13 + 8:13 + 24], rs3[4:12], ip4(NAT_WAN), 50000, ip4(S3))
    c.on_datagram(ra, len(ra), ip4(S3), proto.PORT, 1010)
    st = c.status()
    assert st["state"] == "qualified" and st["server"] == S3 and st["mapped"] == NAT_WAN + ":50000", st
    assert c.mtu == 1280


def test_short_icmpv6_from_the_other_server():
    for extra, dropped in ((0, "not_qualified"), (1, "ra_invalid")):
        c, rs3 = two_servers()
        b = bytearray(8 + 40 + extra)
        wire.build_origin(b, 0, 50000, ip4(NAT_WAN))
        wire.build_ipv6(b, 8, extra, proto.NH_ICMPV6, 255, SERVER_LL, rs3[13 + 8:13 + 24])
        if extra:
            b[48] = proto.ICMP_RA
        c.on_datagram(bytes(b), len(b), ip4(S3), proto.PORT, 1010)
        st = c.status()
        assert st["state"] == "qualifying" and sum(st["drops"].values()) == 1, st
        assert dropped in st["drops"], st


def lru_pair(c, t, resend_a, answer_a):
    """Two Teredo peers A (entry 0) and B (entry 1) of a 2-entry table; A
    is used again or answers 200 ms on; then a third peer C needs an entry."""
    a = addr.build_teredo(ip4(SERVER), 0, 40001, ip4("198.51.100.91"))
    b = addr.build_teredo(ip4(SERVER), 0, 40002, ip4("198.51.100.92"))
    assert c.send_udp(a, 9, 9, b"a", t) == 0
    assert c.send_udp(b, 9, 9, b"b", t + 100) == 0
    if resend_a:
        assert c.send_udp(a, 9, 9, b"a", t + 200) == 0
    if answer_a:
        k = bytearray(40)
        wire.build_bubble(k, 0, a, c.address)
        c.on_datagram(k, 40, ip4("198.51.100.91"), 40001, t + 200)
    for dt in range(2000, 10001, 2000):
        c.on_timer(t + dt)
    sent(c)
    cc = addr.build_teredo(ip4(SERVER), 0, 40003, ip4("198.51.100.93"))
    assert c.send_udp(cc, 9, 9, b"c", t + 40000) == 0
    return c.peers.find(a, 0), c.peers.find(b, 0), c.peers.find(cc, 0)


def test_the_least_recently_used_entry_is_replaced():
    for resend_a, answer_a in ((True, False), (False, True)):
        n = qualified(max_peers=2, queue_slots=2, refresh_s=3600)
        c = n.c
        sent(c)
        pa, pb, pc = lru_pair(c, n.now, resend_a, answer_a)
        assert pa == 0 and pb < 0 and pc == 1, (resend_a, pa, pb, pc)


def test_a_peer_answering_from_a_new_port_equal_to_another_entrys_field():
    # the stored port compared is the peer's own, whatever the other entries hold
    h2 = ip6("2001:db8:f::200")
    n = with_relay(queue_slots=2)
    c = n.c
    sent(c)
    t = n.now
    assert c.send_udp(h2, 9, 9, b"x", t) == 0
    d = conn_test(sent(c))
    r = bytearray(56)
    wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, h2, c.address, 0, 0, d[48:56], 8)
    c.on_datagram(r, 56, ip4(RELAY), proto.PORT, t + 10)
    assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, proto.PORT)]
    # both expired: the relay's entry (0) is tested again, 4 rounds left
    assert c.send_udp(ip6(V6HOST), 9, 9, b"y", t + 31000) == 0
    assert c.send_udp(h2, 9, 9, b"z", t + 31000) == 0
    (d,) = [d for ip, port, d in sent(c) if len(d) == 56 and bytes(d[24:40]) == h2]
    assert c.peers.v[F_PROBES] == 4  # entry 0
    wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, h2, c.address, 0, 0, d[48:56], 8)
    c.on_datagram(r, 56, ip4(RELAY), 4, t + 31010)
    assert [(ip, port) for ip, port, _ in sent(c)] == [(RELAY, 4)]


def test_cone_ra_from_the_primary_address_proves_nothing():
    n = Net("cone")
    c = n.c
    c.start(n.now)
    rs = rs_to(sent(c), SERVER)
    (cone,) = [d for d in rs if d[13 + 16] & 0x80]
    ra = build_ra(SERVER_LL, cone[13 + 8:13 + 24], cone[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now + 5)
    st = c.status()
    assert st["nat"] == "unknown" and st["state"] == "qualifying" and drops(c, "ra_invalid") == 1, st


def test_losing_the_address_while_requalifying_is_a_change():
    n = qualified()
    c = n.c
    sent(c)
    c.start(n.now)  # the shell restarts the client: the address stays until an answer
    assert c.status()["state"] == "qualifying" and c.status()["address"] is not None
    before = c.changes
    c.set_servers([[ip4("198.51.100.30"), ip4("198.51.100.31")]])
    assert c.status()["address"] is None and c.changes != before


def test_a_server_differing_in_its_last_byte_is_another_server():
    n = qualified()
    c = n.c
    assert c.status()["nat"] == "restricted"
    sent(c)
    s12 = "198.51.100.12"
    c.set_servers([[ip4(s12), ip4("198.51.100.13")]])
    out = sent(c)
    (rs,) = [d for d in rs_to(out, s12) if not d[13 + 16] & 0x80]
    ra = build_ra(SERVER_LL, rs[13 + 8:13 + 24], rs[4:12], ip4(NAT_WAN), 50000, ip4(s12))
    c.on_datagram(ra, len(ra), ip4(s12), proto.PORT, n.now + 5)
    st = c.status()
    assert st["state"] == "qualified" and st["server"] == s12, st
    assert st["nat"] == "unknown"  # a new server: the NAT type is tested again


def test_cone_ra_answering_the_rs_to_the_secondary_is_refused_while_retesting():
    n, t = symmetric_retest()
    c = n.c
    (rs2,) = rs_to(sent(c), SERVER2)
    ra = build_ra(SERVER_LL, proto.LL_CONE, rs2[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, t + 10)
    st = c.status()
    assert st["state"] == "qualifying" and st["nat"] == "symmetric" and drops(c, "ra_invalid") == 1, st


def answer(c, rs, src, port, now, ll=None):
    """The server at src answers the RS rs: our mapping NAT_WAN:port."""
    dst = ll if ll is not None else rs[13 + 8:13 + 24]
    ra = build_ra(SERVER_LL, dst, rs[4:12], ip4(NAT_WAN), port, ip4(SERVER if src == SERVER2 else src))
    c.on_datagram(ra, len(ra), ip4(src), proto.PORT, now)


def test_a_late_rank_ra_during_the_symmetric_retest_is_not_used():
    c = Client(SERVER + "," + S3, rand=Rand(3), queue_slots=1, symmetric_retry_ms=20000)
    t = 1000
    c.start(t)
    (rs,) = [d for d in rs_to(sent(c), SERVER) if not d[13 + 16] & 0x80]
    answer(c, rs, SERVER, 50000, t + 5)
    c.on_timer(t + 4005)
    (rs2,) = rs_to(sent(c), SERVER2)
    answer(c, rs2, SERVER2, 50001, t + 4010, proto.LL_NONCONE)
    (rs,) = rs_to(sent(c), SERVER)
    answer(c, rs, SERVER, 50000, t + 4015)
    assert c.status()["state"] == "symmetric"
    t = c.deadline
    c.on_timer(t)
    out = sent(c)
    (rs,) = rs_to(out, SERVER)
    (rs3,) = rs_to(out, S3)
    answer(c, rs, SERVER, 50000, t + 5)
    (rs2,) = rs_to(sent(c), SERVER2)
    answer(c, rs2, SERVER2, 50001, t + 10, proto.LL_NONCONE)
    assert len(rs_to(sent(c), SERVER)) == 1  # the primary asked again
    answer(c, rs3, S3, 50000, t + 15)  # the other server's answer to the first RS, late
    st = c.status()
    assert st["server"] == SERVER and st["state"] == "qualifying", st
    assert st["servers"][1]["state"] == "answered"
