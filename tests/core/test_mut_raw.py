# teredo.raw's edges that mutation testing found untested (`make mutate`):
# a packet relayed by the server behind an origin indication reaches the
# stack without that header; send_ip's checks at their exact bounds (a bare
# 40-byte header, a runt shorter than a header, a buffer longer than the
# packet, a version other than 6, every byte of our source address, the
# 0xFE..0xFF destinations it refuses and the 0xFD it leaves to the global
# check); and the transmit arena shared by the packets of one turn.  On
# CPython and the MicroPython unix port from this file.
from teredo import proto, wire
from teredo.client import EV_ECHO_REPLY, EV_NONE, EV_TCP, EV_UDP
from teredo.raw import EV_IP, NOT_OURS, RawClient
from harness import RELAY, SERVER, V6HOST, drops, ip4, ip6, sent, with_relay


def _udp(src, dst, data, room=0):
    """A UDP packet, in a buffer 'room' bytes longer than the packet."""
    b = bytearray(48 + len(data) + room)
    wire.build_udp6(b, 0, src, dst, 5000, 53, data, len(data))
    return b


def test_ev_ip_is_an_event_of_its_own():
    # the tun shell and Interface.feed dispatch on the event: a raw packet
    # must not look like "nothing", a ping reply, UDP or a TCP segment
    assert EV_IP not in (EV_NONE, EV_ECHO_REPLY, EV_UDP, EV_TCP)
    n = with_relay(client_class=RawClient)
    c = n.c
    pkt = bytes(_udp(ip6(V6HOST), c.address, b"hello"))
    ev = c.on_datagram(pkt, len(pkt), ip4(RELAY), proto.PORT, n.now)
    assert ev == EV_IP and ev != EV_TCP and ev != EV_UDP


def test_a_packet_relayed_by_the_server_reaches_the_stack_without_its_origin_indication():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    pkt = bytes(_udp(ip6(V6HOST), c.address, b"via the server"))
    d = bytearray(8 + len(pkt))
    wire.build_origin(d, 0, proto.PORT, ip4(RELAY))
    d[8:] = pkt
    assert c.on_datagram(d, len(d), ip4(SERVER), proto.PORT, n.now) == EV_IP
    assert c.ev_off == 8 and c.ev_len == len(pkt) and c.ev_src == 16
    assert bytes(c.rx[c.ev_off:c.ev_off + c.ev_len]) == pkt


def test_send_ip_sends_a_bare_40_byte_header():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    b = bytearray(40)
    wire.build_ipv6(b, 0, 0, proto.NH_NONE, proto.HOP_LIMIT, c.address, ip6(V6HOST))
    assert c.send_ip(b, 40, n.now) == 0
    assert sent(c) == [(RELAY, proto.PORT, bytes(b))]
    assert drops(c, "length") == 0


def test_send_ip_drops_a_runt_without_reading_past_it():
    n = with_relay(client_class=RawClient)
    c = n.c
    for runt in (b"", b"\x60", b"\x60\x00\x00", b"\x60\x00\x00\x00\x00"):
        b = bytearray(runt)
        assert c.send_ip(b, len(b), n.now) == wire.LENGTH, runt
    assert drops(c, "length") == 4 and sent(c) == []


def test_send_ip_takes_n_bytes_of_a_longer_buffer():
    # the stack's buffer is reused: only buf[0:n] is the packet
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    b = _udp(c.address, ip6(V6HOST), b"query", room=200)
    for k in range(53, len(b)):
        b[k] = 0xEE
    assert c.send_ip(b, 53, n.now) == 0
    assert sent(c) == [(RELAY, proto.PORT, bytes(b[:53]))]


def test_send_ip_drops_n_past_the_end_of_the_buffer():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    b = _udp(c.address, ip6(V6HOST), bytes(20))  # 68 bytes, as its header says
    short = b[:60]
    assert c.send_ip(short, 68, n.now) == wire.LENGTH
    assert sent(c) == [] and drops(c, "length") == 1


def test_send_ip_drops_what_is_not_ipv6():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    for first in (0x45, 0x00, 0x70, 0xF6):
        b = _udp(c.address, ip6(V6HOST), b"query")
        b[0] = first  # the payload length still matches
        assert c.send_ip(b, len(b), n.now) == wire.LENGTH, first
    assert sent(c) == [] and drops(c, "length") == 4


def test_send_ip_checks_every_byte_of_our_source():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    for k in range(16):
        src = bytearray(c.address)
        src[k] ^= 0x01
        b = _udp(src, ip6(V6HOST), b"query")
        assert c.send_ip(b, len(b), n.now) == NOT_OURS, k
    assert c.not_ours == 16 and c.status()["drops"]["not_ours"] == 16
    assert sent(c) == []


def test_send_ip_refuses_link_local_and_multicast_and_leaves_the_rest_to_the_global_check():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    for dst in ("fe80::1", "febf::1", "fec0::1", "ff02::1", "ffff::1"):
        b = _udp(c.address, ip6(dst), b"x")
        assert c.send_ip(b, len(b), n.now) == wire.UNSUPPORTED, dst
    assert drops(c, "unsupported") == 5
    # fd00::/8 (unique local) is unicast: past this check, refused as not global
    b = _udp(c.address, ip6("fd00::1"), b"x")
    assert c.send_ip(b, len(b), n.now) == wire.NON_GLOBAL
    assert drops(c, "unsupported") == 5 and drops(c, "non_global") == 1
    assert sent(c) == []


def test_send_ip_packets_of_one_turn_share_the_arena():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    a = _udp(c.address, ip6(V6HOST), b"first")
    b = _udp(c.address, ip6(V6HOST), b"second")
    assert c.send_ip(a, len(a), n.now) == 0
    assert c.send_ip(b, len(b), n.now) == 0  # the second one starts past the first
    assert sent(c) == [(RELAY, proto.PORT, bytes(a)), (RELAY, proto.PORT, bytes(b))]
    assert drops(c, "tx_full") == 0


def test_send_ip_drops_what_no_longer_fits_in_the_arena():
    n = with_relay(client_class=RawClient)
    c = n.c
    sent(c)
    big = _udp(c.address, ip6(V6HOST), bytes(1232))  # 1280 bytes
    assert c.send_ip(big, 1280, n.now) == 0
    other = _udp(c.address, ip6(V6HOST), bytes(1000))
    for k in range(48, len(other)):
        other[k] = 0xAB
    assert c.send_ip(other, len(other), n.now) == wire.TX_FULL
    assert drops(c, "tx_full") == 1
    assert sent(c) == [(RELAY, proto.PORT, bytes(big))]
    # drained, the arena takes it
    assert c.send_ip(other, len(other), n.now) == 0
    assert sent(c) == [(RELAY, proto.PORT, bytes(other))]
