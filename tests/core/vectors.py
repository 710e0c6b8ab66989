# Test vectors and helpers for the core, on CPython and MicroPython alike: a
# deterministic random source, addresses of the simulated Internet, and an RA
# built as a Teredo server builds it (RFC 4380 §5.3.2), with knobs to break it.

from teredo import addr, proto, wire


class Rand:
    """Deterministic rand(nbits) (a 32-bit LCG's top bits)."""

    def __init__(self, seed=1):
        self.s = seed & 0xFFFF

    def __call__(self, bits):
        # 16-bit halves keep this in small ints on 32-bit MicroPython too
        self.s = (self.s * 25173 + 13849) & 0xFFFF
        v = self.s
        self.s = (self.s * 25173 + 13849) & 0xFFFF
        v = ((v << 8) ^ self.s) & 0xFFFF
        return v & ((1 << bits) - 1)


def ip4(text):
    return addr.parse_ipv4(text)


def ip6(text):
    return addr.parse_ipv6(text)


SERVER = "198.51.100.10"
SERVER2 = "198.51.100.11"
RELAY = "198.51.100.20"
NAT_WAN = "203.0.113.7"
LOCAL = "198.18.1.2"
LOCAL_PORT = 40000
V6HOST = "2001:db8:f::100"
SERVER_LL = ip6("fe80::8000:f227:39b5:9bf4")


def build_ra(src_ll, dst_ll, nonce, mapped4, mapped_port, server4, mtu=1280,
             prefixes=1, hop=255, mtu_opt=True, origin=True, auth=True, extra=b""):
    """An RA as a Teredo server sends it, for tests (with knobs to break it)."""
    b = bytearray(200)
    o = 0
    if auth:
        o += wire.build_auth(b, o, nonce)
    if origin:
        o += wire.build_origin(b, o, mapped_port, mapped4)
    ip = o
    body = bytearray(16)
    body[0] = proto.ICMP_RA
    body[4] = 64  # cur hop limit
    opts = bytearray()
    for _ in range(prefixes):
        pio = bytearray(32)
        pio[0] = proto.OPT_PREFIX_INFO
        pio[1] = 4
        pio[2] = 64
        pio[3] = 0xC0
        pio[16:20] = proto.PREFIX
        pio[20:24] = server4
        opts += pio
    if mtu_opt:
        m = bytearray(8)
        m[0] = proto.OPT_MTU
        m[1] = 1
        m[4] = (mtu >> 24) & 0xFF
        m[5] = (mtu >> 16) & 0xFF
        m[6] = (mtu >> 8) & 0xFF
        m[7] = mtu & 0xFF
        opts += m
    opts += extra
    plen = 16 + len(opts)
    wire.build_ipv6(b, ip, plen, proto.NH_ICMPV6, hop, src_ll, dst_ll)
    b[ip + 40:ip + 56] = body
    b[ip + 56:ip + 56 + len(opts)] = opts
    wire.set_l4_checksum(b, ip, proto.NH_ICMPV6, plen, ip + 42)
    return bytes(b[:ip + 40 + plen])


