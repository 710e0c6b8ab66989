# A mutation fuzzer for the sans-I/O core, on CPython and the MicroPython unix
# port alike: valid packets made with the wire builders are mutated in place
# in a preallocated buffer (bit flips, bytes set to 0/0xFF/random, truncation,
# extension, nested auth/origin headers, corrupted length fields, option
# lengths 0 or huge, splicing, spoofed sources) and fed to the parsers and to a
# qualified client.  No exception may escape; every datagram must be accounted
# for (see Fuzzer.client_case).  tests/core/test_fuzz.py runs it within
# `make test`; `make fuzz` runs it longer:
#
#   python tests/core/fuzzcore.py CASES [SECONDS [SEED]]
#
# with the teredo package on the path (PYTHONPATH or MICROPYPATH).

import sys

from teredo import addr, proto, wire
from teredo.client import DROP_NAMES, QUALIFIED, RX_BYTES
from teredo.peers import F_LAST_RX, F_LAST_USE, F_TRUSTED, F_USED, NF
from vectors import NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Rand, build_ra, ip4, ip6

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ON_MP = sys.implementation.name == "micropython"
ND = len(DROP_NAMES)
TOO_BIG = wire.TOO_BIG

# Where fuzzed datagrams claim to come from.  A seed has its natural source;
# the 'spoof' mutation swaps it for another one.
PEER4 = "198.51.100.77"
PEER_PORT = 40001
_S_SERVER = const(0)
_S_SERVER2 = const(1)
_S_RELAY = const(2)
_S_PEER = const(3)
_S_OTHER = const(4)
_S_SERVER_BADPORT = const(5)
SOURCES = ((SERVER, proto.PORT), (SERVER2, proto.PORT), (RELAY, proto.PORT), (PEER4, PEER_PORT),
           ("192.0.2.99", 1234), (SERVER, proto.PORT + 1))
SOURCE_IPS = (SERVER, SERVER2, RELAY, PEER4)  # global, known without parsing

_K_PLAIN = const(0)
_K_RA_CONE = const(1)   # RA to the cone link-local address: nonce_cone applies
_K_RA_NC = const(2)
_K_BIG = const(3)       # a full-MTU echo request, built in place at each use
_BIG = const(1280 - 48)

# Failure codes of a case (0: the case passed).  Checks return a code rather
# than raise, so that they work with the heap locked.
ERRORS = ("", "parser verdict out of range", "parse_encap accepted with bad header offsets",
          "parse_ra accepted an RA that breaks its own rules", "exception escaped the core",
          "a drop counter went down", "rejected by the parser but not exactly one drop counted",
          "passed the parser but rx did not count it once", "event code out of range",
          "more than 3 drop counters for one datagram", "accepted with no observable effect",
          "sent a datagram to a non-global IPv4 address (RFC 4380 §5.2.4)",
          "sent a malformed Teredo datagram", "sent a datagram with a wrong checksum")
_E_VERDICT = const(1)
_E_HDR = const(2)
_E_RA = const(3)
_E_EXC = const(4)
_E_NEG = const(5)
_E_EARLY = const(6)
_E_RX = const(7)
_E_EV = const(8)
_E_MULTI = const(9)
_E_SILENT = const(10)
_E_TX_NONGLOBAL = const(11)
_E_TX_MALFORMED = const(12)
_E_TX_CHECKSUM = const(13)

_TICKS = const(0x3FFFFFFF)  # the client's clock wraps at 2**30 (ESP32 ticks_ms)


def encap(pkt, il=-1, al=0, origin=None, nonce=b"\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a"):
    """Wrap the IPv6 packet pkt: an auth header with il/al octets of
    identifier/authenticator (il < 0: none), then an origin indication
    (port, ip4).  Returns (datagram, ip offset, nonce offset or -1)."""
    o = (13 + il + al if il >= 0 else 0) + (8 if origin is not None else 0)
    if not o:
        return pkt, 0, -1
    out = bytearray(o + len(pkt))
    nn = -1
    if il >= 0:
        wire.build_auth(out, 0, nonce)
        out[2] = il
        out[3] = al
        for i in range(il + al):  # identifier, then authentication value
            out[4 + i] = (0x30 + i % 10) if i < il else (0xA0 ^ i)
        nn = 4 + il + al
        out[nn:nn + 8] = nonce
        out[nn + 8] = 0
    if origin is not None:
        wire.build_origin(out, o - 8, origin[0], ip4(origin[1]))
    out[o:] = pkt
    return out, o, nn


def echo(typ, src, dst, size, ident=0x1234, seq=1):
    b = bytearray(48 + size)
    for i in range(size):
        b[48 + i] = (i * 7) & 0xFF
    wire.build_echo(b, 0, typ, src, dst, ident, seq, None, size)
    return b


def udp(src, dst, size):
    b = bytearray(48 + size)
    wire.build_udp6(b, 0, src, dst, 5353, 7, b"teredo-fuzz-payload"[:size], size)
    return b


def bubble(src, dst):
    b = bytearray(40)
    wire.build_bubble(b, 0, src, dst)
    return b


def build_seeds(me, ping_ident):
    """Valid packets for the client whose address is me, each (datagram,
    source, ip offset, nonce offset, kind)."""
    peer6 = addr.build_teredo(ip4(SERVER), 0, PEER_PORT, ip4(PEER4))
    host = ip6(V6HOST)
    mapped = (50000, NAT_WAN)
    out = []

    def add(d, src, kind=_K_PLAIN):
        out.append((d[0], src, d[1], d[2], kind))

    # RAs as the server sends them (RFC 4380 §5.3.2, §5.2.2 auth lengths varied)
    ra = build_ra(SERVER_LL, proto.LL_CONE, bytes(8), ip4(NAT_WAN), 50000, ip4(SERVER),
                  auth=False, origin=False)
    add(encap(ra, 0, 0, mapped), _S_SERVER2, _K_RA_CONE)
    opts = b"\x01\x01\x02\x00\x5e\x00\x00\x01" + b"\x19\x03" + bytes(22)  # SLLA, RDNSS
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(8), ip4(NAT_WAN), 50000, ip4(SERVER),
                  mtu=1400, auth=False, origin=False, extra=opts)
    add(encap(ra, 5, 20, mapped), _S_SERVER, _K_RA_NC)
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(8), ip4(NAT_WAN), 50000, ip4(SERVER),
                  mtu_opt=False, auth=False, origin=False)
    add(encap(ra, 0, 255, mapped), _S_SERVER, _K_RA_NC)
    rs = bytearray(13 + 48)
    wire.build_rs(rs, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08", True)
    out.append((rs, _S_SERVER, 13, 4, _K_PLAIN))
    # native host through the relay, Teredo peer directly, relayed via the server
    add(encap(echo(proto.ICMP_ECHO_REQUEST, host, me, 16)), _S_RELAY)
    add(encap(echo(proto.ICMP_ECHO_REQUEST, peer6, me, 8)), _S_PEER)
    add(encap(echo(proto.ICMP_ECHO_REPLY, host, me, 16, ping_ident, 5)), _S_RELAY)
    add(encap(echo(proto.ICMP_ECHO_REPLY, host, me, 8, 0, 0)), _S_RELAY)  # connectivity test reply
    add(encap(bubble(peer6, me)), _S_PEER)
    add(encap(bubble(ip6("fe80::8000:ffff:ffff:fffe"), me), origin=(proto.PORT, RELAY)), _S_SERVER)
    add(encap(udp(host, me, 5)), _S_RELAY)
    add(encap(udp(peer6, me, 12), 0, 0), _S_PEER)
    add(encap(echo(proto.ICMP_ECHO_REQUEST, host, me, 24), 3, 4, (proto.PORT, RELAY)), _S_SERVER)
    add(encap(udp(ip6("2001:db8::77"), me, 3)), _S_OTHER)  # §5.2.3 case 6
    add(encap(bubble(peer6, me), 40, 60), _S_PEER)
    add(encap(bubble(host, me)), _S_RELAY)
    out.append((None, _S_RELAY, 0, -1, _K_BIG))  # extended, its reply is over the MTU
    return out


class Rng:
    """xorshift32 (Marsaglia 2003, period 2**32 - 1), seeded by vectors.Rand:
    Rand's 16-bit state repeats after 32768 draws, far too soon to drive a
    million cases.  The 32-bit state is kept as two 16-bit halves and every
    intermediate stays below 2**30, so that drawing allocates nothing even on
    a 32-bit MicroPython (ESP32), where small ints end at 2**30.  The
    sequence is that of the plain 32-bit xorshift (tests/host checks it)."""

    def __init__(self, seed):
        r = Rand(seed)
        self.h = r(16)
        self.l = r(16)
        if not (self.h | self.l):
            self.l = 1

    def __call__(self, k):
        """A number in 0..k-1 (k at most 2**22)."""
        h = self.h
        lo = self.l
        # x ^= x << 13 (mod 2**32)
        h ^= ((h << 13) | (lo >> 3)) & 0xFFFF
        lo ^= (lo << 13) & 0xFFFF
        # x ^= x >> 17
        lo ^= h >> 1
        # x ^= x << 5 (mod 2**32)
        h ^= ((h << 5) | (lo >> 11)) & 0xFFFF
        lo ^= (lo << 5) & 0xFFFF
        self.h = h
        self.l = lo
        # (h * 2**16 + lo) % k, one byte at a time
        t = h % k
        t = ((t << 8) | (lo >> 8)) % k
        return ((t << 8) | (lo & 0xFF)) % k


def move(buf, dst, src, n):
    """memmove within buf; on MicroPython without allocating (a slice of a
    bytearray is a new object there), so that it may run heap-locked."""
    if not ON_MP:
        buf[dst:dst + n] = buf[src:src + n]
    elif dst > src:
        i = n - 1
        while i >= 0:
            buf[dst + i] = buf[src + i]
            i -= 1
    else:
        for i in range(n):
            buf[dst + i] = buf[src + i]


class Fuzzer:
    """The mutation engine, the parser checks, and the client of net (a
    harness.Net with a cone NAT) kept qualified and trusting the relay."""

    def __init__(self, net, seed=1):
        self.r = Rng(seed)
        self.seed = seed
        self.hdr = [0, 0, 0, 0]
        self.hdr2 = [0, 0, 0, 0]
        self.res = [0, 0]
        self.m4 = bytearray(4)
        self.nonce = bytearray(8)
        self.server4 = ip4(SERVER)
        self.host6 = ip6(V6HOST)
        self.src4 = [ip4(s[0]) for s in SOURCES]
        self.sport = [s[1] for s in SOURCES]
        self.prev = [0] * ND
        self.pool = bytearray(256)
        for i in range(256):
            self.pool[i] = self.r(256)
        self.verdicts = [0] * ND         # parse_encap verdicts
        self.ra_verdicts = [0] * ND      # parse_ra verdicts
        self.multi = [0, 0, 0, 0]        # datagrams past the parser by drop counters moved
        self.fed = 0
        self.early = 0
        self.rx = 0
        self.silent = 0
        self.tx = 0
        self.port0 = 0
        self.requalified = -1
        self.err = 0
        self.err_case = -1
        self.done = 0     # client cases run so far
        self.exc = None
        self.rstate = 0   # the random state a case began with, to replay it
        self.rstate_l = 0
        self.oversize = False
        self.n = 0
        self.si = 0
        self.seeds = None
        self.me = bytearray(16)
        self.net = net
        self.c = net.c
        self.buf = bytearray(RX_BYTES)  # the datagram under test, mutated in place
        net.now = _TICKS - 100000  # the clock wraps early in the run
        net.start()
        self.requalify()
        self.service()

    # ---- the simulated Internet around the client ---------------------------

    def tick(self, ms):
        self.net.now = (self.net.now + ms) & _TICKS
        return self.net.now

    def requalify(self):
        c = self.c
        net = self.net
        for _ in range(40):
            if c.state == QUALIFIED:
                break
            net.now = c.deadline
            c.on_timer(net.now)
            net.flush()
        if c.state != QUALIFIED:
            raise AssertionError("fuzz: the client did not requalify: %r" % (c.status(),))
        self.requalified += 1

    def service(self):
        """Run the timers (the server answers, the relay answers the
        connectivity test), requalify after a mapping change, keep the relay
        trusted, point the seeds at our address when it changed, and forget
        the doubles' logs."""
        c = self.c
        net = self.net
        c.on_timer(self.tick(100))
        net.flush()
        if c.state != QUALIFIED:
            self.requalify()
        p = c.peers.find(self.host6, 0)
        if p < 0 or not c.peers.v[p * NF + F_TRUSTED] or \
                ticks_diff_wrap(net.now, c.peers.v[p * NF + F_LAST_RX]) > 20000:
            c.ping(self.host6, 1, net.now)
            net.flush()
        net.log = []
        net.opened = []
        net.events = []
        if self.seeds is None:
            self.me[0:16] = c.address
            self.seeds = build_seeds(bytes(c.address), c.cfg["ping_ident"])
        elif not wire.eq(self.me, 0, c.address, 0, 16):
            self.retarget()

    def retarget(self):
        """Our address changed (a new mapping): point the seeds at the new
        one in place (a rebuild would fragment a 96K heap)."""
        me = self.c.address
        for sd in self.seeds:
            d = sd[0]
            ip = sd[2]
            if d is not None and wire.eq(d, ip + 24, self.me, 0, 16):
                d[ip + 24:ip + 40] = me
                nh = d[ip + 6]
                pl = len(d) - ip - 40
                if nh == proto.NH_ICMPV6:
                    wire.set_l4_checksum(d, ip, nh, pl, ip + 42)
                elif nh == proto.NH_UDP:
                    wire.set_l4_checksum(d, ip, nh, pl, ip + 46)
        self.me[0:16] = me

    def drain(self):
        """Pop everything the client queued and check it (§5.2.4: global
        destinations only; well-formed Teredo; right checksums).  Returns
        the number of datagrams (or -error code)."""
        c = self.c
        h = self.hdr2
        count = 0
        err = 0
        k = c.pop_tx()
        while k:
            count += 1
            sc = c.tx_mv[c.tx_off:c.tx_off + k]
            to = c.tx_addr
            if to[0] not in SOURCE_IPS and not addr.is_global_ipv4(addr.parse_ipv4(to[0])):
                err = _E_TX_NONGLOBAL
            elif not 0 < to[1] < 65536:
                self.port0 += 1  # a bubble to the port 0 in a peer's address
            elif wire.parse_encap(sc, k, h) != wire.OK:
                err = _E_TX_MALFORMED
            else:
                ip = h[wire.H_IP]
                nh = sc[ip + 6]
                pl = k - ip - 40
                if (nh == proto.NH_ICMPV6 or nh == proto.NH_UDP) and (
                        pl < 8 or wire.l4_sum(sc, ip, nh, pl) != 0xFFFF):
                    err = _E_TX_CHECKSUM
            k = c.pop_tx()
        self.tx += count
        return -err if err else count

    # ---- mutation -----------------------------------------------------------

    def mutate(self, buf, cap, oversize):
        """A seed, mutated in place in buf[0:cap]; sets self.n and self.si."""
        r = self.r
        seeds = self.seeds
        self.rstate = r.h
        self.rstate_l = r.l
        k = r(len(seeds))
        if seeds[k][4] == _K_BIG and r(4):
            k = r(len(seeds))  # big packets cost more: draw them less often
        s, si, ip, nn, kind = seeds[k]
        if kind == _K_BIG:
            n = 48 + _BIG  # its payload: what the buffer held
            wire.build_echo(buf, 0, proto.ICMP_ECHO_REQUEST, self.host6, self.me, 0x1234, 1, None, _BIG)
        else:
            n = len(s)
            buf[0:n] = s
        if (kind == _K_RA_CONE or kind == _K_RA_NC) and r(2):
            non = self.c.nonce_cone if kind == _K_RA_CONE else self.c.nonce_nc
            for i in range(8):
                buf[nn + i] = non[i]
        big = False
        for _ in range(1 + r(4)):
            op = r(20)
            p = r(n) if n and r(2) else (r(64) if n > 64 else (r(n) if n else 0))
            if op < 3:  # bit flip
                if n:
                    buf[p] ^= 1 << r(8)
            elif op == 3:
                if n:
                    buf[p] = 0
            elif op == 4:
                if n:
                    buf[p] = 0xFF
            elif op == 5:
                if n:
                    buf[p] = r(256)
            elif op == 6:  # truncate: anywhere, or inside/near the IPv6 header
                t = r(3)
                m = r(n + 1) if t == 0 else (ip + r(48) if t == 1 else r(48))
                if 0 <= m < n:
                    n = m
            elif op == 7:  # extend with random bytes
                m = 1 + r(64)
                if n + m <= cap:
                    self.fill(buf, n, m)
                    n += m
            elif op == 8 or op == 9:  # nest/duplicate an auth or origin header
                at = 0 if r(2) else (ip if ip >= 0 and r(2) else r(n + 1))
                if op == 8:
                    il = r(4) if r(4) else r(256)
                    al = r(4) if r(4) else r(256)
                    hl = 13 + il + al
                else:
                    hl = 8
                if n + hl <= cap and at <= n:
                    move(buf, at + hl, at, n - at)
                    buf[at] = 0
                    if op == 8:
                        buf[at + 1] = 1
                        buf[at + 2] = il
                        buf[at + 3] = al
                        self.fill(buf, at + 4, hl - 4)
                    else:
                        buf[at + 1] = 0
                        self.fill(buf, at + 2, 6)
                    n += hl
                    if ip >= at:
                        ip += hl
            elif op == 10 or op == 11:  # length fields
                self.corrupt_length(buf, n, ip)
            elif op == 12 or op == 13:  # RA options: length 0 / huge, type
                self.corrupt_option(buf, n, ip)
            elif op == 14:  # splice in a piece of another seed
                o = seeds[r(len(seeds) - 1)][0]  # (the last one is _K_BIG)
                a = r(len(o))
                m = 1 + r(48)
                if a + m > len(o):
                    m = len(o) - a
                if p + m > cap:
                    m = cap - p
                for i in range(m):
                    buf[p + i] = o[a + i]
                if p + m > n:
                    n = p + m
            elif op == 15:  # spoofed source
                si = r(len(SOURCES))
            elif op == 16:  # random bytes
                n = r(100)
                self.fill(buf, 0, n)
                ip = -1
            elif op == 17:  # larger than the receive buffer (set below)
                big = oversize
            elif op == 18:  # cut the packet at a header boundary
                m = (0, 1, 2, 3, 4, 8, 12, 13, 39, 40, 41, 47, 48)[r(13)]
                if m < n:
                    n = m
            elif op == 19 and ip >= 0 and ip + 40 <= n:  # next header / ICMPv6 type
                if r(2):
                    buf[ip + 6] = (0, 6, 17, 43, 44, 58, 59, 60)[r(8)]
                elif ip + 41 <= n:
                    buf[ip + 40] = (1, 2, 3, 128, 129, 133, 134, 135, 136, 137)[r(10)]
        if big:
            self.n = cap + 1 + r(200)
            self.si = si
            return
        # Repair lengths and checksum most of the time so that the deeper
        # checks see the mutation, not just the first length test.
        if r(4) and 0 <= ip and ip + 40 <= n <= cap:
            pl = n - ip - 40
            buf[ip + 4] = pl >> 8
            buf[ip + 5] = pl & 0xFF
            nh = buf[ip + 6]
            if r(4) and pl >= 8 and (nh == proto.NH_ICMPV6 or nh == proto.NH_UDP):
                if nh == proto.NH_UDP:
                    if r(4):
                        buf[ip + 44] = pl >> 8
                        buf[ip + 45] = pl & 0xFF
                    wire.set_l4_checksum(buf, ip, nh, pl, ip + 46)
                else:
                    wire.set_l4_checksum(buf, ip, nh, pl, ip + 42)
        self.n = n
        self.si = si

    def fill(self, buf, at, m):
        """m random bytes at buf[at]: a run of the 256-byte random pool."""
        pool = self.pool
        o = self.r(256)
        for i in range(m):
            buf[at + i] = pool[(o + i) & 0xFF]

    def corrupt_length(self, buf, n, ip):
        r = self.r
        t = r(3)
        if t == 0 and n >= 4 and buf[0] == 0 and buf[1] == proto.AUTH_TYPE:
            buf[2 + r(2)] = choose(r, (0, 1, 255))
        elif ip >= 0 and ip + 6 <= n:
            f = ip + 4 if t < 2 or ip + 46 > n else ip + 44  # IPv6 or UDP length
            v = (buf[f] << 8) | buf[f + 1]
            t = r(7)
            if t < 2:
                v += 1 - 2 * t
            elif t < 5:
                v = (0, 0xFFFF, 7)[t - 2]
            elif t == 5:
                v = n - ip - 40 + 8
            else:
                v = r(65536)
            v &= 0xFFFF
            buf[f] = v >> 8
            buf[f + 1] = v & 0xFF

    def corrupt_option(self, buf, n, ip):
        r = self.r
        if ip < 0:
            return
        o = ip + 56
        want = r(4)
        while want and o + 2 <= n and buf[o + 1]:
            o += buf[o + 1] * 8
            want -= 1
        if o + 2 <= n:
            if r(3):
                buf[o + 1] = choose(r, (0, 0, 1, 4, 0xFF))
            else:
                buf[o] = choose(r, (0, 1, 3, 5, 25))

    # ---- checks -----------------------------------------------------------

    def check_parsers(self, buf, n):
        """parse_encap (and parse_ra on what looks like an RA) on buf[0:n]:
        the verdict (0 = accepted), or -error code."""
        hdr = self.hdr
        v = wire.parse_encap(buf, n, hdr)
        if v < 0 or v >= ND:
            return -_E_VERDICT
        self.verdicts[v] += 1
        if v:
            return v
        ip = hdr[wire.H_IP]
        nn = hdr[wire.H_NONCE]
        og = hdr[wire.H_ORIGIN]
        end = hdr[wire.H_END]
        if (ip < 0 or ip + 40 > end or end > n or buf[ip] >> 4 != 6
                or ((buf[ip + 4] << 8) | buf[ip + 5]) + 40 != end - ip):
            return -_E_HDR
        # RFC 4380 §5.1.1: the auth header first, then the origin indication
        if nn >= 0 and (buf[0] != 0 or buf[1] != proto.AUTH_TYPE or nn != 4 + buf[2] + buf[3]
                        or nn + 9 > ip or (og >= 0 and og != nn + 9)):
            return -_E_HDR
        if og >= 0 and (buf[og] != 0 or buf[og + 1] != 0 or og + 8 != ip):
            return -_E_HDR
        if nn < 0 and og < 0 and ip != 0:
            return -_E_HDR
        if buf[ip + 6] == proto.NH_ICMPV6 and end - ip >= 41 and buf[ip + 40] == proto.ICMP_RA:
            nonce = self.nonce
            if nn >= 0:
                for i in range(8):
                    nonce[i] = buf[nn + i]
            ll = proto.LL_CONE if wire.eq(buf, ip + 24, proto.LL_CONE, 0, 16) else proto.LL_NONCONE
            res = self.res
            rv = wire.parse_ra(buf, hdr, nonce, ll, self.server4, res, self.m4)
            if rv < 0 or rv >= ND:
                return -_E_VERDICT
            self.ra_verdicts[rv] += 1
            if rv == 0 and (nn < 0 or og < 0 or buf[ip + 7] != 255 or end - ip < 56
                            or not proto.MTU_MIN <= res[1] <= proto.MTU_MAX
                            or not 0 <= res[0] <= 0xFFFF
                            or wire.l4_sum(buf, ip, 58, end - ip - 40) != 0xFFFF):
                return -_E_RA
        return 0

    def client_case(self):
        """Feed the mutated datagram (self.buf) to
        on_datagram and account for it.  The invariant, from client.py:
        a datagram the parser rejects (or one over RX_BYTES) moves exactly
        one drop counter, by one, and nothing else; one it accepts moves rx
        by one and then 0..3 drop counters (its own verdict plus refused
        side effects: an origin bubble or a bubble to a peer), and one that
        moves no counter has an effect: an event, a datagram sent, a peer
        entry, state, or the server's last-interaction time."""
        c = self.c
        buf = self.buf
        n = self.n
        si = self.si
        if n > RX_BYTES:
            expect = TOO_BIG
            self.verdicts[TOO_BIG] += 1
        else:
            expect = self.check_parsers(buf, n)
            if expect < 0:
                return -expect
        drops = c.drops
        prev = self.prev
        for i in range(ND):
            prev[i] = drops[i]
        rx0 = c.rx_count
        ch0 = c.changes
        st0 = c.state
        ph0 = c.phase
        nt0 = c.nt
        now = self.tick(1 + self.r(8))
        ev = c.on_datagram(buf, n, self.src4[si], self.sport[si], now)
        tot = 0
        for i in range(ND):
            d = drops[i] - prev[i]
            if d < 0:
                return _E_NEG
            tot += d
        ntx = self.drain()
        if ntx < 0:
            return -ntx
        self.fed += 1
        drx = c.rx_count - rx0
        if expect:
            if drx or ev or tot != 1 or drops[expect] - prev[expect] != 1 or ntx:
                return _E_EARLY
            self.early += 1
            return 0
        if drx != 1:
            return _E_RX
        self.rx += 1
        if ev < 0 or ev > 3:
            return _E_EV
        if tot > 3:
            return _E_MULTI
        self.multi[tot] += 1
        if tot == 0 and ev == 0 and ntx == 0 and c.changes == ch0 and c.state == st0 \
                and c.phase == ph0 and c.nt == nt0 and not self.touched(now) \
                and not (si <= _S_SERVER2 and c.last_server == now):
            return _E_SILENT
        if tot == 0 and ev == 0 and ntx == 0:
            self.silent += 1
        return 0

    def touched(self, now):
        v = self.c.peers.v
        for i in range(self.c.peers.n):
            b = i * NF
            if v[b + F_USED] and (v[b + F_LAST_RX] == now or v[b + F_LAST_USE] == now):
                return True
        return False

    # ---- runs -------------------------------------------------------------

    def run_client(self, cases, budget_ms, service_every=64):
        """Up to cases datagrams into the client, stopping at budget_ms.
        Returns (cases run, ms).  Sets self.err on the first failure."""
        t0 = ticks_ms()
        self.oversize = True
        i = 0
        while i < cases:
            if i % service_every == 0:
                self.service()
                if ticks_diff(ticks_ms(), t0) > budget_ms:
                    break
            self.mutate(self.buf, RX_BYTES, True)
            try:
                e = self.client_case()
            except Exception as x:  # anything escaping the core is the finding
                self.exc = x
                e = _E_EXC
            if e:
                self.err = e
                self.err_case = self.done + i
                break
            i += 1
        self.done += i
        return i, ticks_diff(ticks_ms(), t0)

    def run_parsers(self, cases):
        """cases mutated datagrams through the parsers only, allocation free
        (callers may hold the heap lock).  Returns the cases run."""
        buf = self.buf  # only read by the parsers
        cap = len(buf)
        self.oversize = False
        i = 0
        while i < cases:
            self.mutate(buf, cap, False)
            try:
                e = self.check_parsers(buf, self.n)
            except Exception:
                e = -_E_EXC
            if e < 0:
                self.err = -e
                self.err_case = i
                break
            i += 1
        return i

    def report(self):
        """Where the first failure happened, with the datagram in hex (made
        again from the random state the case began with: the client may
        have changed it in place)."""
        if not self.err:
            return ""
        b = self.buf
        self.r.h = self.rstate
        self.r.l = self.rstate_l
        self.mutate(b, len(b), self.oversize)
        n = min(self.n, len(b))
        hx = "".join(["%02x" % b[i] for i in range(n)])
        return ("fuzz failure: %s (seed %d, case %d, source %s:%d, n=%d%s)\n%s"
                % (ERRORS[self.err], self.seed, self.err_case, SOURCES[self.si][0], SOURCES[self.si][1],
                   self.n, ", %r" % (self.exc,) if self.exc is not None else "", hx))

    def summary(self):
        names = []
        for i in range(ND):
            if self.verdicts[i]:
                names.append("%s=%d" % (DROP_NAMES[i], self.verdicts[i]))
        return ("fed %d: %d rejected by the parser, %d past it (drop counters moved 0/1/2/3: %s; "
                "%d silent accepts); %d sent (%d to port 0); %d requalifications; "
                "parse_encap %s; parse_ra ok %d of %d"
                % (self.fed, self.early, self.rx, "/".join([str(x) for x in self.multi]), self.silent,
                   self.tx, self.port0, self.requalified, " ".join(names), self.ra_verdicts[0],
                   sum(self.ra_verdicts)))


def choose(r, consts):
    """One of the constants, or (one time in len+1) a random byte."""
    k = r(len(consts) + 1)
    return r(256) if k == len(consts) else consts[k]


def ticks_diff_wrap(a, b):
    d = (a - b) & _TICKS
    return d - _TICKS - 1 if d > _TICKS // 2 else d


def main(argv):
    cases = int(argv[0]) if argv else 100000
    seconds = int(argv[1]) if len(argv) > 1 else 600
    seed = int(argv[2]) if len(argv) > 2 else 1
    from harness import Net
    f = Fuzzer(Net("cone", seed=seed), seed)
    t0 = ticks_ms()
    ran = 0
    ms = 0
    while ran < cases and not f.err and ms < seconds * 1000:
        k, _ = f.run_client(min(1000000, cases - ran), seconds * 1000 - ms)
        ran += k
        ms = ticks_diff(ticks_ms(), t0)
        print("fuzz (%s, seed %d): %d of %d client cases in %d ms"
              % (sys.implementation.name, seed, ran, cases, ms))
    print(f.summary())
    if f.err:
        print(f.report())
        sys.exit(1)
    if ran < cases:
        print("fuzz: time budget of %d s ran out before %d cases" % (seconds, cases))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
