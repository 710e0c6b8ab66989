# Addresses: IPv4/IPv6 text without ipaddress or inet_pton (the ESP32 port has
# neither), the global-unicast test of RFC 4380 §5.2.4, and Teredo addresses
# (RFC 4380 §4, flags per RFC 5991 §4).
#
# Text parsing is local input (config, command line): it raises ValueError with
# a reason.  Functions that look at packets take (buf, off) and never raise.

from teredo import proto

_HEX = "0123456789abcdef"


def parse_ipv4(text):
    """Dotted-quad text -> 4 bytes.  Raises ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("IPv4 address must be text")
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("%r is not an IPv4 address: expected 4 dot-separated numbers" % text)
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p or len(p) > 3 or not _isdec(p):
            raise ValueError("%r is not an IPv4 address: %r is not a number 0-255" % (text, p))
        if len(p) > 1 and p[0] == "0":
            raise ValueError("%r is not an IPv4 address: leading zero in %r is ambiguous" % (text, p))
        v = int(p)
        if v > 255:
            raise ValueError("%r is not an IPv4 address: %s is over 255" % (text, p))
        out[i] = v
    return bytes(out)


def format_ipv4(b, off=0):
    return "%d.%d.%d.%d" % (b[off], b[off + 1], b[off + 2], b[off + 3])


def _isdec(s):
    for c in s:
        if c < "0" or c > "9":
            return False
    return True


def _ishex(s):
    for c in s:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            return False
    return True


def parse_ipv6(text):
    """IPv6 text (RFC 4291 §2.2: full, compressed, trailing dotted IPv4) -> 16 bytes.
    Raises ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("IPv6 address must be text")
    if "%" in text:
        raise ValueError("%r: a zone index (%%...) is not allowed here" % text)
    if text.count("::") > 1:
        raise ValueError("%r is not an IPv6 address: '::' may appear only once" % text)
    tail4 = None
    body = text
    last = text.rfind(":")
    if "." in text[last + 1:]:
        tail4 = parse_ipv4(text[last + 1:])
        body = text[:last + 1]
        if body.endswith("::"):
            pass
        elif body.endswith(":"):
            body = body[:-1]
        if not body:
            raise ValueError("%r is not an IPv6 address" % text)
    want = 6 if tail4 is not None else 8
    if "::" in body:
        head, rest = body.split("::")
        hg = head.split(":") if head else []
        tg = rest.split(":") if rest else []
        if len(hg) + len(tg) >= want:
            raise ValueError("%r is not an IPv6 address: too many groups with '::'" % text)
        groups = hg + ["0"] * (want - len(hg) - len(tg)) + tg
    else:
        groups = body.split(":")
        if len(groups) != want:
            raise ValueError("%r is not an IPv6 address: expected %d groups, got %d"
                             % (text, want, len(groups)))
    out = bytearray(16)
    for i in range(want):
        g = groups[i]
        if not g or len(g) > 4 or not _ishex(g):
            raise ValueError("%r is not an IPv6 address: bad group %r" % (text, g))
        v = int(g, 16)
        out[2 * i] = v >> 8
        out[2 * i + 1] = v & 0xFF
    if tail4 is not None:
        out[12:16] = tail4
    return bytes(out)


def format_ipv6(b, off=0):
    """16 bytes -> RFC 5952 canonical text: lower case, no leading zeros, the
    longest run (leftmost on a tie) of two or more zero groups as '::', and
    IPv4-mapped addresses with a dotted tail (RFC 5952 §5)."""
    g = [(b[off + 2 * i] << 8) | b[off + 2 * i + 1] for i in range(8)]
    if g[0] == g[1] == g[2] == g[3] == g[4] == 0 and g[5] == 0xFFFF:
        return "::ffff:" + format_ipv4(b, off + 12)
    best, blen, i = -1, 1, 0
    while i < 8:
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > blen:
                best, blen = i, j - i
            i = j
        else:
            i += 1
    if best < 0:
        return ":".join([_h(x) for x in g])
    left = ":".join([_h(x) for x in g[:best]])
    right = ":".join([_h(x) for x in g[best + blen:]])
    return left + "::" + right


def _h(x):
    return "%x" % x


def is_global_ipv4(b, off=0):
    """RFC 4380 §5.2.4 global unicast test, plus 100.64/10 (RFC 6598 shared
    address space) and 240/4.  Documentation (RFC 5737) and benchmark
    (RFC 2544) ranges count as global, as miredo treats them."""
    a = b[off]
    c = b[off + 1]
    if a == 0 or a == 10 or a == 127 or a >= 224:
        return False  # 0/8, 10/8, 127/8, 224/4 multicast, 240/4 and broadcast
    if a == 169 and c == 254:
        return False
    if a == 172 and (c & 0xF0) == 16:
        return False
    if a == 192 and c == 168:
        return False
    if a == 192 and c == 88 and b[off + 2] == 99:
        return False  # 6to4 anycast, listed by RFC 4380 §5.2.4
    if a == 100 and (c & 0xC0) == 64:
        return False
    return True


# ---- Teredo addresses (RFC 4380 §4) ---------------------------------------
# 2001:0000:SSSS:SSSS:FFFF:PPPP:MMMM:MMMM with server IPv4 S, flags F,
# obfuscated (bit-inverted) mapped port P and mapped IPv4 M.

def is_unspecified(b, off=0):
    """The IPv6 address :: (RFC 4291 §2.5.2)."""
    for i in range(off, off + 16):
        if b[i]:
            return False
    return True


def is_teredo(b, off=0):
    return b[off] == 0x20 and b[off + 1] == 0x01 and b[off + 2] == 0 and b[off + 3] == 0


def build_teredo(server4, flags, port, mapped4, out=None, off=0):
    """Write a Teredo address into out[off:off+16] (a new bytearray if None)."""
    if out is None:
        out = bytearray(16)
    out[off:off + 4] = proto.PREFIX
    for i in range(4):
        out[off + 4 + i] = server4[i]
        out[off + 12 + i] = mapped4[i] ^ 0xFF
    out[off + 8] = (flags >> 8) & 0xFF
    out[off + 9] = flags & 0xFF
    out[off + 10] = ((port >> 8) & 0xFF) ^ 0xFF
    out[off + 11] = (port & 0xFF) ^ 0xFF
    return out


def teredo_flags(b, off=0):
    return (b[off + 8] << 8) | b[off + 9]


def teredo_port(b, off=0):
    return ((b[off + 10] << 8) | b[off + 11]) ^ 0xFFFF


def teredo_mapped_matches(b, off, ip4, ip4off=0):
    """True when the obfuscated IPv4 in the Teredo address at b[off] is ip4."""
    return (b[off + 12] ^ 0xFF == ip4[ip4off] and b[off + 13] ^ 0xFF == ip4[ip4off + 1]
            and b[off + 14] ^ 0xFF == ip4[ip4off + 2] and b[off + 15] ^ 0xFF == ip4[ip4off + 3])


def decode_teredo(a):
    """16 bytes -> (server4, flags, mapped_port, mapped4).  ValueError with a
    reason when the address is not in 2001:0::/32."""
    if len(a) != 16:
        raise ValueError("an IPv6 address is 16 bytes")
    if not is_teredo(a):
        raise ValueError("%s is not a Teredo address: it is outside 2001:0::/32 (RFC 4380 §4)"
                         % format_ipv6(a))
    m = bytearray(4)
    for i in range(4):
        m[i] = a[12 + i] ^ 0xFF
    return bytes(a[4:8]), teredo_flags(a), teredo_port(a), bytes(m)


def random_flags(rand):
    """RFC 5991 §4: 12 random bits under mask 0x3CFF from the injected source
    rand(nbits) -> int.  The cone bit (RFC 4380 §4) is always 0 now: peers
    that trusted it sent straight to NATs that filter (RFC 5991)."""
    return rand(16) & proto.FLAG_RANDOM_MASK
