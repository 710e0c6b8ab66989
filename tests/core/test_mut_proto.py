# Protocol facts of teredo/proto.py that mutation testing found unchecked
# (`make mutate`), held to the numbers of the RFCs rather than to proto's
# own names: an RA's Prefix Information option is type 3 (RFC 4861
# §4.6.2), and the refresh interval is 30 s (RFC 4380 §5.2) by default.  On
# CPython and the MicroPython unix port from this file.
from teredo import proto, wire
from teredo.client import Client
from harness import SERVER, SERVER_LL, Rand, build_ra, ip4


def _pio(type_byte, server4):
    o = bytearray(32)
    o[0] = type_byte
    o[1] = 4
    o[2] = 64
    o[3] = 0xC0
    o[16:20] = b"\x20\x01\x00\x00"
    o[20:24] = server4
    return bytes(o)


def _parse(type_byte):
    server4 = ip4(SERVER)
    nonce = b"\x11\x22\x33\x44\x55\x66\x77\x88"
    ra = build_ra(SERVER_LL, proto.LL_CONE, nonce, ip4("203.0.113.7"), 40000, server4,
                  prefixes=0, extra=_pio(type_byte, server4))
    hdr = [0, 0, 0, 0]
    assert wire.parse_encap(ra, len(ra), hdr) == wire.OK
    res = [0, 0]
    m4 = bytearray(4)
    r = wire.parse_ra(ra, hdr, nonce, proto.LL_CONE, server4, res, m4)
    return r, res, bytes(m4)


def test_the_prefix_information_option_is_type_3():
    r, res, m4 = _parse(3)
    assert r == wire.OK and res[0] == 40000 and res[1] == 1280 and m4 == ip4("203.0.113.7")
    # type 2 (target link-layer address) and 4 (redirected header) are other
    # options: skipped, which leaves the RA without its prefix
    for t in (2, 4):
        assert _parse(t)[0] == wire.RA_INVALID, t


def test_the_default_refresh_interval_is_30_s():
    c = Client(SERVER, rand=Rand(3))
    assert c.status()["refresh_s"] == 30
    # randomised to 75..100 % of it: no jitter, then the most
    c = Client(SERVER, rand=lambda bits: 0)
    c._schedule_refresh(1000)
    assert c.refresh_at == 31000
    c = Client(SERVER, rand=lambda bits: (1 << bits) - 1)
    c._schedule_refresh(1000)
    assert c.refresh_at == 1000 + 30000 - ((7500 * 1023) >> 10)
