# Addresses: text forms, the global-unicast test and Teredo addresses.
# Runs on CPython (pytest) and on the MicroPython unix port (tests/mp_run.py).
from teredo import addr, proto
from vectors import Rand


def raises(f, *a):
    try:
        f(*a)
    except ValueError as e:
        return str(e)
    return None


def test_known_vector_rfc_example():
    a = addr.parse_ipv6("2001:0:1117:34fa:1027:374b:e1fc:f635")
    server, flags, port, mapped = addr.decode_teredo(a)
    assert addr.format_ipv4(server) == "17.23.52.250"
    assert flags == 0x1027
    assert port == 51380
    assert addr.format_ipv4(mapped) == "30.3.9.202"


def test_known_vector_cone():
    a = addr.parse_ipv6("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    server, flags, port, mapped = addr.decode_teredo(a)
    assert addr.format_ipv4(server) == "65.54.227.120"
    assert flags & 0x8000
    assert port == 40000
    assert addr.format_ipv4(mapped) == "192.0.2.45"


def test_build_matches_vector():
    a = addr.build_teredo(addr.parse_ipv4("65.54.227.120"), 0x8000, 40000,
                          addr.parse_ipv4("192.0.2.45"))
    assert addr.format_ipv6(a) == "2001:0:4136:e378:8000:63bf:3fff:fdd2"


def test_round_trip_random_teredo_addresses():
    r = Rand(3)
    for _ in range(300):
        s = bytes([r(8) for _ in range(4)])
        m = bytes([r(8) for _ in range(4)])
        port = r(16)
        flags = addr.random_flags(r) | (proto.FLAG_CONE if r(1) else 0)
        a = addr.build_teredo(s, flags, port, m)
        assert addr.is_teredo(a)
        assert addr.decode_teredo(bytes(a)) == (s, flags, port, m)
        assert addr.teredo_mapped_matches(a, 0, m, 0)
        assert addr.parse_ipv6(addr.format_ipv6(a)) == bytes(a)


def test_random_flags_use_only_rfc5991_bits():
    r = Rand(5)
    seen = 0
    for _ in range(200):
        f = addr.random_flags(r)
        assert f & ~0x3CFF == 0  # RFC 5991: C (0x8000), U and G are 0
        seen |= f
    assert seen == 0x3CFF  # every random bit shows up


def test_rejects_non_teredo_prefix_with_reason():
    msg = raises(addr.decode_teredo, addr.parse_ipv6("2001:db8::1"))
    assert msg and "not a Teredo address" in msg and "2001:0::/32" in msg
    assert raises(addr.decode_teredo, addr.parse_ipv6("2002::1"))


def test_ipv6_text_forms():
    cases = (
        ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("FE80::1", "fe80::1"),
        ("2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # one zero group stays
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),           # longest run wins
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),     # leftmost of a tie
        ("::ffff:198.51.100.1", "::ffff:198.51.100.1"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    )
    for text, canon in cases:
        assert addr.format_ipv6(addr.parse_ipv6(text)) == canon, text


def test_ipv6_malformed_rejected_with_reason():
    for bad in ("", ":", ":::", "1::2::3", ":1::", "1:", "12345::", "::g", "1:2:3:4:5:6:7:8:9",
                "1:2:3:4:5:6:7", "fe80::1%eth0", "::1.2.3", "1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
                "::256.1.1.1", " ::1", "1:::2"):
        msg = raises(addr.parse_ipv6, bad)
        assert msg, bad


def test_ipv4_text():
    assert addr.parse_ipv4("198.51.100.10") == bytes([198, 51, 100, 10])
    assert addr.format_ipv4(bytes([0, 255, 1, 2])) == "0.255.1.2"
    for bad in ("", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "1..2.3",
                " 1.2.3.4", "1.2.3.-4"):
        assert raises(addr.parse_ipv4, bad), bad


def test_global_unicast_rfc4380_5_2_4():
    nonglobal = ("0.1.2.3", "10.0.0.1", "127.0.0.1", "169.254.1.1", "172.16.0.1",
                 "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254",
                 "224.0.0.1", "239.1.1.1", "240.0.0.1", "255.255.255.255", "192.88.99.1")
    glob = ("8.8.8.8", "172.15.0.1", "172.32.0.1", "100.63.255.255", "100.128.0.1",
            "198.51.100.10", "203.0.113.1", "192.0.2.1", "198.18.0.1", "198.19.255.1",
            "223.255.255.255", "169.253.0.1")
    for t in nonglobal:
        assert not addr.is_global_ipv4(addr.parse_ipv4(t)), t
    for t in glob:
        assert addr.is_global_ipv4(addr.parse_ipv4(t)), t
