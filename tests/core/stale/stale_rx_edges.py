# Parked (not collected): the tests of tests/core/test_rx_edges.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto, wire
from teredo.client import EV_ECHO_REPLY, EV_NONE, EV_UDP, Client
from harness import NAT_WAN, RELAY, SERVER, V6HOST, Net, Rand, ip4, ip6, qualified, with_relay
from test_rx_edges import *


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
    wire.build_ipv6(b, 0, 0, proto.NH_ICMPV6, 255, ip6("fe80::1"), c.address)
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now)
    assert c.status()["drops"] == {"ra_invalid": 1, "length": 1}


def test_udp_over_255_bytes_and_the_event_fields():
    n = with_relay()
    c = n.c
    sent(c)
    data = bytes(range(256)) + bytes(44)
    b = bytearray(48 + 300)
    wire.build_udp6(b, 0, ip6(V6HOST), c.address, 0x1234, 0xABCD, data, 300)
    assert c.on_datagram(b, len(b), ip4(RELAY), proto.PORT, n.now) == EV_UDP
    assert c.ev_sport == 0x1234 and c.ev_dport == 0xABCD and c.ev_len == 300 and c.ev_off == 48
    assert bytes(c.rx[c.ev_src:c.ev_src + 16]) == ip6(V6HOST)
    assert bytes(c.rx[c.ev_off:c.ev_off + c.ev_len]) == data


def test_symmetric_retry_to_the_millisecond_and_its_message():
    n = Net("symmetric")
    c = n.c
    n.start()
    for _ in range(50):
        if c.status()["state"] == "symmetric":
            break
        n.now += 1
        c.on_timer(n.now)
        n.flush()
    st = c.status()
    assert st["state"] == "symmetric" and "every 120 s" in st["error"]
    assert c.next_deadline() == n.now + 120000
    c.on_timer(n.now + 119999)
    assert sent(c) == []


def test_non_cone_ra_must_come_from_the_primary_address():
    # the non-cone RS went to the primary address: its RA from the secondary
    # one proves nothing (RFC 4380 §5.2.1)
    from harness import SERVER2, SERVER_LL, build_ra
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(n.now)
    sent(c)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(c.nonce_nc), ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 10)
    assert drops(c, "ra_invalid") == 1 and c.status()["state"] == "qualifying"
    assert sent(c) == [] and c.next_deadline() == n.now + 4000
