# Helpers for the TCP tests, on CPython and MicroPython alike: a fake IPv6
# layer (the `net` a TCP is given), a segment builder and parser, a rig that
# drives one TCP with a fake clock, and a lossy, reordering, duplicating link
# for two TCPs back to back.  Test code may use big ints (the unix port has
# them); the TCP itself never sees one.

from teredo import proto, wire
from teredo.tcp import STATES, TCP, _add, _diff
from vectors import Rand, ip6

ME = ip6("2001:0:c633:640a:8000:f227:bc0f:9b7f")    # the TCP under test
PEER = ip6("2001:db8:f::100")
PEER2 = ip6("2001:db8:f::200")
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
M32 = 0xFFFFFFFF


class FakeNet:
    """The IPv6 layer: an arena, tx_alloc and tx_send.  Packets sent are kept
    as bytes in out (keep=True) or only counted (keep=False: allocation free,
    for the heap_lock test)."""

    def __init__(self, address, arena=3000):
        self.address = bytearray(address)
        self.arena = bytearray(arena)
        self.used = 0
        self.out = []
        self.keep = True
        self.count = 0
        self.last_off = 0
        self.last_n = 0
        self.refuse = 0

    def tx_alloc(self, n):
        o = self.used
        if o + n > len(self.arena):
            return -1
        self.used = o + n
        return o

    def tx_send(self, off, n, now):
        self.count += 1
        self.last_off = off
        self.last_n = n
        if self.keep:
            self.out.append(bytes(self.arena[off:off + n]))
        return self.refuse

    def reset(self):
        self.used = 0

    def drain(self):
        self.used = 0
        o = self.out
        self.out = []
        return o


def put32(b, o, v):
    b[o] = (v >> 24) & 0xFF
    b[o + 1] = (v >> 16) & 0xFF
    b[o + 2] = (v >> 8) & 0xFF
    b[o + 3] = v & 0xFF


def get32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


def seg(sport, dport, seq, ack, flags, wnd=8192, data=b"", mss=0, opts=None, src=PEER, dst=ME):
    """A TCP segment in an IPv6 packet, checksum right."""
    if opts is None:
        opts = bytes([2, 4, mss >> 8, mss & 0xFF]) if mss else b""
    hl = 20 + len(opts)
    plen = hl + len(data)
    b = bytearray(40 + plen)
    wire.build_ipv6(b, 0, plen, proto.NH_TCP, 64, src, dst)
    t = 40
    b[t] = sport >> 8
    b[t + 1] = sport & 0xFF
    b[t + 2] = dport >> 8
    b[t + 3] = dport & 0xFF
    put32(b, t + 4, seq & M32)
    put32(b, t + 8, ack & M32)
    b[t + 12] = (hl // 4) << 4
    b[t + 13] = flags
    b[t + 14] = wnd >> 8
    b[t + 15] = wnd & 0xFF
    b[t + 20:t + hl] = opts
    b[t + hl:] = data
    wire.set_l4_checksum(b, 0, proto.NH_TCP, plen, t + 16)
    return b


class Seg:
    """A segment the TCP sent, parsed and checked."""

    def __init__(self, p):
        assert p[0] >> 4 == 6 and p[6] == proto.NH_TCP and p[7] == proto.HOP_LIMIT
        plen = (p[4] << 8) | p[5]
        assert plen + 40 == len(p), "IPv6 payload length"
        assert wire.l4_sum(p, 0, proto.NH_TCP, plen) == 0xFFFF, "TCP checksum"
        t = 40
        self.src = bytes(p[8:24])
        self.dst = bytes(p[24:40])
        self.sport = (p[t] << 8) | p[t + 1]
        self.dport = (p[t + 2] << 8) | p[t + 3]
        self.seq = get32(p, t + 4)
        self.ack = get32(p, t + 8)
        hl = (p[t + 12] >> 4) * 4
        self.flags = p[t + 13]
        self.wnd = (p[t + 14] << 8) | p[t + 15]
        self.mss = None
        if hl == 24 and p[t + 20] == 2:
            self.mss = (p[t + 22] << 8) | p[t + 23]
        self.data = bytes(p[t + hl:])
        self.raw = p

    def __repr__(self):
        return "Seg(%d>%d %s seq=%d ack=%d wnd=%d len=%d)" % (
            self.sport, self.dport, flagstr(self.flags), self.seq, self.ack, self.wnd, len(self.data))


def flagstr(f):
    s = ""
    for bit, ch in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A")):
        if f & bit:
            s += ch
    return s


class FixedRand:
    """rand() that returns the given values first (the ephemeral port seed, then the ISS halves)."""

    def __init__(self, values):
        self.v = list(values)
        self.r = Rand(3)

    def __call__(self, bits):
        if self.v:
            return self.v.pop(0) & ((1 << bits) - 1)
        return self.r(bits)


class Rig:
    """One TCP on a FakeNet with a fake clock; a scripted peer talks to it."""

    def __init__(self, rand=None, arena=3000, now=1000, **opts):
        self.now = now
        self.net = FakeNet(ME, arena)
        for k, v in (("slots", 2), ("tx_bytes", 2048)):  # small: MicroPython's test heap
            if k not in opts:
                opts[k] = v
        self.t = TCP(self.net, rand=rand or Rand(5), **opts)

    def take(self):
        return [Seg(p) for p in self.net.drain()]

    def feed(self, pkt):
        """Deliver pkt to the TCP; returns the segments it sent."""
        self.t.on_segment(pkt, 0, len(pkt), self.now)
        return self.take()

    def run(self, ms):
        """Advance the clock by ms, firing the TCP's timers; returns what it sent."""
        end = _add(self.now, ms)
        out = []
        for _ in range(10000):
            d = self.t.next_deadline()
            if d is None or _diff(d, end) > 0:
                break
            if _diff(d, self.now) > 0:
                self.now = d
            self.t.on_timer(self.now)
            out += self.take()
        else:
            raise AssertionError("timers did not settle")
        self.now = end
        return out

    def state(self, cid):
        return STATES[self.t.conns[cid & 15].state]

    def conn(self, cid):
        return self.t.conns[cid & 15]

    def counter(self, name):
        return self.t.status()["counters"][name]


def passive(rig, port=80, pseq=1000, mss=1220, sport=40000, wnd=8192, src=PEER):
    """Open a connection to rig's listener on port; returns (cid, iss):
    the next peer sequence number is pseq + 1, ours iss + 1."""
    lh = rig.t.listen(port, 2) if port not in rig.t.lport else rig.t.lport.index(port)
    out = [s for s in rig.feed(seg(sport, port, pseq, 0, SYN, wnd, mss=mss, src=src)) if s.flags != RST]
    assert len(out) == 1 and out[0].flags == SYN | ACK, out  # (a RST may tell an evicted one)
    sa = out[0]
    assert sa.ack == (pseq + 1) & M32 and sa.mss == 1220
    out = rig.feed(seg(sport, port, pseq + 1, sa.seq + 1, ACK, wnd, src=src))
    assert out == [], out
    cid = rig.t.accept(lh)
    assert cid >= 0 and rig.t.state(cid) == "ESTABLISHED"
    return cid, sa.seq


def active(rig, dport=80, pseq=5000, mss=1220, wnd=8192):
    """Connect from rig to the peer; returns (cid, iss, sport)."""
    cid = rig.t.connect(PEER, dport, rig.now)
    out = rig.take()
    assert len(out) == 1 and out[0].flags == SYN and out[0].mss == 1220, out
    s = out[0]
    assert rig.t.state(cid) == "SYN-SENT"
    out = rig.feed(seg(dport, s.sport, pseq, s.seq + 1, SYN | ACK, wnd, mss=mss))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == (pseq + 1) & M32, out
    assert rig.t.state(cid) == "ESTABLISHED"
    return cid, s.seq, s.sport


class Lcg:
    """A seeded 31-bit random source for the lossy link."""

    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def __call__(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def pattern(i):
    """Byte i of a test stream."""
    return (i * 7 + (i >> 9) * 13 + 1) & 0xFF
