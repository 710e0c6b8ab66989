# The client's receive side (RFC 4380 §5.2.3) where a slip would go unnoticed
# by the scenario tests: every byte of our address, short ICMPv6 from the
# server, packets with and without an origin indication, a trusted peer that
# is not the first entry, replies that go back to the right peer, the last
# connectivity-test round, a relay answering from another address, the
# mapping compared to its last byte, buffers that keep their size.  On
# CPython and the MicroPython unix port alike.
from teredo import addr, proto, wire
from teredo.client import EV_ECHO_REPLY, EV_NONE, EV_UDP, Client
from harness import NAT_WAN, RELAY, SERVER, SERVER2, V6HOST, Net, Rand, ip4, ip6, qualified, with_relay
from harness import drops, sent, to

PEER4 = "198.51.100.77"
RELAY2 = "198.51.100.21"


def conn_tests(out):
    return [d for ip, port, d in out if ip == SERVER and port == proto.PORT and len(d) == 56
            and d[6] == proto.NH_ICMPV6 and d[40] == proto.ICMP_ECHO_REQUEST]


def echo(c, src, typ=proto.ICMP_ECHO_REQUEST, ident=0x1234, seq=1, data=bytes(8)):
    b = bytearray(48 + len(data))
    wire.build_echo(b, 0, typ, ip6(src) if isinstance(src, str) else src, c.address, ident, seq, data,
                    len(data))
    return b


def teredo_peer(c, port, now, wan=PEER4):
    """A Teredo peer made trusted by its direct bubble (§5.2.3 case 3)."""
    peer = addr.build_teredo(ip4(SERVER), 0, port, ip4(wan))
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    c.on_datagram(b, 40, ip4(wan), port, now)
    return peer


def test_event_codes_are_distinct():
    assert len(set((EV_NONE, EV_ECHO_REPLY, EV_UDP))) == 3 and EV_NONE == 0


def test_fresh_client_counts_and_config_limits():
    c = Client(SERVER, rand=Rand(1))
    st = c.status()
    assert st["rx"] == 0 and st["tx"] == 0 and st["drops"] == {} and st["peers"] == 0
    assert st["server"] == SERVER and st["server2"] == "198.51.100.11" and st["state"] == "offline"
    assert st["nat"] == "unknown" and st["address"] is None and st["mapped"] is None and st["uptime_s"] == 0
    for k, bad, good in (("max_peers", 0, 1), ("queue_slots", 0, 1), ("queue_bytes", 1279, 1280),
                         ("refresh_s", 9, 10), ("refresh_s", 3601, 3600)):
        try:
            Client(SERVER, rand=Rand(1), **{k: bad})
            raise AssertionError("accepted %s=%d" % (k, bad))
        except ValueError as e:
            assert k in str(e), (k, str(e))
        assert Client(SERVER, rand=Rand(1), **{k: good}).cfg[k] == good
    assert Client(SERVER, rand=Rand(1), queue_bytes=2000).peers.queue_bytes == 2002
    # the server as 4 bytes
    assert Client(ip4(SERVER), rand=Rand(1)).status()["server"] == SERVER
    for bad in (b"\xc6\x33\x64", b"\xc6\x33\x64\x0a\x00"):
        try:
            Client(bad, rand=Rand(1))
            raise AssertionError(bad)
        except ValueError as e:
            assert "IPv4" in str(e)


def test_every_byte_of_our_address_is_checked():
    n = with_relay()
    c = n.c
    sent(c)
    for k in range(16):
        for src, port in ((RELAY, proto.PORT), (SERVER, proto.PORT)):
            b = echo(c, V6HOST)
            b[24 + k] ^= 0x01
            wire.set_l4_checksum(b, 0, proto.NH_ICMPV6, 16, 42)
            before = drops(c, "not_for_us")
            assert c.on_datagram(b, len(b), ip4(src), port, n.now) == EV_NONE
            assert drops(c, "not_for_us") == before + 1 and sent(c) == [], (k, src)


def test_from_the_server_with_and_without_an_origin_indication():
    n = qualified("cone")
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("fe80::1"), c.address)
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now)
    assert sent(c) == [] and c.status()["drops"] == {}
    # an origin indication after an auth header: a bubble to the origin
    d = bytearray(13 + 8 + 40)
    wire.build_auth(d, 0, b"12345678")
    wire.build_origin(d, 13, 40404, ip4("203.0.113.50"))
    wire.build_bubble(d, 21, ip6("fe80::1"), c.address)
    c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
    assert to(sent(c)) == [("203.0.113.50", 40404)]
    # an origin at port 0 is no mapping: no bubble
    o = bytearray(48)
    wire.build_origin(o, 0, 0, ip4("203.0.113.50"))
    wire.build_bubble(o, 8, ip6("fe80::1"), c.address)
    c.on_datagram(o, 48, ip4(SERVER), proto.PORT, n.now + 1000)
    assert sent(c) == [] and drops(c, "non_global") == 1


def test_echo_relayed_by_the_server_with_an_origin_gets_bubble_and_reply():
    # the bubble and the reply are built in one turn: neither may spoil the other
    n = with_relay("cone")
    c = n.c
    sent(c)
    e = echo(c, V6HOST, data=bytes(range(40)))
    d = bytearray(8) + e
    wire.build_origin(d, 0, 3544, ip4(RELAY))
    c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now)
    out = sent(c)
    assert to(out) == [(RELAY, proto.PORT), (RELAY, proto.PORT)]
    bubble, reply = out[0][2], out[1][2]
    assert len(bubble) == 40 and bubble[6] == proto.NH_NONE
    assert bubble[8:24] == c.address and bubble[24:40] == ip6(V6HOST)
    assert len(reply) == len(e) and reply[40] == proto.ICMP_ECHO_REPLY and reply[48:] == bytes(range(40))
    assert reply[8:24] == c.address and reply[24:40] == ip6(V6HOST)
    assert wire.l4_sum(reply, 0, proto.NH_ICMPV6, len(e) - 40) == 0xFFFF


def test_two_echo_requests_in_one_turn_are_both_answered():
    n = with_relay()
    c = n.c
    sent(c)
    for seq in (1, 2):
        b = echo(c, V6HOST, seq=seq)
        c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert [(d[46] << 8) | d[47] for _, _, d in out] == [1, 2]
    for _, _, d in out:
        assert wire.l4_sum(d, 0, proto.NH_ICMPV6, 16) == 0xFFFF


def test_a_native_bubble_from_a_trusted_relays_address_is_untrusted():
    n = with_relay(max_peers=1)
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("2001:db8::77"), c.address)
    c.on_datagram(b, 40, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "untrusted") == 1


def test_receiving_keeps_a_peer_valid_whatever_its_entry():
    n = qualified()
    c = n.c
    sent(c)
    t = n.now
    teredo_peer(c, 40001, t, wan="198.51.100.78")   # entry 0, another address
    c.ping(ip6(V6HOST), 1, t)                       # the relay: entry 1
    n.flush()
    assert c.status()["relay"] == RELAY + ":3544"
    sent(c)
    b = echo(c, V6HOST, typ=proto.ICMP_ECHO_REPLY, ident=0x9999)
    c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, t + 20000)  # §5.2.3 case 1
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", t + 35000) == 0
    assert to(sent(c)) == [(RELAY, proto.PORT)]


def test_replies_go_back_to_the_peer_that_asked():
    n = with_relay()
    c = n.c
    sent(c)
    t = n.now
    teredo_peer(c, 40001, t)                         # entry 1, trusted
    b = echo(c, V6HOST)
    c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, t)  # case 1 from the relay (entry 0)
    assert to(sent(c)) == [(RELAY, proto.PORT)]
    # a new Teredo peer (entry 2) pings us: the reply goes to it
    peer = addr.build_teredo(ip4(SERVER), 0, 40002, ip4("198.51.100.79"))
    b = echo(c, peer)
    c.on_datagram(b, len(b), ip4("198.51.100.79"), 40002, t + 1)
    assert to(sent(c)) == [("198.51.100.79", 40002)]
    b = echo(c, V6HOST)
    c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, t + 2)
    assert to(sent(c)) == [(RELAY, proto.PORT)]


def test_reply_to_the_last_connectivity_test_round_counts():
    n = qualified()
    c = n.c
    sent(c)
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, n.now)
    sent(c)
    c.on_timer(n.now + 2000)
    sent(c)
    c.on_timer(n.now + 4000)
    (t,) = conn_tests(sent(c))
    r = echo(c, V6HOST, typ=proto.ICMP_ECHO_REPLY, ident=0, seq=0, data=t[48:56])
    c.on_datagram(r, 56, ip4(RELAY), proto.PORT, n.now + 5000)
    assert c.status()["relay"] == RELAY + ":3544"
    assert to(sent(c)) == [(RELAY, proto.PORT)]


def test_a_trusted_peer_is_kept_by_the_timers():
    n = with_relay()
    c = n.c
    sent(c)
    for dt in (100, 2000, 10000):
        c.on_timer(n.now + dt)
        assert sent(c) == [] and c.status()["peers"] == 1
    assert c.send_udp(ip6(V6HOST), 7, 7, b"x", n.now + 10000) == 0
    assert to(sent(c)) == [(RELAY, proto.PORT)]


def test_next_deadline_sees_a_test_in_any_entry():
    n = qualified()
    c = n.c
    sent(c)
    t = n.now
    teredo_peer(c, 40001, t)  # entry 0: trusted, no test running
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, t)  # entry 1
    assert c.next_deadline() == t + 2000


def test_relay_answering_from_another_address_is_used_from_then_on():
    n = qualified()
    c = n.c
    sent(c)
    t = n.now
    teredo_peer(c, 40001, t)   # entry 0, so that the relay is entry 1
    n.relay_up = False
    c.ping(ip6(V6HOST), 1, t)
    (test,) = conn_tests(sent(c))
    r = echo(c, V6HOST, typ=proto.ICMP_ECHO_REPLY, ident=0, seq=0, data=test[48:56])
    c.on_datagram(r, 56, ip4(RELAY), proto.PORT, t + 10)
    assert to(sent(c)) == [(RELAY, proto.PORT)]
    # 30 s later the path is tested again, and another relay answers
    assert c.send_udp(ip6(V6HOST), 7, 7, b"again", t + 30010) == 0
    (test,) = conn_tests(sent(c))
    r = echo(c, V6HOST, typ=proto.ICMP_ECHO_REPLY, ident=0, seq=0, data=test[48:56])
    c.on_datagram(r, 56, ip4(RELAY2), proto.PORT, t + 30020)
    out = sent(c)
    assert to(out) == [(RELAY2, proto.PORT)] and out[0][2][48:] == b"again"
    assert c.status()["relay"] == RELAY2 + ":3544"
    b = echo(c, V6HOST)
    c.on_datagram(b, len(b), ip4(RELAY2), proto.PORT, t + 30030)  # case 1 from the new relay
    assert to(sent(c)) == [(RELAY2, proto.PORT)]
    assert len(c.peers.ip4) == 4 * c.peers.n


def test_icmpv6_of_7_bytes_is_too_short():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(47)
    wire.build_ipv6(b, 0, 7, proto.NH_ICMPV6, 64, ip6(V6HOST), c.address)
    b[40] = proto.ICMP_ECHO_REQUEST
    wire.set_l4_checksum(b, 0, proto.NH_ICMPV6, 7, 42)
    c.on_datagram(b, 47, ip4(RELAY), proto.PORT, n.now)
    assert drops(c, "length") == 1 and sent(c) == []


def test_mapping_change_in_its_last_byte_gives_a_new_address():
    n = qualified(refresh_s=30)
    c = n.c
    old = c.status()["address"]
    n.wan = ip4("203.0.113.8")  # NAT_WAN was 203.0.113.7
    n.run(35000)
    st = c.status()
    assert st["mapped"] == "203.0.113.8:50000" and st["address"] != old and st["state"] == "qualified"
    n.wan = ip4(NAT_WAN)
    n.run(35000)
    assert c.status()["mapped"] == NAT_WAN + ":50000"
    # buffers keep their size across requalifications
    assert len(c.mapped4) == 4 and len(c.first4) == 4 and len(c.address) == 16 and len(c.tmp4) == 4


def test_refresh_lost_message_names_the_server():
    n = qualified()
    c = n.c
    n.server_up = False
    n.run(31000 + 3 * 4000)
    assert SERVER + " stopped answering" in c.status()["error"]


def test_bubble_bucket_is_full_when_qualified():
    n = Net("cone")
    n.start()  # qualified at once: the cone RA came back in the same turn
    c = n.c
    assert c.status()["state"] == "qualified"
    sent(c)
    got = 0
    for i in range(25):
        o = bytearray(48)
        wire.build_origin(o, 0, 3544, bytes([198, 18, 1, i]))
        wire.build_bubble(o, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
        c.on_datagram(o, 48, ip4(SERVER), proto.PORT, n.now)
        got += len(sent(c))
    assert got == 20


def test_short_icmpv6_from_the_server():
    n = qualified()
    c = n.c
    sent(c)
    # one byte of ICMPv6, an RA type: an RA the strict parser refuses
    b = bytearray(41)
    wire.build_ipv6(b, 0, 1, proto.NH_ICMPV6, 255, ip6("fe80::1"), c.address)
    b[40] = proto.ICMP_RA
    c.on_datagram(b, 41, ip4(SERVER), proto.PORT, n.now)
    assert c.status()["drops"] == {"ra_invalid": 1}
    # no ICMPv6 byte at all: not an RA, too short to deliver
    b = bytearray(40)
    wire.build_ipv6(b, 0, 0, proto.NH_ICMPV6, 255, ip6(V6HOST), c.address)
    assert c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now) == EV_NONE
    assert c.status()["drops"] == {"ra_invalid": 1, "length": 1} and sent(c) == []
    # the same from a link-local source is dropped as such first
    wire.build_ipv6(b, 0, 0, proto.NH_ICMPV6, 255, ip6("fe80::1"), c.address)
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now)
    assert c.status()["drops"] == {"ra_invalid": 1, "length": 1, "non_global": 1}


def test_udp_over_255_bytes_and_the_event_fields():
    n = with_relay()
    c = n.c
    sent(c)
    c.bind(0xABCD)
    data = bytes(range(256)) + bytes(44)
    b = bytearray(48 + 300)
    wire.build_udp6(b, 0, ip6(V6HOST), c.address, 0x1234, 0xABCD, data, 300)
    assert c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now) == EV_UDP
    assert c.ev_sport == 0x1234 and c.ev_dport == 0xABCD and c.ev_len == 300 and c.ev_off == 48
    assert bytes(c.rx[c.ev_src:c.ev_src + 16]) == ip6(V6HOST)
    assert bytes(c.rx[c.ev_off:c.ev_off + c.ev_len]) == data
    assert c.status()["drops"] == {} and sent(c) == []


def test_symmetric_retry_to_the_millisecond_and_its_message():
    # usable at the first RA; the NAT test finds the symmetric NAT T = 4 s
    # later (the secondary's mapping differs, the primary's is the first one)
    n = Net("symmetric")
    c = n.c
    n.start()
    for dt, state in ((3999, "qualified"), (1, "symmetric")):
        n.now += dt
        c.on_timer(n.now)
        n.flush()
        assert c.status()["state"] == state, dt
    st = c.status()
    assert "every 120 s" in st["error"]
    assert st["nat"] == "symmetric" and st["address"] is None
    assert NAT_WAN + ":50000 toward " + SERVER in st["error"] and SERVER2 in st["error"]
    assert c.next_deadline() == n.now + 60000  # the wake-up; the retry is at 120 s
    c.on_timer(n.now + 60000)
    assert c.next_deadline() == n.now + 120000
    c.on_timer(n.now + 119999)
    assert sent(c) == [] and c.status()["state"] == "symmetric"


def test_non_cone_ra_must_come_from_the_primary_address():
    # the non-cone RS went to the primary address: its RA from the secondary
    # one proves nothing (RFC 4380 §5.2.1); refused as the answer to no RS
    # sent to the secondary
    from harness import SERVER_LL, build_ra
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(n.now)
    sent(c)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(c.nonce_nc), ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 10)
    assert drops(c, "ra_nonce") == 1 and c.status()["state"] == "qualifying"
    assert sent(c) == [] and c.next_deadline() == n.now + 4000
    # the same RA from the primary qualifies
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now + 20)
    assert c.status()["state"] == "qualified" and drops(c, "ra_nonce") == 1
