# Parked (not collected): the tests of tests/core/test_edge_parse.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import proto, wire
from vectors import SERVER, SERVER_LL, build_ra, ip4, ip6
from test_edge_parse import *
from test_edge_parse import _parse, _ra


def test_encap_payload_length_every_bit():
    hdr = [0, 0, 0, 0]
    for plen in (1, 0x100, 0x0101):
        b = bytearray(40 + plen)
        wire.build_ipv6(b, 0, plen, 59, 64, A, B)
        assert wire.parse_encap(b, len(b), hdr) == wire.OK
        b[4] ^= 0x01
        assert wire.parse_encap(b, len(b), hdr) == wire.LENGTH
        b[4] ^= 0x01
        b[5] ^= 0x01
        assert wire.parse_encap(b, len(b), hdr) == wire.LENGTH


def test_ra_mtu_option_every_field():
    for mtu, want in ((1279, wire.RA_INVALID), (1280, wire.OK), (1281, wire.OK), (9000, wire.OK),
                      (65535, wire.OK), (65536, wire.RA_INVALID), (0x1000000 + 1500, wire.RA_INVALID),
                      (0x10000 + 1500, wire.RA_INVALID), (0x01010000 + 1500, wire.RA_INVALID),
                      (0, wire.RA_INVALID)):
        r, v = _parse(_ra(mtu=mtu))
        assert r == want, mtu
        if r == wire.OK:
            assert v[1] == mtu
    # the MTU option must be exactly one unit
    m = bytearray(16)
    m[0] = proto.OPT_MTU
    m[1] = 2
    m[6] = 0x05
    m[7] = 0xDC
    assert _parse(_ra(mtu_opt=False, extra=bytes(m)))[0] == wire.RA_INVALID


def test_ra_option_types_are_rfc4861_numbers():
    # RFC 4861 §4.6: Prefix Information is type 3, MTU type 5 (written here
    # as numbers, not with the constants the parser itself uses)
    b = _ra(mtu=1500)
    pio = 21 + 56
    assert b[pio] == 3 and b[pio + 1] == 4 and b[pio + 32] == 5 and b[pio + 33] == 1
    assert b[21 + 40] == 134 and b[21 + 7] == 255
    assert _parse(b)[0] == wire.OK and _parse(b)[1][1] == 1500
    for k, v in ((pio, 4), (pio, 2), (pio + 32, 6), (pio + 32, 4)):
        c = bytearray(b)
        c[k] = v
        r, res = _parse(c, fix=True)
        assert r != wire.OK or res[1] == 1280, (k, v)


def test_ra_results_each_field():
    for port, mapped, mtu in ((1, "1.2.3.4", 1280), (0xFFFF, "254.253.252.251", 1500),
                              (0x1234, "203.0.113.7", 65535)):
        r, v = _parse(_ra(mapped_port=port, mapped4=ip4(mapped), mtu=mtu))
        assert r == wire.OK and v == (port, mtu, ip4(mapped)), (port, mapped)
