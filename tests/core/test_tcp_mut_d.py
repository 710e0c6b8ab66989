# teredo.tcp held to what an arriving ACK, text and FIN do (the _ack, _data
# and _fin mutants `make mutate` left alive), on both interpreters: the ring
# and the byte count after one acked byte, SND.NXT on a partial ACK, the
# RFC 6298 RTT sample (which ACK takes it, the 1 ms floor and 0xFFFFF ms
# ceiling, RTTVAR from a sample 1 ms low, a fresh timing after each sample),
# RFC 5681 slow start and congestion avoidance (exactly at ssthresh and at
# 65535/65536), RFC 6582's partial ACK; and received text trimmed on both
# sides of the window, placed behind unread bytes, the one out-of-order
# range (before, adjacent, overlapping, beyond it, its FIN), the ACK when a
# hole fills, and text after close() discarded with the window kept open.
# Lean: one slot, small rings; cwnd is read from the slot where no segment
# shows it.
from tcpkit import ACK, FIN, M32, Rig, pattern, passive, seg
from teredo import tcp

P = 1001  # the peer's first data byte (passive's IRS 1000 + 1)


def data(n, k=0):
    b = bytearray(n)
    for i in range(n):
        b[i] = pattern(k + i)
    return b


def _st(r):
    return r.t.status()["connections"][0]


def _acked(r, iss, n, wnd=8192):
    """The peer acknowledges our first n data bytes; returns what we sent."""
    return r.feed(seg(40000, 80, P, iss + 1 + n, ACK, wnd))


def _rig(mss=1220, **o):
    r = Rig(slots=1, **o)
    cid, iss = passive(r, mss=mss)
    return r, cid, iss


# ---- _ack: the transmit ring ---------------------------------------------------

def test_one_acked_byte_leaves_the_ring_and_is_counted():
    r, cid, iss = _rig()
    assert r.t.send(cid, b"a", 0, 1, r.now) == 1
    assert len(r.take()) == 1
    assert _acked(r, iss, 1) == []
    s = _st(r)
    assert s["unacked"] == 0 and s["tx"] == 1
    assert r.t.send(cid, b"bc", 0, 2, r.now) == 2
    out = r.take()
    assert len(out) == 1 and out[0].seq == (iss + 2) & M32 and out[0].data == b"bc"
    _acked(r, iss, 3)
    s = _st(r)
    assert s["unacked"] == 0 and s["tx"] == 3


def test_a_partial_ack_does_not_pull_snd_nxt_back():
    # RFC 9293 §3.10.7.4 fifth: SND.UNA moves up; what is in flight stays sent
    r, cid, iss = _rig(mss=100)
    assert r.t.send(cid, data(200), 0, 200, r.now) == 200
    assert [len(s.data) for s in r.take()] == [100, 100]
    assert _acked(r, iss, 100) == []
    assert _st(r)["unacked"] == 100
    assert _acked(r, iss, 200) == [] and _st(r)["unacked"] == 0


def test_an_ack_beyond_snd_nxt_after_a_timeout_moves_snd_nxt_up():
    r, cid, iss = _rig(mss=100)
    assert r.t.send(cid, data(200), 0, 200, r.now) == 200
    assert len(r.take()) == 2
    out = r.run(1000)  # RFC 6298 §5.4: the first segment again, cwnd one SMSS
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and len(out[0].data) == 100
    # the peer had both: its ACK is above SND.NXT, nothing is left to send
    assert _acked(r, iss, 200) == []
    assert _st(r)["unacked"] == 0 and r.t.next_deadline() == r.now + 120000  # idle only


# ---- _ack: the RTT sample (RFC 6298 §2, in ms; rto_min 1 to see it) ------------

def test_a_same_tick_sample_counts_as_1_ms_and_rttvar_as_2():
    # RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR)
    r, cid, iss = _rig(rto_min_ms=1)
    s = _st(r)
    assert s["srtt"] == 1 and s["rto"] == 3  # R = 0 ms taken as 1: 1 + 4 * 0.5


def _slow_handshake(ms, **o):
    """A passive open whose ACK comes ms after our SYN,ACK; (rig, cid, iss)."""
    r = Rig(slots=1, idle_ms=0, rto_min_ms=1, **o)
    lh = r.t.listen(80, 1)
    sa = r.feed(seg(40000, 80, 1000, 0, 0x02, mss=1220))[0]
    r.now += ms  # no timers run: the SYN,ACK is not sent again (Karn)
    assert r.feed(seg(40000, 80, P, sa.seq + 1, ACK)) == []
    cid = r.t.accept(lh)
    return r, cid, sa.seq


def test_an_rtt_sample_is_capped_at_0xfffff_ms():
    r, cid, iss = _slow_handshake(0x100000)
    s = _st(r)
    assert s["srtt"] == 0xFFFFF and s["rto"] == 60000


def test_an_rtt_sample_just_under_the_cap_is_kept():
    r, cid, iss = _slow_handshake(0xFFFFE)
    assert _st(r)["srtt"] == 0xFFFFE


def test_a_sample_1_ms_below_srtt_adds_1_to_rttvar():
    # RFC 6298 §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT = 7/8 SRTT + 1/8 R'
    r, cid, iss = _slow_handshake(100)
    s = _st(r)
    assert s["srtt"] == 100 and s["rto"] == 300
    r.now += 1000
    assert r.t.send(cid, b"x", 0, 1, r.now) == 1
    assert len(r.take()) == 1
    r.now += 99
    _acked(r, iss, 1)
    s = _st(r)
    # srtt*8 = 800 - 1 = 799; 4*rttvar = 200 + |-1| - 200/4 = 151; rto = 99 + 151
    assert s["srtt"] == 99 and s["rto"] == 250


def test_a_sample_8_ms_below_srtt():
    r, cid, iss = _slow_handshake(100)
    r.now += 1000
    assert r.t.send(cid, b"x", 0, 1, r.now) == 1
    r.take()
    r.now += 92
    _acked(r, iss, 1)
    s = _st(r)
    assert s["srtt"] == 99 and s["rto"] == 99 + 200 + 8 - 50  # srtt*8 792


def test_each_sample_times_a_segment_sent_after_it():
    # RFC 6298 §3 (Karn) times one segment at a time; the clock starts when it goes out
    r, cid, iss = _rig(rto_min_ms=1)  # the handshake's sample: srtt*8 = 8, 4*rttvar = 2
    r.now += 1000
    assert r.t.send(cid, b"x", 0, 1, r.now) == 1
    r.take()
    r.now += 100
    _acked(r, iss, 1)
    s = _st(r)
    # R = 100: srtt*8 = 8 + 99 = 107, 4*rttvar = 2 + 99 - 0 = 101
    assert s["srtt"] == 13 and s["rto"] == 13 + 101


def test_an_ack_past_the_timed_segment_takes_the_sample():
    r, cid, iss = _rig(mss=100, rto_min_ms=1)
    r.now += 1000
    assert r.t.send(cid, data(200), 0, 200, r.now) == 200  # the first segment is timed
    assert len(r.take()) == 2
    r.now += 100
    _acked(r, iss, 200)  # one ACK for both: SEG.ACK > the timed segment's end
    s = _st(r)
    assert s["srtt"] == 13 and s["rto"] == 114


# ---- _ack: congestion control (RFC 5681 §3.1, RFC 6582) ---------------------------

def test_slow_start_grows_by_the_bytes_acked_below_one_smss():
    # RFC 5681 §3.1 eq. (2): cwnd += min(N, SMSS); IW 400 (the ACK of our SYN
    # acks no data: no growth)
    r, cid, iss = _rig(mss=100)
    c = r.conn(cid)
    assert c.cwnd == 400
    assert r.t.send(cid, data(50), 0, 50, r.now) == 50
    r.take()
    _acked(r, iss, 50)
    assert c.cwnd == 450


def test_two_duplicate_acks_are_not_a_fast_retransmit():
    # RFC 5681 §3.2: the third duplicate ACK starts it; the next new ACK grows cwnd as usual
    r, cid, iss = _rig(mss=100)
    c = r.conn(cid)
    assert r.t.send(cid, data(400), 0, 400, r.now) == 400
    assert len(r.take()) == 4
    assert _acked(r, iss, 0) == [] and _acked(r, iss, 0) == []
    assert r.counter("dup_acks") == 2 and r.counter("fast_retransmits") == 0
    assert _acked(r, iss, 100) == []
    assert c.cwnd == 500 and c.dupacks == 0


def test_a_partial_ack_in_fast_recovery_sends_the_next_hole_and_deflates():
    # RFC 6582 §3.2 step 5: retransmit the first unacked segment, cwnd -= acked - SMSS
    r, cid, iss = _rig(mss=100)
    c = r.conn(cid)
    assert r.t.send(cid, data(400), 0, 400, r.now) == 400
    assert len(r.take()) == 4
    _acked(r, iss, 0)
    _acked(r, iss, 0)
    out = _acked(r, iss, 0)
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and len(out[0].data) == 100
    assert c.ssthresh == 200 and c.cwnd == 500
    out = _acked(r, iss, 200)
    assert len(out) == 1 and out[0].seq == (iss + 201) & M32 and out[0].data == bytes(data(100, 200))
    assert c.cwnd == 400 and c.dupacks == 3
    assert _acked(r, iss, 400) == []  # the full ACK ends it: cwnd = ssthresh
    assert c.cwnd == 200 and c.dupacks == 0


def test_congestion_avoidance_from_cwnd_equal_to_ssthresh():
    # RFC 5681 §3.1: slow start while cwnd < ssthresh; at cwnd = ssthresh, eq. (3)
    # cwnd += SMSS*SMSS/cwnd (+1 here, so that it grows)
    r, cid, iss = _rig(mss=100)
    c = r.conn(cid)
    assert r.t.send(cid, data(400), 0, 400, r.now) == 400
    assert len(r.take()) == 4
    assert len(r.run(1000)) == 1  # time-out: ssthresh = 400/2, cwnd = 100
    assert c.ssthresh == 200 and c.cwnd == 100
    _acked(r, iss, 100)
    assert c.cwnd == 200
    _acked(r, iss, 200)
    assert c.cwnd == 251


def _grown(last):
    """A connection whose cwnd slow-started from 4380 to 65534, then took
    ACKs of `last` bytes each; returns its slot."""
    r, cid, iss = _rig()
    c = r.conn(cid)
    assert c.cwnd == 4380 and c.ssthresh == 65535
    buf = data(1220)
    n = 0
    for k in [1220] * 50 + [154] + last:
        assert r.t.send(cid, buf, 0, k, r.now) == k
        r.take()
        n += k
        _acked(r, iss, n)
    return c


def test_congestion_avoidance_grows_at_cwnd_65535():
    c = _grown([1])  # 65534 + 1: slow start reaches ssthresh
    assert c.cwnd == 65535
    c = _grown([1, 1])
    assert c.cwnd == 65535 + 1220 * 1220 // 65535 + 1


def test_congestion_avoidance_stops_at_cwnd_65536():
    c = _grown([2, 1])  # 65534 + 2 in slow start, then an ACK in avoidance
    assert c.cwnd == 65536


# ---- _data: trimming to the window (RFC 9293 §3.10.7.4 seventh) ---------------

def test_text_overlapping_rcv_nxt_by_one_byte_is_trimmed_and_taken():
    r, cid, iss = _rig()
    assert r.feed(seg(40000, 80, P, iss + 1, ACK, data=b"ab")) == []
    out = r.feed(seg(40000, 80, P + 1, iss + 1, ACK, data=b"bcd"))
    assert len(out) == 1 and out[0].ack == P + 4 and r.counter("out_of_order") == 0
    buf = bytearray(8)
    assert r.t.recv_into(cid, buf, 0, 8, r.now) == 4 and buf[:4] == b"abcd"


def test_text_exactly_filling_the_window_is_acked_late():
    # RFC 9293 §3.8.6.3: one segment, nothing trimmed: the ACK may wait
    r, cid, iss = _rig(rx_bytes=256)
    assert r.feed(seg(40000, 80, P, iss + 1, ACK, data=data(256))) == []
    out = r.run(200)
    assert len(out) == 1 and out[0].ack == P + 256 and out[0].wnd == 0


def test_text_one_byte_past_the_window_is_trimmed_and_acked_at_once():
    r, cid, iss = _rig(rx_bytes=256)
    out = r.feed(seg(40000, 80, P, iss + 1, ACK, data=data(257)))
    assert len(out) == 1 and out[0].ack == P + 256 and out[0].wnd == 0


def test_an_out_of_order_range_trimmed_at_the_window_has_no_fin():
    r, cid, iss = _rig(rx_bytes=256)
    out = r.feed(seg(40000, 80, P + 100, iss + 1, ACK, data=data(200, 100)))
    assert len(out) == 1 and out[0].ack == P  # a duplicate ACK
    out = r.feed(seg(40000, 80, P, iss + 1, ACK, data=data(100)))
    assert len(out) == 1 and out[0].ack == P + 256 and r.state(cid) == "ESTABLISHED"


def test_a_one_byte_segment_is_taken():
    r, cid, iss = _rig()
    assert r.feed(seg(40000, 80, P, iss + 1, ACK, data=b"x")) == []
    out = r.run(200)
    assert len(out) == 1 and out[0].ack == P + 1
    buf = bytearray(2)
    assert r.t.recv_into(cid, buf, 0, 2, r.now) == 1 and buf[0] == ord("x")


def test_text_goes_behind_the_unread_bytes():
    r, cid, iss = _rig()
    r.feed(seg(40000, 80, P, iss + 1, ACK, data=b"abc"))
    r.feed(seg(40000, 80, P + 3, iss + 1, ACK, data=b"def"))
    buf = bytearray(8)
    assert r.t.recv_into(cid, buf, 0, 8, r.now) == 6 and buf[:6] == b"abcdef"


# ---- _data: the out-of-order range --------------------------------------------------

def _ooo(parts, fill):
    """Feed the (start, end, flags) parts (offsets from the peer's first data
    byte), each answered by a duplicate ACK, then fill [0, fill): returns
    (what that sent, the state, the bytes read)."""
    r, cid, iss = _rig()
    for a, b, f in parts:
        out = r.feed(seg(40000, 80, P + a, iss + 1, ACK | f, data=data(b - a, a)))
        assert len(out) == 1 and out[0].ack == P, out
    out = r.feed(seg(40000, 80, P, iss + 1, ACK, data=data(fill)))
    buf = bytearray(64)
    n = r.t.recv_into(cid, buf, 0, 64, r.now)
    assert buf[:n] == data(n)
    return out, r.state(cid), n


def test_filling_the_hole_acks_the_range_at_once():
    # RFC 5681 §4.2 / RFC 9293 §3.10.7.4: the range beyond the hole is acked with it
    out, st, n = _ooo([(10, 20, 0)], 10)
    assert len(out) == 1 and out[0].ack == P + 20 and n == 20 and st == "ESTABLISHED"


def test_text_short_of_the_range_leaves_the_hole():
    r, cid, iss = _rig()
    assert len(r.feed(seg(40000, 80, P + 10, iss + 1, ACK, data=data(10, 10)))) == 1
    assert r.feed(seg(40000, 80, P, iss + 1, ACK, data=data(4))) == []  # one segment: ACK later
    out = r.run(200)
    assert len(out) == 1 and out[0].ack == P + 4
    out = r.feed(seg(40000, 80, P + 4, iss + 1, ACK, data=data(6, 4)))
    assert len(out) == 1 and out[0].ack == P + 20  # at once


def test_the_ranges_fin_is_taken_when_text_reaches_its_end():
    out, st, n = _ooo([(10, 20, FIN)], 20)
    assert len(out) == 1 and out[0].ack == P + 21 and st == "CLOSE-WAIT" and n == 20


def test_a_range_ending_at_the_same_byte_with_fin_takes_the_fin():
    out, st, n = _ooo([(10, 20, 0), (15, 20, FIN)], 10)
    assert len(out) == 1 and out[0].ack == P + 21 and st == "CLOSE-WAIT" and n == 20


def test_a_nearer_range_apart_from_the_kept_one_replaces_it():
    out, st, n = _ooo([(20, 30, 0), (5, 10, 0)], 5)
    assert len(out) == 1 and out[0].ack == P + 10 and n == 10


def test_a_range_just_before_the_kept_one_joins_it():
    out, st, n = _ooo([(20, 30, 0), (10, 20, 0)], 10)
    assert len(out) == 1 and out[0].ack == P + 30 and n == 30


def test_a_range_overlapping_the_end_of_the_kept_one_extends_it():
    out, st, n = _ooo([(10, 20, 0), (15, 25, 0)], 10)
    assert len(out) == 1 and out[0].ack == P + 25 and n == 25


def test_a_range_just_after_the_kept_one_extends_it():
    out, st, n = _ooo([(10, 20, 0), (20, 30, 0)], 10)
    assert len(out) == 1 and out[0].ack == P + 30 and n == 30


def test_a_farther_range_apart_from_the_kept_one_is_dropped():
    out, st, n = _ooo([(10, 20, 0), (30, 40, 0)], 10)
    assert len(out) == 1 and out[0].ack == P + 20 and n == 20


# ---- _data after close() -----------------------------------------------------------

def test_text_after_close_is_discarded_and_the_window_stays_open():
    # nobody reads a closed connection: its bytes are dropped as they come
    # (RFC 9293 §3.10.7.4 seventh in FIN-WAIT-1/2), so the whole ring is offered
    r, cid, iss = _rig(rx_bytes=256)
    c = r.conn(cid)
    r.t.close(cid, r.now)
    assert r.take()[0].flags == FIN | ACK
    assert r.feed(seg(40000, 80, P, iss + 2, ACK, data=data(200))) == []
    assert r.state(cid) == "FIN-WAIT-2"
    out = r.run(200)
    assert len(out) == 1 and out[0].ack == P + 200 and out[0].wnd == 256
    assert c.rx_len == 0 and c.rx_head == 200
    # RFC 9293 §3.8.6.2.2: the edge moves by min(256/2, MSS) = 128 at least
    r.feed(seg(40000, 80, P + 200, iss + 2, ACK, data=data(128)))
    out = r.run(200)
    assert len(out) == 1 and out[0].ack == P + 328 and out[0].wnd == 256
    assert c.rx_len == 0 and c.rx_head == 72  # 328 mod 256
    assert _st(r)["rx"] == 328


def test_after_a_rebase_an_ack_grows_cwnd_by_all_it_acks():
    # the SYN is told by SND.UNA < the first data byte, not SND.UNA == 0: a
    # rebase (origins moved past REBASE) makes SND.UNA 0 again
    old = tcp.REBASE
    tcp.REBASE = 30
    try:
        r, cid, iss = _rig(mss=100)
        c = r.conn(cid)
        assert r.t.send(cid, data(90), 0, 90, r.now) == 90
        r.take()
        _acked(r, iss, 40)
        assert c.snd_una == 0 and c.cwnd == 440  # rebased past 30; + 40 (slow start)
        _acked(r, iss, 90)
        assert c.cwnd == 490
    finally:
        tcp.REBASE = old
