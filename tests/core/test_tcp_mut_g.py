# teredo.tcp's application side held to what it does (the mutants `make
# mutate` left alive), on both interpreters: the bounds listen() and
# connect() check, a listener's default backlog, unlisten resetting only its
# own queue, accept taking the oldest, send/recv_into at the ring's edges and
# wrap, the window update reading opens (RFC 9293 §3.8.6.2.2),
# readable/writable per state, Nagle back on after set_nodelay(False),
# status() listing, connection ids per slot generation (and their wrap),
# ephemeral ports (RFC 6335 §6) and the ISS from two rand(16) draws, which
# slot a new connection takes (free, TIME-WAIT, half-open, orphan) and who is
# reset for it, abort's RST (RFC 9293 §3.10.5), the IPv6 header's first word
# and the tx counters.  Lean: small rings, a few slots per TCP.

from tcpkit import ACK, FIN, PEER, PEER2, PSH, RST, SYN, FixedRand, Rig, active, passive, pattern, seg

SMALL = {"rx_bytes": 256, "tx_bytes": 256}


def _bad(f, *args):
    """True when f(*args) raises ValueError (another exception propagates)."""
    try:
        f(*args)
    except ValueError:
        return True
    return False


def _syn(r, sport, port=80, pseq=1000, src=PEER):
    """A peer's SYN to our listener on port: returns our ISS from the SYN,ACK."""
    out = r.feed(seg(sport, port, pseq, 0, SYN, src=src))
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].dport == sport, out
    return out[0].seq


def _est(r, sport, port=80, pseq=1000):
    """A connection the peer completes but the app has not accepted yet."""
    iss = _syn(r, sport, port, pseq)
    assert r.feed(seg(sport, port, pseq + 1, iss + 1, ACK)) == []
    return iss


def _rport(r, cid):
    for c in r.t.status()["connections"]:
        if c["cid"] == cid:
            return c["rport"]
    return None


def _refused(r):
    """connect(), and the peer refuses it: a CLOSED connection still the app's."""
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    assert r.feed(seg(80, s.sport, 0, s.seq + 1, RST | ACK)) == []
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "refused"
    return cid


def _time_wait(r):
    """An active connection the app closed, now in TIME-WAIT: (cid, sport)."""
    cid, iss, sport = active(r)
    r.t.close(cid, r.now)
    r.take()
    r.feed(seg(80, sport, 5001, iss + 2, ACK | FIN))
    assert r.state(cid) == "TIME-WAIT"
    return cid, sport


# ---- listen / unlisten / accept ---------------------------------------------

def test_listen_takes_ports_1_to_65535_once_with_a_backlog_of_at_least_one():
    r = Rig(listeners=2, **SMALL)
    t = r.t
    assert _bad(t.listen, 0, 1)
    assert _bad(t.listen, 65536, 1)
    assert _bad(t.listen, 80, 0)  # a free listener and a good port, but no backlog
    assert t.listen(1, 1) == 0
    assert _bad(t.listen, 1, 1)  # already listening, though a listener is free
    assert _bad(t.listen, 65535, 0)
    assert t.listen(65535) == 1
    assert _bad(t.listen, 80, 1)  # no free listener
    assert t.status()["listening"] == [1, 65535]


def test_listen_default_backlog_holds_two_then_evicts_the_oldest_half_open():
    r = Rig(slots=3, **SMALL)
    r.t.listen(80)
    _syn(r, 1000)
    _syn(r, 1001)
    assert r.counter("evicted") == 0
    _syn(r, 1002)  # the third goes past the backlog of 2: 1000's slot is taken
    assert r.counter("evicted") == 1
    half = sorted([c["rport"] for c in r.t.status()["connections"]])
    assert half == [1001, 1002]


def test_unlisten_resets_only_its_own_unaccepted_connections():
    r = Rig(slots=4, listeners=2, **SMALL)
    lh = r.t.listen(80, 3)
    lh2 = r.t.listen(81, 1)
    mine, iss_a = passive(r, port=80, sport=40000)  # accepted: the app's now
    iss_b = _est(r, 40001)                           # established, not accepted
    iss_c = _syn(r, 40002)                           # half-open
    _est(r, 40003, port=81)                          # the other listener's
    r.t.unlisten(lh, r.now)
    out = r.take()
    # RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST>, also from SYN-RECEIVED
    got = sorted([(s.dport, s.flags, s.seq, s.ack) for s in out])
    assert got == [(40001, RST, (iss_b + 1) & 0xFFFFFFFF, 0), (40002, RST, (iss_c + 1) & 0xFFFFFFFF, 0)]
    assert r.counter("rst_tx") == 2
    assert r.t.status()["listening"] == [81]
    assert r.t.state(mine) == "ESTABLISHED"
    other = r.t.accept(lh2)
    assert _rport(r, other) == 40003 and r.t.state(other) == "ESTABLISHED"
    assert r.t.accept(lh) == -1


def test_accept_returns_the_oldest_established_first_whatever_its_slot():
    r = Rig(slots=3, **SMALL)
    lh = r.t.listen(80, 3)
    _syn(r, 100, pseq=10)                             # slot 0
    _est(r, 101)                                      # slot 1, older than the next
    assert r.feed(seg(100, 80, 11, 0, RST)) == []     # slot 0 is free again
    assert r.state(0) == "CLOSED"
    _est(r, 102)                                      # slot 0, the newest
    a = r.t.accept(lh)
    b = r.t.accept(lh)
    assert a & 15 == 1 and _rport(r, a) == 101
    assert b & 15 == 0 and _rport(r, b) == 102
    assert r.t.accept(lh) == -1


# ---- connect: arguments, ids, ports, ISS --------------------------------------

def test_connect_checks_the_address_and_both_ports_and_says_minus_one_when_full():
    r = Rig(slots=2, **SMALL)
    t = r.t
    now = r.now
    assert _bad(t.connect, PEER[:15], 80, now)
    assert _bad(t.connect, PEER, 0, now)
    assert _bad(t.connect, PEER, 65536, now)
    assert _bad(t.connect, PEER, 80, now, -1)
    assert _bad(t.connect, PEER, 80, now, 65536)
    assert r.take() == []
    a = t.connect(PEER, 1, now, 65535)
    b = t.connect(PEER, 65535, now, 1)
    out = r.take()
    assert [(s.sport, s.dport, s.flags) for s in out] == [(65535, 1, SYN), (1, 65535, SYN)]
    assert t.state(a) == "SYN-SENT" and t.state(b) == "SYN-SENT"
    assert t.connect(PEER, 80, now) == -1  # both slots are the app's
    assert r.take() == []


def test_ephemeral_ports_count_up_wrap_at_65535_and_skip_one_in_use():
    # RFC 6335 §6: 49152..65535; the seed (rand(14)) is 0x3FFE
    r = Rig(slots=3, rand=FixedRand([0x3FFE]), **SMALL)
    r.t.connect(PEER, 80, r.now, 65535)  # holds the next candidate
    r.t.connect(PEER, 80, r.now)
    r.t.connect(PEER, 80, r.now)
    assert [s.sport for s in r.take()] == [65535, 49152, 49153]


def test_iss_is_two_16_bit_draws_high_half_first():
    # RFC 9293 §3.4.1 / RFC 6528: random; rand(16) twice (FixedRand masks to the bits asked)
    r = Rig(rand=FixedRand([0, 0x1ABCD, 0x1EF01]), **SMALL)
    r.t.connect(PEER, 80, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].seq == 0xABCDEF01 and out[0].flags == SYN


def test_connection_ids_count_generations_per_slot_and_wrap():
    r = Rig(slots=2, **SMALL)
    t = r.t
    a = t.connect(PEER, 80, r.now)
    b = t.connect(PEER, 81, r.now)
    assert (a, b) == (16, 17)
    t.abort(a, r.now)
    assert t.connect(PEER, 82, r.now) == 32
    t.abort(b, r.now)
    assert t.connect(PEER, 83, r.now) == 33
    assert _bad(t.state, 16) and _bad(t.state, 17)  # old generations are gone
    assert _bad(t.state, 2) and _bad(t.state, 5) and _bad(t.state, -1)  # no such slot
    # the generation wraps at 2**20 (ids stay small ints): slot 0's next id is 0
    t.abort(32, r.now)
    t.conns[0].cid = 0xFFFFF0
    assert t.connect(PEER, 84, r.now) == 0
    assert t.state(0) == "SYN-SENT"
    t.abort(0, r.now)
    assert _bad(t.state, 0)


# ---- send / recv_into / readable / writable / set_nodelay -----------------------

def test_send_while_opening_is_queued_and_the_ring_edges():
    r = Rig(**SMALL)
    t = r.t
    cid = t.connect(PEER, 80, r.now)
    syn = r.take()[0]
    buf = bytearray(4)
    assert not t.readable(cid) and not t.writable(cid)  # SYN-SENT
    assert t.recv_into(cid, buf, 0, 4, r.now) == 0
    assert t.send(cid, b"abc", 0, 3, r.now) == 3
    assert t.send(cid, b"d", 0, 1, r.now) == 1
    assert r.take() == []  # held until the connection is established
    out = r.feed(seg(80, syn.sport, 5000, syn.seq + 1, SYN | ACK, mss=1220))
    assert len(out) == 1 and out[0].data == b"abcd" and out[0].flags == ACK | PSH
    assert out[0].seq == (syn.seq + 1) & 0xFFFFFFFF and out[0].ack == 5001
    assert not t.readable(cid) and t.writable(cid)  # ESTABLISHED, nothing to read
    r.feed(seg(80, syn.sport, 5001, syn.seq + 5, ACK, data=b"z"))
    assert t.readable(cid)  # exactly one byte
    data = bytes(256)
    assert t.send(cid, data, 0, 256, r.now) == 256  # the ring is full (unacked)
    assert not t.writable(cid)
    assert t.send(cid, data, 0, 1, r.now) == 0
    r.take()
    assert r.feed(seg(80, syn.sport, 5002, 0, RST)) == []
    assert t.state(cid) == "CLOSED" and t.error(cid) == "reset"
    assert t.readable(cid) and t.writable(cid)  # both say: come and see the end
    assert t.send(cid, data, 0, 1, r.now) == -1
    assert t.recv_into(cid, buf, 0, 4, r.now) == 1 and buf[0] == ord("z")
    assert t.recv_into(cid, buf, 0, 4, r.now) == -1


def test_nagle_is_back_after_set_nodelay_false_and_an_empty_send_sends_nothing():
    # RFC 9293 §3.7.4: a small segment waits while data is in flight
    r = Rig()
    cid, iss = passive(r)
    r.t.set_nodelay(cid, True)
    r.t.set_nodelay(cid, False)
    data = bytes(1300)
    assert r.t.send(cid, data, 0, 1300, r.now) == 1300
    out = r.take()
    assert len(out) == 1 and len(out[0].data) == 1220  # the last 80 wait for the ACK
    r.t.set_nodelay(cid, True)
    assert r.t.send(cid, data, 0, 0, r.now) == 0
    assert r.take() == []  # nothing queued: no output either
    assert r.t.send(cid, b"y", 0, 1, r.now) == 1
    out = r.take()
    assert len(out) == 1 and len(out[0].data) == 81 and out[0].seq == (iss + 1221) & 0xFFFFFFFF


def test_recv_into_reads_across_the_ring_wrap_and_updates_the_window_at_wthr():
    # rx ring 256: wthr = min(256 / 2, MSS) = 128 (RFC 9293 §3.8.6.2.2)
    r = Rig(**SMALL)
    t = r.t
    cid, iss = passive(r, pseq=1000)
    d1 = bytes([pattern(i) for i in range(200)])
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=d1)) == []  # delayed ACK
    buf = bytearray(4)
    assert t.recv_into(cid, buf, 0, 1, r.now) == 1 and buf[0] == d1[0]
    big = bytearray(200)
    assert t.recv_into(cid, big, 0, 126, r.now) == 126 and bytes(big[:126]) == d1[1:127]
    assert r.take() == []  # the edge could move by 127: not yet
    assert t.recv_into(cid, buf, 0, 1, r.now) == 1 and buf[0] == d1[127]
    out = r.take()  # 128: the window update goes now
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1201 and out[0].wnd == 184
    assert t.recv_into(cid, big, 0, 200, r.now) == 72 and bytes(big[:72]) == d1[128:]
    assert r.take() == []
    d2 = bytes([pattern(i + 7) for i in range(100)])
    assert r.feed(seg(40000, 80, 1201, iss + 1, ACK, data=d2)) == []  # ring bytes 200..43
    out = r.feed(seg(40000, 80, 1301, iss + 1, FIN | ACK))
    assert len(out) == 1 and out[0].ack == 1302 and out[0].wnd == 83
    assert t.state(cid) == "CLOSE-WAIT"
    b2 = bytearray(110)
    for i in range(110):
        b2[i] = 0xEE
    assert t.recv_into(cid, b2, 0, 110, r.now) == 100
    assert len(b2) == 110 and bytes(b2[:100]) == d2
    for i in range(100, 110):
        assert b2[i] == 0xEE  # nothing written past the count
    out = r.take()  # CLOSE-WAIT still tells the peer its window opened
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1302 and out[0].wnd == 256
    assert t.readable(cid) and t.recv_into(cid, b2, 0, 110, r.now) == -1


# ---- abort / status / counters / the IPv6 header ---------------------------------

def test_abort_resets_and_releases_the_id_and_a_closed_one_frees_its_slot():
    r = Rig(slots=1, **SMALL)
    cid, iss = passive(r)
    ra = r.conn(cid).raddr  # the peer's address, in the slot's own 16 bytes (fixed at construction)
    assert len(ra) == 16 and bytes(ra) == bytes(PEER)
    r.t.abort(cid, r.now)
    out = r.take()
    # RFC 9293 §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>, a plain 20-byte header
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (iss + 1) & 0xFFFFFFFF
    assert out[0].ack == 0 and len(out[0].raw) == 60
    assert r.counter("rst_tx") == 1
    assert r.state(cid) == "CLOSED" and _bad(r.t.state, cid)
    c2 = _refused(r)
    r.t.abort(c2, r.now)
    assert r.take() == [] and _bad(r.t.state, c2)
    c3 = r.t.connect(PEER, 80, r.now)
    assert c3 >= 0 and r.t.state(c3) == "SYN-SENT"


def test_status_lists_open_connections_and_closed_ones_the_app_holds():
    r = Rig(slots=4, **SMALL)
    r.t.listen(80, 2)
    a = _refused(r)                   # slot 0: CLOSED, still the app's
    _syn(r, 1000)                     # slot 1: half-open, the listener's
    cid = r.t.connect(PEER, 90, r.now)  # slot 2: RTT 100 ms
    s = r.take()[0]
    r.now += 100
    r.feed(seg(90, s.sport, 7000, s.seq + 1, SYN | ACK, mss=1220))
    got = []
    for c in r.t.status()["connections"]:  # slot 3 is free: not listed
        got.append((c["cid"], c["state"], c["error"], c["srtt"], c["rto"]))
    got.sort()
    # RFC 6298 §2.2: SRTT = R (100); RTO = 100 + 4 * 50, raised to the 1 s minimum
    assert got == [(a, "CLOSED", "refused", 0, 1000), (17, "SYN-RECEIVED", None, 0, 1000),
                   (cid, "ESTABLISHED", None, 100, 1000)]
    assert cid == 18


def test_the_ipv6_header_starts_0x60_with_zero_traffic_class_and_flow_label():
    # RFC 8200 §3: version 6; the header is written whole over a used arena
    r = Rig(**SMALL)
    a = r.net.arena
    for i in range(len(a)):
        a[i] = 0xA5
    r.t.connect(PEER, 80, r.now)
    p = seg(5, 81, 1, 0, SYN)  # no listener: a RST (RFC 9293 §3.10.7.1)
    r.t.on_segment(p, 0, len(p), r.now)
    out = r.net.drain()
    assert len(out) == 2
    for p in out:
        assert p[0] == 0x60 and p[1] == 0 and p[2] == 0 and p[3] == 0


def test_tx_counts_every_segment_and_tx_refused_the_ones_net_refused():
    r = Rig(**SMALL)
    r.net.refuse = 1
    r.t.connect(PEER, 80, r.now)
    assert r.counter("tx") == 1 and r.counter("tx_refused") == 1
    r.net.refuse = 0
    r.t.connect(PEER, 81, r.now)
    assert r.counter("tx") == 2 and r.counter("tx_refused") == 1
    assert len(r.take()) == 2


# ---- which slot a new connection takes -------------------------------------------

def test_a_closed_slot_the_app_holds_does_not_stop_the_search():
    r = Rig(slots=2, time_wait_ms=60000, **SMALL)
    _refused(r)              # slot 0: CLOSED, not free
    old, sport = _time_wait(r)  # slot 1
    cid = r.t.connect(PEER, 80, r.now)
    out = r.take()
    assert cid & 15 == 1 and len(out) == 1 and out[0].flags == SYN and out[0].sport != sport
    assert r.counter("evicted") == 0  # a TIME-WAIT slot is not counted as evicted


def test_a_listeners_backlog_counts_only_its_own_queue():
    r = Rig(slots=3, listeners=2, **SMALL)
    r.t.listen(80, 1)
    r.t.listen(81, 1)
    _syn(r, 1000, port=80)      # listener 0's half-open
    _syn(r, 1001, port=81)      # listener 1's queue is empty: a free slot
    assert r.counter("evicted") == 0
    _syn(r, 1002, port=81)      # listener 1 is full: its own half-open goes, silently
    assert r.counter("evicted") == 1 and r.counter("rst_tx") == 0
    st = sorted([(c["local"], c["rport"], c["state"]) for c in r.t.status()["connections"]])
    assert st == [(80, 1000, "SYN-RECEIVED"), (81, 1002, "SYN-RECEIVED")]


def test_connect_takes_time_wait_before_an_older_half_open_one():
    r = Rig(slots=2, time_wait_ms=60000, **SMALL)
    r.t.listen(80, 2)
    _syn(r, 1000)            # slot 0, the oldest
    _time_wait(r)            # slot 1
    cid = r.t.connect(PEER, 80, r.now)
    out = r.take()
    assert cid & 15 == 1 and [s.flags for s in out] == [SYN]
    assert r.counter("evicted") == 0 and r.state(0) == "SYN-RECEIVED"


def test_connect_evicts_a_half_open_one_not_an_established_unaccepted_one():
    r = Rig(slots=2, **SMALL)
    lh = r.t.listen(80, 2)
    _est(r, 100)             # slot 0, the oldest, established
    _syn(r, 101)             # slot 1, half-open
    cid = r.t.connect(PEER2, 80, r.now)
    out = r.take()
    assert cid == 33 and [s.flags for s in out] == [SYN]  # no RST for a half-open one
    assert r.counter("evicted") == 1
    a = r.t.accept(lh)
    assert a == 16 and _rport(r, a) == 100


def test_a_half_open_connection_of_the_second_listener_can_be_evicted():
    r = Rig(slots=1, listeners=2, **SMALL)
    r.t.listen(80, 1)
    r.t.listen(81, 1)
    _syn(r, 1000, port=81)
    cid = r.t.connect(PEER, 80, r.now)
    assert cid == 32 and r.t.state(cid) == "SYN-SENT" and r.counter("evicted") == 1


def test_a_simultaneous_open_in_syn_received_is_the_apps_and_not_evicted():
    # RFC 9293 §3.5 figure 7: our SYN and the peer's cross
    r = Rig(slots=1, **SMALL)
    cid = r.t.connect(PEER, 7000, r.now, 6000)
    r.take()
    out = r.feed(seg(7000, 6000, 300, 0, SYN, mss=1220))
    assert len(out) == 1 and out[0].flags == SYN | ACK
    assert r.t.state(cid) == "SYN-RECEIVED"
    assert r.t.connect(PEER, 80, r.now) == -1
    assert r.t.state(cid) == "SYN-RECEIVED" and r.counter("evicted") == 0 and r.take() == []


def test_evicting_a_connection_the_app_closed_resets_it_from_last_ack():
    r = Rig(slots=1, **SMALL)
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, FIN | ACK))
    r.t.close(cid, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == FIN | ACK and r.state(cid) == "LAST-ACK"
    c2 = r.t.connect(PEER, 80, r.now)
    out = r.take()
    assert c2 == 32 and len(out) == 2
    # RFC 9293 §3.10.5: <SEQ=SND.NXT> (after our FIN)<CTL=RST>
    assert (out[0].dport, out[0].flags, out[0].seq) == (40000, RST, (iss + 2) & 0xFFFFFFFF)
    assert len(out[0].raw) == 60 and out[1].flags == SYN
    assert r.counter("evicted") == 1 and r.counter("rst_tx") == 1
