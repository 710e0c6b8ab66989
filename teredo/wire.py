# Wire formats: parse and build Teredo encapsulation (RFC 4380 §5.1.1), IPv6,
# ICMPv6 (RFC 4443), RS/RA (RFC 4861), bubbles and UDP, in and out of caller
# buffers at offsets.  Nothing here allocates on the data path, and nothing
# here raises on network input: parsers return a drop reason (an index into
# DROP_NAMES, 0 = accepted) that the client counts.

from teredo import proto

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

# Drop reasons.  Index constants and their names in one table.
OK = const(0)
SHORT = const(1)          # shorter than any valid Teredo packet
ENCAP = const(2)          # bad or misplaced authentication/origin header
NOT_IPV6 = const(3)       # payload is not an IPv6 packet
LENGTH = const(4)         # IPv6 payload length disagrees with the UDP length
CHECKSUM = const(5)       # ICMPv6/UDP checksum wrong
RA_INVALID = const(6)     # a Router Advertisement the strict parser refused
RA_NONCE = const(7)       # RA nonce is not the one we sent (stale or spoofed)
NOT_FOR_US = const(8)     # IPv6 destination is not our address
SPOOFED = const(9)        # source IPv4/port disagrees with the claimed source (§5.2.3)
UNTRUSTED = const(10)     # from an unknown non-Teredo source, no test pending
NON_GLOBAL = const(11)    # would send to / came from a non-global IPv4 (§5.2.4)
NOT_QUALIFIED = const(12) # data packet while not qualified
UNSUPPORTED = const(13)   # well formed, but nothing we handle (e.g. other ICMPv6)
QUEUE_FULL = const(14)    # no room left to queue a packet for a peer (or an entry for it)
TX_FULL = const(15)       # no room left in the transmit ring
RATE_LIMITED = const(16)  # a reply or bubble held back by a rate limit
FROM_SERVER = const(17)   # unexpected packet from the server
TOO_BIG = const(18)       # larger than the link MTU
_TRAILER = const(19)      # malformed RFC 6081 trailer after the IPv6 packet

DROP_NAMES = ("ok", "short", "encap", "not_ipv6", "length", "checksum", "ra_invalid",
              "ra_nonce", "not_for_us", "spoofed", "untrusted", "non_global",
              "not_qualified", "unsupported", "queue_full", "tx_full", "rate_limited",
              "from_server", "too_big", "trailer")

# Indexes into the header-offsets list filled by parse_encap.
H_IP = const(0)       # offset of the IPv6 header
H_NONCE = const(1)    # offset of the auth nonce, -1 when no auth header
H_ORIGIN = const(2)   # offset of the origin indication, -1 when none
H_END = const(3)      # end of the IPv6 packet (RFC 6081 trailers may follow)


# ---- Internet checksum (RFC 1071), pseudo-header per RFC 8200 §8.1 --------

def csum_add_plain(buf, start, end, acc):
    """Add the 16-bit big-endian words of buf[start:end] to acc (unfolded)."""
    i = start
    e = end - 1
    while i < e:
        acc += (buf[i] << 8) | buf[i + 1]
        i += 2
    if i < end:
        acc += buf[i] << 8
    return acc


csum_add = csum_add_plain  # the fast twin for this interpreter is chosen at the end


def csum_fold(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def l4_sum(buf, ip, nh, plen):
    """Folded sum of pseudo-header and upper-layer data of the IPv6 packet at
    buf[ip]; 0xFFFF when the checksum field in it is right."""
    acc = csum_add(buf, ip + 8, ip + 40, plen + nh)
    return csum_fold(csum_add(buf, ip + 40, ip + 40 + plen, acc))


def set_l4_checksum(buf, ip, nh, plen, field):
    """Compute and store the checksum at buf[field] (zeroed first)."""
    buf[field] = 0
    buf[field + 1] = 0
    c = (~l4_sum(buf, ip, nh, plen)) & 0xFFFF
    if c == 0 and nh == proto.NH_UDP:
        c = 0xFFFF  # RFC 768: zero means "no checksum"; send all ones
    buf[field] = c >> 8
    buf[field + 1] = c & 0xFF


# ---- Encapsulation (RFC 4380 §5.1.1) ---------------------------------------

def parse_encap(buf, n, hdr):
    """Find the auth header, origin indication and IPv6 packet in the UDP
    payload buf[0:n].  Fills hdr[H_IP], hdr[H_NONCE], hdr[H_ORIGIN] and
    hdr[H_END], the end of the IPv6 packet.  The authentication header must
    come first, each header at most once, and the IPv6 packet must fit in
    the datagram; what follows it must be well-formed RFC 6081 trailers."""
    hdr[H_NONCE] = -1
    hdr[H_ORIGIN] = -1
    if n < proto.IPV6_HLEN:
        return SHORT
    off = 0
    if buf[0] == 0 and buf[1] == proto.AUTH_TYPE:
        if n < 4:
            return SHORT
        alen = proto.AUTH_FIXED + buf[2] + buf[3]
        if off + alen > n:
            return SHORT
        hdr[H_NONCE] = 4 + buf[2] + buf[3]
        off = alen
    if off + 2 <= n and buf[off] == 0 and buf[off + 1] == proto.ORIGIN_TYPE:
        if off + proto.ORIGIN_LEN > n:
            return SHORT
        hdr[H_ORIGIN] = off
        off += proto.ORIGIN_LEN
    if off >= n:
        return SHORT
    if buf[off] >> 4 != 6:
        return ENCAP if buf[off] == 0 else NOT_IPV6
    if n - off < proto.IPV6_HLEN:
        return SHORT
    end = off + proto.IPV6_HLEN + ((buf[off + 4] << 8) | buf[off + 5])
    if end > n:
        return LENGTH
    # RFC 6081 §4: trailers (type, length of the value, value) may follow the
    # IPv6 packet; Windows peers put them on bubbles.  Those we know must
    # have their lengths: 1 nonce (4), 4 neighbor discovery option (4),
    # 5 random port (2), 3 alternate address (2 + 6 per address, 8..26).
    # Unknown types are skipped; none may overrun.
    o = end
    while o < n:
        if o + 2 > n or o + 2 + buf[o + 1] > n:
            return _TRAILER
        t = buf[o]
        k = buf[o + 1]
        if (((t == 1 or t == 4) and k != 4) or (t == 5 and k != 2)
                or (t == 3 and (k < 8 or k > 26 or (k - 2) % 6))):
            return _TRAILER
        o += 2 + k
    hdr[H_IP] = off
    hdr[H_END] = end
    return OK


def build_auth(buf, off, nonce, client_id=b"", auth_value=b"", conf=0):
    """Authentication encapsulation; returns its length."""
    il = len(client_id)
    al = len(auth_value)
    buf[off] = 0
    buf[off + 1] = proto.AUTH_TYPE
    buf[off + 2] = il
    buf[off + 3] = al
    o = off + 4
    if il:
        buf[o:o + il] = client_id
    o += il
    if al:
        buf[o:o + al] = auth_value
    o += al
    buf[o:o + 8] = nonce
    buf[o + 8] = conf
    return o + 9 - off


def build_origin(buf, off, port, ip4):
    """Origin indication: obfuscated port and IPv4 (RFC 4380 §5.1.1)."""
    buf[off] = 0
    buf[off + 1] = 0
    buf[off + 2] = (port >> 8) ^ 0xFF
    buf[off + 3] = (port & 0xFF) ^ 0xFF
    for i in range(4):
        buf[off + 4 + i] = ip4[i] ^ 0xFF
    return proto.ORIGIN_LEN


def origin_port(buf, o):
    return ((buf[o + 2] << 8) | buf[o + 3]) ^ 0xFFFF


def origin_ip_into(buf, o, out):
    for i in range(4):
        out[i] = buf[o + 4 + i] ^ 0xFF


# ---- IPv6 -----------------------------------------------------------------

def build_ipv6(buf, ip, plen, nh, hlim, src, dst):
    """IPv6 header at buf[ip]; src and dst are 16-byte buffers."""
    buf[ip] = 0x60
    buf[ip + 1] = 0
    buf[ip + 2] = 0
    buf[ip + 3] = 0
    buf[ip + 4] = plen >> 8
    buf[ip + 5] = plen & 0xFF
    buf[ip + 6] = nh
    buf[ip + 7] = hlim
    buf[ip + 8:ip + 24] = src
    buf[ip + 24:ip + 40] = dst


def eq(buf, off, other, ooff, n):
    """buf[off:off+n] == other[ooff:ooff+n] without slicing."""
    i = n - 1
    while i >= 0:
        if buf[off + i] != other[ooff + i]:
            return False
        i -= 1
    return True


def swap16(buf, a, b):
    """Swap the 16-byte fields at buf[a] and buf[b] in place."""
    for i in range(16):
        t = buf[a + i]
        buf[a + i] = buf[b + i]
        buf[b + i] = t


def is_link_local(buf, off):
    return buf[off] == 0xFE and (buf[off + 1] & 0xC0) == 0x80


# ---- Router Solicitation / Advertisement (RFC 4861, RFC 4380 §5.2.1) --------

def build_rs(buf, off, nonce, cone):
    """RS wrapped in an authentication header carrying the nonce (RFC 5991 §3
    asks for the nonce even without authentication).  Returns total length."""
    o = off + build_auth(buf, off, nonce)
    build_ipv6(buf, o, 8, proto.NH_ICMPV6, proto.ND_HOP_LIMIT,
               proto.LL_CONE if cone else proto.LL_NONCONE, proto.ALL_ROUTERS)
    i = o + 40
    buf[i] = proto.ICMP_RS
    for k in range(1, 8):
        buf[i + k] = 0
    set_l4_checksum(buf, o, proto.NH_ICMPV6, 8, i + 2)
    return o + 48 - off


def parse_ra(buf, hdr, nonce, ll_dst, server4, res, mapped4):
    """Strict RA check (RFC 4380 §5.2.1 plus a subset of RFC 4861 §6.1.2):
    auth header with our nonce, origin indication, hop limit 255, link-local
    source, destination = the RS source ll_dst, ICMPv6 type 134 code 0 with a
    correct checksum, options well formed (no zero length), exactly one Prefix
    Information option holding the /64 2001:0:<server4>; an MTU option's
    value is used only from 1280 up to MTU_MAX.  On success res[0] = mapped port, res[1] = MTU and
    mapped4 holds the mapped IPv4 from the origin indication."""
    ip = hdr[H_IP]
    n = hdr[H_END]
    nn = hdr[H_NONCE]
    if nn < 0 or hdr[H_ORIGIN] < 0:
        return RA_INVALID
    if not eq(buf, nn, nonce, 0, 8):
        return RA_NONCE
    if buf[ip + 6] != proto.NH_ICMPV6 or buf[ip + 7] != proto.ND_HOP_LIMIT:
        return RA_INVALID
    if not is_link_local(buf, ip + 8) or not eq(buf, ip + 24, ll_dst, 0, 16):
        return RA_INVALID
    plen = n - ip - 40
    i = ip + 40
    if plen < 16 or buf[i] != proto.ICMP_RA or buf[i + 1] != 0:
        return RA_INVALID
    if l4_sum(buf, ip, proto.NH_ICMPV6, plen) != 0xFFFF:
        return CHECKSUM
    o = i + 16
    prefixes = 0
    mtu = proto.MTU_DEFAULT
    while o < n:
        if o + 2 > n:
            return RA_INVALID
        olen = buf[o + 1] * 8
        if olen == 0 or o + olen > n:
            return RA_INVALID  # RFC 4861 §4.6: zero length options are invalid
        t = buf[o]
        if t == proto.OPT_PREFIX_INFO:
            if olen != 32 or buf[o + 2] != 64:
                return RA_INVALID
            p = o + 16
            if not eq(buf, p, proto.PREFIX, 0, 4) or not eq(buf, p + 4, server4, 0, 4):
                return RA_INVALID
            prefixes += 1
        elif t == proto.OPT_MTU:
            if olen != 8:
                return RA_INVALID
            # RFC 4861 §6.3.4: a value below the IPv6 minimum is not used (the
            # RA stands); above what our buffers receive it is clamped
            v = (buf[o + 6] << 8) | buf[o + 7]
            if buf[o + 4] or buf[o + 5]:
                v = proto.MTU_MAX
            if v >= proto.MTU_MIN:
                mtu = v if v < proto.MTU_MAX else proto.MTU_MAX
        o += olen
    if prefixes != 1:
        return RA_INVALID
    og = hdr[H_ORIGIN]
    res[0] = origin_port(buf, og)
    res[1] = mtu
    origin_ip_into(buf, og, mapped4)
    return OK


# ---- ICMPv6 echo, bubbles, UDP -------------------------------------------

def build_echo(buf, ip, typ, src, dst, ident, seq, data, dlen):
    """Echo request/reply (RFC 4443 §4.1) at buf[ip]; data[0:dlen] is the
    payload (the payload is copied only when data is a different buffer)."""
    plen = 8 + dlen
    build_ipv6(buf, ip, plen, proto.NH_ICMPV6, proto.HOP_LIMIT, src, dst)
    i = ip + 40
    buf[i] = typ
    buf[i + 1] = 0
    buf[i + 4] = ident >> 8
    buf[i + 5] = ident & 0xFF
    buf[i + 6] = seq >> 8
    buf[i + 7] = seq & 0xFF
    if dlen and data is not None:
        buf[i + 8:i + 8 + dlen] = data
    set_l4_checksum(buf, ip, proto.NH_ICMPV6, plen, i + 2)
    return 40 + plen


def echo_to_reply(buf, ip):
    """Turn the echo request at buf[ip] into its reply in place: swap the
    addresses (the checksum does not change), type 128 -> 129 and fix the
    checksum incrementally (RFC 1624 eqn. 3), so no byte loop over the data."""
    swap16(buf, ip + 8, ip + 24)
    buf[ip + 7] = proto.HOP_LIMIT
    i = ip + 40
    buf[i] = proto.ICMP_ECHO_REPLY
    hc = (buf[i + 2] << 8) | buf[i + 3]
    # HC' = ~(~HC + ~m + m'), m = 0x8000 | code, m' = 0x8100 | code
    m = (proto.ICMP_ECHO_REQUEST << 8) | buf[i + 1]
    s = ((~hc) & 0xFFFF) + ((~m) & 0xFFFF) + (m + 0x100)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    c = (~s) & 0xFFFF
    buf[i + 2] = c >> 8
    buf[i + 3] = c & 0xFF


def build_bubble(buf, ip, src, dst):
    """A bubble: IPv6 header, next header 59, no payload (RFC 4380 §2.8)."""
    build_ipv6(buf, ip, 0, proto.NH_NONE, proto.HOP_LIMIT, src, dst)
    return 40


def build_udp6(buf, ip, src, dst, sport, dport, payload, dlen):
    """UDP over IPv6 with its mandatory checksum (RFC 8200 §8.1)."""
    plen = 8 + dlen
    build_ipv6(buf, ip, plen, proto.NH_UDP, proto.HOP_LIMIT, src, dst)
    u = ip + 40
    buf[u] = sport >> 8
    buf[u + 1] = sport & 0xFF
    buf[u + 2] = dport >> 8
    buf[u + 3] = dport & 0xFF
    buf[u + 4] = plen >> 8
    buf[u + 5] = plen & 0xFF
    if dlen and payload is not None:
        buf[u + 8:u + 8 + dlen] = payload
    set_l4_checksum(buf, ip, proto.NH_UDP, plen, u + 6)
    return 40 + plen


# ---- fast twins, chosen at import ----------------------------------------
# The byte loops above are where MicroPython spends its time; viper with a
# ptr8 is 10x faster for them (STYLE.md).  CPython gets an int.from_bytes
# checksum and a slice comparison (4x the loop; slices are cheap there)
# instead.  Each twin gives the same results as its plain version,
# held to the same vectors by tests/core/test_wire.py on both interpreters.

def _csum_cpython(buf, start, end, acc):
    # the sum of 16-bit words is congruent to the number they spell, mod 0xFFFF
    if end <= start:
        return acc
    v = int.from_bytes(buf[start:end], "big")
    if (end - start) & 1:
        v <<= 8
    r = v % 0xFFFF
    if r == 0 and v:
        r = 0xFFFF  # the ones' complement sum of nonzero data is never 0
    return acc + r


def _eq_cpython(buf, off, other, ooff, n):
    return buf[off:off + n] == other[ooff:ooff + n]


def copy(dst, doff, src, soff, n):
    """dst[doff:doff+n] = src[soff:soff+n], without a temporary object."""
    dst[doff:doff + n] = memoryview(src)[soff:soff + n]


eq_plain = eq
swap16_plain = swap16
copy_plain = copy
l4_sum_plain = l4_sum
echo_to_reply_plain = echo_to_reply
try:
    import micropython

    @micropython.viper
    def _csum_viper(buf, start: int, end: int, acc: int) -> int:
        p = ptr8(buf)  # noqa: F821 (viper built-in)
        i = start
        e = end - 1
        s = 0
        while i < e:
            s += (p[i] << 8) | p[i + 1]
            i += 2
        if i < end:
            s += p[i] << 8
        # fold here so the result stays a small int on 32-bit boards
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return s + acc

    @micropython.viper
    def _eq_viper(buf, off: int, other, ooff: int, n: int) -> bool:
        p = ptr8(buf)  # noqa: F821
        q = ptr8(other)  # noqa: F821
        i = 0
        while i < n:
            if p[off + i] != q[ooff + i]:
                return False
            i += 1
        return True

    @micropython.viper
    def _swap16_viper(buf, a: int, b: int):
        p = ptr8(buf)  # noqa: F821
        i = 0
        while i < 16:
            t = p[a + i]
            p[a + i] = p[b + i]
            p[b + i] = t
            i += 1

    @micropython.viper
    def _copy_viper(dst, doff: int, src, soff: int, n: int):
        d = ptr8(dst)  # noqa: F821
        s = ptr8(src)  # noqa: F821
        i = 0
        while i < n:
            d[doff + i] = s[soff + i]
            i += 1

    @micropython.viper
    def _l4_sum_viper(buf, ip: int, nh: int, plen: int) -> int:
        # l4_sum in one call: pseudo-header (the two addresses, length and
        # next header, RFC 8200 §8.1), the upper-layer data, folded; every
        # sum stays below 2**31 for packets up to 64 KB
        p = ptr8(buf)  # noqa: F821
        s = plen + nh
        i = ip + 8
        e = ip + 40 + plen
        while i < e - 1:
            s += (p[i] << 8) | p[i + 1]
            i += 2
        if i < e:
            s += p[i] << 8
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return s

    @micropython.viper
    def _echo_to_reply_viper(buf, ip: int):
        # echo_to_reply in one call (the same steps, RFC 1624 eqn. 3)
        p = ptr8(buf)  # noqa: F821
        a = ip + 8
        b = ip + 24
        k = 0
        while k < 16:
            t = p[a + k]
            p[a + k] = p[b + k]
            p[b + k] = t
            k += 1
        p[ip + 7] = 64  # proto.HOP_LIMIT
        i = ip + 40
        p[i] = 129  # proto.ICMP_ECHO_REPLY
        hc = (p[i + 2] << 8) | p[i + 3]
        m = (128 << 8) | p[i + 1]  # proto.ICMP_ECHO_REQUEST, code
        s = ((~hc) & 0xFFFF) + ((~m) & 0xFFFF) + (m + 0x100)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        c = (~s) & 0xFFFF
        p[i + 2] = c >> 8
        p[i + 3] = c & 0xFF

    csum_add = _csum_viper  # noqa: F811
    l4_sum = _l4_sum_viper  # noqa: F811
    echo_to_reply = _echo_to_reply_viper  # noqa: F811
    copy = _copy_viper  # noqa: F811
    eq = _eq_viper  # noqa: F811
    swap16 = _swap16_viper  # noqa: F811
except (ImportError, AttributeError, SyntaxError, NameError):  # CPython, or a port without viper
    import sys

    if sys.implementation.name == "cpython":
        csum_add = _csum_cpython  # noqa: F811
        eq = _eq_cpython  # noqa: F811
