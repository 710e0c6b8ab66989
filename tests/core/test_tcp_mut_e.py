# teredo.tcp held to its segment arrival path (the on_segment, _listen_in,
# _synced, _syn_sent, _reset, _time_wait and _rebase mutants `make mutate`
# left alive), on both interpreters: the IPv6 and TCP header checks at each
# bound (a packet inside a bigger buffer, the payload length, next header,
# data offset and its reserved bits, port 0, a multicast source), option
# parsing (NOP, EOL, short and overlong lengths, MSS at 63/64/65 and above
# ours), the four-tuple match on all 16 address bytes, a SYN ending TIME-WAIT
# only above RCV.NXT, LISTEN's drops and counters, what a SYN sets (window,
# SND.WL1, RCV.WND, the RFC 5681 initial window), SYN-SENT's ACK checks and
# RFC 6298 §5.7's 3 s, the RST for a closed port byte for byte in its 60
# bytes of arena, TIME-WAIT's timers, and the sequence origins moving only
# past REBASE with the RTT sample carried across.
# Lean: one or two slots with small rings unless a window needs more.

from tcpkit import ACK, FIN, M32, PEER, PSH, RST, SYN, Rig, active, passive, seg
from teredo import proto, tcp, wire
from vectors import ip6


def _checksum(p):
    """Checksum p again after a header byte was changed."""
    wire.set_l4_checksum(p, 0, proto.NH_TCP, len(p) - 40, 56)
    return p


def _b4(v):
    """v mod 2**32 as 4 bytes, high first."""
    return bytes(((v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


def _listening(**o):
    r = Rig(slots=1, rx_bytes=256, **o)
    r.t.listen(80, 1)
    return r


def _conns(r):
    return [c["state"] for c in r.t.status()["connections"]]


# ---- on_segment: the headers ---------------------------------------------------

def test_a_packet_inside_a_bigger_buffer_is_taken_and_one_past_its_end_is_not():
    r = _listening()
    p = seg(40000, 80, 1000, 0, SYN)
    ff = bytearray(8)
    for i in range(8):
        ff[i] = 0xFF
    buf = ff + p + ff  # packet at offset 8, bytes after it that are not its own
    r.t.on_segment(buf, 8, 8 + len(p), r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].ack == 1001, out
    r.t.on_segment(p, 0, len(p) + 1, r.now)  # n past the buffer's end
    assert r.take() == [] and r.counter("bad_length") == 1


def test_payload_length_next_header_and_a_19_byte_tcp_header_are_bad_length():
    r = _listening()
    p = seg(40000, 80, 1000, 0, SYN)
    short = bytearray(59)  # 19 bytes of TCP, the IPv6 length saying so
    short[:] = p[:59]
    short[5] = 19
    r.t.on_segment(short, 0, 59, r.now)
    assert r.counter("bad_length") == 1 and r.counter("bad_offset") == 0
    q = bytearray(p)
    q[5] = 21  # the IPv6 payload length one more than the packet holds
    assert r.feed(q) == [] and r.counter("bad_length") == 2
    q = bytearray(p)
    q[6] = proto.NH_UDP  # the right length, another next header
    assert r.feed(q) == [] and r.counter("bad_length") == 3
    q = bytearray(p)
    q[52] = 0x40  # data offset 16 bytes, below the 20 of the header
    assert r.feed(_checksum(q)) == [] and r.counter("bad_offset") == 1
    assert r.counter("bad_length") == 3 and _conns(r) == []


def test_reserved_bits_beside_the_data_offset_are_ignored():
    # RFC 9293 §3.1: Rsrvd "must be ignored in received segments"
    r = _listening()
    q = seg(40000, 80, 1000, 0, SYN)
    q[52] = 0x5F
    out = r.feed(_checksum(q))
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].ack == 1001, out
    assert r.counter("bad_offset") == 0


def test_port_zero_and_a_multicast_source_are_dropped_and_counted():
    # port 0 is not a port; RFC 4291 §2.7: a multicast address is never a source
    r = Rig(slots=1, rx_bytes=256)
    r.t.listen(1, 1)
    assert r.feed(seg(40000, 0, 1000, 0, SYN)) == []
    assert r.counter("bad_endpoint") == 1 and r.counter("no_listener") == 0
    assert r.feed(seg(0, 1, 1000, 0, SYN)) == [] and r.counter("bad_endpoint") == 2
    assert r.feed(seg(40000, 1, 1000, 0, SYN, src=ip6("ff02::1"))) == []
    assert r.counter("bad_endpoint") == 3 and r.counter("rst_tx") == 0 and _conns(r) == []
    # port 1 and a source starting 0xFE (link-local) are fine
    out = r.feed(seg(40000, 1, 1000, 0, SYN, src=ip6("fe80::1")))
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].dst == bytes(ip6("fe80::1"))
    assert r.counter("bad_endpoint") == 3


# ---- on_segment: options (RFC 9293 §3.2, §3.7.1) -----------------------------------

def _smss(opts):
    """The SYN with these options offered to a listener: (bad_option count,
    bytes in the first data segment of the connection, or -1 when the SYN
    was dropped)."""
    r = _listening()
    out = r.feed(seg(40000, 80, 1000, 0, SYN, opts=bytes(opts)))
    if not out:
        return r.counter("bad_option"), -1
    r.feed(seg(40000, 80, 1001, out[0].seq + 1, ACK))
    cid = r.t.accept(0)
    buf = bytearray(1300)
    assert r.t.send(cid, buf, 0, 1300, r.now) == 1300
    return r.counter("bad_option"), len(r.take()[0].data)


def test_no_mss_option_means_1220():
    assert _smss(()) == (0, 1220)


def test_nop_and_eol_and_unknown_options_are_skipped_by_their_length():
    assert _smss((1, 2, 4, 1, 0, 0, 0, 0)) == (0, 256)      # NOP, then MSS 256
    assert _smss((0, 2, 4, 1)) == (0, 1220)                 # EOL ends the list
    assert _smss((1, 1, 30, 2)) == (0, 1220)                # a 2-byte option at the end
    assert _smss((30, 4, 1, 0)) == (0, 1220)                # length 4, not MSS: not the MSS
    assert _smss((2, 6, 1, 0, 0, 0, 1, 1)) == (0, 1220)     # kind 2 of length 6: not the MSS


def test_an_option_without_room_for_its_length_or_too_short_or_too_long_is_bad():
    assert _smss((1, 1, 1, 30)) == (1, -1)  # kind in the last byte: no length byte
    assert _smss((30, 1, 1, 1)) == (1, -1)  # length 1 (below 2)
    assert _smss((3, 8, 0, 0)) == (1, -1)   # length 8 runs past the 24-byte header


def test_the_peers_mss_is_kept_within_64_and_ours():
    assert _smss((2, 4, 0, 10)) == (0, 64)
    assert _smss((2, 4, 0, 63)) == (0, 64)
    assert _smss((2, 4, 0, 64)) == (0, 64)
    assert _smss((2, 4, 0, 65)) == (0, 65)
    assert _smss((2, 4, 4, 196)) == (0, 1220)
    assert _smss((2, 4, 4, 197)) == (0, 1220)  # 1221: above ours


# ---- on_segment: which connection ----------------------------------------------------

def test_segments_are_matched_on_all_16_bytes_of_the_peer_address():
    r = Rig()
    cid, iss = passive(r)
    other = bytearray(PEER)
    other[15] ^= 1
    out = r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"x", src=other))
    # no connection for it: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1)
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (iss + 1) & M32, out
    assert out[0].dst == bytes(other)
    assert r.t.readable(cid) is False


def test_a_segment_goes_to_the_first_connection_holding_its_four_tuple():
    # connect() lets the app open the same pair twice; the first slot answers
    r = Rig()
    a = r.t.connect(PEER, 80, r.now, sport=50000)
    b = r.t.connect(PEER, 80, r.now, sport=50000)
    s = r.take()
    assert len(s) == 2 and s[0].sport == s[1].sport == 50000 and s[0].seq != s[1].seq
    out = r.feed(seg(80, 50000, 7000, s[0].seq + 1, SYN | ACK))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 7001, out
    assert r.t.state(a) == "ESTABLISHED" and r.t.state(b) == "SYN-SENT"


# ---- TIME-WAIT -----------------------------------------------------------------------------

def _to_time_wait(r):
    """A passive connection we closed first, in TIME-WAIT: its id and our
    ISS; the peer's IRS is 1000 and its FIN took 1001, so RCV.NXT is 1002."""
    cid, iss = passive(r, pseq=1000)
    r.t.close(cid, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == FIN | ACK and out[0].seq == (iss + 1) & M32, out
    assert r.feed(seg(40000, 80, 1001, iss + 2, ACK)) == []
    out = r.feed(seg(40000, 80, 1001, iss + 2, FIN | ACK))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1002, out
    assert r.state(cid) == "TIME-WAIT"
    return cid, iss


def test_only_a_bare_syn_above_rcv_nxt_ends_time_wait():
    # RFC 9293 §3.10.7.4 with RFC 6191: a new SYN above the old numbers
    # reopens; others in TIME-WAIT get a challenge ACK (RFC 5961 §4)
    r = Rig()
    cid, iss = _to_time_wait(r)
    n = 0
    for fl, sq in ((SYN | ACK, 1003), (SYN, 1002)):
        out = r.feed(seg(40000, 80, sq, iss + 2 if fl & ACK else 0, fl))
        assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1002, (fl, sq, out)
        n += 1
        assert r.state(cid) == "TIME-WAIT" and r.counter("challenge_ack") == n
    out = r.feed(seg(40000, 80, 1003, 0, SYN))
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].ack == 1004, out
    assert _conns(r) == ["SYN-RECEIVED"]


def test_time_wait_reached_from_closing_leaves_no_delayed_ack_timer():
    r = Rig()
    cid, iss = passive(r)
    r.t.close(cid, r.now)
    assert len(r.take()) == 1  # our FIN
    out = r.feed(seg(40000, 80, 1001, iss + 1, FIN | ACK))  # the FINs cross
    assert len(out) == 1 and out[0].ack == 1002 and r.state(cid) == "CLOSING", out
    assert r.feed(seg(40000, 80, 1002, iss + 2, ACK)) == []
    assert r.state(cid) == "TIME-WAIT"
    assert r.t.next_deadline() == r.now + 4000  # 2*MSL, nothing sooner
    assert r.run(3999) == [] and r.state(cid) == "TIME-WAIT"
    assert r.run(1) == [] and r.state(cid) == "CLOSED"


def test_an_ack_with_a_window_in_time_wait_keeps_its_timer():
    r = Rig()
    cid, iss = _to_time_wait(r)
    end = r.now + 4000
    r.now += 1000
    assert r.feed(seg(40000, 80, 1002, iss + 2, ACK, wnd=4000)) == []
    assert r.t.next_deadline() == end
    assert r.run(3000) == [] and r.state(cid) == "CLOSED"


# ---- _listen_in: no connection, LISTEN (RFC 9293 §3.10.7.1, §3.10.7.2) --------------------------

def test_a_rst_without_a_connection_is_counted_once_and_not_answered():
    r = _listening()
    assert r.feed(seg(40000, 80, 1000, 0, RST)) == []
    assert r.feed(seg(40000, 81, 1000, 5, RST | ACK)) == []
    assert r.counter("rst_rx") == 2 and r.counter("rst_tx") == 0 and r.counter("no_listener") == 0


def test_listen_drops_a_segment_with_neither_syn_ack_nor_rst():
    # §3.10.7.2 fourth: "Any other control or text-bearing segment (not
    # containing SYN) must have an ACK ... drop it and return"
    r = _listening()
    assert r.feed(seg(40000, 80, 1000, 0, FIN)) == []
    assert r.counter("unacceptable") == 1
    assert r.feed(seg(40000, 80, 1000, 0, PSH, data=b"hi")) == []
    assert r.counter("unacceptable") == 2 and _conns(r) == []


# ---- _synced: what the SYN sets ------------------------------------------------------------------

def test_the_receive_window_is_set_by_the_syn_before_any_segment_goes_out():
    # RCV.WND is the ring (256) even while our ACK of the SYN,ACK waits for the arena
    r = Rig(slots=1, rx_bytes=256)
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    r.net.used = len(r.net.arena)  # full: the ACK cannot go (feed drains it after)
    assert r.feed(seg(80, s.sport, 5000, s.seq + 1, SYN | ACK)) == []
    assert r.counter("tx_full") == 1 and r.t.state(cid) == "ESTABLISHED"
    out = r.feed(seg(80, s.sport, 5001, s.seq + 1, ACK, data=b"abc"))
    assert len(out) == 1 and out[0].ack == 5004 and out[0].wnd == 253, out
    buf = bytearray(4)
    assert r.t.recv_into(cid, buf, 0, 4, r.now) == 3 and buf[:3] == b"abc"


def test_the_send_window_is_the_synacks_16_bit_window():
    r = Rig(slots=1, rx_bytes=256)
    cid, iss, sport = active(r, wnd=0x0100)
    assert r.t.send(cid, bytearray(600), 0, 600, r.now) == 600
    assert [len(s.data) for s in r.take()] == [256]


def _window_after(ack_delta):
    """Active open (IRS 5000), then a segment at SEG.SEQ = IRS with SEG.ACK =
    ISS + ack_delta offering a window of 100: what 300 bytes then go out as."""
    r = Rig(slots=1, rx_bytes=256)
    cid, iss, sport = active(r, pseq=5000)
    r.feed(seg(80, sport, 5000, iss + ack_delta, ACK, wnd=100, data=b"ab"))
    assert r.t.send(cid, bytearray(300), 0, 300, r.now) == 300
    return [len(s.data) for s in r.take() if s.data]


def test_snd_wl1_starts_at_the_irs():
    # RFC 9293 §3.10.7.3: SND.WL1 <- SEG.SEQ of the SYN; the window moves when
    # SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)
    assert _window_after(1) == [100]  # same SEQ, SEG.ACK = SND.WL2
    assert _window_after(0) == [300]  # same SEQ, SEG.ACK below SND.WL2: not


def _flight(mss, n):
    """Segment sizes a new active connection (peer MSS mss, Nagle off) sends
    at once with n bytes queued."""
    r = Rig(slots=1, rx_bytes=256, tx_bytes=4500, arena=6000)
    cid, iss, sport = active(r, mss=mss)
    r.t.set_nodelay(cid, True)
    assert r.t.send(cid, bytearray(n), 0, n, r.now) == n
    return [len(s.data) for s in r.take()]


def test_initial_window_is_min_4_mss_and_max_2_mss_4380():
    # RFC 5681 §3.1: IW = min(4*SMSS, max(2*SMSS, 4380 bytes)), seen in
    # SYN-RECEIVED (cwnd) and in the first flight
    for mss, iw in ((1220, 4380), (1096, 4380), (1095, 4380), (1000, 4000), (64, 256)):
        r = _listening()
        assert len(r.feed(seg(40000, 80, 1000, 0, SYN, mss=mss))) == 1
        assert r.conn(0).cwnd == iw, (mss, r.conn(0).cwnd)
    assert _flight(1220, 4380) == [1220, 1220, 1220, 720]
    assert _flight(1000, 4380) == [1000, 1000, 1000, 1000]


def test_the_handshake_does_not_grow_the_initial_window():
    # RFC 3390 §1 (RFC 5681 §3.1's IW): "Neither the SYN/ACK nor its
    # acknowledgment (ACK) in the three-way handshake should increase the
    # initial window size"; the first flight is 4380 bytes at most
    assert _flight(1220, 4381) == [1220, 1220, 1220]  # 720 of 721: the rest waits


def test_after_a_resent_syn_the_initial_window_is_one_segment():
    # RFC 5681 §3.1: "If the SYN or SYN/ACK is lost, the initial window used
    # by a sender after a correctly transmitted SYN MUST be one segment"
    r = Rig(slots=1, rx_bytes=256, arena=6000)
    cid = r.t.connect(PEER, 80, r.now)
    r.now = r.t.next_deadline()
    r.t.on_timer(r.now)
    s = r.take()
    assert len(s) == 2 and s[1].flags == SYN
    r.feed(seg(80, s[0].sport, 5000, s[0].seq + 1, SYN | ACK))
    r.t.set_nodelay(cid, True)
    assert r.t.send(cid, bytearray(2000), 0, 2000, r.now) == 2000  # (the ring holds 2048)
    assert [len(x.data) for x in r.take()] == [1220]


# ---- _syn_sent (RFC 9293 §3.10.7.3) ------------------------------------------------------------------

def test_syn_sent_resets_an_ack_of_iss_or_beyond_and_is_refused_by_a_rst():
    r = Rig(slots=1, rx_bytes=256)
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    # "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset <SEQ=SEG.ACK><CTL=RST>"
    for d in (0, 2):
        out = r.feed(seg(80, s.sport, 5000, s.seq + d, SYN | ACK))
        assert len(out) == 1 and out[0].flags == RST and out[0].seq == (s.seq + d) & M32, out
        assert r.t.state(cid) == "SYN-SENT"
    assert r.feed(seg(80, s.sport, 5000, 0, RST)) == [] and r.t.state(cid) == "SYN-SENT"
    # neither SYN nor RST: dropped
    assert r.feed(seg(80, s.sport, 5000, s.seq + 1, ACK)) == []
    assert r.t.state(cid) == "SYN-SENT" and r.counter("rst_rx") == 0
    assert r.feed(seg(80, s.sport, 0, s.seq + 1, RST | ACK)) == []
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "refused"
    assert r.counter("rst_rx") == 1


def _rto_after(resent, **o):
    """The RTO once a SYN sent 1 + resent times is answered."""
    r = Rig(slots=1, rx_bytes=256, **o)
    r.t.connect(PEER, 80, r.now)
    s = r.take()
    for _ in range(resent):
        r.now = r.t.next_deadline()
        r.t.on_timer(r.now)
        s += r.take()
    assert len(s) == 1 + resent and s[-1].flags == SYN and s[-1].seq == s[0].seq
    r.now += 100
    r.feed(seg(80, s[0].sport, 5000, s[0].seq + 1, SYN | ACK))
    return r.t.status()["connections"][0]["rto"]


def test_rto_is_3_s_once_a_resent_syn_is_answered():
    # RFC 6298 §5.7: the RTO goes back to 3 s when data transmission begins
    # if the SYN was sent again (no sample: Karn); a longer one stays
    assert _rto_after(0) == 1000  # sampled (100 ms), held at the 1 s floor
    assert _rto_after(1) == 3000  # backed off to 2000
    assert _rto_after(1, rto_init_ms=4000) == 8000
    # 3 s even above a ceiling below it (RFC 6298 §2.5 wants one of 60 s or more)
    assert _rto_after(1, rto_init_ms=2999, rto_max_ms=2999) == 3000


# ---- _reset: <SEQ=SEG.ACK><CTL=RST> or <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> ---------

def _rst(fl, data=b""):
    """A closed port's answer to a segment (SEG.SEQ 0x01020304, SEG.ACK
    0x0A0B0C0D when fl has ACK), sent from an arena full of stale 0xFF bytes."""
    r = Rig(slots=1, rx_bytes=256)
    a = r.net.arena
    for i in range(len(a)):
        a[i] = 0xFF
    out = r.feed(seg(40000, 81, 0x01020304, 0x0A0B0C0D if fl & ACK else 0, fl, data=data))
    assert len(out) == 1 and len(out[0].raw) == 60 and a[60] == 0xFF, out  # nothing past it
    p = out[0].raw
    assert p[52] == 0x50 and p[54:56] == b"\0\0" and p[58:60] == b"\0\0"  # offset, window, urgent
    assert r.counter("rst_tx") == 1 and r.counter("no_listener") == 1
    return out[0]


def test_rst_for_a_segment_with_an_ack_takes_its_ack_as_seq():
    s = _rst(ACK | PSH, b"hi")
    assert s.flags == RST and s.seq == 0x0A0B0C0D and s.ack == 0
    assert s.sport == 81 and s.dport == 40000 and s.dst == bytes(PEER)


def test_rst_ack_for_a_segment_without_ack_acks_seg_seq_plus_seg_len():
    # SEG.LEN counts the data, the SYN and the FIN
    for fl, data, ln in ((SYN, b"", 1), (FIN, b"", 1), (0, b"hi", 2), (PSH, b"hi", 2),
                         (FIN, b"hi", 3), (SYN | FIN, b"hi", 4)):
        s = _rst(fl, data)
        assert s.flags == RST | ACK and s.seq == 0 and s.ack == 0x01020304 + ln, (fl, s)


def test_rst_takes_60_bytes_of_the_arena_or_counts_tx_full():
    for size, sent in ((60, 1), (59, 0)):
        r = Rig(slots=1, rx_bytes=256, arena=size)
        out = r.feed(seg(40000, 81, 1000, 0, SYN))
        assert len(out) == sent and r.counter("rst_tx") == sent, (size, out)
        assert r.counter("tx_full") == 1 - sent


# ---- _rebase: the origins move only past REBASE, and nothing shows on the wire -----------------
# (the origins and offsets are private: the only place the exact bound shows)

def test_the_peers_origin_moves_only_past_rebase():
    r = Rig(slots=1, rx_bytes=256)
    cid, iss = passive(r, pseq=1000)
    c = r.conn(cid)
    old = tcp.REBASE
    tcp.REBASE = 3
    try:
        assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"ab")) == []
        assert c.rcv_nxt == 3 and bytes(c.rb) == b"\0\0\x03\xe8"  # RCV.NXT = REBASE: stays
        out = r.feed(seg(40000, 80, 1003, iss + 1, ACK, data=b"c"))
        assert c.rcv_nxt == 0 and bytes(c.rb) == b"\0\0\x03\xec"
        assert len(out) == 1 and out[0].ack == 1004 and out[0].wnd == 253, out
    finally:
        tcp.REBASE = old


def test_our_origin_moves_only_past_rebase_and_a_timeout_resends_from_snd_una():
    r = Rig(slots=1, rx_bytes=256)
    cid, iss = passive(r)
    c = r.conn(cid)
    old = tcp.REBASE
    tcp.REBASE = 3
    try:
        assert r.t.send(cid, b"abcdef", 0, 6, r.now) == 6
        assert len(r.take()) == 1
        assert r.feed(seg(40000, 80, 1001, iss + 3, ACK)) == []
        assert c.snd_una == 3 and bytes(c.sb) == _b4(iss) and c.snd_max == 7  # SND.UNA = REBASE
        assert r.feed(seg(40000, 80, 1001, iss + 5, ACK)) == []
        assert c.snd_una == 0 and bytes(c.sb) == _b4(iss + 5) and c.snd_max == 2
        out = r.run(1000)  # the RTO: the two unacked bytes again, at ISS + 5
        assert len(out) == 1 and out[0].seq == (iss + 5) & M32 and out[0].data == b"ef", out
    finally:
        tcp.REBASE = old


def test_an_rtt_sample_is_taken_across_a_rebase():
    # RFC 6298 §2: the timed segment's ACK, after the origin moved, still
    # gives its sample (SRTT 1 ms from the handshake, then 400 ms)
    r = Rig(slots=1, rx_bytes=256)
    cid, iss = passive(r)
    old = tcp.REBASE
    tcp.REBASE = 100
    try:
        assert r.t.send(cid, bytearray(300), 0, 300, r.now) == 300
        assert [len(s.data) for s in r.take()] == [300]
        r.now += 200
        assert r.feed(seg(40000, 80, 1001, iss + 201, ACK)) == []  # past REBASE
        r.now += 200
        assert r.feed(seg(40000, 80, 1001, iss + 301, ACK)) == []
        assert r.t.status()["connections"][0]["srtt"] == 50  # (8 + 399) >> 3
    finally:
        tcp.REBASE = old
