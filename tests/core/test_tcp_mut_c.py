# teredo.tcp's segment arrival in the synchronized states and its duplicate
# ACKs held to RFC 9293 §3.10.7.4 and RFC 5681/6582 (the mutants `make mutate`
# left alive in _other and _dupack), on both interpreters: the acceptability
# test at each edge of the window (first byte, last byte, a zero and a 1-byte
# window, SYN and FIN counted in SEG.LEN), RST, SYN and the TIME-WAIT 2*MSL
# restart, a segment without ACK, the SYN-RECEIVED ACK check, SND.WL1/WL2
# window updates and the largest window, leaving the persist state, our FIN
# acknowledged, text and FIN after the peer's FIN; then what makes an ACK a
# duplicate, ssthresh from the flight, Karn during fast retransmit, the
# window inflation and the recover point.
# Lean: this module shares a board-sized heap with the TCP.
from tcpkit import ACK, FIN, M32, PEER, RST, SYN, Rig, active, seg


def _est(**o):
    """An active connection, ESTABLISHED: (rig, cid, iss, sport); the peer's
    next sequence number is 5001, ours iss + 1."""
    mss = o.pop("mss", 1220)
    wnd = o.pop("wnd", 8192)
    if "idle_ms" not in o:
        o["idle_ms"] = 0
    r = Rig(slots=1, **o)
    cid, iss, sport = active(r, mss=mss, wnd=wnd)
    return (r, cid, iss, sport)


def _ack(r, sport, seq, ack, wnd=8192, data=b"", fl=ACK):
    return r.feed(seg(80, sport, seq, ack, fl, wnd, data))


def _one(out, fl, seq, ack):
    assert len(out) == 1 and out[0].flags == fl, out
    assert out[0].seq == seq & M32 and out[0].ack == ack & M32, out[0]


# ---- first: the sequence number (RFC 9293 §3.10.7.4) ----------------------

def test_syn_and_fin_count_in_seg_len():
    # SEG.LEN counts SYN and FIN: a SYN with one byte at RCV.NXT - 1 ends at
    # RCV.NXT (acceptable: a challenge ACK, RFC 5961 §4); a bare SYN there
    # ends before it (unacceptable)
    r, cid, iss, sport = _est()
    _one(_ack(r, sport, 5000, iss + 1, data=b"x", fl=SYN | ACK), ACK, iss + 1, 5001)
    assert r.counter("challenge_ack") == 1 and r.counter("unacceptable") == 0
    _one(_ack(r, sport, 5000, iss + 1, fl=SYN), ACK, iss + 1, 5001)
    assert r.counter("challenge_ack") == 1 and r.counter("unacceptable") == 1
    # a FIN with one old byte: SEG.LEN 2 reaches RCV.NXT, so the FIN is taken
    _one(_ack(r, sport, 5000, iss + 1, data=b"x", fl=FIN | ACK), ACK, iss + 1, 5002)
    assert r.state(cid) == "CLOSE-WAIT" and r.counter("unacceptable") == 1


def test_right_edge_of_the_window():
    # RCV.NXT + RCV.WND is the first number beyond the window: a bare ACK
    # there is unacceptable (counted once, answered with an ACK); one below
    # it is taken
    r, cid, iss, sport = _est(rx_bytes=256)
    assert r.t.send(cid, b"abcd", 0, 4, r.now) == 4 and len(r.take()) == 1
    _one(_ack(r, sport, 5001 + 256, iss + 5), ACK, iss + 5, 5001)
    assert r.counter("unacceptable") == 1 and r.t.status()["connections"][0]["unacked"] == 4
    assert _ack(r, sport, 5001 + 255, iss + 3) == []
    assert r.counter("unacceptable") == 1 and r.t.status()["connections"][0]["unacked"] == 2


def test_zero_window_takes_seg_seq_equal_rcv_nxt():
    # RFC 9293 §3.10.7.4: with RCV.WND = 0 only SEG.SEQ = RCV.NXT (no text) is
    # acceptable, and its ACK is processed
    r, cid, iss, sport = _est(rx_bytes=256)
    assert r.t.send(cid, b"abc", 0, 3, r.now) == 3 and len(r.take()) == 1
    r.feed(seg(80, sport, 5001, iss + 1, ACK, data=bytes(256)))
    r.run(200)  # the delayed ACK: window 0
    assert _ack(r, sport, 5257, iss + 4) == []
    assert r.counter("unacceptable") == 0 and r.t.status()["connections"][0]["unacked"] == 0


def test_one_byte_window_and_a_segment_across_its_left_edge():
    # RCV.WND = 1: a segment from RCV.NXT - 1 whose last byte is RCV.NXT is
    # acceptable (its new byte taken); one whose last byte is RCV.NXT + RCV.WND
    # is not (RFC 9293 §3.10.7.4's table, taken literally)
    r, cid, iss, sport = _est(rx_bytes=256)
    r.feed(seg(80, sport, 5001, iss + 1, ACK, data=bytes(255)))
    _one(_ack(r, sport, 5255, iss + 1, data=b"abc"), ACK, iss + 1, 5256)
    assert r.counter("unacceptable") == 1 and r.conn(cid).rx_len == 255
    assert _ack(r, sport, 5255, iss + 1, data=b"ab") == []  # the ACK is delayed
    _one(r.run(200), ACK, iss + 1, 5257)
    assert r.counter("unacceptable") == 1 and r.conn(cid).rx_len == 256
    buf = bytearray(256)
    assert r.t.recv_into(cid, buf, 0, 256, r.now) == 256 and buf[255] == ord("b")


def test_unacceptable_fin_restarts_time_wait_only_there():
    # an old FIN in ESTABLISHED starts no timer; in TIME-WAIT an old segment
    # without FIN leaves the 2*MSL timer, a retransmitted FIN restarts it
    # (RFC 9293 §3.10.7.4 TIME-WAIT)
    r, cid, iss, sport = _est()
    _one(_ack(r, sport, 5000, iss + 1, fl=FIN | ACK), ACK, iss + 1, 5001)
    assert r.counter("unacceptable") == 1 and r.t.next_deadline() is None
    r.t.close(cid, r.now)
    assert r.take()[0].flags & FIN
    _ack(r, sport, 5001, iss + 2)
    _one(_ack(r, sport, 5001, iss + 2, fl=FIN | ACK), ACK, iss + 2, 5002)
    t0 = r.now
    assert r.t.next_deadline() == t0 + 4000
    r.now += 1000
    _one(_ack(r, sport, 5001, iss + 2), ACK, iss + 2, 5002)
    assert r.t.next_deadline() == t0 + 4000 and r.counter("unacceptable") == 2
    r.now += 1000
    _one(_ack(r, sport, 5001, iss + 2, fl=FIN | ACK), ACK, iss + 2, 5002)
    assert r.t.next_deadline() == r.now + 4000 and r.counter("unacceptable") == 3


# ---- second: RST -------------------------------------------------------------

def test_exact_rst_counted_once():
    r, cid, iss, sport = _est()
    assert _ack(r, sport, 5001, 0, fl=RST) == []
    assert r.state(cid) == "CLOSED" and r.t.error(cid) == "reset"
    assert r.counter("rst_rx") == 1 and r.counter("challenge_ack") == 0


def _simultaneous():
    r = Rig(slots=1, idle_ms=0)
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    _one(r.feed(seg(80, s.sport, 5000, 0, SYN, mss=1220)), SYN | ACK, s.seq, 5001)
    assert r.t.state(cid) == "SYN-RECEIVED"
    assert r.feed(seg(80, s.sport, 5001, 0, RST)) == []
    assert r.t.state(cid) == "CLOSED" and r.counter("rst_rx") == 1
    return r.t.error(cid)


def test_rst_in_syn_received_after_simultaneous_open_is_refused():
    assert _simultaneous() == "refused"


# ---- fifth: the ACK -----------------------------------------------------------

def test_segment_without_ack_is_dropped():
    # RFC 9293 §3.10.7.4 fifth: "if the ACK bit is off, drop the segment"
    r, cid, iss, sport = _est()
    assert r.feed(seg(80, sport, 5001, 0, 0, 100, b"xyz")) == []
    assert r.t.recv_into(cid, bytearray(4), 0, 4, r.now) == 0 and not r.t.readable(cid)
    assert r.t.next_deadline() is None


def test_syn_received_ack_of_nothing_is_reset():
    # RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED: SND.UNA < SEG.ACK =< SND.NXT, else
    # <SEQ=SEG.ACK><CTL=RST>; SEG.ACK = ISS acknowledges nothing
    r = Rig(slots=1, idle_ms=0)
    r.t.listen(80)
    sa = r.feed(seg(40000, 80, 1000, 0, SYN, mss=1220))[0]
    out = r.feed(seg(40000, 80, 1001, sa.seq, ACK))
    _one(out, RST, sa.seq, 0)
    assert r.t.conns[0].state == 3 and r.t.accept(0) == -1  # still SYN-RECEIVED
    assert r.feed(seg(40000, 80, 1001, sa.seq + 1, ACK)) == []
    assert r.t.accept(0) >= 0


def test_window_field_both_bytes():
    # SEG.WND 300 (0x012C) in an ACK with SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK
    r, cid, iss, sport = _est()
    assert _ack(r, sport, 5001, iss + 1, 300) == []
    assert r.t.send(cid, bytes(1000), 0, 1000, r.now) == 1000
    out = r.take()
    assert [len(s.data) for s in out] == [300] and out[0].seq == (iss + 1) & M32


def test_window_update_needs_newer_wl1_or_wl2():
    # RFC 9293 §3.10.7.4: update the window only if SND.WL1 < SEG.SEQ or
    # (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)
    r, cid, iss, sport = _est()
    assert r.t.send(cid, bytes(10), 0, 10, r.now) == 10 and len(r.take()) == 1
    assert _ack(r, sport, 5001, iss + 11) == []
    assert _ack(r, sport, 5001, iss + 1, 100) == []  # older ACK, same SEG.SEQ
    assert r.conn(cid).snd_wnd == 8192
    r.feed(seg(80, sport, 5001, iss + 11, ACK, 8192, bytes(10)))
    _one(r.feed(seg(80, sport, 5011, iss + 11, ACK, 8192, bytes(10))), ACK, iss + 11, 5021)
    # older SEG.SEQ (it still ends inside the window): its window is not taken
    assert _ack(r, sport, 5006, iss + 11, 100, bytes(20)) == []
    assert r.conn(cid).rcv_nxt == 26
    assert r.t.send(cid, bytes(1000), 0, 1000, r.now) == 1000
    assert [len(s.data) for s in r.take()] == [1000]
    # a newer SEG.SEQ is taken
    _ack(r, sport, 5026, iss + 11, 600, bytes(1))
    assert r.t.send(cid, bytes(1000), 0, 1000, r.now) == 1000
    assert r.conn(cid).snd_wnd == 600


def test_largest_window_grows():
    # max_wnd (the largest window offered) rises with a larger SEG.WND: with
    # it 8192, a 60-byte segment waits behind one in flight (RFC 9293
    # §3.8.6.2.1, sender SWS: not half the largest window)
    r, cid, iss, sport = _est(wnd=100)
    assert _ack(r, sport, 5001, iss + 1, 8192) == []
    assert r.t.send(cid, b"a", 0, 1, r.now) == 1 and len(r.take()) == 1
    assert r.t.send(cid, bytes(60), 0, 60, r.now) == 60 and r.take() == []
    assert r.conn(cid).max_wnd == 8192
    _ack(r, sport, 5001, iss + 2, 100)
    assert r.conn(cid).max_wnd == 8192  # a smaller one leaves it


def test_window_opens_after_a_probe():
    # RFC 9293 §3.8.6.1: the probe byte was not taken; the window opens, so we
    # send again from SND.UNA, the persist state ends, and the retransmission
    # timer (not the persist one) runs from there (RFC 6298 §5.1)
    r, cid, iss, sport = _est(wnd=0)
    assert r.t.send(cid, bytes(10), 0, 10, r.now) == 10 and r.take() == []
    out = r.run(1000)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1) & M32, 1)]
    out = _ack(r, sport, 5001, iss + 1, 8192)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1) & M32, 10)]
    assert r.t.next_deadline() == r.now + 2000  # the RTO as the probes backed it off
    out = r.run(2000)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1) & M32, 10)]
    assert r.counter("retransmits") == 1 and r.counter("window_probes") == 1


def test_fin_wait_1_until_the_fin_is_acked():
    # our FIN follows 10 bytes: an ACK of 5 of them leaves FIN-WAIT-1, the ACK
    # of the FIN moves to FIN-WAIT-2 (RFC 9293 §3.10.7.4 FIN-WAIT-1)
    r, cid, iss, sport = _est()
    assert r.t.send(cid, bytes(10), 0, 10, r.now) == 10
    r.t.close(cid, r.now)
    out = r.take()
    assert out[-1].flags & FIN and out[-1].seq + len(out[-1].data) == (iss + 11) & M32
    _ack(r, sport, 5001, iss + 6)
    assert r.t.status()["connections"][0]["state"] == "FIN-WAIT-1"
    _ack(r, sport, 5001, iss + 11)
    assert r.t.status()["connections"][0]["state"] == "FIN-WAIT-1"
    _ack(r, sport, 5001, iss + 12)
    assert r.t.status()["connections"][0]["state"] == "FIN-WAIT-2"


def test_text_after_the_peers_fin_is_ignored():
    # RFC 9293 §3.10.7.4 seventh, CLOSE-WAIT: "ignore the segment text"
    r, cid, iss, sport = _est()
    _one(_ack(r, sport, 5001, iss + 1, fl=FIN | ACK), ACK, iss + 1, 5002)
    assert _ack(r, sport, 5002, iss + 1, data=b"xyz") == []
    assert r.t.recv_into(cid, bytearray(4), 0, 4, r.now) == -1
    assert r.conn(cid).rcv_nxt == 2


def test_fin_with_text():
    # eighth: the FIN after 3 bytes, SEG.SEQ + 3 = RCV.NXT once they are taken
    r, cid, iss, sport = _est()
    _one(_ack(r, sport, 5001, iss + 1, data=b"xyz", fl=FIN | ACK), ACK, iss + 1, 5005)
    assert r.state(cid) == "CLOSE-WAIT"


# ---- duplicate ACKs (RFC 5681 §2, §3.2; RFC 6582) ------------------------------

def test_what_is_a_duplicate_ack():
    # RFC 5681 §2: SEG.ACK = SND.UNA, no data, the same window, data
    # outstanding; each such one counts once
    r, cid, iss, sport = _est()
    assert r.t.send(cid, bytes(10), 0, 10, r.now) == 10 and len(r.take()) == 1
    _ack(r, sport, 5001, iss + 6)  # SND.UNA = iss + 6
    _ack(r, sport, 5001, iss + 1)  # older
    _ack(r, sport, 5001, iss + 6, 8000)  # the window changed
    _ack(r, sport, 5001, iss + 6, 8000, bytes(1))  # with data
    assert r.counter("dup_acks") == 0
    _ack(r, sport, 5002, iss + 6, 8000)
    assert r.counter("dup_acks") == 1
    _ack(r, sport, 5002, iss + 6, 8000)
    assert r.counter("dup_acks") == 2
    _ack(r, sport, 5002, iss + 11, 8000)
    for _ in range(3):  # nothing outstanding
        _ack(r, sport, 5002, iss + 11, 8000)
    assert r.counter("dup_acks") == 2 and r.counter("fast_retransmits") == 0


def _flight(F, wnd=8192):
    """MSS 100, Nagle off, F bytes in flight (slow start grew cwnd), a full
    ring behind them: (rig, cid, iss, sport, una, hi) as offsets from iss + 1."""
    r, cid, iss, sport = _est(mss=100, wnd=wnd)
    r.t.set_nodelay(cid, True)
    buf = bytes(512)
    while r.t.send(cid, buf, 0, 512, r.now) > 0:
        pass
    hi = una = 0
    for s in r.take():
        hi = max(hi, (s.seq - iss - 1 + len(s.data)) & M32)
    while hi - una < F:
        una += 100
        for s in _ack(r, sport, 5001, iss + 1 + una, wnd):
            hi = max(hi, (s.seq - iss - 1 + len(s.data)) & M32)
    while r.t.send(cid, buf, 0, 512, r.now) > 0:
        pass
    assert hi - una == F and r.take() == []
    return r, cid, iss, sport, una, hi


def _recover(F, wnd=8192):
    """Three duplicate ACKs, then the full ACK: the bytes sent after it."""
    r, cid, iss, sport, una, hi = _flight(F, wnd)
    for _ in range(3):
        out = _ack(r, sport, 5001, iss + 1 + una, wnd)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1 + una) & M32, 100)]
    assert r.counter("fast_retransmits") == 1 and r.counter("dup_acks") == 3
    return sum([len(s.data) for s in _ack(r, sport, 5001, iss + 1 + hi, wnd)])


def test_ssthresh_half_the_flight():
    # RFC 5681 §3.2 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS), and
    # cwnd = ssthresh on the full ACK (RFC 6582 §3.2 step 3)
    assert _recover(1000) == 500
    assert _recover(600) == 300
    assert _recover(300, 300) == 200


def test_fast_recovery_inflates_from_the_fourth_and_takes_no_sample():
    # RFC 5681 §3.2 step 4: each duplicate ACK after the third adds SMSS to
    # cwnd (ssthresh 500 + 3*100 = 800 with 1000 in flight: new data once it
    # is 1100, the sixth); RFC 6298 §3 (Karn): the retransmitted segment's
    # ACK gives no RTT sample, however late
    r, cid, iss, sport, una, hi = _flight(1000)
    st = r.t.status()["connections"][0]
    srtt, rto = st["srtt"], st["rto"]
    for i in range(5):
        assert len(_ack(r, sport, 5001, iss + 1 + una)) == (1 if i == 2 else 0)
    out = _ack(r, sport, 5001, iss + 1 + una)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1 + hi) & M32, 100)]
    r.now += 5000
    _ack(r, sport, 5001, iss + 1 + hi)
    st = r.t.status()["connections"][0]
    assert (st["srtt"], st["rto"]) == (srtt, rto) and r.counter("dup_acks") == 6


def test_three_dup_acks_at_recover_retransmit_again():
    # RFC 6582 §3.2 step 1: after the full ACK (SEG.ACK = recover, all that was
    # sent before the loss) new data is lost; three duplicate ACKs at recover
    # cover more than the highest number sent then, so they are a new loss
    r, cid, iss, sport, una, hi = _flight(1000)
    for _ in range(3):
        _ack(r, sport, 5001, iss + 1 + una)
    assert len(_ack(r, sport, 5001, iss + 1 + hi)) == 5
    for _ in range(3):
        out = _ack(r, sport, 5001, iss + 1 + hi)
    assert [(s.seq, len(s.data)) for s in out] == [((iss + 1 + hi) & M32, 100)]
    assert r.counter("fast_retransmits") == 2
