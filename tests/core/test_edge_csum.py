# Checksums and builders at their edges, written to catch plausible slips that
# the example vectors of test_wire.py let through (found by `make mutate`):
# every checksum path at the sums where a carry or the "zero means no
# checksum" rule matters, odd lengths, every byte each builder writes.  Runs on
# CPython (pytest) and on the MicroPython unix port (tests/mp_run.py).
from teredo import proto, wire
from vectors import Rand, ip4, ip6

NONCE = b"\x11\x22\x33\x44\x55\x66\x77\x88"
A = ip6("2001:db8::1")
B = ip6("2001:0:c633:640a:8000:f227:39b5:9bf4")
# the ones' complement sums where carries, folds and the zero rule bite
SUMS = (0xFFFF, 0xFFFE, 0xFF00, 0x00FF, 0x0100, 0x8000, 0x7FFF, 0x0001)


def ref_sum(data):
    """RFC 1071 written the slow way: 16-bit words, odd byte padded, folded."""
    s = 0
    for i in range(0, len(data), 2):
        s += data[i] << 8
        if i + 1 < len(data):
            s += data[i + 1]
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ref_l4(pkt):
    """Pseudo-header (RFC 8200 §8.1) + upper layer, by ref_sum."""
    plen = len(pkt) - 40
    ph = bytearray(40)
    ph[0:32] = pkt[8:40]
    ph[32] = (plen >> 24) & 0xFF
    ph[33] = (plen >> 16) & 0xFF
    ph[34] = (plen >> 8) & 0xFF
    ph[35] = plen & 0xFF
    ph[39] = pkt[6]
    return ref_sum(bytes(ph) + bytes(pkt[40:]))


def word_for_sum(s, target):
    """The 16-bit word that, added to the folded sum s, folds to target."""
    return target - s if target >= s else target - s + 0xFFFF


def udp_with_sum(target, dlen=6, nh=proto.NH_UDP):
    """A UDP (or, nh=58, ICMPv6 echo) packet whose data word at offset 48 is
    chosen so that the sum over it with a zero checksum field is target."""
    b = bytearray(48 + dlen)
    data = bytearray(dlen)
    for i in range(2, dlen):
        data[i] = (i * 29 + 3) & 0xFF
    if nh == proto.NH_UDP:
        wire.build_udp6(b, 0, A, B, 4000, 53, data, dlen)
        field = 46
    else:
        wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, A, B, 0x1234, 7, data, dlen)
        field = 42
    b[field] = 0
    b[field + 1] = 0
    w = word_for_sum(ref_l4(b), target)
    b[48] = w >> 8
    b[49] = w & 0xFF
    assert ref_l4(b) == target
    wire.set_l4_checksum(b, 0, nh, 8 + dlen, field)
    return b, field


# ---- checksums ---------------------------------------------------------------

def test_csum_fold_carries():
    assert wire.csum_fold(0) == 0
    assert wire.csum_fold(0xFFFF) == 0xFFFF
    assert wire.csum_fold(0x10000) == 1
    assert wire.csum_fold(0x1FFFE) == 0xFFFF   # one fold gives 0xFFFF exactly
    assert wire.csum_fold(0x1FFFF) == 1        # one fold gives 0x10000: a second is needed
    assert wire.csum_fold(0xFFFF0001) == 1
    assert wire.csum_fold(0x12345) == 0x2346


def test_checksum_every_length_matches_rfc1071():
    r = Rand(21)
    data = bytearray(70)
    for i in range(70):
        data[i] = r(8)
    for k in range(0, 70):
        for start in (0, 1):
            if start + k > 70:
                continue
            want = ref_sum(data[start:start + k])
            for f in (wire.csum_add, wire.csum_add_plain):
                assert wire.csum_fold(f(data, start, start + k, 0)) == want, (k, start)


def test_checksum_of_all_ones_and_of_zeros():
    # the ones' complement sum of nonzero data is never 0: 0xFFFF, not 0
    for f in (wire.csum_add, wire.csum_add_plain):
        assert wire.csum_fold(f(b"\xff\xff", 0, 2, 0)) == 0xFFFF
        assert wire.csum_fold(f(b"\xff\xff\xff\xff", 0, 4, 0)) == 0xFFFF
        assert wire.csum_fold(f(b"\x00\x00\x00", 0, 3, 0)) == 0
        assert wire.csum_fold(f(b"\xff", 0, 1, 0)) == 0xFF00   # odd byte is the high half
        assert wire.csum_fold(f(b"\x00\xff", 0, 2, 0)) == 0x00FF
        assert wire.csum_fold(f(b"\x12\x34", 0, 2, 0xFFFF)) == 0x1234
        assert wire.csum_fold(f(b"\x12\x34\x56", 1, 3, 5)) == 0x3456 + 5
        assert f(b"\x12", 1, 1, 7) == 7  # empty range: acc unchanged


def test_udp_checksum_zero_is_sent_as_all_ones_rfc768():
    b, f = udp_with_sum(0xFFFF)
    assert b[f] == 0xFF and b[f + 1] == 0xFF
    assert wire.l4_sum(b, 0, proto.NH_UDP, len(b) - 40) == 0xFFFF


def test_icmpv6_checksum_zero_stays_zero():
    # ICMPv6 has no "no checksum" value: a sum of 0xFFFF gives checksum 0
    b, f = udp_with_sum(0xFFFF, nh=proto.NH_ICMPV6)
    assert b[f] == 0 and b[f + 1] == 0
    assert wire.l4_sum(b, 0, proto.NH_ICMPV6, len(b) - 40) == 0xFFFF


def test_checksums_at_every_edge_sum_and_odd_lengths():
    for nh in (proto.NH_UDP, proto.NH_ICMPV6):
        for dlen in (2, 3, 5, 8):
            for s in SUMS:
                b, f = udp_with_sum(s, dlen, nh)
                c = (b[f] << 8) | b[f + 1]
                assert c == ((~s) & 0xFFFF or (0xFFFF if nh == proto.NH_UDP else 0)), (nh, dlen, s, c)
                assert wire.l4_sum(b, 0, nh, len(b) - 40) == 0xFFFF
                assert ref_l4(b) == 0xFFFF


def test_echo_reply_checksum_for_every_edge_request_checksum():
    # RFC 1624: HC' = ~(~HC + ~m + m').  The request checksum 0x00FF is the
    # one value where the first fold carries again; 0x0000/0xFFFF are the
    # two forms of zero.
    for want in (0x00FF, 0x0000, 0xFFFF, 0x0100, 0xFEFF, 0xFF00, 0x7FFF, 0x8000, 0x0001, 0xFFFE):
        for f2r in (wire.echo_to_reply, wire.echo_to_reply_plain):
            b, f = udp_with_sum((~want) & 0xFFFF or 0xFFFF, 8, proto.NH_ICMPV6)
            b[f] = want >> 8
            b[f + 1] = want & 0xFF
            assert wire.l4_sum(b, 0, proto.NH_ICMPV6, 16) == 0xFFFF, hex(want)
            f2r(b, 0)
            assert b[40] == proto.ICMP_ECHO_REPLY
            assert wire.l4_sum(b, 0, proto.NH_ICMPV6, 16) == 0xFFFF, hex(want)


def test_echo_reply_keeps_code_and_fixes_checksum():
    for code in (1, 0x7F, 0xFF):
        for f2r in (wire.echo_to_reply, wire.echo_to_reply_plain):
            # at an offset, with bytes around it that must stay as they are
            b = bytearray(b"\xa5" * 62)
            wire.build_echo(b, 3, proto.ICMP_ECHO_REQUEST, A, B, 1, 2, NONCE, 8)
            b[44] = code
            wire.set_l4_checksum(b, 3, proto.NH_ICMPV6, 16, 45)
            b[10] = 3
            want = bytearray(b)
            f2r(b, 3)
            assert b[44] == code and b[10] == proto.HOP_LIMIT and b[43] == proto.ICMP_ECHO_REPLY
            assert b[11:27] == B and b[27:43] == A
            assert wire.l4_sum(b, 3, proto.NH_ICMPV6, 16) == 0xFFFF, code
            assert b[0:3] == want[0:3] and b[3:10] == want[3:10] and b[47:] == want[47:]


def test_l4_sum_twins_agree_at_every_length_and_offset():
    # the interpreter's l4_sum (viper on MicroPython) against the plain one
    # and the slow reference: odd and even lengths, packets at odd offsets,
    # edge sums, and a full 1500-byte packet of 0xFF (the largest sum)
    r = Rand(5)
    for plen in (0, 1, 2, 3, 7, 8, 9, 40, 41):
        for ip in (0, 1, 3):
            b = bytearray(ip + 40 + plen + 2)
            for i in range(len(b)):
                b[i] = r(8)
            for nh in (proto.NH_UDP, proto.NH_ICMPV6, proto.NH_TCP):
                b[ip + 6] = nh  # ref_l4 takes the next header from the packet
                got = wire.l4_sum(b, ip, nh, plen)
                assert got == wire.l4_sum_plain(b, ip, nh, plen), (plen, ip, nh)
                assert got == ref_l4(b[ip:ip + 40 + plen]), (plen, ip, nh)
    for sum_ in SUMS:
        b, f = udp_with_sum(sum_, 5, proto.NH_UDP)
        assert wire.l4_sum(b, 0, proto.NH_UDP, len(b) - 40) == 0xFFFF
        assert wire.l4_sum_plain(b, 0, proto.NH_UDP, len(b) - 40) == 0xFFFF
    big = bytearray(b"\xff" * 1500)
    big[6] = proto.NH_UDP
    want = ref_l4(big)
    for f in (wire.l4_sum, wire.l4_sum_plain):
        assert f(big, 0, proto.NH_UDP, 1460) == want
    z = bytearray(48)
    for f in (wire.l4_sum, wire.l4_sum_plain):
        assert f(z, 0, 0, 0) == 0 and f(z, 0, 1, 0) == 1 and f(z, 0, 0, 8) == 8


# ---- builders: every byte they write ----------------------------------------

def test_build_ipv6_writes_every_header_byte():
    b = bytearray(b"\xff" * 44)
    wire.build_ipv6(b, 2, 0x1234, 17, 200, A, B)
    assert b[0:2] == b"\xff\xff" and b[42:44] == b"\xff\xff"
    assert b[2:10] == bytes([0x60, 0, 0, 0, 0x12, 0x34, 17, 200])
    assert b[10:26] == A and b[26:42] == B


def test_build_udp6_fields():
    b = bytearray(b"\xee" * 60)
    assert wire.build_udp6(b, 0, A, B, 0x1234, 0xFEDC, b"abc", 3) == 51
    assert b[40:46] == bytes([0x12, 0x34, 0xFE, 0xDC, 0, 11])
    assert b[48:51] == b"abc" and b[51] == 0xEE
    assert b[4] == 0 and b[5] == 11 and b[6] == 17 and b[7] == 64  # hop limit of what we originate
    b2 = bytearray(b"\xee" * 60)
    assert wire.build_udp6(b2, 0, A, B, 1, 2, None, 0) == 48
    assert b2[48] == 0xEE
    # a payload already in place (None) and a length over 255
    b3 = bytearray(b"\x5a" * 400)
    assert wire.build_udp6(b3, 0, A, B, 1, 2, None, 300) == 348
    assert b3[44] == 308 >> 8 and b3[45] == 308 & 0xFF and b3[4] == 1 and b3[5] == 308 & 0xFF
    assert b3[48:348] == b"\x5a" * 300 and wire.l4_sum(b3, 0, proto.NH_UDP, 308) == 0xFFFF


def test_build_echo_fields():
    b = bytearray(b"\xee" * 70)
    assert wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, A, B, 0xABCD, 0x1357, b"xyz", 3) == 51
    assert b[40] == proto.ICMP_ECHO_REPLY and b[41] == 0
    assert b[44:48] == bytes([0xAB, 0xCD, 0x13, 0x57]) and b[48:51] == b"xyz" and b[51] == 0xEE
    assert b[4] == 0 and b[5] == 11 and b[7] == proto.HOP_LIMIT
    assert wire.l4_sum(b, 0, proto.NH_ICMPV6, 11) == 0xFFFF
    # data None: the payload already in place is kept
    c = bytearray(b"\x5a" * 60)
    wire.build_echo(c, 0, proto.ICMP_ECHO_REQUEST, A, B, 0, 0, None, 4)
    assert c[48:52] == b"\x5a\x5a\x5a\x5a" and wire.l4_sum(c, 0, proto.NH_ICMPV6, 12) == 0xFFFF


def test_build_auth_every_byte():
    b = bytearray(b"\xee" * 40)
    n = wire.build_auth(b, 1, NONCE, b"ID", b"VAL", 0x42)
    assert n == 13 + 2 + 3
    assert b[0] == 0xEE and b[1:5] == bytes([0, 1, 2, 3])
    assert b[5:7] == b"ID" and b[7:10] == b"VAL" and b[10:18] == NONCE and b[18] == 0x42
    assert b[19] == 0xEE
    b = bytearray(b"\xee" * 20)
    assert wire.build_auth(b, 0, NONCE) == 13
    assert b[0:4] == bytes([0, 1, 0, 0]) and b[4:12] == NONCE and b[12] == 0 and b[13] == 0xEE


def test_origin_port_and_address_every_byte():
    for port, ip in ((0x0102, "3.4.5.6"), (0xFF00, "255.0.255.0"), (0x00FF, "0.255.0.255")):
        b = bytearray(b"\xee" * 10)
        assert wire.build_origin(b, 1, port, ip4(ip)) == 8
        assert b[0] == 0xEE and b[9] == 0xEE and b[1] == 0 and b[2] == 0
        assert b[3] == (port >> 8) ^ 0xFF and b[4] == (port & 0xFF) ^ 0xFF
        assert wire.origin_port(b, 1) == port
        out = bytearray(4)
        wire.origin_ip_into(b, 1, out)
        assert bytes(out) == ip4(ip)


def test_bubble_every_byte():
    b = bytearray(b"\xee" * 42)
    assert wire.build_bubble(b, 1, A, B) == 40
    assert b[1:9] == bytes([0x60, 0, 0, 0, 0, 0, proto.NH_NONE, proto.HOP_LIMIT])
    assert b[9:25] == A and b[25:41] == B and b[41] == 0xEE


def test_rs_every_byte():
    b = bytearray(b"\xee" * 64)
    n = wire.build_rs(b, 1, NONCE, False)
    assert n == 61 and b[62] == 0xEE
    assert b[5:13] == NONCE and b[13] == 0
    ip = 14
    assert b[ip:ip + 8] == bytes([0x60, 0, 0, 0, 0, 8, proto.NH_ICMPV6, 255])
    assert b[ip + 40:ip + 42] == bytes([proto.ICMP_RS, 0]) and b[ip + 44:ip + 48] == bytes(4)
    assert wire.l4_sum(b, ip, proto.NH_ICMPV6, 8) == 0xFFFF


def test_eq_and_swap16_every_position():
    a = bytearray(range(40))
    for n in (1, 8, 16):
        for k in range(n):
            c = bytearray(a)
            c[3 + k] ^= 0x80
            for f in (wire.eq, wire.eq_plain):
                assert not f(a, 3, c, 3, n), (n, k)
                assert f(a, 3, c, 3, k) and f(a, 4 + k, c, 4 + k, n - k - 1)
    for f in (wire.swap16, wire.swap16_plain):
        x = bytearray(range(48))
        f(x, 0, 20)
        assert x[0:16] == bytes(range(20, 36)) and x[20:36] == bytes(range(16))
        assert x[16:20] == bytes(range(16, 20)) and x[36:48] == bytes(range(36, 48))


def test_is_link_local_fe80_10():
    for a, ok in ((b"\xfe\x80", True), (b"\xfe\xbf", True), (b"\xfe\xc0", False), (b"\xfe\x40", False),
                  (b"\xff\x80", False), (b"\xfc\x80", False)):
        assert wire.is_link_local(b"\x00" + a, 1) == ok, a
