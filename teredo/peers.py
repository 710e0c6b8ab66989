# The list of recent Teredo peers (RFC 4380 §5.2), bounded: a fixed number of
# entries made at start-up, the least recently used one reused when full, and
# a small pool of queue buffers (at most one per peer, RFC 4380 §5.2.4 queues)
# so that a flood of new peers cannot grow the heap.
#
# Entries are not objects: a peer is an index i into flat tables (a list of
# small ints, NF per peer, and bytearrays for the addresses and nonces).  On
# the unix port an object per peer cost 640 bytes; this costs about 120.

from teredo import wire

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

# Integer fields of an entry: v[i * NF + F_...]
F_USED = const(0)       # 1 when the entry is in use
F_KEY = const(1)        # low 24 bits of the IPv6 address, to skip mismatches fast
F_TEREDO = const(2)     # 1 when the peer's IPv6 address is a Teredo address
F_TRUSTED = const(3)    # RFC 4380 §5.2: status of the mapped address
F_PORT = const(4)       # mapped UDP port of the peer
F_LAST_RX = const(5)    # F_LAST_RX..F_LOCAL_RX: past times, aged by Client._age
F_LAST_TX = const(6)
F_LAST_USE = const(7)   # for LRU replacement
F_WINDOW = const(8)     # start of the current 300 s bubble window (§5.2.6)
F_LOCAL_RX = const(9)   # last local discovery bubble from it (§5.2.8)
F_BUBBLES = const(10)   # bubbles sent in that window
F_PROBES = const(11)    # connectivity tests / bubble rounds left (§5.2.4)
F_NEXT = const(12)      # time of the next probe
F_Q = const(13)         # index of the borrowed queue buffer, -1 = none
F_QLEN = const(14)
F_LOCAL = const(15)     # 1: a local peer, found by local discovery (§5.2.8)
F_LPORT = const(16)     # its local port (its local IPv4 is in lip4)
NF = const(17)


def key_of(buf, off):
    return (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]


class PeerTable:
    def __init__(self, max_peers, queue_slots, queue_bytes):
        self.n = max_peers
        self.hint = 0  # find(): the entry found last (any valid index)
        self.v = [0] * (max_peers * NF)
        for i in range(max_peers):
            self.v[i * NF + F_Q] = -1
        self.ip6 = bytearray(16 * max_peers)   # peer IPv6 address at i*16
        self.ip4 = bytearray(4 * max_peers)    # mapped IPv4 at i*4
        self.lip4 = bytearray(4 * max_peers)   # local IPv4 of a local peer (§5.2.8) at i*4
        self.nonce = bytearray(8 * max_peers)  # last nonce sent (§5.2.9) at i*8
        self.addr = [None] * max_peers         # (ip text, port) for sendto, once trusted
        # room for one MTU-sized packet and its 2-byte length
        self.qbufs = [bytearray(queue_bytes + 2) for _ in range(queue_slots)]
        self.qmvs = [memoryview(b) for b in self.qbufs]
        self.qowner = [-1] * queue_slots
        self.qrelease = [False] * queue_slots  # freed once the tx ring drains
        self.queue_bytes = queue_bytes + 2

    def find(self, buf, off):
        """Index of the entry for the IPv6 address at buf[off], or -1."""
        k = (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]  # key_of
        v = self.v
        eq = wire.eq
        ip6 = self.ip6
        # the entry found last first: a stream of packets is to or from one
        # peer (the relay), and this is the hot path's one table look-up
        i = self.hint
        b = i * NF
        if v[b + F_USED] and v[b + F_KEY] == k and eq(buf, off, ip6, i * 16, 16):
            return i
        i = 0
        b = 0
        n = self.n
        while i < n:
            if v[b + F_USED] and v[b + F_KEY] == k and eq(buf, off, ip6, i * 16, 16):
                self.hint = i
                return i
            i += 1
            b += NF
        return -1

    def count(self):
        c = 0
        for i in range(self.n):
            c += self.v[i * NF + F_USED]
        return c

    def new(self, buf, off, now, ago):
        """Take a free entry, or the least recently used one (RFC 4380 §5.2
        suggests LRU), idle ones before those running a test.  A valid
        trusted entry (reception within 30 s, §5.2.4) is never taken: a
        newcomer, maybe spoofed, must not evict the relay we talk through
        (§7.3.3); -1 when every entry is one.  'ago' is now minus 30 s: new
        entries start with their last reception and transmission 30 s in the
        past (§5.2.3, §5.2.6)."""
        v = self.v
        victim = -1
        for i in range(self.n):
            b = i * NF
            if not v[b + F_USED]:
                victim = i
                break
            if v[b + F_TRUSTED] and _before(ago, v[b + F_LAST_RX]):
                continue
            if victim < 0:
                victim = i
                continue
            w = victim * NF
            pi = v[b + F_PROBES] > 0
            pw = v[w + F_PROBES] > 0
            if pi < pw or (pi == pw and _before(v[b + F_LAST_USE], v[w + F_LAST_USE])):
                victim = i
        if victim < 0:
            return -1
        i = victim
        self.free(i)
        b = i * NF
        self.ip6[i * 16:i * 16 + 16] = memoryview(buf)[off:off + 16]
        v[b + F_USED] = 1
        v[b + F_KEY] = key_of(buf, off)
        v[b + F_TEREDO] = 1 if (buf[off] == 0x20 and buf[off + 1] == 0x01
                                and buf[off + 2] == 0 and buf[off + 3] == 0) else 0
        v[b + F_TRUSTED] = 0
        v[b + F_PORT] = 0
        v[b + F_LAST_RX] = ago
        v[b + F_LAST_TX] = ago
        v[b + F_LAST_USE] = now
        v[b + F_BUBBLES] = 0
        v[b + F_WINDOW] = now
        v[b + F_PROBES] = 0
        v[b + F_NEXT] = now
        v[b + F_LOCAL] = 0
        v[b + F_LOCAL_RX] = ago
        return i

    def free(self, i):
        self.drop_queue(i)
        b = i * NF
        self.v[b + F_USED] = 0
        self.v[b + F_TRUSTED] = 0
        self.v[b + F_PROBES] = 0
        self.v[b + F_LOCAL] = 0
        self.addr[i] = None

    # ---- per-peer queue: packets stored as 2-byte length + IPv6 packet ----

    def enqueue(self, i, buf, off, n):
        v = self.v
        b = i * NF
        q = v[b + F_Q]
        if q < 0:
            for k in range(len(self.qbufs)):
                if self.qowner[k] < 0 and not self.qrelease[k]:
                    self.qowner[k] = i
                    q = k
                    v[b + F_Q] = k
                    v[b + F_QLEN] = 0
                    break
            if q < 0:
                return False
        o = v[b + F_QLEN]
        if o + 2 + n > self.queue_bytes:
            return False
        qb = self.qbufs[q]
        qb[o] = n >> 8
        qb[o + 1] = n & 0xFF
        qb[o + 2:o + 2 + n] = memoryview(buf)[off:off + n]
        v[b + F_QLEN] = o + 2 + n
        return True

    def drop_queue(self, i):
        b = i * NF
        q = self.v[b + F_Q]
        if q >= 0:
            self.qowner[q] = -1
            self.v[b + F_Q] = -1
            self.v[b + F_QLEN] = 0

    def release_pending(self):
        for k in range(len(self.qrelease)):
            self.qrelease[k] = False


def _before(a, b):
    d = a - b
    if d >= 0x20000000:
        d = d - 0x20000000 - 0x20000000
    elif d < -0x20000000:
        d = d + 0x20000000 + 0x20000000
    return d < 0
