# Addresses at their edges, written to catch plausible slips that the example
# vectors of test_addr.py let through (found by `make mutate`): text forms at
# their limits and the reasons given, every range edge of the global-unicast
# test, every byte of the Teredo prefix and fields.  Runs on CPython (pytest)
# and on the MicroPython unix port.
from teredo import addr, proto
from vectors import ip4


# ---- addresses ---------------------------------------------------------------

def _err(f, *a):
    try:
        f(*a)
    except ValueError as e:
        return str(e)
    return None


def test_ipv4_limits():
    assert addr.parse_ipv4("255.255.255.255") == b"\xff\xff\xff\xff"
    assert addr.parse_ipv4("0.0.0.0") == bytes(4)
    assert addr.parse_ipv4("9.99.100.199") == bytes([9, 99, 100, 199])
    for bad in ("256.0.0.0", "0.0.0.256", "1000.1.1.1", "0255.1.1.1", "00.1.1.1", "1.2.3.", ".1.2.3",
                "1.2.3.4 ", "1.2.3.x", "1.2.3.:"):
        assert _err(addr.parse_ipv4, bad), bad
    assert "over 255" in _err(addr.parse_ipv4, "1.2.3.256")
    assert "leading zero" in _err(addr.parse_ipv4, "1.2.3.04")
    assert "not a number" in _err(addr.parse_ipv4, "1.2.3.1234")
    assert "not a number" in _err(addr.parse_ipv4, "1..3.4")
    assert _err(addr.parse_ipv4, b"1.2.3.4")  # not text
    assert addr.format_ipv4(b"\x00\x01\x02\x03\x04", 1) == "1.2.3.4"


def test_ipv6_limits():
    assert addr.parse_ipv6("ffff:FFFF:0:0:0:0:0:0") == b"\xff" * 4 + bytes(12)
    assert addr.parse_ipv6("1:2:3:4:5:6:7:8") == bytes([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
    assert addr.parse_ipv6("1::2:3:4:5:6:7") == addr.parse_ipv6("1:0:2:3:4:5:6:7")
    assert addr.parse_ipv6("1:2:3:4:5:6:1.2.3.4")[12:] == bytes([1, 2, 3, 4])
    assert addr.parse_ipv6("::1.2.3.4") == bytes(12) + bytes([1, 2, 3, 4])
    assert addr.parse_ipv6("1::1.2.3.4")[0:2] == b"\x00\x01"
    assert addr.parse_ipv6("::abcd:1.2.3.4")[10:16] == bytes([0xAB, 0xCD, 1, 2, 3, 4])
    for bad in ("1:2:3:4:5:6:7::8", "1::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5::6:1.2.3.4",
                "12345::", "::fffff", "::g", "1:2:3:4:5:6:7:8:", "1::2::", "::1::", "1:2:3:4:5:6:7:1.2.3",
                "1:2:3:4:5:6:1.2.3.4:", ":1.2.3.4", "1.:2", "::1.2.3.4.5", "::-1", "::+1"):
        assert _err(addr.parse_ipv6, bad), bad
    assert "once" in _err(addr.parse_ipv6, "1::2::3")
    assert "too many groups" in _err(addr.parse_ipv6, "1:2:3:4::5:6:7:8")
    assert "groups" in _err(addr.parse_ipv6, "1.:2")  # a dot before the last colon is no IPv4 tail
    assert "bad group" in _err(addr.parse_ipv6, "::12345")
    assert "expected 8 groups" in _err(addr.parse_ipv6, "1:2:3:4:5:6:7")
    assert "zone" in _err(addr.parse_ipv6, "fe80::1%1")
    assert _err(addr.parse_ipv6, 1)


def test_ipv6_text_hex_digits_at_their_range_ends():
    for g, v in (("0", 0), ("9", 9), ("a", 10), ("f", 15), ("A", 10), ("F", 15), ("fFfF", 0xFFFF)):
        assert addr.parse_ipv6("::" + g)[14:16] == bytes([v >> 8, v & 0xFF]), g
    for g in ("g", "G", "/", ":", "@", "`"):
        assert _err(addr.parse_ipv6, "1::" + g), g
    for c in ("/", ":", "a", "A", " "):
        assert _err(addr.parse_ipv4, "1.2.3." + c), c


def test_ipv6_format_mapped_and_zero_runs():
    # only ::ffff:0:0/96 is written with a dotted tail; each of its zero groups matters
    assert addr.format_ipv6(addr.parse_ipv6("::ffff:1.2.3.4")) == "::ffff:1.2.3.4"
    for k in range(5):
        a = bytearray(addr.parse_ipv6("::ffff:1.2.3.4"))
        a[2 * k + 1] = 1
        assert "." not in addr.format_ipv6(a), k
    assert addr.format_ipv6(addr.parse_ipv6("::fffe:1.2.3.4")) == "::fffe:102:304"
    assert addr.format_ipv6(bytes(16)) == "::"
    assert addr.format_ipv6(addr.parse_ipv6("1:2:3:4:5:6:7:0")) == "1:2:3:4:5:6:7:0"
    assert addr.format_ipv6(addr.parse_ipv6("1:2:3:4:5:6:0:0")) == "1:2:3:4:5:6::"
    assert addr.format_ipv6(addr.parse_ipv6("0:0:3:4:5:6:7:8")) == "::3:4:5:6:7:8"
    assert addr.format_ipv6(addr.parse_ipv6("1:0:0:4:0:0:0:8")) == "1:0:0:4::8"
    assert addr.format_ipv6(b"\xee" + addr.parse_ipv6("ab:cd::ef"), 1) == "ab:cd::ef"


def test_global_ipv4_range_edges():
    cases = (("0.0.0.0", False), ("1.0.0.0", True), ("9.255.255.255", True), ("10.0.0.0", False),
             ("11.0.0.0", True), ("126.255.255.255", True), ("127.255.255.255", False),
             ("128.0.0.0", True), ("169.254.0.0", False), ("169.255.0.0", True), ("169.253.0.0", True),
             ("168.254.0.0", True), ("170.254.0.0", True),
             ("172.15.255.255", True), ("172.16.0.0", False), ("172.31.255.255", False),
             ("172.32.0.0", True), ("171.16.0.0", True), ("173.16.0.0", True),
             ("192.167.0.0", True), ("192.168.0.0", False), ("192.169.0.0", True), ("191.168.0.0", True),
             ("193.168.0.0", True), ("192.88.99.0", False), ("192.88.98.0", True), ("192.88.100.0", True),
             ("192.87.99.0", True), ("192.89.99.0", True), ("193.88.99.0", True), ("191.88.99.0", True),
             ("100.63.255.255", True), ("100.64.0.0", False), ("100.127.255.255", False),
             ("100.128.0.0", True), ("99.64.0.0", True), ("101.64.0.0", True),
             ("223.255.255.255", True), ("224.0.0.0", False), ("255.255.255.255", False))
    for t, want in cases:
        b = b"\x00\x00" + addr.parse_ipv4(t)
        assert addr.is_global_ipv4(b, 2) == want, t


def test_teredo_prefix_every_byte():
    a = addr.build_teredo(ip4("65.54.227.120"), 0, 40000, ip4("198.51.100.7"))
    assert addr.is_teredo(a)
    for k in range(4):
        b = bytearray(a)
        b[k] ^= 0x01
        assert not addr.is_teredo(b), k
        b = bytearray(a)
        b[4 + k] ^= 0xFF  # the server part does not matter
        assert addr.is_teredo(b)
    assert addr.is_teredo(b"\xee" + bytes(a), 1)


def test_teredo_fields_every_byte():
    s = ip4("65.54.227.120")
    m = ip4("198.51.100.7")
    out = bytearray(b"\xee" * 20)
    addr.build_teredo(s, 0xA5C3, 0x1234, m, out, 2)
    assert out[0:2] == b"\xee\xee" and out[18:20] == b"\xee\xee"
    assert out[2:6] == proto.PREFIX and out[6:10] == s
    assert out[10:12] == b"\xa5\xc3" and out[12:14] == bytes([0x12 ^ 0xFF, 0x34 ^ 0xFF])
    assert out[14:18] == bytes([198 ^ 0xFF, 51 ^ 0xFF, 100 ^ 0xFF, 7 ^ 0xFF])
    assert addr.teredo_flags(out, 2) == 0xA5C3 and addr.teredo_port(out, 2) == 0x1234
    assert addr.teredo_mapped_matches(out, 2, m)
    assert addr.teredo_mapped_matches(out, 2, b"\x00" + m, 1)
    for k in range(4):
        other = bytearray(m)
        other[k] ^= 0x01
        assert not addr.teredo_mapped_matches(out, 2, other), k
        assert not addr.teredo_mapped_matches(out, 2, b"\x00" + other, 1), k
    # the flags are written as they are, every bit
    for f in (0x0001, 0x0100, 0x8000, 0xFFFF):
        assert addr.teredo_flags(addr.build_teredo(s, f, 1, m)) == f


def test_decode_teredo_length_and_prefix():
    a = bytes(addr.build_teredo(ip4("65.54.227.120"), 0x8000, 40000, ip4("198.51.100.7")))
    assert addr.decode_teredo(a) == (ip4("65.54.227.120"), 0x8000, 40000, ip4("198.51.100.7"))
    assert "16 bytes" in _err(addr.decode_teredo, a[:15])
    assert "16 bytes" in _err(addr.decode_teredo, a + b"\x00")


def test_random_flags_draw_enough_bits_and_mask_them():
    # RFC 5991 §4: the 12 A bits of "CRAAAAUG AAAAAAAA" from a 16-bit draw;
    # C (the cone bit, never published), R, U and G stay 0 whatever comes
    def ones(n):  # n random bits, all of them set
        return (1 << n) - 1

    def top_only(n):  # only the highest of the n bits asked for
        return 1 << (n - 1)

    assert addr.random_flags(ones) == 0x3CFF == proto.FLAG_RANDOM_MASK
    assert addr.random_flags(ones) & proto.FLAG_CONE == 0
    assert addr.random_flags(lambda n: 0) == 0
    assert addr.random_flags(top_only) == 0  # bit 15 is C: masked
    assert addr.random_flags(lambda n: 0x2000 if n >= 14 else 0) == 0x2000  # the highest A bit
