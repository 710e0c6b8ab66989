# Wire formats: encapsulation, checksums, RS/RA, echo, bubbles, UDP.
# Runs on CPython (pytest) and on the MicroPython unix port (tests/mp_run.py).
from teredo import proto, wire
from vectors import Rand, build_ra, ip4, ip6, SERVER, SERVER_LL

NONCE = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_origin_indication_vector_rfc4380_5_1_1():
    b = bytearray(8)
    assert wire.build_origin(b, 0, 337, ip4("1.2.3.4")) == 8
    assert bytes(b) == bytes([0x00, 0x00, 0xFE, 0xAE, 0xFE, 0xFD, 0xFC, 0xFB])
    assert wire.origin_port(b, 0) == 337
    out = bytearray(4)
    wire.origin_ip_into(b, 0, out)
    assert bytes(out) == ip4("1.2.3.4")


def test_rs_checksum_vector():
    b = bytearray(100)
    n = wire.build_rs(b, 0, NONCE, False)
    assert n == 13 + 48
    ip = 13
    assert b[ip + 8:ip + 24] == ip6("fe80::ffff:ffff:ffff")
    assert b[ip + 24:ip + 40] == ip6("ff02::2")
    assert (b[ip + 42] << 8) | b[ip + 43] == 0x7D37
    assert b[ip + 7] == 255 and b[ip + 40] == 133
    hdr = [0, 0, 0, 0]
    assert wire.parse_encap(b, n, hdr) == wire.OK
    assert hdr[wire.H_IP] == 13 and hdr[wire.H_NONCE] == 4 and hdr[wire.H_ORIGIN] == -1
    assert wire.l4_sum(b, ip, 58, 8) == 0xFFFF


def test_cone_rs_source():
    b = bytearray(100)
    wire.build_rs(b, 0, NONCE, True)
    assert b[13 + 8:13 + 24] == ip6("fe80::8000:ffff:ffff:ffff")


def test_auth_header_any_lengths():
    for il, al in ((0, 0), (1, 0), (0, 1), (5, 20), (255, 255)):
        b = bytearray(13 + il + al + 40)
        o = wire.build_auth(b, 0, NONCE, bytes(il), bytes([7] * al), 0)
        assert o == 13 + il + al
        wire.build_bubble(b, o, ip6("2001::1"), ip6("2001::2"))
        hdr = [0, 0, 0, 0]
        assert wire.parse_encap(b, len(b), hdr) == wire.OK
        assert hdr[wire.H_IP] == o
        assert bytes(b[hdr[wire.H_NONCE]:hdr[wire.H_NONCE] + 8]) == NONCE
        # one byte short: the auth header overruns the datagram
        assert wire.parse_encap(b, o + 39, hdr) != wire.OK


def test_encap_rejections():
    hdr = [0, 0, 0, 0]
    good = bytearray(48)
    wire.build_origin(good, 0, 3544, ip4("198.51.100.20"))
    wire.build_bubble(good, 8, ip6("fe80::1"), ip6("2001::1"))
    assert wire.parse_encap(good, 48, hdr) == wire.OK and hdr[wire.H_ORIGIN] == 0
    assert wire.parse_encap(good, 30, hdr) == wire.SHORT
    # origin followed by auth: auth must come first
    bad = bytearray(8) + bytearray(b"\x00\x01\x00\x00") + bytearray(9) + bytearray(40)
    wire.build_bubble(bad, 21, ip6("fe80::1"), ip6("2001::1"))
    assert wire.parse_encap(bad, len(bad), hdr) == wire.ENCAP
    # two origin indications
    two = bytearray(16) + bytearray(40)
    wire.build_bubble(two, 16, ip6("fe80::1"), ip6("2001::1"))
    assert wire.parse_encap(two, len(two), hdr) == wire.ENCAP
    # IPv4 in the payload
    v4 = bytearray(60)
    v4[0] = 0x45
    assert wire.parse_encap(v4, 60, hdr) == wire.NOT_IPV6
    # payload length larger than the datagram; smaller: what follows must
    # be RFC 6081 trailers (here 3 bytes, a cut one)
    b = bytearray(44)
    wire.build_bubble(b, 0, ip6("2001::1"), ip6("2001::2"))
    assert wire.parse_encap(b, 43, hdr) == wire.DROP_NAMES.index("trailer")
    b[5] = 8
    assert wire.parse_encap(b, 40, hdr) == wire.LENGTH
    assert wire.parse_encap(b, 48, hdr) == wire.LENGTH or len(b) < 48


def test_rfc6081_trailers_are_walked():
    # RFC 6081 §4: type, length of the value, value; after the IPv6 packet
    hdr = [0, 0, 0, 0]
    bub = bytearray(40)
    wire.build_bubble(bub, 0, ip6("2001::1"), ip6("2001::2"))
    nonce = b"\x01\x04\x01\x02\x03\x04"
    alt = b"\x03\x08\x00\x00\xc6\x33\x64\x4d\x9c\x41"  # one address: 198.51.100.77:40001
    nd = b"\x04\x04\x00\x00\x00\x00"
    port = b"\x05\x02\x9c\x41"
    unknown = b"\x99\x03abc"
    for tail in (nonce, alt, nd, port, unknown, nonce + alt + nd + port + unknown):
        d = bytes(bub) + tail
        assert wire.parse_encap(d, len(d), hdr) == wire.OK, tail
        assert hdr[wire.H_IP] == 0 and hdr[wire.H_END] == 40
    # the same behind an origin indication
    d = bytes(8) + bytes(bub) + nonce
    assert wire.parse_encap(d, len(d), hdr) == wire.OK and hdr[wire.H_END] == 48
    # malformed: cut, overrunning, known types with wrong lengths
    for tail in (b"\x01", b"\x01\x04\x01\x02", nonce + b"\x05", b"\x01\x05\x01\x02\x03\x04\x05",
                 b"\x03\x07" + bytes(7), b"\x03\x0b" + bytes(11), b"\x03\x20" + bytes(32),
                 b"\x04\x02\x00\x00", b"\x05\x04\x00\x00\x00\x00"):
        d = bytes(bub) + tail
        assert wire.parse_encap(d, len(d), hdr) == wire.DROP_NAMES.index("trailer"), tail


def _ra(**kw):
    args = dict(src_ll=SERVER_LL, dst_ll=proto.LL_NONCONE, nonce=NONCE, mapped4=ip4("203.0.113.7"),
                mapped_port=50000, server4=ip4(SERVER))
    args.update(kw)
    return bytearray(build_ra(**args))


def _parse_ra(b, nonce=NONCE, ll=proto.LL_NONCONE):
    hdr = [0, 0, 0, 0]
    r = wire.parse_encap(b, len(b), hdr)
    if r:
        return r, None
    res = [0, 0]
    m = bytearray(4)
    r = wire.parse_ra(b, hdr, nonce, ll, ip4(SERVER), res, m)
    return r, (res[0], res[1], bytes(m))


def test_ra_strict_accepts_a_good_one():
    r, v = _parse_ra(_ra(mtu=1280))
    assert r == wire.OK
    assert v == (50000, 1280, ip4("203.0.113.7"))
    r, v = _parse_ra(_ra(mtu_opt=False))
    assert r == wire.OK and v[1] == 1280


def test_ra_mtu_option_out_of_range_is_ignored_or_clamped():
    # review A8, RFC 4861 §6.3.4: below 1280 the option is not used (the RA
    # stands, MTU 1280); above what we can receive it is clamped to MTU_MAX
    for mtu in (0, 1000, 1279, 1280, 1281, 1400, 9000, 65535, 65536, 2 ** 32 - 1):
        r, v = _parse_ra(_ra(mtu=mtu))
        assert r == wire.OK and v[1] == proto.MTU_MAX == 1280, (mtu, r, v)


def test_ra_strict_rejections():
    assert _parse_ra(_ra(), nonce=b"\x09" * 8)[0] == wire.RA_NONCE
    assert _parse_ra(_ra(auth=False))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(origin=False))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(hop=64))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(src_ll=ip6("2001:db8::1")))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(dst_ll=proto.LL_CONE))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(prefixes=0))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(prefixes=2))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(server4=ip4("198.51.100.99")))[0] == wire.RA_INVALID
    assert _parse_ra(_ra(extra=b"\x05\x02" + bytes(14)))[0] == wire.RA_INVALID  # MTU option of 16 bytes
    # a zero-length option would loop forever in a naive parser
    assert _parse_ra(_ra(extra=b"\x01\x00\x00\x00\x00\x00\x00\x00"))[0] == wire.RA_INVALID
    b = _ra()
    b[-1] ^= 0x55  # corrupt: checksum no longer matches
    assert _parse_ra(b)[0] == wire.CHECKSUM


def test_echo_reply_in_place_matches_full_checksum():
    r = Rand(11)
    for size in (0, 1, 7, 8, 56, 1232):
        data = bytearray(size)
        for i in range(size):
            data[i] = r(8)
        b = bytearray(48 + size)
        n = wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6("2001:db8:f::100"),
                            ip6("2001:0:c633:640a:8000:f227:39b5:9bf4"), 0x1234, 7, data, size)
        assert n == 48 + size
        assert wire.l4_sum(b, 0, 58, 8 + size) == 0xFFFF
        wire.echo_to_reply(b, 0)
        assert b[40] == proto.ICMP_ECHO_REPLY
        assert b[8:24] == ip6("2001:0:c633:640a:8000:f227:39b5:9bf4")
        assert wire.l4_sum(b, 0, 58, 8 + size) == 0xFFFF
        ref = bytearray(48 + size)
        wire.build_echo(ref, 0, proto.ICMP_ECHO_REPLY, ip6("2001:0:c633:640a:8000:f227:39b5:9bf4"),
                        ip6("2001:db8:f::100"), 0x1234, 7, data, size)
        assert b == ref


def test_udp6_checksum_and_bubble():
    b = bytearray(48 + 5)
    n = wire.build_udp6(b, 0, ip6("2001::1"), ip6("2001:db8::2"), 1000, 53, b"hello", 5)
    assert n == 53 and b[6] == 17
    assert wire.l4_sum(b, 0, 17, 13) == 0xFFFF
    assert (b[44] << 8) | b[45] == 13
    bb = bytearray(40)
    assert wire.build_bubble(bb, 0, ip6("2001::1"), ip6("2001::2")) == 40
    assert bb[6] == 59 and bb[4] == 0 and bb[5] == 0


def test_checksum_fast_path_equals_plain():
    r = Rand(2)
    b = bytearray(1301)
    for i in range(1301):
        b[i] = r(8)
    for start, end in ((0, 0), (0, 1), (1, 2), (3, 1300), (0, 1301), (5, 6)):
        assert wire.csum_fold(wire.csum_add(b, start, end, 17)) == \
            wire.csum_fold(wire.csum_add_plain(b, start, end, 17))


def test_fast_eq_and_swap16_equal_plain():
    # the viper (MicroPython) twins must agree with the plain byte loops
    b = bytearray(64)
    for i in range(64):
        b[i] = (i * 37) & 0xFF
    c = bytearray(b)
    assert wire.eq(b, 3, c, 3, 16) and wire.eq_plain(b, 3, c, 3, 16)
    c[10] ^= 1
    assert not wire.eq(b, 3, c, 3, 16) and not wire.eq_plain(b, 3, c, 3, 16)
    assert wire.eq(bytes(b), 0, b, 0, 8)  # bytes and bytearray alike
    assert wire.eq(memoryview(b), 5, bytes(b), 5, 16) and not wire.eq(memoryview(b), 5, b, 6, 16)
    assert wire.eq(b, 0, c, 1, 0)  # nothing to compare: equal
    x = bytearray(b)
    y = bytearray(b)
    wire.swap16(x, 8, 24)
    wire.swap16_plain(y, 8, 24)
    assert x == y and x[8:24] == b[24:40] and x[24:40] == b[8:24]
