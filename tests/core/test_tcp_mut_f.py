# teredo.tcp's timers and segment output held to what they do (the mutants
# `make mutate` left alive in next_deadline, on_timer, _ka, _timeout, _out,
# _seg, _wnd and _xmit), on both interpreters: every timer exactly at its
# deadline, one tick early and at the tick-0 wrap; keepalive probes (when,
# how often, which states, 60 bytes); RTO back-off, ssthresh from the flight
# and the persist probe (RFC 6298, RFC 5681, RFC 9293 §3.8.6.1); the sender's
# SWS avoidance and Nagle bounds; FIN on the last data segment; the offered
# window (receiver SWS avoidance, odd and 1-byte windows); and every header
# byte a segment carries, written over an arena full of stale bytes.
# Lean: this module shares a board-sized heap with the TCP.
from tcpkit import ACK, FIN, M32, ME, PEER, PSH, RST, SYN, Rig, passive, pattern, seg

WRAP = 1 << 30  # ticks wrap here (test arithmetic only: never passed in)
STALE = 0xA5


def dirty(r, n=400):
    """Fill the start of the arena with stale bytes (the shell reuses it)."""
    a = r.net.arena
    for i in range(n):
        a[i] = STALE


def data(n, k=0):
    b = bytearray(n)
    for i in range(n):
        b[i] = pattern(k + i)
    return b


# ---- header bytes (_xmit) ---------------------------------------------------

def test_syn_carries_only_the_mss_option_and_other_segments_none():
    # RFC 9293 §3.2/§3.7.1: MSS in the SYN only; an odd MSS keeps its low bit
    r = Rig(mss=1001)
    dirty(r)
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    assert s.flags == SYN and s.mss == 1001 and s.data == b"" and len(s.raw) == 64
    assert s.ack == 0 and s.raw[58] == 0 and s.raw[59] == 0
    out = r.feed(seg(80, s.sport, 5000, s.seq + 1, SYN | ACK, 8191, mss=1000))
    assert len(out) == 1 and out[0].flags == ACK and len(out[0].raw) == 60 and out[0].mss is None
    assert out[0].ack == 5001 and r.t.state(cid) == "ESTABLISHED"
    r2 = Rig()
    dirty(r2)
    r2.t.listen(80, 2)
    out = r2.feed(seg(40000, 80, 1000, 0, SYN, mss=1220))
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].data == b""
    assert len(out[0].raw) == 64 and out[0].mss == 1220 and out[0].ack == 1001


def test_rst_from_abort_zeroes_the_ack_field_and_urgent_pointer():
    # RFC 9293 §3.10.5 <SEQ=SND.NXT><CTL=RST>: no ACK bit, so an ACK field of 0,
    # over stale arena bytes; and the urgent pointer is 0 in every segment
    r = Rig()
    cid, iss = passive(r, pseq=0x01020304)
    dirty(r)
    r.t.abort(cid, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (iss + 1) & M32
    s = out[0]
    assert s.ack == 0 and len(s.raw) == 60 and s.raw[58] == 0 and s.raw[59] == 0
    assert s.dst == bytes(PEER) and s.src == bytes(ME) and s.wnd == 2048


def test_urgent_pointer_is_zero_in_a_data_segment():
    r = Rig()
    cid, iss = passive(r)
    dirty(r)
    assert r.t.send(cid, b"ab", 0, 2, r.now) == 2
    out = r.take()
    assert len(out) == 1 and out[0].data == b"ab" and out[0].flags == ACK | PSH
    assert out[0].raw[58] == 0 and out[0].raw[59] == 0 and out[0].raw[52] == 0x50


def test_tx_full_counts_one_per_refused_segment_and_on_timer_resends():
    r = Rig()
    cid, iss = passive(r)
    r.net.used = len(r.net.arena)  # the shell has not drained the arena
    assert r.t.send(cid, b"hello", 0, 5, r.now) == 5
    assert r.take() == [] and r.counter("tx_full") == 1
    assert r.t.next_deadline() == r.now
    r.net.used = 0
    r.t.on_timer(r.now)
    out = r.take()
    assert len(out) == 1 and out[0].data == b"hello" and r.counter("tx_full") == 1


def test_data_wrapping_the_transmit_ring_writes_nothing_past_the_packet():
    r = Rig(tx_bytes=256)
    cid, iss = passive(r)
    r.t.set_nodelay(cid, True)
    d = data(300)
    assert r.t.send(cid, d, 0, 200, r.now) == 200
    assert len(r.take()[0].data) == 200
    r.feed(seg(40000, 80, 1001, iss + 201, ACK))
    dirty(r)
    assert r.t.send(cid, d, 200, 100, r.now) == 100  # ring bytes 200..255, then 0..43
    out = r.take()
    assert len(out) == 1 and out[0].data == bytes(d[200:]) and r.net.last_n == 160
    a = r.net.arena
    for i in range(160, 400):
        assert a[i] == STALE, i


# ---- the offered window (_wnd) ----------------------------------------------

def test_window_edge_moves_at_exactly_min_half_buffer_mss():
    # RFC 9293 §3.8.6.2.2: the right edge moves once it can by min(buffer/2, MSS) = 1024
    r = Rig()
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=data(1024)))
    buf = bytearray(1024)
    assert r.t.recv_into(cid, buf, 0, 1023, r.now) == 1023
    assert r.take() == []  # 1023: not yet
    assert r.t.recv_into(cid, buf, 0, 1, r.now) == 1
    out = r.take()
    assert len(out) == 1 and out[0].ack == 2025 and out[0].wnd == 2048


def test_window_of_one_byte_is_offered_as_one():
    r = Rig(rx_bytes=256)
    cid, iss = passive(r)
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=data(128))) == []
    out = r.feed(seg(40000, 80, 1129, iss + 1, ACK, data=data(127)))  # 2nd segment: ACK at once
    assert len(out) == 1 and out[0].ack == 1256 and out[0].wnd == 1


def test_odd_window_keeps_its_low_bit():
    r = Rig()
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"x"))
    out = r.run(200)  # the delayed ACK
    assert len(out) == 1 and out[0].ack == 1002 and out[0].wnd == 2047


# ---- timers at the tick wrap (next_deadline, on_timer, _out) -----------------

def test_retransmission_timer_due_at_tick_0():
    # RFC 6298 §5.1: the timer runs from the first segment; later data leaves it alone
    r = Rig(now=WRAP - 1000, idle_ms=0)
    cid, iss = passive(r)
    r.t.set_nodelay(cid, True)
    assert r.t.send(cid, b"a" * 10, 0, 10, r.now) == 10
    assert len(r.take()) == 1 and r.t.next_deadline() == 0
    assert r.t.send(cid, b"b" * 10, 0, 10, WRAP - 700) == 10
    assert len(r.take()) == 1 and r.t.next_deadline() == 0  # not restarted
    r.t.on_timer(WRAP - 1)  # one tick early
    assert r.take() == [] and r.counter("retransmits") == 0
    r.t.on_timer(0)
    out = r.take()
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and len(out[0].data) == 20
    assert r.counter("retransmits") == 1 and r.t.next_deadline() == 2000  # RFC 6298 §5.5


def test_delayed_ack_due_at_tick_0_and_not_a_tick_early():
    # RFC 9293 §3.8.6.3: the delayed ACK goes at its deadline, not before
    r = Rig(now=WRAP - 200, idle_ms=0)
    cid, iss = passive(r)
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"hi")) == []
    assert r.t.next_deadline() == 0
    r.t.on_timer(WRAP - 1)
    assert r.take() == []
    r.t.on_timer(0)
    out = r.take()
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1003
    assert r.t.next_deadline() is None and r.counter("retransmits") == 0


def test_delayed_ack_before_and_after_its_deadline():
    r = Rig(idle_ms=0)
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"hi"))
    r.t.on_timer(r.now + 1)
    assert r.take() == []
    r.t.on_timer(r.now + 250)  # late: still sent
    out = r.take()
    assert len(out) == 1 and out[0].ack == 1003 and r.t.next_deadline() is None


def test_syn_retransmission_timer():
    # RFC 6298 §5.1/§5.5: the SYN is timed from the start and backed off
    r = Rig(idle_ms=0)
    t0 = r.now
    cid = r.t.connect(PEER, 80, t0)
    syn = r.take()[0]
    assert r.t.next_deadline() == t0 + 1000
    r.t.on_timer(t0 + 999)
    assert r.take() == []
    r.t.on_timer(t0 + 1000)
    out = r.take()
    assert len(out) == 1 and out[0].flags == SYN and out[0].seq == syn.seq
    assert r.t.next_deadline() == t0 + 3000 and r.t.state(cid) == "SYN-SENT"


def test_syn_ack_again_keeps_its_timer_due_at_tick_0():
    r = Rig(now=WRAP - 1000, idle_ms=0)
    r.t.listen(80, 2)
    sa = r.feed(seg(40000, 80, 1000, 0, SYN, mss=1220))[0]
    assert r.t.next_deadline() == 0
    r.now = WRAP - 500
    out = r.feed(seg(40000, 80, 1000, 0, SYN, mss=1220))  # our SYN,ACK was lost
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].seq == sa.seq
    assert r.t.next_deadline() == 0


def test_persist_timer_at_tick_0_and_the_probe_byte_acked():
    # RFC 9293 §3.8.6.1: a zero window is probed with one byte; more data
    # queued does not restart the timer, and the peer may take the byte
    r = Rig(now=WRAP - 1000, idle_ms=0)
    cid, iss = passive(r, wnd=0)
    d = data(20)
    assert r.t.send(cid, d, 0, 10, r.now) == 10
    assert r.take() == [] and r.t.next_deadline() == 0
    assert r.t.send(cid, d, 10, 10, WRAP - 990) == 10
    assert r.take() == [] and r.t.next_deadline() == 0
    r.now = 0
    r.t.on_timer(0)
    out = r.take()
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and out[0].data == bytes(d[:1])
    assert r.counter("window_probes") == 1 and r.t.next_deadline() == 2000
    assert r.feed(seg(40000, 80, 1001, iss + 2, ACK, 0)) == []  # the byte is taken
    assert r.conn(cid).tx_len == 19 and r.t.next_deadline() == 2000


def test_persist_probe_after_a_timeout_keeps_snd_max():
    # the window shrank to 0 with data in flight: the RTO goes back to SND.UNA,
    # then probes; the peer may still ACK all it had (RFC 9293 §3.8.6.1)
    r = Rig(idle_ms=0)
    cid, iss = passive(r)
    r.t.send(cid, data(100), 0, 100, r.now)
    assert len(r.take()) == 1
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, 0)) == []
    out = r.run(1000)
    assert out == [] and r.counter("retransmits") == 1  # the window is 0: nothing goes
    out = r.run(2000)
    assert len(out) == 1 and len(out[0].data) == 1 and r.counter("window_probes") == 1
    out = r.feed(seg(40000, 80, 1001, iss + 101, ACK, 8192))
    assert out == [] and r.conn(cid).tx_len == 0 and r.t.next_deadline() is None


def test_zero_window_with_nothing_to_send_sets_no_timer():
    r = Rig(idle_ms=0)
    cid, iss = passive(r)
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, 0)) == []
    assert r.t.next_deadline() is None and r.conn(cid).persist == 0
    assert r.run(5000) == [] and r.counter("window_probes") == 0


# ---- several slots (next_deadline, on_timer) ----------------------------------

def test_next_deadline_looks_past_a_closed_slot():
    r = Rig(idle_ms=0)
    c1 = r.t.connect(PEER, 80, r.now)
    c2 = r.t.connect(PEER, 81, r.now + 10)
    assert (c1 & 15, c2 & 15) == (0, 1)
    r.t.abort(c1, r.now + 10)
    assert r.t.next_deadline() == r.now + 1010


def test_time_wait_ending_in_one_slot_does_not_stop_the_others():
    # RFC 9293 §3.10.7.4: TIME-WAIT ends after 2*MSL, without an error
    r = Rig(time_wait_ms=1000, idle_ms=0)
    cid, iss = passive(r)
    r.t.close(cid, r.now)
    r.take()
    r.feed(seg(40000, 80, 1001, iss + 2, FIN | ACK))
    assert r.state(cid) == "TIME-WAIT"
    c2 = r.t.connect(PEER, 81, r.now)
    syn = r.take()[0]
    assert c2 & 15 == 1
    r.t.on_timer(r.now + 1000)  # both due
    out = r.take()
    assert r.state(cid) == "CLOSED" and r.conn(cid).err == 0
    assert len(out) == 1 and out[0].flags == SYN and out[0].seq == syn.seq


def test_idle_timeout_in_one_slot_does_not_stop_the_others():
    r = Rig(idle_ms=5000)
    cid, iss = passive(r)
    t0 = r.now
    c2 = r.t.connect(PEER, 81, t0 + 4000)
    syn = r.take()[0]
    r.t.on_timer(t0 + 4999)
    assert r.take() == []
    r.t.on_timer(t0 + 5000)  # the first is idle for 5000 ms, the SYN is due
    out = r.take()
    assert [s.flags for s in out] == [RST, SYN] and out[1].seq == syn.seq
    assert r.t.error(cid) == "idle" and r.t.state(c2) == "SYN-SENT"


# ---- keepalive (on_timer, _ka) -------------------------------------------------

def test_keepalive_probes_at_each_multiple_of_the_silence():
    # RFC 9293 §3.8.4: <SEQ=SND.NXT-1> with no data, after keepalive_ms of
    # silence, then again at every further keepalive_ms without an answer
    r = Rig(keepalive_ms=5000, idle_ms=0)
    cid, iss = passive(r)
    t0 = r.now
    assert r.t.next_deadline() == t0 + 5000
    r.t.on_timer(t0 + 4999)
    assert r.take() == [] and r.counter("keepalives") == 0
    r.t.on_timer(t0 + 5000)
    out = r.take()
    assert len(out) == 1 and out[0].flags == ACK and out[0].seq == iss & M32
    assert out[0].ack == 1001 and out[0].data == b"" and len(out[0].raw) == 60
    assert r.counter("keepalives") == 1 and r.t.next_deadline() == t0 + 10000
    r.t.on_timer(t0 + 9999)
    assert r.take() == []
    r.t.on_timer(t0 + 10000)
    out = r.take()
    assert len(out) == 1 and len(out[0].raw) == 60 and r.counter("keepalives") == 2
    assert r.t.next_deadline() == t0 + 15000


def test_keepalive_in_close_wait_but_not_in_fin_wait_2():
    r = Rig(keepalive_ms=5000, idle_ms=0)
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, FIN | ACK))
    assert r.state(cid) == "CLOSE-WAIT" and r.t.next_deadline() == r.now + 5000
    r2 = Rig(keepalive_ms=5000, idle_ms=0)
    cid, iss = passive(r2)
    r2.t.close(cid, r2.now)
    assert r2.take()[0].flags == FIN | ACK
    r2.feed(seg(40000, 80, 1001, iss + 2, ACK))
    assert r2.state(cid) == "FIN-WAIT-2" and r2.t.next_deadline() is None
    r2.t.on_timer(r2.now + 5000)
    assert r2.take() == [] and r2.counter("keepalives") == 0


# ---- retransmission time-out (_timeout) ------------------------------------------

def flight(r, n, acked=0):
    """Passive open with SMSS 100, n bytes sent (acked of them ACKed)."""
    cid, iss = passive(r, mss=100)
    r.t.send(cid, data(n), 0, n, r.now)
    r.take()
    if acked:
        r.feed(seg(40000, 80, 1001, iss + 1 + acked, ACK))
    return cid, iss


def test_timeout_ssthresh_is_half_the_flight():
    # RFC 5681 §3.1 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS), cwnd = 1 SMSS
    r = Rig(idle_ms=0)
    cid, iss = flight(r, 900, 100)  # cwnd 400, then 500: 500 bytes in flight
    c = r.conn(cid)
    assert c.snd_max - c.snd_una == 500
    out = r.run(1000)
    assert len(out) == 1 and out[0].seq == (iss + 101) & M32 and len(out[0].data) == 100
    assert c.ssthresh == 250 and c.cwnd == 100 and r.counter("retransmits") == 1


def test_timeout_ssthresh_is_at_least_two_segments():
    r = Rig(idle_ms=0)
    cid, iss = flight(r, 300)  # FlightSize / 2 = 150 < 2*SMSS
    out = r.run(1000)
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and len(out[0].data) == 100
    c = r.conn(cid)
    assert c.ssthresh == 200 and c.cwnd == 100
    # the duplicate-ACK count starts over: two are not yet a fast retransmit
    for _ in range(2):
        assert r.feed(seg(40000, 80, 1001, iss + 1, ACK)) == []
    assert r.counter("fast_retransmits") == 0 and r.counter("dup_acks") == 2


def test_duplicate_acks_after_a_timeout_do_not_fast_retransmit():
    # RFC 6582 §3.2 step 4: after a time-out recover = the highest sequence
    # sent, so duplicate ACKs below it do not start fast retransmit (step 1B)
    r = Rig(idle_ms=0)
    cid, iss = flight(r, 300)
    r.run(1000)
    for _ in range(3):
        r.feed(seg(40000, 80, 1001, iss + 1, ACK))
    assert r.counter("fast_retransmits") == 0 and r.conn(cid).ssthresh == 200


# ---- sending (_out, _seg) ----------------------------------------------------------

def test_one_byte_is_sent():
    r = Rig()
    cid, iss = passive(r)
    assert r.t.send(cid, b"x", 0, 1, r.now) == 1
    out = r.take()
    assert len(out) == 1 and out[0].data == b"x" and out[0].flags == ACK | PSH
    assert out[0].seq == (iss + 1) & M32


def test_one_byte_window_sends_one_byte():
    r = Rig()
    cid, iss = passive(r, wnd=1)
    assert r.t.send(cid, b"xyz", 0, 3, r.now) == 3
    out = r.take()
    assert len(out) == 1 and out[0].data == b"x" and out[0].flags == ACK


def test_sender_sws_half_the_largest_window():
    # RFC 9293 §3.8.6.2.1: with data in flight a small segment goes only when
    # it is at least half the largest window the peer offered (here 300)
    r = Rig()
    cid, iss = passive(r, wnd=300)
    r.t.send(cid, data(180), 0, 180, r.now)
    assert len(r.take()[0].data) == 180
    r.t.send(cid, data(120), 0, 120, r.now)
    assert r.take() == []  # 2 * 120 < 300
    r = Rig()
    cid, iss = passive(r, wnd=300)
    r.t.send(cid, data(150), 0, 150, r.now)
    assert len(r.take()[0].data) == 150
    r.t.send(cid, data(150), 0, 150, r.now)
    out = r.take()  # 2 * 150 == 300: sent at once
    assert len(out) == 1 and len(out[0].data) == 150 and out[0].seq == (iss + 151) & M32


def test_nodelay_still_holds_a_window_limited_small_segment():
    # RFC 9293 §3.8.6.2.1: sender SWS avoidance holds a small segment that is
    # not all there is while data is in flight, with Nagle off too
    r = Rig()
    cid, iss = passive(r, wnd=1000)
    r.t.set_nodelay(cid, True)
    r.t.send(cid, data(900), 0, 900, r.now)
    assert len(r.take()[0].data) == 900
    r.t.send(cid, data(500), 0, 500, r.now)
    assert r.take() == []  # 100 of 500 fit the window
    out = r.feed(seg(40000, 80, 1001, iss + 901, ACK, 1000))
    assert len(out) == 1 and len(out[0].data) == 500 and out[0].seq == (iss + 901) & M32


def test_nagle_holds_the_small_tail_until_the_ack():
    # RFC 9293 §3.7.4
    r = Rig()
    cid, iss = passive(r)
    r.t.send(cid, b"first", 0, 5, r.now)
    assert len(r.take()) == 1
    r.t.send(cid, b"next", 0, 4, r.now)
    assert r.take() == []
    out = r.feed(seg(40000, 80, 1001, iss + 6, ACK))
    assert len(out) == 1 and out[0].data == b"next"


def test_fin_rides_on_the_last_data_segment():
    # RFC 9293 §3.10.4: the FIN follows the queued data, in the same segment
    r = Rig()
    cid, iss = passive(r)
    r.t.send(cid, b"first", 0, 5, r.now)
    r.take()
    r.t.send(cid, b"last.", 0, 5, r.now)  # held by Nagle
    r.t.close(cid, r.now)
    assert r.take() == []
    out = r.feed(seg(40000, 80, 1001, iss + 6, ACK))
    assert len(out) == 1 and out[0].flags == FIN | PSH | ACK and out[0].data == b"last."
    assert out[0].seq == (iss + 6) & M32 and r.state(cid) == "FIN-WAIT-1"


def test_fast_retransmit_of_a_short_segment_sends_just_its_bytes():
    # RFC 5681 §3.2: the third duplicate ACK resends the segment at SND.UNA
    r = Rig()
    cid, iss = passive(r)
    r.t.send(cid, data(50), 0, 50, r.now)
    assert len(r.take()) == 1
    for _ in range(2):
        assert r.feed(seg(40000, 80, 1001, iss + 1, ACK)) == []
    out = r.feed(seg(40000, 80, 1001, iss + 1, ACK))
    assert len(out) == 1 and out[0].data == bytes(data(50)) and out[0].flags == ACK | PSH
    assert out[0].seq == (iss + 1) & M32 and r.counter("fast_retransmits") == 1
