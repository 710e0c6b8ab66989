# teredo.tcp's small helpers and a new connection's starting state held to
# what they do (the mutants `make mutate` left alive), on both interpreters:
# _diff/_add at half the tick space and at the 2**30 wrap, _rel exactly at
# each of its edges (the 16-bit borrow, the sign at 2**31, the +-2**28 clamp)
# and _put's carry and borrow across the halves, the byte copies (the plain
# loop, the slice and whichever one the module picked) on the same vectors,
# _older and _min at ties, one tick apart and across the wrap, seen also in
# eviction and next_deadline; and what clear() gives a new connection: no
# error, no timers, Nagle on, no bytes counted, SND.UNA at the ISS, the retry
# count from zero, the SMSS of 1220 (IPv6's) before the peer's, and an active open that
# belongs to no listener.  Lean: small rings, one or two slots per TCP.

from tcpkit import ACK, FIN, M32, PEER, PSH, RST, SYN, Rig, get32, passive, put32, seg
from teredo import tcp
from teredo.tcp import _add, _diff, _min, _older, _put, _rel

WRAP = 1 << 30  # ticks wrap here (test arithmetic only: never passed in)
HALF = 1 << 29
FAR = 0x10000000  # _rel's clamp (tcp._FAR is a const: no attribute on MicroPython)


# ---- ticks --------------------------------------------------------------------

def test_diff_at_half_the_tick_space():
    # a - b in -2**29 .. 2**29 - 1: exactly half is "before"
    assert _diff(5, 3) == 2 and _diff(3, 5) == -2
    assert _diff(HALF - 1, 0) == HALF - 1
    assert _diff(HALF, 0) == -HALF
    assert _diff(0, HALF) == -HALF
    assert _diff(0, HALF + 1) == HALF - 1
    assert _diff(WRAP - 1, 0) == -1 and _diff(0, WRAP - 1) == 1


def test_add_wraps_at_2_30():
    assert _add(5, 10) == 15
    assert _add(WRAP - 2, 1) == WRAP - 1
    assert _add(WRAP - 1, 1) == 0
    assert _add(WRAP - 10, 30) == 20


# ---- sequence offsets -----------------------------------------------------------

def _b4(v):
    b = bytearray(4)
    put32(b, 0, v & M32)
    return b


def _r(base, d):
    """_rel of the number base + d (mod 2**32) against base."""
    return _rel(_b4(base + d), 0, _b4(base))


def test_rel_is_exact_within_2_28_and_clamps_beyond():
    B = 0x12345678
    for d in (0, 1, -1, 0xFFFF, 0x10000, -0x10000, 0x10001, 0x0FFF0000, 0x0FFFFFFF,
              -0x0FFF0000, -0x0FFFFFFF):
        assert _r(B, d) == d, hex(d)
    assert _r(0xFFFFFFF0, 0x20) == 0x20  # across 2**32
    assert _r(B, -0x10000000) == -FAR
    for d in (0x10000000, 0x10000001, 0x10010000, 0x7FFF0000):
        assert _r(B, d) == FAR, hex(d)
    for d in (-0x10000001, -0x10010000):
        assert _r(B, d) == -FAR, hex(d)


def test_rel_sign_at_half_the_sequence_space():
    # RFC 9293 §3.4: 2**31 ahead is behind; the borrow from the low half decides
    assert _r(0, 0x80000000) == -FAR
    assert _r(0, 0x80000001) == -FAR
    assert _r(1, 0x7FFFFFFF) == FAR  # the low half borrows: 0x8000 - 1 in the high half
    assert _r(0, 0x7FFFFFFF) == FAR
    b = bytearray(6)
    b[2:6] = _b4(0x10000)
    assert _rel(b, 2, _b4(0)) == 0x10000  # the number at an offset


def test_put_carries_and_borrows_between_the_halves():
    for base, x, want in ((0x12345678, 0x10000, 0x12355678), (0x12345678, -1, 0x12345677),
                          (0x12345678, 0x2FFFF, 0x12375677), (0x1234FFFF, 1, 0x12350000),
                          (0xFFFFFFFF, 1, 0), (0, -1, M32), (0x12340000, -0x10001, 0x1232FFFF),
                          (0x80000000, 0x0FFFFFFF, 0x8FFFFFFF)):
        src = bytearray(7)
        src[1:5] = _b4(base)
        dst = bytearray(8)
        _put(dst, 3, src, 1, x)
        assert get32(dst, 3) == want and dst[:3] == b"\0\0\0" and dst[7] == 0, (hex(base), x)


# ---- byte copies ------------------------------------------------------------------

def test_copies_take_n_bytes_from_so_to_do():
    src = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09"
    fs = [tcp._copy_loop, tcp._copy]
    if hasattr(tcp, "_copy_slice"):
        fs.append(tcp._copy_slice)
    if hasattr(tcp, "_copy_viper"):
        fs.append(tcp._copy_viper)
    for f in fs:
        dst = bytearray(10)
        f(dst, 2, src, 3, 5)
        assert dst == b"\0\0\x04\x05\x06\x07\x08\0\0\0", f
        f(dst, 0, src, 8, 1)
        f(dst, 9, src, 0, 0)
        assert dst == b"\x09\0\x04\x05\x06\x07\x08\0\0\0", f
        f(dst, 7, bytearray(src), 0, 3)
        assert dst == b"\x09\0\x04\x05\x06\x07\x08\x01\x02\x03", f


# ---- _older, _min ---------------------------------------------------------------------

class _Born:
    def __init__(self, born):
        self.born = born


def test_older_keeps_the_first_on_a_tie_and_reads_across_the_wrap():
    a, b = _Born(7), _Born(6)
    assert _older(None, a) is a
    assert _older(a, b) is b and _older(b, a) is b
    assert _older(a, _Born(7)) is a  # a tie keeps the first found
    w, z = _Born(WRAP - 1), _Born(0)  # born 2**30 - 1, then 0 after the wrap
    assert _older(z, w) is w and _older(w, z) is w


def test_a_full_listener_evicts_its_oldest_half_open_one_from_any_slot():
    # the older half-open connection sits in the later slot, born one tick before
    # the wrap of the born counter; the newer one (born 0) stays
    r = Rig(slots=2)
    t = r.t
    t.listen(80, 2)
    t.born = WRAP - 3
    r.feed(seg(40001, 80, 1000, 0, SYN))                  # slot 0, born 2**30 - 2
    r.feed(seg(40002, 80, 2000, 0, SYN))                  # slot 1, born 2**30 - 1
    assert r.feed(seg(40001, 80, 1001, 0, RST)) == []     # slot 0 free again
    s3 = r.feed(seg(40003, 80, 3000, 0, SYN))[0]          # slot 0, born 0
    s4 = r.feed(seg(40004, 80, 4000, 0, SYN))[0]          # evicts 40002 (slot 1)
    assert r.counter("evicted") == 1 and s3.flags == s4.flags == SYN | ACK
    out = r.feed(seg(40002, 80, 2001, 1, ACK))
    assert len(out) == 1 and out[0].flags == RST and out[0].dport == 40002
    assert r.feed(seg(40003, 80, 3001, s3.seq + 1, ACK)) == []
    assert r.feed(seg(40004, 80, 4001, s4.seq + 1, ACK)) == []
    assert t.accept(0) >= 0 and t.accept(0) >= 0 and t.accept(0) == -1


def test_min_of_deadlines():
    assert _min(-1, -1) == -1 and _min(-1, 0) == 0 and _min(0, -1) == 0
    assert _min(0, 5) == 0 and _min(5, 0) == 0
    assert _min(5, 4) == 4 and _min(4, 5) == 4 and _min(4, 4) == 4
    assert _min(WRAP - 1, 0) == WRAP - 1 and _min(0, WRAP - 1) == WRAP - 1


def test_next_deadline_at_tick_0_and_one_tick_apart():
    # the SYN's timer falls on tick 0 (a deadline, not "off"), the idle one a tick later
    r = Rig(now=WRAP - 1000, idle_ms=1001)
    r.t.connect(PEER, 80, r.now)
    assert r.t.next_deadline() == 0
    # the idle deadline one tick before the SYN's timer (RFC 6298 §5.1: RTO 1 s)
    r = Rig(idle_ms=999)
    r.t.connect(PEER, 80, r.now)
    assert r.t.next_deadline() == r.now + 999


# ---- what clear() gives a new connection ---------------------------------------------------

def test_a_new_connection_has_only_its_syn_timer_and_retries_from_zero():
    # RFC 6298 §5.1 the SYN starts the timer, §5.5 back-off; RFC 9293 §3.8.3 R2:
    # retries=2 means two retransmissions, then the connection times out
    r = Rig(retries=2, idle_ms=0)
    t = r.t
    cid = t.connect(PEER, 80, r.now)
    assert [s.flags for s in r.take()] == [SYN] and t.error(cid) is None
    now = r.now
    gaps = []
    for _ in range(5):
        d = t.next_deadline()
        if d is None:
            break
        gaps.append(d - now)
        t.on_timer(d)
        now = d
        gaps.append([s.flags for s in r.take()])
    assert gaps == [1000, [SYN], 2000, [SYN], 4000, []]
    assert t.state(cid) == "CLOSED" and t.error(cid) == "timeout" and r.counter("timeouts") == 1


def test_a_reused_slot_starts_with_no_error_no_bytes_and_nagle_on():
    r = Rig(slots=1, idle_ms=0)
    t = r.t
    cid, iss = passive(r)
    assert t.status()["connections"][0]["tx"] == 0
    t.set_nodelay(cid, True)
    assert t.send(cid, b"hello", 0, 5, r.now) == 5
    assert [len(s.data) for s in r.take()] == [5]
    r.feed(seg(40000, 80, 1001, iss + 6, ACK))
    assert t.status()["connections"][0]["tx"] == 5
    r.feed(seg(40000, 80, 1001, 0, RST))
    assert t.error(cid) == "reset"
    t.close(cid, r.now)
    cid2, iss = passive(r, sport=40001)
    assert cid2 == cid + 16 and t.error(cid2) is None
    st = t.status()["connections"]
    assert len(st) == 1 and st[0]["tx"] == 0 and st[0]["error"] is None
    # RFC 9293 §3.7.4 Nagle: the second small segment waits for the first's ACK
    assert t.send(cid2, b"ab", 0, 2, r.now) == 2
    assert [len(s.data) for s in r.take()] == [2]
    assert t.send(cid2, b"cd", 0, 2, r.now) == 2
    assert r.take() == []
    out = r.feed(seg(40001, 80, 1001, iss + 3, ACK))
    assert len(out) == 1 and out[0].data == b"cd" and out[0].flags == ACK | PSH
    assert t.status()["connections"][0]["tx"] == 2


def test_syn_received_takes_only_an_ack_of_our_syn():
    # RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED: SND.UNA < SEG.ACK =< SND.NXT, else
    # <SEQ=SEG.ACK><CTL=RST>; SND.UNA is the ISS, so an ACK of the ISS itself is not one
    r = Rig(slots=1)
    r.t.listen(80, 1)
    sa = r.feed(seg(40000, 80, 1000, 0, SYN))[0]
    for a in (sa.seq, sa.seq + 2):
        out = r.feed(seg(40000, 80, 1001, a, ACK))
        assert len(out) == 1 and out[0].flags == RST and out[0].seq == a & M32, out
        assert r.state(0) == "SYN-RECEIVED"
    assert r.feed(seg(40000, 80, 1001, sa.seq + 1, ACK)) == []
    assert r.state(0) == "ESTABLISHED"


def _simultaneous(r):
    """connect, and the peer's SYN crosses ours: SYN-RECEIVED (RFC 9293 §3.5 figure 7)."""
    cid = r.t.connect(PEER, 7000, r.now, 6000)
    r.take()
    out = r.feed(seg(7000, 6000, 300, 0, SYN))
    assert len(out) == 1 and out[0].flags == SYN | ACK and r.t.state(cid) == "SYN-RECEIVED"
    assert r.feed(seg(7000, 6000, 301, 0, RST)) == []
    assert r.t.state(cid) == "CLOSED" and r.t.recv_into(cid, bytearray(4), 0, 4, r.now) == -1
    return cid


def test_rst_in_syn_received_after_a_simultaneous_open_is_refused():
    # an active open belongs to no listener: its end is the app's to hear, as
    # "connection refused" (RFC 9293 §3.10.7.4 second, SYN-RECEIVED from SYN-SENT)
    r = Rig(slots=1)
    cid = _simultaneous(r)
    assert r.t.error(cid) == "refused" and r.counter("rst_rx") == 1


def test_close_in_syn_received_sends_the_fin_once_established():
    # RFC 9293 §3.10.4, CLOSE in SYN-RECEIVED with nothing queued: the FIN goes
    # once the connection is ESTABLISHED (FIN-WAIT-1), no RST (it sent one)
    r = Rig(slots=1)
    cid = r.t.connect(PEER, 7000, r.now, 6000)
    syn = r.take()[0]
    assert r.feed(seg(7000, 6000, 300, 0, SYN))[0].flags == SYN | ACK
    r.t.close(cid, r.now)
    assert r.take() == [] and r.state(cid) == "SYN-RECEIVED" and r.counter("rst_tx") == 0
    out = r.feed(seg(7000, 6000, 301, syn.seq + 1, ACK))  # the peer's ACK of our SYN
    assert [(x.flags, x.seq, x.ack) for x in out] == [(FIN | ACK, (syn.seq + 1) & M32, 301)]
    assert r.state(cid) == "FIN-WAIT-1"
    assert r.feed(seg(7000, 6000, 301, syn.seq + 2, ACK)) == [] and r.state(cid) == "FIN-WAIT-2"


def test_a_lost_syn_sets_ssthresh_from_the_ipv6_default_smss():
    # RFC 5681 §3.1 eq. (4): the SYN's time-out sets ssthresh = 2 * SMSS, and the
    # SMSS before the peer's MSS is known is IPv6's default, 1220 (RFC 9293
    # §3.7.1): 2440.  After the lost SYN the window is one segment of the peer's
    # MSS (267), and the handshake does not grow it.  Below 2440 it grows by the
    # bytes acked: four 1-byte ACKs take it to 271, which the data sent shows.
    r = Rig(idle_ms=0)
    t = r.t
    cid = t.connect(PEER, 80, r.now)
    s = r.take()[0]
    assert [x.flags for x in r.run(1000)] == [SYN] and r.counter("retransmits") == 1
    assert len(r.feed(seg(80, s.sport, 5000, s.seq + 1, SYN | ACK, mss=267))) == 1
    c = t.conns[0]
    assert (c.ssthresh, c.cwnd, c.smss) == (2440, 267, 267)
    t.set_nodelay(cid, True)
    u = s.seq + 1
    assert t.send(cid, b"abcd", 0, 4, r.now) == 4 and len(r.take()) == 1
    for k in range(1, 5):
        assert r.feed(seg(80, s.sport, 5001, u + k, ACK)) == []
    assert c.cwnd == 271
    buf = bytearray(300)
    assert t.send(cid, buf, 0, 300, r.now) == 300
    # one full segment; the 4 bytes of window left would cut 33 queued bytes
    # into a small segment, which sender SWS avoidance holds back
    assert [len(x.data) for x in r.take()] == [267]
    out = r.feed(seg(80, s.sport, 5001, u + 4 + 267, ACK))
    assert c.cwnd == 271 + 267  # a full segment acked: + SMSS (slow start, below 2440)
    assert [len(x.data) for x in out] == [33]


def test_after_a_lost_syn_the_first_flight_is_one_segment():
    # RFC 5681 §3.1: the SYN was sent again, so the initial window is one SMSS
    r = Rig(idle_ms=0)
    t = r.t
    cid = t.connect(PEER, 80, r.now)
    s = r.take()[0]
    assert [x.flags for x in r.run(1000)] == [SYN]
    assert len(r.feed(seg(80, s.sport, 5000, s.seq + 1, SYN | ACK, mss=1220))) == 1
    t.set_nodelay(cid, True)
    assert t.send(cid, bytearray(2000), 0, 2000, r.now) == 2000
    assert [len(x.data) for x in r.take()] == [1220]
