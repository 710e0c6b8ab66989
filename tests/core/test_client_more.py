# More of the client at its edges, from the mutants `make mutate` found
# alive: the secondary server address past a carry, the status counters,
# RSs to the secondary, late and misplaced RAs, a symmetric NAT that changes
# only the address, the token buckets to the millisecond, two silent peers'
# bubble rounds side by side, a queue slot reused while its packets are still
# in the ring.  On CPython and the MicroPython unix port alike.
from teredo import addr, proto, wire
from teredo.client import Client
from harness import NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Net, Rand, build_ra, ip4, ip6, \
    qualified, with_relay
from harness import Seq, drops, sent, to

PEER4 = "198.51.100.77"


def rs_to(out, server):
    return [d for ip, port, d in out if ip == server and len(d) == 61 and d[53] == proto.ICMP_RS]


def echo(c, src, typ=proto.ICMP_ECHO_REQUEST, ident=0x1234, seq=1, data=bytes(8)):
    b = bytearray(48 + len(data))
    wire.build_echo(b, 0, typ, src, c.address, ident, seq, data, len(data))
    return b


def test_secondary_address_carries_into_every_byte():
    for server, second in (("198.255.255.255", "199.0.0.0"), ("198.51.255.255", "198.52.0.0"),
                           ("198.51.100.255", "198.51.101.0"), ("198.51.100.10", "198.51.100.11")):
        assert Client(server, rand=Rand(1)).status()["server2"] == second, server


def test_status_counts_every_datagram_sent_and_received():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(n.now)
    assert len(sent(c)) == 2 and c.status()["tx"] == 2 and c.status()["rx"] == 0
    c.on_timer(n.now + 4000)
    assert len(sent(c)) == 2 and c.status()["tx"] == 4


def test_changes_counter_moves_on_state_and_relay_changes():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(n.now)
    k = c.changes
    for dt in (4000, 8000, 12000):
        c.on_timer(n.now + dt)
    assert c.status()["state"] == "offline" and c.changes > k  # a state change only
    n = qualified()
    c = n.c
    k = c.changes
    c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    assert c.status()["relay"] == RELAY + ":3544" and c.changes > k  # the relay only


def test_rs_nonce_is_the_random_draws_in_order():
    n = Net("restricted")
    c = n.c
    c.rand = Seq([0x11A3, 0x33C5, 0x55E7, 0x7709])
    c.start(n.now)
    for d in rs_to(sent(c), SERVER):
        assert d[4:12] == bytes([0x11, 0xA3, 0x33, 0xC5, 0x55, 0xE7, 0x77, 0x09])


def test_late_ra_after_giving_up_is_stale():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(n.now)
    for dt in (4000, 8000):
        c.on_timer(n.now + dt)
    out = sent(c)
    nonce = rs_to(out, SERVER)[-1][4:12]
    c.on_timer(n.now + 12000)
    assert c.status()["state"] == "offline"
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, nonce, ip4(NAT_WAN), 50000, ip4(SERVER))
    changes = c.changes
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now + 12500)
    assert c.status()["state"] == "offline" and sent(c) == [] and c.changes == changes
    assert c.next_deadline() == n.now + 12000 + c.cfg["backoff_min_ms"]


def test_losing_the_address_forgets_the_peers():
    n = with_relay(refresh_s=30)
    c = n.c
    assert c.status()["peers"] == 1
    n.base_port = 51000  # the NAT rebooted
    n.opened = []
    n.run(35000)
    st = c.status()
    assert st["mapped"] == NAT_WAN + ":51000" and st["relay"] is None and st["peers"] == 0


def test_ping_larger_than_the_arena():
    n = with_relay()
    c = n.c
    sent(c)
    assert c.ping(ip6(V6HOST), 1, n.now, size=1600 - 48 + 1) == wire.TX_FULL
    assert sent(c) == []


def test_spoofed_neighbour_of_a_trusted_relay_is_not_it():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6(V6HOST), c.address)
    c.on_datagram(b, 40, ip4("198.51.100.21"), proto.PORT, n.now)  # RELAY is 198.51.100.20
    assert drops(c, "untrusted") == 1


def test_next_deadline_waits_for_the_last_round_to_give_up():
    n = qualified()
    c = n.c
    sent(c)
    n.relay_up = False
    t = n.now
    c.ping(ip6(V6HOST), 1, t)
    c.on_timer(t + 2000)
    c.on_timer(t + 4000)
    sent(c)
    assert c.next_deadline() == t + 6000


def test_echo_bucket_to_the_millisecond():
    # 1/s: 9999 ms of idle give 9 tokens, 10000 give 10, and more count as 10 s
    for idle, want in ((9999, 9), (10000, 10), (30000, 10)):
        n = with_relay(echo_rate=1, echo_burst=50)
        c = n.c
        sent(c)
        t = n.now + 100000
        got = 0
        for i in range(60):
            c.on_datagram(echo(c, ip6(V6HOST), seq=i), 56, ip4(RELAY), proto.PORT, t)
            got += len(sent(c))
        assert got == 50
        got = 0
        for i in range(20):
            c.on_datagram(echo(c, ip6(V6HOST), seq=i), 56, ip4(RELAY), proto.PORT, t + idle)
            got += len(sent(c))
        assert got == want, idle
        if idle != 9999:  # nothing left over: 999 ms more is not a token
            c.on_datagram(echo(c, ip6(V6HOST)), 56, ip4(RELAY), proto.PORT, t + idle + 999)
            assert sent(c) == [], idle


def test_echo_bucket_needs_a_whole_token():
    n = with_relay(echo_rate=333, echo_burst=1)
    c = n.c
    sent(c)
    t = n.now + 10000
    c.on_datagram(echo(c, ip6(V6HOST)), 56, ip4(RELAY), proto.PORT, t)
    assert len(sent(c)) == 1
    c.on_datagram(echo(c, ip6(V6HOST)), 56, ip4(RELAY), proto.PORT, t + 3)  # 999 milli-tokens
    assert sent(c) == []
    c.on_datagram(echo(c, ip6(V6HOST)), 56, ip4(RELAY), proto.PORT, t + 4)
    assert len(sent(c)) == 1


def test_echo_burst_right_at_qualification():
    n = Net("cone")
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified"
    sent(c)
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
    got = 0
    for i in range(60):
        c.on_datagram(echo(c, peer, seq=i), 56, ip4(PEER4), 40001, n.now)
        got += len(sent(c))
    assert got == 50


def test_two_silent_peers_each_get_their_bubble_rounds():
    n = qualified(queue_slots=2)
    c = n.c
    sent(c)
    peers = [addr.build_teredo(ip4(SERVER), 0, 40001 + i, ip4(PEER4)) for i in range(2)]
    t = n.now
    for p in peers:
        assert c.send_udp(p, 9, 9, b"x", t) == 0
    direct = [0, 0]
    for dt in (0, 2000, 4000):
        if dt:
            c.on_timer(t + dt)
        for ip, port, _d in sent(c):
            if ip == PEER4:
                direct[port - 40001] += 1
    assert direct == [3, 3]


def test_queue_slot_not_reused_while_its_packets_wait_in_the_ring():
    n = qualified(queue_slots=1)
    c = n.c
    sent(c)
    a = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
    assert c.send_udp(a, 9, 9, b"for-a", n.now) == 0
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, a, c.address)
    c.on_datagram(b, 40, ip4(PEER4), 40001, n.now + 10)  # a answers: its queue is flushed
    # before the shell drains the ring, the application sends to another peer
    other = addr.build_teredo(ip4(SERVER), 0, 40002, ip4("198.51.100.78"))
    assert c.send_udp(other, 9, 9, b"for-other", n.now + 10) == wire.QUEUE_FULL
    out = sent(c)
    assert (PEER4, 40001) in to(out)
    assert [d[48:] for ip, port, d in out if (ip, port) == (PEER4, 40001)] == [b"for-a"]


def test_option_of_the_wrong_type_is_refused_with_its_name():
    for k, v in (("max_peers", "8"), ("cone_probe", 1), ("refresh_s", True)):
        try:
            Client(SERVER, rand=Rand(1), **{k: v})
            raise AssertionError(k)
        except ValueError as e:
            assert k in str(e), str(e)


def test_next_deadline_ignores_peers_without_a_test_running():
    n = with_relay()
    c = n.c
    sent(c)
    assert c.next_deadline() == c.deadline == c.refresh_at


def test_relay_answering_from_another_port_is_used_from_then_on():
    n = qualified()
    c = n.c
    sent(c)
    t = n.now
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, t)
    (test,) = [d for ip, port, d in sent(c) if ip == SERVER and len(d) == 56]
    r = echo(c, ip6(V6HOST), typ=proto.ICMP_ECHO_REPLY, ident=0, seq=0, data=test[48:56])
    c.on_datagram(r, 56, ip4(RELAY), proto.PORT, t + 10)
    sent(c)
    assert c.send_udp(ip6(V6HOST), 7, 7, b"again", t + 30010) == 0  # expired: tested again
    (test,) = [d for ip, port, d in sent(c) if ip == SERVER and len(d) == 56]
    r = echo(c, ip6(V6HOST), typ=proto.ICMP_ECHO_REPLY, ident=0, seq=0, data=test[48:56])
    c.on_datagram(r, 56, ip4(RELAY), 3545, t + 30020)
    assert to(sent(c)) == [(RELAY, 3545)] and c.status()["relay"] == RELAY + ":3545"


def test_rs_to_the_secondary_address_three_times():
    # the background NAT test (§5.2.1): T after the first RA, N = 3 RSs to
    # the secondary, T apart; a silent secondary leaves the client serving,
    # NAT type unknown, with a warning naming it
    n = Net("restricted")
    n.server2_up = False
    c = n.c
    n.start()
    t = n.now
    addr0 = c.status()["address"]
    got = []
    for dt in (3999, 4000, 7999, 8000, 11999, 12000, 15999):
        c.on_timer(t + dt)
        got.append(len(rs_to(sent(c), SERVER2)))
    assert got == [0, 1, 0, 1, 0, 1, 0]
    assert c.status()["state"] == "qualified" and c.status()["warning"] is None
    c.on_timer(t + 16000)
    st = c.status()
    assert sent(c) == [] and st["state"] == "qualified" and st["nat"] == "unknown"
    assert SERVER2 in st["warning"] and st["address"] == addr0 and st["error"] is None


def test_secondary_phase_refuses_an_ra_from_the_primary():
    # the RA answering the RS to the secondary, but from the primary
    # address: it proves nothing about the NAT (§5.2.1)
    n = Net("restricted")
    c = n.c
    n.server2_up = False
    n.start()
    c.on_timer(n.now + 4000)  # RS to the secondary
    (rs2,) = rs_to(sent(c), SERVER2)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, rs2[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now + 4010)
    assert drops(c, "ra_nonce") == 1 and c.status()["nat"] == "unknown"
    assert c.status()["state"] == "qualified"
    # the same RA from the secondary is its answer: a restricted NAT
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 4020)
    assert c.status()["nat"] == "restricted" and drops(c, "ra_nonce") == 1


def test_nat_changing_only_the_address_per_destination_is_symmetric():
    # the secondary sees another mapped address, same port; the primary,
    # asked again, still sees the first mapping: symmetric (§5.2.1)
    n = Net("restricted")
    c = n.c
    n.server2_up = False
    n.start()
    c.on_timer(n.now + 4000)
    (rs2,) = rs_to(sent(c), SERVER2)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, rs2[4:12], ip4("203.0.113.8"), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 4010)
    assert c.status()["state"] == "qualified"
    out = sent(c)
    assert len(rs_to(out, SERVER)) == 1 and len(out) == 1  # the primary again, no cone bit
    assert out[0][2][13 + 16] & 0x80 == 0
    for ip, port, d in out:
        n.outbound(d, (ip, port))  # the server answers: NAT_WAN:50000, as the first time
    n.flush()
    st = c.status()
    assert st["state"] == "symmetric" and st["nat"] == "symmetric" and st["address"] is None
    assert "203.0.113.7:50000" in st["error"]


def test_icmpv6_with_no_byte_after_an_origin_from_the_server():
    # 8 bytes of origin, 40 of IPv6 with no payload: nothing to read past
    # the end, not an RA, too short to deliver; the origin gets its bubble
    n = qualified("cone")
    c = n.c
    sent(c)
    b = bytearray(48)
    wire.build_origin(b, 0, 3544, ip4("203.0.113.50"))
    wire.build_ipv6(b, 8, 0, proto.NH_ICMPV6, 64, ip6(V6HOST), c.address)
    c.on_datagram(b, 48, ip4(SERVER), proto.PORT, n.now)
    assert c.status()["drops"] == {"length": 1}
    assert to(sent(c)) == [("203.0.113.50", 3544)]
    # from a link-local source it goes no further than the source check
    wire.build_ipv6(b, 8, 0, proto.NH_ICMPV6, 64, ip6("fe80::1"), c.address)
    c.on_datagram(b, 48, ip4(SERVER), proto.PORT, n.now + 5000)
    assert c.status()["drops"] == {"length": 1, "non_global": 1}


def test_echo_request_without_data():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(48)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 7, 8, None, 0)
    c.on_datagram(b, 48, ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert len(out) == 1 and out[0][2][40] == proto.ICMP_ECHO_REPLY and len(out[0][2]) == 48
    # and a UDP datagram without data, for a bound port
    u = bytearray(48)
    wire.build_udp6(u, 0, ip6(V6HOST), c.address, 1, 2, None, 0)
    c.bind(2)
    assert c.on_datagram(u, 48, ip4(RELAY), proto.PORT, n.now) == 2 and c.ev_len == 0  # EV_UDP
    assert c.ev_off == 48 and c.ev_sport == 1 and c.ev_dport == 2 and c.status()["drops"] == {}
