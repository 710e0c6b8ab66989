# The parsers at their limits, written to catch plausible slips that the
# example vectors of test_wire.py let through (found by `make mutate`): every
# header of the encapsulation at its exact length, every byte of the RA nonce
# and of every compared field, every RA option one below, at and one above its
# limit.  Runs on CPython (pytest) and on the MicroPython unix port.
from teredo import proto, wire
from vectors import SERVER, SERVER_LL, build_ra, ip4, ip6

NONCE = b"\x11\x22\x33\x44\x55\x66\x77\x88"
A = ip6("2001:db8::1")
B = ip6("2001:0:c633:640a:8000:f227:39b5:9bf4")


# ---- parse_encap: every header at its limits ----------------------------------

def _bubble_after(prefix):
    b = bytearray(prefix) + bytearray(40)
    wire.build_bubble(b, len(prefix), A, B)
    return b


def test_encap_lengths_at_the_limit():
    hdr = [0, 0, 0, 0]
    b = _bubble_after(b"")
    assert wire.parse_encap(b, 40, hdr) == wire.OK and hdr == [0, -1, -1, 40]
    assert wire.parse_encap(b, 39, hdr) == wire.SHORT
    # an IPv6 header one byte short after an auth header
    a = bytearray(13 + 39)
    wire.build_auth(a, 0, NONCE)
    a[13] = 0x60
    assert wire.parse_encap(a, len(a), hdr) == wire.SHORT
    # an auth header that is the whole datagram: nothing after it
    a = bytearray(40)
    wire.build_auth(a, 0, NONCE, bytes(27))
    assert wire.parse_encap(a, 40, hdr) == wire.SHORT
    # auth header ends exactly at the datagram's end / one byte after it
    for il, al in ((0, 0), (3, 4), (200, 100)):
        a = bytearray(13 + il + al)
        wire.build_auth(a, 0, NONCE, bytes(il), bytes(al))
        full = _bubble_after(a)
        assert wire.parse_encap(full, len(full), hdr) == wire.OK
        assert hdr[wire.H_NONCE] == 4 + il + al and hdr[wire.H_IP] == 13 + il + al
        assert hdr[wire.H_ORIGIN] == -1 and hdr[wire.H_END] == len(full)
        assert wire.parse_encap(full, len(full) - 1, hdr) != wire.OK


def test_encap_origin_after_auth_and_its_limits():
    hdr = [0, 0, 0, 0]
    a = bytearray(21)
    wire.build_auth(a, 0, NONCE)
    wire.build_origin(a, 13, 3544, ip4("198.51.100.20"))
    full = _bubble_after(a)
    assert wire.parse_encap(full, len(full), hdr) == wire.OK
    assert hdr == [21, 4, 13, len(full)]
    # an origin indication cut short by the end of the datagram
    o = bytearray(47)
    wire.build_auth(o, 0, NONCE, bytes(27))
    o[40] = 0
    o[41] = 0
    assert wire.parse_encap(o, 47, hdr) == wire.SHORT
    o2 = bytearray(48)
    wire.build_auth(o2, 0, NONCE, bytes(27))
    assert wire.parse_encap(o2, 48, hdr) == wire.SHORT  # origin fills it, no IPv6 after


def test_encap_auth_header_then_one_or_two_bytes():
    # what follows an auth header that leaves 1 or 2 bytes: not an origin
    # indication (8 bytes), not an IPv6 header (40)
    hdr = [0, 0, 0, 0]
    for extra, want in ((b"\x00", wire.ENCAP), (b"\x00\x00", wire.SHORT), (b"\x60", wire.SHORT),
                        (b"\x00\x00" + bytes(6), wire.SHORT)):
        a = bytearray(40)
        wire.build_auth(a, 0, NONCE, bytes(27))
        a += extra
        assert wire.parse_encap(a, len(a), hdr) == want, extra


def test_encap_version_nibble():
    hdr = [0, 0, 0, 0]
    for first, want in ((0x60, wire.OK), (0x6F, wire.OK), (0x50, wire.NOT_IPV6), (0x70, wire.NOT_IPV6),
                        (0x45, wire.NOT_IPV6), (0x00, wire.ENCAP), (0x01, wire.NOT_IPV6)):
        b = _bubble_after(b"")
        b[0] = first
        b[1] = 5  # 00 05: neither an auth (00 01) nor an origin (00 00) header
        assert wire.parse_encap(b, 40, hdr) == want, hex(first)


# ---- parse_ra: every compared byte, every option at its limits ----------------

def _ra(**kw):
    args = dict(src_ll=SERVER_LL, dst_ll=proto.LL_NONCONE, nonce=NONCE, mapped4=ip4("203.0.113.7"),
                mapped_port=50000, server4=ip4(SERVER))
    args.update(kw)
    return bytearray(build_ra(**args))


def _parse(b, nonce=NONCE, ll=proto.LL_NONCONE, fix=False):
    hdr = [0, 0, 0, 0]
    r = wire.parse_encap(b, len(b), hdr)
    if r:
        return r, None
    ip = hdr[wire.H_IP]
    if fix:  # recompute the ICMPv6 checksum after editing the RA
        wire.set_l4_checksum(b, ip, proto.NH_ICMPV6, len(b) - ip - 40, ip + 42)
    res = [0, 0]
    m = bytearray(4)
    r = wire.parse_ra(b, hdr, nonce, ll, ip4(SERVER), res, m)
    return r, (res[0], res[1], bytes(m))


def test_ra_nonce_every_byte():
    assert _parse(_ra())[0] == wire.OK
    for k in range(8):
        other = bytearray(NONCE)
        other[k] ^= 0x01
        assert _parse(_ra(), nonce=other)[0] == wire.RA_NONCE, k
        assert _parse(_ra(nonce=bytes(other)))[0] == wire.RA_NONCE, k


def test_ra_destination_every_byte_and_cone_link_local():
    for k in range(16):
        d = bytearray(proto.LL_NONCONE)
        d[k] ^= 0x01
        assert _parse(_ra(dst_ll=bytes(d)))[0] == wire.RA_INVALID, k
    assert _parse(_ra(dst_ll=proto.LL_CONE), ll=proto.LL_CONE)[0] == wire.OK


def test_ra_source_must_be_link_local():
    for src, want in (("fe80::1", wire.OK), ("febf::1", wire.OK), ("fec0::1", wire.RA_INVALID),
                      ("fe00::1", wire.RA_INVALID), ("ff80::1", wire.RA_INVALID)):
        assert _parse(_ra(src_ll=ip6(src)))[0] == want, src


def test_ra_hop_limit_next_header_type_and_code():
    assert _parse(_ra(hop=254))[0] == wire.RA_INVALID
    assert _parse(_ra(hop=0))[0] == wire.RA_INVALID
    b = _ra()
    ip = 21
    b[ip + 6] = proto.NH_UDP
    assert _parse(b)[0] == wire.RA_INVALID
    for typ, code in ((133, 0), (135, 0), (134, 1), (134, 0xFF)):
        b = _ra()
        b[ip + 40] = typ
        b[ip + 41] = code
        assert _parse(b, fix=True)[0] == wire.RA_INVALID, (typ, code)


def test_ra_needs_auth_and_origin_each():
    assert _parse(_ra(auth=False))[0] == wire.RA_INVALID
    assert _parse(_ra(origin=False))[0] == wire.RA_INVALID
    assert _parse(_ra(auth=False, origin=False))[0] == wire.RA_INVALID


def test_ra_checksum_every_byte_counts():
    good = _ra()
    for k in (21 + 8, 21 + 39, 21 + 40, 21 + 43, 21 + 56, len(good) - 2, len(good) - 1):
        b = bytearray(good)
        b[k] ^= 0x10
        assert _parse(b)[0] in (wire.CHECKSUM, wire.RA_INVALID), k
    b = bytearray(good)
    b[len(b) - 1] ^= 0x10
    assert _parse(b)[0] == wire.CHECKSUM


def test_ra_without_options_and_shorter_than_an_ra():
    # 16 bytes: an RA with no option, so no prefix; 15: not an RA at all.  A
    # bad checksum is reported as such only for a whole RA header.
    for plen, good, bad in ((16, wire.RA_INVALID, wire.CHECKSUM), (15, wire.RA_INVALID, wire.RA_INVALID)):
        b = bytearray(21 + 40 + plen)
        wire.build_auth(b, 0, NONCE)
        wire.build_origin(b, 13, 50000, ip4("203.0.113.7"))
        wire.build_ipv6(b, 21, plen, proto.NH_ICMPV6, 255, SERVER_LL, proto.LL_NONCONE)
        b[61] = proto.ICMP_RA
        wire.set_l4_checksum(b, 21, proto.NH_ICMPV6, plen, 63)
        assert _parse(b)[0] == good, plen
        b[len(b) - 1] ^= 0x40
        assert _parse(b)[0] == bad, plen


def test_ra_prefix_option_every_field():
    ip = 21
    pio = ip + 56
    assert _parse(_ra())[1] == (50000, 1280, ip4("203.0.113.7"))
    for plen in (63, 65, 0, 128):
        b = _ra()
        b[pio + 2] = plen
        assert _parse(b, fix=True)[0] == wire.RA_INVALID, plen
    for k in range(8):  # 2001:0000 then the server's IPv4, byte by byte
        b = _ra()
        b[pio + 16 + k] ^= 0x01
        assert _parse(b, fix=True)[0] == wire.RA_INVALID, k
    # bytes past the /64 and the flags do not matter
    b = _ra()
    b[pio + 3] = 0
    b[pio + 24] = 0x55
    b[pio + 31] = 0x55
    assert _parse(b, fix=True)[0] == wire.OK


def test_ra_prefix_option_length_must_be_4_units():
    for units in (3, 5):
        extra = bytearray(units * 8)
        extra[0] = proto.OPT_PREFIX_INFO
        extra[1] = units
        extra[2] = 64
        extra[16:20] = proto.PREFIX
        extra[20:24] = ip4(SERVER)
        assert _parse(_ra(prefixes=0, extra=bytes(extra)))[0] == wire.RA_INVALID, units


def test_ra_options_at_the_end_of_the_packet():
    # an unknown option is skipped; one that ends exactly at the end is fine
    sll = b"\x01\x01\x00\x00\x00\x00\x00\x00"
    assert _parse(_ra(extra=sll))[0] == wire.OK
    # an option whose length runs one unit past the end
    assert _parse(_ra(extra=b"\x01\x02\x00\x00\x00\x00\x00\x00"))[0] == wire.RA_INVALID
    # a lone trailing byte: not even an option header
    b = _ra(extra=b"\x01")
    assert _parse(b)[0] in (wire.RA_INVALID, wire.CHECKSUM)
    hdr = [0, 0, 0, 0]
    assert wire.parse_encap(b, len(b), hdr) == wire.OK
    ip = hdr[wire.H_IP]
    wire.set_l4_checksum(b, ip, proto.NH_ICMPV6, len(b) - ip - 40, ip + 42)
    assert _parse(b)[0] == wire.RA_INVALID
    # options after the prefix, of several kinds, in any order
    two = _ra(extra=sll + sll)
    assert _parse(two)[0] == wire.OK


# ---- the IPv6 payload length, and the RA's MTU option ---------------------------

TRAILER = wire.DROP_NAMES.index("trailer")  # its constant is private to wire.py


def test_encap_payload_length_every_bit():
    # a bit of either byte of the payload length, flipped: claiming more
    # than the datagram holds is LENGTH; claiming less leaves bytes after the
    # packet, read as RFC 6081 trailers: an odd zero byte is a malformed one,
    # zero pairs are empty trailers of an unknown type, skipped
    hdr = [0, 0, 0, 0]
    for plen, flip4, flip5 in ((1, (wire.LENGTH, 0), (TRAILER, 0)),
                               (0x100, (wire.OK, 40), (wire.LENGTH, 0)),
                               (0x0101, (wire.OK, 41), (TRAILER, 0))):
        b = bytearray(40 + plen)
        wire.build_ipv6(b, 0, plen, 59, 64, A, B)
        assert wire.parse_encap(b, len(b), hdr) == wire.OK and hdr[wire.H_END] == 40 + plen
        for k, (want, end) in ((4, flip4), (5, flip5)):
            b[k] ^= 0x01
            hdr[wire.H_END] = 0
            assert wire.parse_encap(b, len(b), hdr) == want, (plen, k)
            assert want != wire.OK or hdr[wire.H_END] == end, (plen, k)
            b[k] ^= 0x01


def _mtu_max(v, check):
    """Run check() with proto.MTU_MAX raised to v: with the shipped
    MTU_MIN = MTU_MAX = 1280 (what a board receives) every MTU option gives
    1280 (test_wire.py); a build that receives more (a larger MTU_MAX) uses
    the value, so each field of the option shows."""
    old = proto.MTU_MAX
    proto.MTU_MAX = v
    try:
        check()
    finally:
        proto.MTU_MAX = old


def test_ra_mtu_option_every_field():
    def check():
        # below 1280 not used (RFC 4861 §6.3.4: the RA stands), above MTU_MAX
        # clamped, the upper 16 bits count
        for mtu, want in ((1279, 1280), (1280, 1280), (1281, 1281), (8999, 8999), (9000, 9000),
                          (9001, 9000), (65535, 9000), (65536, 9000), (0x1000000 + 1500, 9000),
                          (0x10000 + 1500, 9000), (0x01010000 + 1500, 9000), (0, 1280)):
            r, v = _parse(_ra(mtu=mtu))
            assert r == wire.OK and v[1] == want, mtu

    _mtu_max(9000, check)
    for mtu in (1279, 1281, 9000, 65536, 0x01010000 + 1500):
        assert _parse(_ra(mtu=mtu)) == (wire.OK, (50000, 1280, ip4("203.0.113.7"))), mtu
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
    def check():
        b = _ra(mtu=1500)
        pio = 21 + 56
        assert b[pio] == 3 and b[pio + 1] == 4 and b[pio + 32] == 5 and b[pio + 33] == 1
        assert b[21 + 40] == 134 and b[21 + 7] == 255
        assert _parse(b) == (wire.OK, (50000, 1500, ip4("203.0.113.7")))
        # another type: no prefix (the RA is refused), or an unknown option skipped
        for k, v, want in ((pio, 4, wire.RA_INVALID), (pio, 2, wire.RA_INVALID),
                           (pio + 32, 6, wire.OK), (pio + 32, 4, wire.OK)):
            c = bytearray(b)
            c[k] = v
            r, res = _parse(c, fix=True)
            assert r == want and (r != wire.OK or res[1] == 1280), (k, v)

    _mtu_max(1500, check)


def test_ra_results_each_field():
    def check():
        for port, mapped, mtu in ((1, "1.2.3.4", 1280), (0xFFFF, "254.253.252.251", 1500),
                                  (0x1234, "203.0.113.7", 65535)):
            r, v = _parse(_ra(mapped_port=port, mapped4=ip4(mapped), mtu=mtu))
            assert r == wire.OK and v == (port, mtu, ip4(mapped)), (port, mapped)

    _mtu_max(65535, check)
    r, v = _parse(_ra(mapped_port=0xFFFF, mapped4=ip4("254.253.252.251"), mtu=1500))
    assert r == wire.OK and v == (0xFFFF, 1280, ip4("254.253.252.251"))


def test_trailers_at_their_exact_lengths():
    # RFC 6081 §4 trailers after the IPv6 packet: an alternate address
    # trailer (type 3) holds 2 reserved bytes and 6 per address, 1 to 4
    # addresses: 8, 14, 20, 26; nonce (1) and neighbor discovery (4) 4;
    # random port (5) 2; a trailer that ends exactly at the datagram's end
    # is whole, one byte beyond it is not
    hdr = [0, 0, 0, 0]
    for t, k, ok in ((3, 8, True), (3, 14, True), (3, 20, True), (3, 26, True),
                     (3, 7, False), (3, 9, False), (3, 2, False), (3, 25, False), (3, 27, False),
                     (3, 32, False), (1, 4, True), (1, 3, False), (1, 5, False), (4, 4, True),
                     (4, 6, False), (5, 2, True), (5, 1, False), (5, 3, False), (9, 0, True),
                     (9, 13, True)):
        b = bytearray(40 + 2 + k)
        wire.build_ipv6(b, 0, 0, 59, 64, A, B)
        b[40] = t
        b[41] = k
        r = wire.parse_encap(b, len(b), hdr)
        assert r == (wire.OK if ok else TRAILER), (t, k, r)
        assert not ok or hdr[wire.H_END] == 40, (t, k)
        # the same trailer one byte short of its length: it overruns
        assert wire.parse_encap(b, len(b) - 1, hdr) == TRAILER, (t, k)
    # two trailers back to back, the second ending exactly at the end
    b = bytearray(40 + 10 + 4)
    wire.build_ipv6(b, 0, 0, 59, 64, A, B)
    b[40:42] = bytes([3, 8])
    b[50:52] = bytes([5, 2])
    assert wire.parse_encap(b, len(b), hdr) == wire.OK and hdr[wire.H_END] == 40
    assert wire.parse_encap(b, len(b) - 1, hdr) == TRAILER
    b[51] = 3  # the random port trailer one byte too long for what is left
    assert wire.parse_encap(b, len(b), hdr) == TRAILER
