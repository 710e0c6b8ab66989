# Mutation tests for the client core (teredo/client.py, from _forget_address
# on): the ICMPv6 port unreachable to its byte, origin bubbles and their
# remembered origins, drop reasons handed back to the caller, the token
# buckets and random draws at their edges.  On CPython and the MicroPython
# unix port alike.
from teredo import proto, wire
from teredo.client import EV_NONE, EV_TCP, EV_UDP
from harness import NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Net, build_ra, ip4, ip6
from harness import TICKS_MASK, qualified, with_relay
from harness import arena_filled, drops, origin_packet, rs_sent_to as rs_to, sent, symmetric_retest


def udp(c, src, dport, size, hop=64):
    """A UDP datagram of size bytes in all (IPv6 header included) to us."""
    dl = size - 48
    b = bytearray(size)
    wire.build_udp6(b, 0, ip6(src) if isinstance(src, str) else src, c.address, 5000, dport,
                    bytes(dl), dl)
    b[7] = hop
    return b


def reset_sum(b, plen):
    wire.set_l4_checksum(b, 0, b[6], plen, 42 if b[6] == proto.NH_ICMPV6 else 46)


def test_port_unreachable_quotes_at_most_1232_bytes():
    n = with_relay()
    c = n.c
    sent(c)
    for size, quoted in ((100, 100), (1231, 1231), (1232, 1232), (1233, 1232), (1300, 1232)):
        b = udp(c, V6HOST, 9, size)
        for i in range(48, size):
            b[i] = (i * 7) & 0xFF
        reset_sum(b, size - 40)
        before = drops(c, "no_port")
        c.on_datagram(b, size, ip4(RELAY), proto.PORT, n.now)
        assert drops(c, "no_port") == before + 1
        out = sent(c)
        assert len(out) == 1, (size, out)
        ip, port, d = out[0]
        assert (ip, port) == (RELAY, proto.PORT)
        assert len(d) == 48 + quoted, (size, len(d))
        assert d[6] == proto.NH_ICMPV6 and d[40] == proto.ICMP_DST_UNREACH
        assert d[41] == proto.ICMP_PORT_UNREACH
        assert bytes(d[44:48]) == bytes(4)
        assert bytes(d[48:]) == bytes(b[:quoted])
        assert bytes(d[24:40]) == ip6(V6HOST) and bytes(d[8:24]) == bytes(c.address)
        assert wire.l4_sum(d, 0, proto.NH_ICMPV6, 8 + quoted) == 0xFFFF
        n.now += 200  # the bucket: 10 a second


def test_port_unreachable_whatever_the_hop_limit_and_source_bytes():
    n = with_relay()
    c = n.c
    sent(c)
    # hop limit 255, 0xFF in the source's second byte, 0xFF 8 bytes from the end
    b = udp(c, V6HOST, 9, 100, hop=255)
    b[92] = 0xFF
    reset_sum(b, 60)
    c.on_datagram(b, 100, ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert len(out) == 1 and out[0][2][40] == proto.ICMP_DST_UNREACH
    n.now += 200
    b = udp(c, "20ff::1", 9, 100)
    reset_sum(b, 60)
    before = len(c.peers.addr) and c.peers.count()
    c.on_datagram(b, 100, ip4(RELAY), proto.PORT, n.now)
    # an untrusted native source: the answer waits for a connectivity test
    out = sent(c)
    assert len(out) == 1 and out[0][2][40] == proto.ICMP_ECHO_REQUEST, out
    assert c.peers.count() == before + 1


def test_port_unreachable_shares_the_arena_to_its_byte():
    n = with_relay()
    c = n.c
    sent(c)
    b = udp(c, V6HOST, 9, 1300)
    for i in range(48, 1300):
        b[i] = 0x5A
    reset_sum(b, 1260)
    c.on_datagram(b, 1300, ip4(RELAY), proto.PORT, n.now)  # 1280 bytes of the arena
    # an echo request of 320 bytes: its reply takes the last 320, exactly
    e = bytearray(320)
    wire.build_echo(e, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(272), 272)
    c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert len(out) == 2, out
    d = out[0][2]
    assert len(d) == 1280 and d[1279] == 0x5A and wire.l4_sum(d, 0, proto.NH_ICMPV6, 1240) == 0xFFFF
    assert len(out[1][2]) == 320 and out[1][2][40] == proto.ICMP_ECHO_REPLY
    assert drops(c, "tx_full") == 0
    n.now += 200
    # second in a turn: after an echo reply
    c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    b = udp(c, V6HOST, 9, 100)
    reset_sum(b, 60)
    c.on_datagram(b, 100, ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert len(out) == 2 and len(out[1][2]) == 148 and out[1][2][40] == proto.ICMP_DST_UNREACH
    n.now += 200
    # the arena full: counted once, nothing sent
    c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    for _ in range(3):
        c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    b = udp(c, V6HOST, 9, 1300)
    reset_sum(b, 1260)
    before = drops(c, "tx_full")
    c.on_datagram(b, 1300, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "tx_full") == before + 1
    out = sent(c)
    assert len(out) == 4 and [d[40] for _, _, d in out] == [proto.ICMP_ECHO_REPLY] * 4


def bubbles_to(c, n, origins, now):
    got = []
    for o in origins:
        b = origin_packet(c, o, 3544)
        c.on_datagram(b, 48, ip4(SERVER), proto.PORT, now)
        for ip, _, d in sent(c):
            if d[6] == proto.NH_NONE and len(d) == 40:
                got.append(ip)
    return got


def test_origins_are_told_apart_by_every_byte():
    pairs = (("198.51.7.9", "203.51.7.9"), ("198.51.7.9", "198.52.7.9"),
             ("198.51.7.9", "198.51.8.9"), ("198.51.7.9", "198.51.7.10"),
             ("3.0.0.1", "2.128.0.1"), ("9.9.3.0", "9.9.2.128"), ("9.1.3.0", "9.3.3.0"))
    for a, b in pairs:
        n = qualified()
        c = n.c
        sent(c)
        assert bubbles_to(c, n, (a, b, a, b), n.now) == [a, b], (a, b)


def test_origins_remembered_are_the_last_four():
    n = qualified()
    c = n.c
    sent(c)
    o = ["198.51.7.%d" % i for i in range(1, 6)]
    t = n.now
    assert bubbles_to(c, n, o[:4], t) == o[:4]
    assert bubbles_to(c, n, o[:4], t + 1) == []
    assert bubbles_to(c, n, [o[4]], t + 1) == [o[4]]
    assert bubbles_to(c, n, o[1:4], t + 2) == []
    assert bubbles_to(c, n, [o[0]], t + 2) == [o[0]]
    assert bubbles_to(c, n, [o[4], o[2], o[3]], t + 3) == []
    assert bubbles_to(c, n, [o[1]], t + 3) == [o[1]]


def test_origin_bubble_again_exactly_2_s_later():
    n = qualified()
    c = n.c
    sent(c)
    t = n.now
    assert bubbles_to(c, n, [RELAY], t) == [RELAY]
    assert bubbles_to(c, n, [RELAY], t + 1999) == []
    assert bubbles_to(c, n, [RELAY], t + 2000) == [RELAY]


def udp_with_sum(c, src, dport, want, size=60):
    """A UDP datagram of size bytes whose checksum field is want."""
    b = udp(c, src, dport, size)
    wire.set_l4_checksum(b, 0, proto.NH_UDP, size - 40, 46)
    s0 = (~((b[46] << 8) | b[47])) & 0xFFFF
    x = (((~want) & 0xFFFF) - s0) % 0xFFFF
    b[56] = x >> 8
    b[57] = x & 0xFF
    b[46] = want >> 8
    b[47] = want & 0xFF
    assert wire.l4_sum(b, 0, proto.NH_UDP, size - 40) == 0xFFFF
    return b


def test_udp_checksum_zero_in_either_byte_alone_is_valid():
    n = with_relay()
    c = n.c
    c.bind(7)
    for want, size in ((0x1200, 60), (0x0012, 60), (0x0100, 100), (0x0001, 100), (0x0012, 100)):
        b = udp_with_sum(c, V6HOST, 7, want, size)
        # zeros 46 and 47 bytes from the end too
        assert b[size - 46] == 0 and b[size - 47] == 0 or size == 60
        assert c.on_datagram(b, size, ip4(RELAY), proto.PORT, n.now) == EV_UDP, hex(want)
        assert c.ev_len == size - 48 and c.ev_off == 48 and c.ev_dport == 7 and c.ev_sport == 5000
    b = udp_with_sum(c, V6HOST, 7, 0x1200)
    b[46] = 0
    b[47] = 0
    before = drops(c, "checksum")
    assert c.on_datagram(b, 60, ip4(RELAY), proto.PORT, n.now) == EV_NONE
    assert drops(c, "checksum") == before + 1


def test_udp_of_8_bytes_and_of_308_and_a_source_of_2100_3():
    n = with_relay()
    c = n.c
    c.bind(7)
    for src, size in ((V6HOST, 48), (V6HOST, 356), ("2101:db8::1", 60), ("3fff::1", 60)):
        b = udp(c, src, 7, size)
        reset_sum(b, size - 40)
        assert c.on_datagram(b, size, ip4(RELAY), proto.PORT, n.now) == EV_UDP, (src, size)
        assert c.ev_len == size - 48 and c.ev_src == 8
    b = udp(c, V6HOST, 7, 356)
    b[44] ^= 2  # the UDP length's high byte
    reset_sum(b, 316)
    before = drops(c, "length")
    assert c.on_datagram(b, 356, ip4(RELAY), proto.PORT, n.now) == EV_NONE
    assert drops(c, "length") == before + 1


def test_tcp_event_fields_bare_and_behind_an_origin_indication():
    n = with_relay()
    c = n.c
    b = bytearray(68)
    wire.build_ipv6(b, 8, 20, proto.NH_TCP, 64, ip6(V6HOST), c.address)
    assert c.on_datagram(memoryview(b)[8:], 60, ip4(RELAY), proto.PORT, n.now) == EV_TCP
    assert (c.ev_src, c.ev_off, c.ev_len) == (8, 0, 60)
    wire.build_origin(b, 0, proto.PORT, ip4(RELAY))
    assert c.on_datagram(b, 68, ip4(SERVER), proto.PORT, n.now) == EV_TCP
    assert (c.ev_src, c.ev_off, c.ev_len) == (16, 8, 60)


def test_port_unreachable_behind_an_origin_indication_quotes_the_ipv6_packet():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(108)
    wire.build_origin(b, 0, proto.PORT, ip4(RELAY))
    b[8:] = udp(c, V6HOST, 9, 100)
    for i in range(56, 108):
        b[i] = i
    wire.set_l4_checksum(b, 8, proto.NH_UDP, 60, 54)
    c.on_datagram(b, 108, ip4(SERVER), proto.PORT, n.now)
    out = [d for ip, port, d in sent(c) if d[6] == proto.NH_ICMPV6]
    assert len(out) == 1 and len(out[0]) == 148 and bytes(out[0][48:]) == bytes(b[8:])


def test_echo_reply_with_another_ident_is_unsupported():
    n = with_relay()
    c = n.c
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0x1234, 1, bytes(8), 8)
    before = drops(c, "unsupported")
    assert c.on_datagram(b, 56, ip4(RELAY), proto.PORT, n.now) == EV_NONE
    assert drops(c, "unsupported") == before + 1
    # a destination unreachable whose bytes 4..5 happen to be our ident
    b = bytearray(56)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, c.cfg["ping_ident"], 1, bytes(8), 8)
    b[40] = proto.ICMP_DST_UNREACH
    reset_sum(b, 16)
    assert c.on_datagram(b, 56, ip4(RELAY), proto.PORT, n.now) == EV_NONE
    assert drops(c, "unsupported") == before + 2


def test_echo_request_with_the_arena_full_is_counted():
    n, e = arena_filled()
    c = n.c
    before = drops(c, "tx_full")
    c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "tx_full") == before + 1
    assert len(c.arena) == 1600 and len(sent(c)) == 5


def test_send_to_an_address_of_2100_3_is_global():
    n = qualified()
    c = n.c
    sent(c)
    assert c.send_udp(ip6("2101:db8::1"), 7, 7, b"x", n.now) == 0
    assert drops(c, "non_global") == 0 and c.peers.count() == 1


def test_drop_reasons_handed_back_by_send_udp():
    # every entry valid and trusted: no room for a new destination
    n = with_relay(max_peers=1)
    c = n.c
    sent(c)
    n.now += 300
    assert c.send_udp(ip6("2001:db8::99"), 7, 7, b"x", n.now) == wire.QUEUE_FULL
    assert sent(c) == [] and c.peers.count() == 1
    # new entries come 2 at a burst here
    n = qualified(max_peers=2, queue_slots=4)
    c = n.c
    sent(c)
    assert c.send_udp(ip6("2001:db8::91"), 7, 7, b"x", n.now) == 0
    assert c.send_udp(ip6("2001:db8::92"), 7, 7, b"x", n.now) == 0
    before = drops(c, "rate_limited")
    assert c.send_udp(ip6("2001:db8::93"), 7, 7, b"x", n.now) == wire.RATE_LIMITED
    assert drops(c, "rate_limited") == before + 1


def test_a_queue_buffer_held_by_entry_0_is_not_free():
    n = qualified()  # one queue buffer
    c = n.c
    sent(c)
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", n.now) == 0
    assert c.peers.qowner[0] == 0
    assert c.send_udp(ip6("2001:db8::99"), 7, 7, b"x", n.now) == wire.QUEUE_FULL
    assert c.peers.count() == 1


def test_echo_bucket_of_1000_is_full_at_exactly_1000():
    n = with_relay(echo_rate=1, echo_burst=1000)
    c = n.c
    sent(c)
    e = bytearray(56)
    wire.build_echo(e, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(8), 8)
    c.on_datagram(e, 56, ip4(RELAY), proto.PORT, n.now)
    assert len(sent(c)) == 1
    # 1.5 s at 1 a second refills 1.5 tokens: the bucket holds 1000, not 1000.5
    n.now += 1500
    got = 0
    for _ in range(1001):
        c.on_datagram(e, 56, ip4(RELAY), proto.PORT, n.now)
        got += len(sent(c))
    assert got == 1000 and drops(c, "rate_limited") == 1
    n.now += 600
    c.on_datagram(e, 56, ip4(RELAY), proto.PORT, n.now)
    assert sent(c) == [] and drops(c, "rate_limited") == 2
    n.now += 400
    c.on_datagram(e, 56, ip4(RELAY), proto.PORT, n.now)
    assert len(sent(c)) == 1


def secondary_ra(c, rs2, wan, port):
    return build_ra(SERVER_LL, proto.LL_NONCONE, rs2[4:12], ip4(wan), port, ip4(SERVER))


def test_secondary_answering_its_second_rs_gives_the_nat_type():
    n = Net("restricted")
    n.server2_up = False
    c = n.c
    n.start()
    t = n.now
    c.on_timer(t + 4000)
    assert len(rs_to(sent(c), SERVER2)) == 1
    c.on_timer(t + 8000)
    (rs2,) = rs_to(sent(c), SERVER2)
    before = c.changes
    ra = secondary_ra(c, rs2, NAT_WAN, 50000)
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, t + 8010)
    assert c.status()["nat"] == "restricted" and drops(c, "ra_nonce") == 0
    assert c.changes != before


def test_cone_ra_after_the_primary_answer_is_a_change():
    n = Net("cone")
    c = n.c
    c.start(n.now)
    out = sent(c)
    rs = rs_to(out, SERVER)
    assert len(rs) == 2
    cone = [d for d in rs if d[13 + 16] & 0x80][0]
    nc = [d for d in rs if not d[13 + 16] & 0x80][0]
    ra = build_ra(SERVER_LL, nc[13 + 8:13 + 24], nc[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now)
    assert c.status()["state"] == "qualified" and c.status()["nat"] == "unknown"
    before = c.changes
    ra = build_ra(SERVER_LL, cone[13 + 8:13 + 24], cone[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 5)
    assert c.status()["nat"] == "cone" and c.changes != before


def mapping_differs(n):
    """The secondary sees another port: the primary is asked again (§5.2.1)."""
    c = n.c
    n.server2_up = False
    n.start()
    t = n.now
    c.on_timer(t + 4000)
    (rs2,) = rs_to(sent(c), SERVER2)
    ra = secondary_ra(c, rs2, NAT_WAN, 50001)
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, t + 4010)
    out = sent(c)
    (rs,) = rs_to(out, SERVER)
    return t + 4010, rs


def test_asking_the_primary_again_retries_3_times_4_s_apart():
    n = Net("restricted")
    c = n.c
    t, rs = mapping_differs(n)
    assert c.next_deadline() == t + 4000
    c.on_timer(t)  # the same millisecond: nothing is due
    assert sent(c) == []
    got = []
    for dt in (100, 3999, 4000, 7999, 8000, 11999):
        c.on_timer(t + dt)
        out = sent(c)
        got.append((len(rs_to(out, SERVER)), len(rs_to(out, SERVER2)), len(out)))
    assert got == [(0, 0, 0), (0, 0, 0), (1, 0, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0)], got
    assert c.status()["state"] == "qualified"
    c.on_timer(t + 12000)
    assert sent(c) == [] and c.status()["state"] == "offline"
    assert "refreshes" in c.status()["error"]


def test_primary_seeing_another_address_byte_is_not_symmetric():
    n = Net("restricted")
    c = n.c
    t, rs = mapping_differs(n)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, rs[4:12], ip4("203.0.113.8"), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, t + 10)
    st = c.status()
    assert st["state"] != "symmetric" and st["nat"] != "symmetric", st


def test_rtt_of_the_server_is_its_rs_ra_round_trip():
    n = qualified()
    assert n.c.status()["servers"][0]["rtt_ms"] == 0
    assert n.c.status()["nat"] == "restricted"


def test_without_the_cone_probe_three_rs_to_the_secondary_from_the_first_ra():
    n = Net("restricted", cone_probe=False)
    n.server2_up = False
    c = n.c
    c.start(n.now)
    out = sent(c)
    (rs,) = rs_to(out, SERVER)
    ra = build_ra(SERVER_LL, rs[13 + 8:13 + 24], rs[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    t = n.now + 5
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, t)
    got = [len(rs_to(sent(c), SERVER2))]
    for dt in (1, 3999, 4000, 7999, 8000, 11999):
        c.on_timer(t + dt)
        got.append(len(rs_to(sent(c), SERVER2)))
    assert got == [1, 0, 0, 1, 0, 1, 0], got
    assert c.status()["warning"] is None
    c.on_timer(t + 12000)
    assert SERVER2 in c.status()["warning"]


def test_after_symmetric_the_first_ra_waits_for_the_nat_test():
    n, t = symmetric_retest()
    c = n.c
    st = c.status()
    assert st["state"] == "qualifying" and st["address"] is None, st
    out = sent(c)
    assert len(rs_to(out, SERVER2)) == 1 and len(out) == 1
    # no new qualification until the NAT test says so
    for dt in (5, 100):
        c.on_timer(t + dt)
        assert sent(c) == []
    assert c.next_deadline() == t + 5 + 4000


def test_a_new_mapping_forgets_the_nat_type_and_tests_it_again():
    n = qualified()
    c = n.c
    assert c.status()["nat"] == "restricted"
    n.base_port = 50001  # the NAT rebooted: a new mapping
    n.server2_up = False
    t = c.deadline
    n.now = t
    c.on_timer(t)
    n.flush()
    st = c.status()
    assert st["state"] == "qualified" and st["mapped"] == NAT_WAN + ":50001", st
    assert st["nat"] == "unknown"
    assert len(rs_to([e[1:] for e in n.sent("out")[-2:]], SERVER2)) == 1
    n.server2_up = True
    n.run(5000)
    assert c.status()["nat"] == "restricted"


def test_restart_right_after_writing_the_secondary_at_tick_0_sends_no_cone_rs():
    n = Net("restricted", now=TICKS_MASK - 3999)
    c = n.c
    n.start()
    n.run(4000)
    assert c.s2_t == 0 and len(rs_to([e[1:] for e in n.sent("out")], SERVER2)) == 1
    c.stop("test")
    c.start(n.now)
    rs = rs_to(sent(c), SERVER)
    assert len(rs) == 1 and not rs[0][13 + 16] & 0x80
