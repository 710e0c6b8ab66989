# The TCP as a whole, on CPython and MicroPython alike: two TCPs back to back
# through a link that loses, duplicates and reorders (seeded), moving 100 KB
# both ways with every byte checked; the established path under
# micropython.heap_lock(); mutated segments into LISTEN and ESTABLISHED.

import sys

from tcpkit import (ACK, ME, PEER, SYN, FakeNet, FixedRand, Lcg, Rig, passive, pattern, seg)
from teredo import tcp, wire
from teredo.tcp import TCP, _add, _diff

ON_MP = sys.implementation.name == "micropython"
try:
    import micropython
    heap_lock = micropython.heap_lock
    heap_unlock = micropython.heap_unlock
except (ImportError, AttributeError):  # CPython: no-ops, the results are still checked
    def heap_lock():
        pass

    def heap_unlock():
        return 0


class Link:
    """Two TCPs, a and b, and a link between them that loses loss %,
    duplicates dup % and delays each packet 10..10+jitter ms (so reorders)."""

    def __init__(self, seed, loss=5, dup=3, jitter=40, **opts):
        self.now = (1 << 30) - 5000  # the tick clock wraps during the run
        self.na = FakeNet(ME, 1600)  # the client's arena: one full segment per drain
        self.nb = FakeNet(PEER, 1600)
        self.a = TCP(self.na, rand=FixedRand([0, 0xFFFF, 0xF000]), **opts)
        self.b = TCP(self.nb, rand=FixedRand([0, 0xFFFF, 0xE000]), **opts)
        self.q = []
        self.rnd = Lcg(seed)
        self.loss = loss
        self.dup = dup
        self.jitter = jitter
        self.lost = self.dups = self.packets = self.seq = 0

    def carry(self):
        for net, dest in ((self.na, self.b), (self.nb, self.a)):
            for p in net.drain():
                self.packets += 1
                r = self.rnd(100)
                if r < self.loss:
                    self.lost += 1
                    continue
                n = 1
                if r >= 100 - self.dup:
                    n = 2
                    self.dups += 1
                for _ in range(n):
                    self.seq += 1  # keeps the sort stable (MicroPython's sort is not)
                    self.q.append((_add(self.now, 10 + self.rnd(self.jitter)), self.seq, dest, p))

    def step(self):
        """Advance to the next event and handle it."""
        t = None
        for due, _, _, _ in self.q:
            if t is None or _diff(due, t) < 0:
                t = due
        for x in (self.a, self.b):
            d = x.next_deadline()
            if d is not None and (t is None or _diff(d, t) < 0):
                t = d
        if t is None:
            return False
        if _diff(t, self.now) > 0:
            self.now = t
        now = self.now
        due = [e for e in self.q if _diff(e[0], now) <= 0]
        self.q = [e for e in self.q if _diff(e[0], now) > 0]
        due.sort(key=lambda e: (_diff(e[0], now), e[1]))
        for _, _, dest, p in due:
            dest.on_segment(p, 0, len(p), now)
            self.carry()
        for x in (self.a, self.b):
            d = x.next_deadline()
            if d is not None and _diff(d, now) <= 0:
                x.on_timer(now)
                self.carry()
        return True


class Stream:
    """One side's application: sends total pattern bytes, checks what it reads."""

    def __init__(self, t, total):
        self.t = t
        self.cid = -1
        self.total = total
        self.sent = 0
        self.got = 0
        self.bad = 0
        self.eof = False
        self.closed = False
        self.buf = bytearray(1024)

    def pump(self, now):
        t = self.t
        cid = self.cid
        while self.sent < self.total and t.writable(cid):
            k = self.total - self.sent
            if k > 1024:
                k = 1024
            for i in range(k):
                self.buf[i] = pattern(self.sent + i)
            m = t.send(cid, self.buf, 0, k, now)
            assert m >= 0
            if m == 0:
                break
            self.sent += m
        while not self.eof:
            n = t.recv_into(cid, self.buf, 0, 1024, now)
            if n < 0:
                self.eof = True
                break
            if n == 0:
                break
            for i in range(n):
                if self.buf[i] != pattern(self.got + i):
                    self.bad += 1
            self.got += n


def transfer(seed, total, **kw):
    tcp.REBASE = 30000  # move the sequence origins several times on the way
    try:
        ln = Link(seed, rto_min_ms=200, slots=1, rx_bytes=2048, tx_bytes=2048, **kw)
        lh = ln.b.listen(80, 1)
        sa = Stream(ln.a, total)
        sb = Stream(ln.b, total)
        sa.cid = ln.a.connect(PEER, 80, ln.now)
        ln.carry()
        steps = 0
        start = ln.now
        while steps < 100000 and _diff(ln.now, start) < 600000:
            steps += 1
            if sb.cid < 0:
                sb.cid = ln.b.accept(lh)
            for s in (sa, sb):
                if s.cid >= 0 and not s.closed:
                    s.pump(ln.now)
                    if s.sent == s.total and s.got == total and not s.closed:
                        s.t.close(s.cid, ln.now)  # both ways done: FIN
                        s.closed = True
                    ln.carry()
            if sa.closed and sb.closed and not ln.q and ln.a.next_deadline() is None \
                    and ln.b.next_deadline() is None:
                break
            if not ln.step():
                break
        return ln, sa, sb, steps, _diff(ln.now, start)
    finally:
        tcp.REBASE = 1 << 20


def test_100kb_both_ways_through_a_lossy_reordering_duplicating_link():
    total = 100000
    ln, sa, sb, steps, ms = transfer(12345, total)
    print("tcp back to back: %d steps, %d ms simulated, %d packets, %d lost, %d duplicated"
          % (steps, ms, ln.packets, ln.lost, ln.dups))
    for s in (sa, sb):
        assert s.sent == total and s.got == total and s.bad == 0, (s.sent, s.got, s.bad)
    assert ln.lost > 10 and ln.dups > 5  # the link did its worst
    ca = ln.a.status()["counters"]
    cb = ln.b.status()["counters"]
    assert ca["retransmits"] + ca["fast_retransmits"] > 0 and cb["out_of_order"] + ca["out_of_order"] > 0
    # both closed in the end (TIME-WAIT expired), nothing left pending
    assert ln.a.conns[0].state == 0 and ln.b.conns[0].state == 0
    assert ln.a.next_deadline() is None and ln.b.next_deadline() is None


def test_clean_link_is_fast():
    # without loss the window, not the timers, sets the pace: no RTO fires
    ln, sa, sb, steps, ms = transfer(1, 30000, loss=0, dup=0, jitter=1)
    assert sa.got == sb.got == 30000 and sa.bad == sb.bad == 0
    ca = ln.a.status()["counters"]
    assert ca["retransmits"] == 0 and ln.b.status()["counters"]["retransmits"] == 0
    assert ms < 6000, ms


def _established_step(t, net, cid, data, ack, payload, buf, now, res):
    # the code under test, run with the heap locked: a data segment in, the
    # app reads it and writes, our data goes out, the peer's ACK comes in,
    # the delayed ACK timer fires
    t.on_segment(data, 0, len(data), now)
    res[0] += t.recv_into(cid, buf, 0, len(buf), now)
    res[1] += t.send(cid, payload, 0, len(payload), now)
    net.reset()
    t.on_segment(ack, 0, len(ack), now)
    net.reset()
    t.on_timer(now + 300)
    net.reset()
    res[2] += 1


def test_established_path_allocates_nothing():
    r = Rig(slots=1, rx_bytes=2048, tx_bytes=2048)
    cid, iss = passive(r)
    t = r.t
    K = 5
    datas = []
    acks = []
    for k in range(K):  # prebuilt: building them would allocate
        datas.append(seg(40000, 80, 1001 + 600 * k, iss + 1 + 300 * k, ACK, data=bytes(600)))
        acks.append(seg(40000, 80, 1001 + 600 * (k + 1), iss + 1 + 300 * (k + 1), ACK))
    payload = bytearray(300)
    buf = bytearray(1024)
    res = [0, 0, 0]
    r.net.keep = False
    c0 = r.net.count
    _established_step(t, r.net, cid, datas[0], acks[0], payload, buf, r.now, res)  # warm up
    for k in range(1, K):
        heap_lock()
        try:
            _established_step(t, r.net, cid, datas[k], acks[k], payload, buf, r.now + k, res)
        finally:
            heap_unlock()
    assert res == [600 * K, 300 * K, K], res
    st = t.status()["counters"]
    assert st["unacceptable"] == 0 and st["tx_full"] == 0
    # per step our data segment (it carries the ACK), and a window update
    # after steps 1 and 3, when reading moved the edge by 1200 >= min(2048/2, MSS)
    assert r.net.count - c0 == K + 2, r.net.count - c0
    c = r.conn(cid)
    assert c.snd_una == c.snd_max == 1 + 300 * K and c.rcv_nxt == 1 + 600 * K


FUZZ_CASES = 3000 if ON_MP else 20000


def _mutate(rnd, p):
    n = len(p)
    k = rnd(8)
    if k == 0:
        i = rnd(n)
        p[i] ^= 1 << rnd(8)
    elif k == 1:
        p[40 + rnd(n - 40)] = rnd(256)
    elif k == 2:
        p = p[:rnd(n + 1)]
    elif k == 3:
        p[52] = rnd(16) << 4  # data offset
    elif k == 4:
        p[53] = rnd(64)  # flags
    elif k == 5:
        for _ in range(1 + rnd(6)):
            p[40 + rnd(n - 40)] = rnd(256)
    elif k == 6:
        p[44 + rnd(8)] ^= 0x80  # far sequence or acknowledgment numbers
    else:
        p += bytes(rnd(8) * 4)  # longer than it says
    if rnd(4) and len(p) >= 60:
        # a right checksum (and most often the length) so the state machine is reached
        plen = len(p) - 40
        if rnd(4):
            p[4] = plen >> 8
            p[5] = plen & 0xFF
        if ((p[4] << 8) | p[5]) == plen:
            wire.set_l4_checksum(p, 0, 6, plen, 56)
    return p


def _check(t):
    for c in t.conns:
        assert 0 <= c.rx_len <= c.rxn and 0 <= c.tx_len <= c.txn, "rings"
        if c.state >= 4:
            assert c.snd_una <= c.snd_nxt <= c.snd_max, "send sequence"
            assert -(1 << 26) < c.rcv_nxt < (1 << 26) and c.snd_max < (1 << 26), "small offsets"


def test_mutated_segments_into_listen_and_established_never_raise():
    r = Rig(slots=3)
    rnd = Lcg(99)
    sport = 30000
    cid, iss = passive(r, sport=sport)
    before = list(r.t.cnt)
    buf = bytearray(256)
    for _ in range(FUZZ_CASES):
        c = r.conn(cid)
        if c.state != 4 or c.cid != cid:  # fuzzed to death: a fresh connection
            if c.cid == cid and c.user == 1:
                r.t.close(cid, r.now)
            r.t.unlisten(0, r.now)  # and the queue of what the fuzzing opened
            r.take()
            sport += 1
            cid, iss = passive(r, sport=sport)
            c = r.conn(cid)
        q = c.snd_una - 1 + iss  # the peer's view of our numbers
        pn = 1001 + c.rcv_nxt - 1
        k = rnd(6)
        if k == 0:
            p = seg(1000 + rnd(50), 80, rnd(1 << 16) << 16, 0, SYN, mss=536 + rnd(700))
        elif k == 1:
            p = seg(sport, 80, pn, q + 1, ACK, data=bytes(1 + rnd(300)))
        elif k == 2:
            p = seg(sport, 80, pn, q + 1, ACK | rnd(64), 1 + rnd(9000))
        elif k == 3:
            p = seg(sport, 80, pn, q, ACK, opts=bytes([1, 3, 3, 7, 2, 4, 1, 0, 8, 10] + [0] * 10))
        elif k == 4:
            p = seg(sport, 81, 5, 6, rnd(64))
        else:
            p = seg(sport, 80, pn - rnd(3000), q + rnd(5000), ACK | rnd(8), data=bytes(rnd(100)))
        p = _mutate(rnd, p)
        rx0 = r.t.cnt[0]
        r.t.on_segment(p, 0, len(p), r.now)
        assert r.t.cnt[0] == rx0 + 1
        r.take()
        if rnd(8) == 0:
            if r.conn(cid).user == 1:
                r.t.send(cid, buf, 0, rnd(256), r.now)
            r.run(rnd(700))
        if r.conn(cid).user == 1 and r.conn(cid).cid == cid:
            r.t.recv_into(cid, buf, 0, 256, r.now)
        _check(r.t)
    moved = [tcp.COUNTERS[i] for i in range(len(before)) if r.t.cnt[i] > before[i]]
    print("tcp fuzz: %d cases; counters moved: %s" % (FUZZ_CASES, " ".join(moved)))
    for name in ("bad_checksum", "bad_length", "bad_offset", "bad_option", "unacceptable",
                 "rst_tx", "no_listener", "challenge_ack", "rst_rx"):
        assert name in moved, name
