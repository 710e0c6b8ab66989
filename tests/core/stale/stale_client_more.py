# Parked (not collected): the tests of tests/core/test_client_more.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto, wire
from teredo.client import Client
from harness import NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Net, Rand, build_ra, ip4, ip6, \
    qualified, with_relay
from test_client_more import *


def test_rs_to_the_secondary_address_three_times():
    n = Net("restricted")
    n.server2_up = False
    c = n.c
    n.start()  # the primary answered; the cone grace starts
    t = n.now
    got = 0
    for dt in (5, 4005, 8005):
        c.on_timer(t + dt)
        got += len(rs_to(sent(c), SERVER2))
    assert got == 3 and c.status()["state"] == "qualifying"
    c.on_timer(t + 12005)
    assert c.status()["state"] == "offline" and SERVER2 in c.status()["error"]


def test_secondary_phase_refuses_an_ra_from_the_primary():
    n = Net("restricted")
    c = n.c
    n.server2_up = False
    n.start()
    c.on_timer(n.now + 5)  # RS to the secondary
    sent(c)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(c.nonce_nc), ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now + 10)
    assert drops(c, "ra_nonce") == 1 and c.status()["state"] == "qualifying"


def test_nat_changing_only_the_address_per_destination_is_symmetric():
    n = Net("restricted")
    c = n.c
    n.server2_up = False
    n.start()
    c.on_timer(n.now + 5)
    sent(c)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(c.nonce_nc), ip4("203.0.113.8"), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER2), proto.PORT, n.now + 10)
    st = c.status()
    assert st["state"] == "symmetric" and st["nat"] == "symmetric" and st["address"] is None


def test_icmpv6_with_no_byte_after_an_origin_from_the_server():
    n = qualified("cone")
    c = n.c
    sent(c)
    b = bytearray(48)
    wire.build_origin(b, 0, 3544, ip4("203.0.113.50"))
    wire.build_ipv6(b, 8, 0, proto.NH_ICMPV6, 64, ip6("fe80::1"), c.address)
    c.on_datagram(b, 48, ip4(SERVER), proto.PORT, n.now)
    assert drops(c, "length") == 1


def test_echo_request_without_data():
    n = with_relay()
    c = n.c
    sent(c)
    b = bytearray(48)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 7, 8, None, 0)
    c.on_datagram(b, 48, ip4(RELAY), proto.PORT, n.now)
    out = sent(c)
    assert len(out) == 1 and out[0][2][40] == proto.ICMP_ECHO_REPLY and len(out[0][2]) == 48
    u = bytearray(48)
    wire.build_udp6(u, 0, ip6(V6HOST), c.address, 1, 2, None, 0)
    assert c.on_datagram(u, 48, ip4(RELAY), proto.PORT, n.now) == 2 and c.ev_len == 0  # EV_UDP
