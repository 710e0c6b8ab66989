# The TCP state machine (teredo/tcp.py) driven with constructed
# segments and a fake clock, on CPython and MicroPython alike.  Each test
# says which RFC 9293 / RFC 6298 / RFC 5681 rule it proves.

from tcpkit import ACK, FIN, M32, ME, PEER, PSH, RST, SYN, FixedRand, Rig, active, passive, seg
from teredo import tcp
from vectors import Rand


def test_passive_open_data_both_ways_and_close_by_peer():
    r = Rig()
    cid, iss = passive(r, pseq=1000, mss=1000)
    assert r.conn(cid).smss == 1000  # the peer's MSS option is used
    out = r.feed(seg(40000, 80, 1001, iss + 1, ACK | PSH, data=b"hello"))
    assert out == []  # delayed ACK
    buf = bytearray(16)
    assert r.t.recv_into(cid, buf, 0, 16, r.now) == 5 and bytes(buf[:5]) == b"hello"
    assert r.t.recv_into(cid, buf, 0, 16, r.now) == 0
    assert r.t.send(cid, b"world!", 0, 6, r.now) == 6
    out = r.take()
    assert len(out) == 1 and out[0].data == b"world!" and out[0].seq == (iss + 1) & M32
    assert out[0].ack == 1006 and out[0].flags == ACK | PSH  # the ACK rides on the data
    r.feed(seg(40000, 80, 1006, iss + 7, ACK))
    assert r.conn(cid).tx_len == 0
    out = r.feed(seg(40000, 80, 1006, iss + 7, FIN | ACK))
    assert len(out) == 1 and out[0].ack == 1007 and out[0].flags == ACK
    assert r.t.state(cid) == "CLOSE-WAIT"
    assert r.t.recv_into(cid, buf, 0, 16, r.now) == -1  # EOF
    assert r.t.send(cid, b"bye", 0, 3, r.now) == 3  # half-closed: we may still send
    r.take()
    r.t.close(cid, r.now)
    out = r.take()
    assert out[-1].flags & FIN and out[-1].seq == (iss + 10) & M32
    assert r.state(cid) == "LAST-ACK"
    r.feed(seg(40000, 80, 1007, iss + 11, ACK))
    assert r.state(cid) == "CLOSED" and r.t.conns[cid & 15].user == 0  # slot free again


def test_active_open_and_our_close_through_fin_wait_and_time_wait():
    r = Rig(time_wait_ms=3000)
    cid, iss, sport = active(r, pseq=5000, mss=800)
    assert r.conn(cid).smss == 800
    r.t.close(cid, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == FIN | ACK and r.state(cid) == "FIN-WAIT-1"
    r.feed(seg(80, sport, 5001, iss + 2, ACK))
    assert r.state(cid) == "FIN-WAIT-2"
    r.feed(seg(80, sport, 5001, iss + 2, ACK, data=b"late"))  # half-closed: still received
    out = r.feed(seg(80, sport, 5005, iss + 2, FIN | ACK))
    assert out[-1].ack == 5006 and r.state(cid) == "TIME-WAIT"
    # the FIN again: ACKed again, and 2*MSL starts over (RFC 9293 §3.10.7.4)
    r.run(2000)
    out = r.feed(seg(80, sport, 5005, iss + 2, FIN | ACK))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 5006
    r.run(2500)
    assert r.state(cid) == "TIME-WAIT"
    r.run(600)
    assert r.state(cid) == "CLOSED"
    assert r.t.next_deadline() is None


def test_simultaneous_open_and_simultaneous_close():
    a = Rig(rand=Rand(11))
    b = Rig(rand=Rand(12))
    b.net.address[:] = PEER
    # the SYNs cross (RFC 9293 §3.5 figure 7)
    ca = a.t.connect(PEER, 7000, a.now, sport=6000)
    cb = b.t.connect(ME, 6000, b.now, sport=7000)
    sa = a.net.drain()
    sb = b.net.drain()
    states = set()
    for p in sb:
        a.t.on_segment(p, 0, len(p), a.now)
    for p in sa:
        b.t.on_segment(p, 0, len(p), b.now)
    states.add(a.state(ca))
    states.add(b.state(cb))
    for _ in range(4):  # SYN,ACKs then ACKs
        pa = a.net.drain()
        pb = b.net.drain()
        for p in pb:
            a.t.on_segment(p, 0, len(p), a.now)
        for p in pa:
            b.t.on_segment(p, 0, len(p), b.now)
    assert states == {"SYN-RECEIVED"}
    assert a.t.state(ca) == "ESTABLISHED" and b.t.state(cb) == "ESTABLISHED"
    # both close at once: FIN-WAIT-1, CLOSING, TIME-WAIT (§3.6 figure 13)
    a.t.close(ca, a.now)
    b.t.close(cb, b.now)
    fa = a.net.drain()
    fb = b.net.drain()
    for p in fb:
        a.t.on_segment(p, 0, len(p), a.now)
    for p in fa:
        b.t.on_segment(p, 0, len(p), b.now)
    assert a.state(ca) == "CLOSING" and b.state(cb) == "CLOSING"
    for p in b.net.drain():
        a.t.on_segment(p, 0, len(p), a.now)
    for p in a.net.drain():
        b.t.on_segment(p, 0, len(p), b.now)
    assert a.state(ca) == "TIME-WAIT" and b.state(cb) == "TIME-WAIT"
    a.run(5000)
    assert a.state(ca) == "CLOSED"


def test_sequence_numbers_wrap_at_2_32_both_ways():
    # our ISS 0xFFFFFF00, the peer's 0xFFFFFFF0: both spaces wrap within the data
    r = Rig(rand=FixedRand([0, 0xFFFF, 0xFF00]))
    cid, iss = passive(r, pseq=0xFFFFFFF0)
    assert iss == 0xFFFFFF00
    seqs = []
    p = 0xFFFFFFF1
    data = bytes([i & 0xFF for i in range(1000)])
    got = bytearray()
    buf = bytearray(2048)
    acks = []
    for k in range(4):
        out = r.feed(seg(40000, 80, p, iss + 1, ACK, data=data[k * 250:k * 250 + 250]))
        acks += [s.ack for s in out]
        p = (p + 250) & M32
        n = r.t.recv_into(cid, buf, 0, 2048, r.now)
        got += buf[:n]
    assert bytes(got) == data
    assert acks == [0xFFFFFFF1 + 500 - 2**32, 0x3D9]  # every second segment, wrapped
    for k in range(3):
        assert r.t.send(cid, data, k * 100, 100, r.now) == 100
        out = r.take()
        seqs.append(out[0].seq)
        r.feed(seg(40000, 80, p, out[0].seq + 100, ACK))
    assert seqs == [0xFFFFFF01, 0xFFFFFF65, (0xFFFFFFC9 + 0) & M32]
    r.t.send(cid, data, 0, 200, r.now)
    out = r.take()
    assert out[0].seq == 0x2D  # wrapped: 0xFFFFFF01 + 300 - 2**32
    assert r.conn(cid).snd_una < 1000 and r.conn(cid).rcv_nxt < 2000  # small offsets


def test_rebase_keeps_offsets_small_and_numbers_right():
    old = tcp.REBASE
    tcp.REBASE = 1500
    try:
        r = Rig(rand=FixedRand([0, 0xFFFF, 0xFA00]))
        cid, iss = passive(r, pseq=0xFFFFF000)
        p = 0xFFFFF001
        q = iss + 1
        data = bytes(1000)
        buf = bytearray(2048)
        for _ in range(10):
            r.feed(seg(40000, 80, p, q, ACK, data=data))
            p += 1000
            assert r.t.recv_into(cid, buf, 0, 2048, r.now) == 1000
            r.t.send(cid, data, 0, 1000, r.now)
            out = [s for s in r.take() if s.data]
            assert out[0].seq == q & M32 and out[0].ack == p & M32
            q += 1000
            r.feed(seg(40000, 80, p, q, ACK))
            c = r.conn(cid)
            assert c.rcv_nxt <= 1500 + 1000 and c.snd_una <= 1500 + 1000
        assert r.counter("unacceptable") == 0 and r.t.status()["connections"][0]["rx"] == 10000
    finally:
        tcp.REBASE = old


def test_rto_exponential_backoff_then_abort():
    r = Rig(rto_init_ms=1000, rto_min_ms=1000, retries=4)
    cid, iss = passive(r)
    t0 = r.now
    r.t.send(cid, b"x" * 100, 0, 100, r.now)
    r.take()
    times = []
    for _ in range(6):
        d = r.t.next_deadline()
        if d is None:
            break
        r.now = d
        r.t.on_timer(d)
        out = r.take()
        if out and out[0].data:
            times.append(r.now - t0)
            assert out[0].seq == (iss + 1) & M32 and len(out[0].data) == 100
    # RTO 1 s (the handshake's 0 ms sample, raised to rto_min), then 2, 4, 8 s
    # (RFC 6298 §5.5); the fifth expiry, 16 s later, ends it
    assert times == [1000, 3000, 7000, 15000], times
    assert r.now - t0 == 31000
    st = r.t.status()
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "timeout"
    assert st["counters"]["retransmits"] == 4 and st["counters"]["timeouts"] == 1
    assert out and out[-1].flags & RST  # the peer is told


def test_karn_no_sample_from_a_retransmitted_segment_and_rfc6298_estimates():
    r = Rig(rto_init_ms=1000, rto_min_ms=1, rto_max_ms=60000)
    cid = r.t.connect(PEER, 80, r.now)
    syn = r.take()[0]
    r.now += 100  # the handshake takes 100 ms: the first sample (RFC 6298 §2.2)
    r.feed(seg(80, syn.sport, 77, syn.seq + 1, SYN | ACK, mss=1220))
    c = r.conn(cid)
    assert c.srtt >> 3 == 100 and c.rttvar >> 2 == 50 and c.rto == 300  # SRTT + 4*RTTVAR
    r.t.send(cid, b"a" * 10, 0, 10, r.now)
    r.take()
    out = r.run(300)  # RTO: sent again, RTO doubled
    assert len(out) == 1 and out[0].data == b"a" * 10 and c.rto == 600
    r.now += 50
    r.feed(seg(80, syn.sport, 78, syn.seq + 11, ACK))  # ambiguous ACK: no sample (Karn)
    assert c.srtt >> 3 == 100 and c.rto == 600  # the backed-off RTO stays
    r.t.send(cid, b"b" * 10, 0, 10, r.now)
    r.take()
    r.now += 200
    r.feed(seg(80, syn.sport, 78, syn.seq + 21, ACK))  # a clean sample of 200 ms
    # RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
    assert c.srtt == 900 and c.rttvar == 250 and c.rto == 112 + 250


def test_fast_retransmit_on_the_third_duplicate_ack():
    r = Rig(tx_bytes=4096)
    cid, iss = passive(r, mss=200, wnd=8000)
    r.t.send(cid, bytes(1000), 0, 1000, r.now)
    out = r.take()
    assert [len(s.data) for s in out] == [200, 200, 200, 200]  # IW = 4 * SMSS (RFC 5681 §3.1)
    una = iss + 1
    for k in range(3):  # the first segment was lost: three duplicate ACKs
        out = r.feed(seg(40000, 80, 1001, una, ACK, 8000))
        if k < 2:
            assert out == []
    # the hole at once, and (cwnd = ssthresh + 3*SMSS covers it) one new segment
    assert [(s.seq - una) & M32 for s in out] == [0, 800] and len(out[0].data) == 200
    assert r.counter("fast_retransmits") == 1 and r.counter("retransmits") == 0
    c = r.conn(cid)
    assert c.ssthresh == 400 and c.cwnd == 400 + 3 * 200
    r.feed(seg(40000, 80, 1001, una + 800, ACK, 8000))  # the hole is filled
    assert c.cwnd == c.ssthresh and c.dupacks == 0


def test_delayed_ack_200ms_and_every_second_segment():
    r = Rig()
    cid, iss = passive(r)
    assert r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"a" * 100)) == []
    d = r.t.next_deadline()
    assert d == r.now + 200
    out = r.run(199)
    assert out == []
    out = r.run(1)
    assert len(out) == 1 and out[0].ack == 1101 and out[0].flags == ACK
    assert r.feed(seg(40000, 80, 1101, iss + 1, ACK, data=b"b" * 1220)) == []
    out = r.feed(seg(40000, 80, 2321, iss + 1, ACK, data=b"c" * 500))
    assert len(out) == 1 and out[0].ack == 2821  # the second segment: at once


def test_out_of_order_segment_is_held_and_acked_when_the_hole_fills():
    r = Rig()
    cid, iss = passive(r)
    out = r.feed(seg(40000, 80, 1101, iss + 1, ACK, data=b"B" * 100))
    assert len(out) == 1 and out[0].ack == 1001  # a duplicate ACK at once
    out = r.feed(seg(40000, 80, 1201, iss + 1, ACK | FIN, data=b"C" * 50))
    assert out[0].ack == 1001
    out = r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"A" * 100))
    assert len(out) == 1 and out[0].ack == 1252  # data and the held FIN
    buf = bytearray(400)
    assert r.t.recv_into(cid, buf, 0, 400, r.now) == 250
    assert bytes(buf[:250]) == b"A" * 100 + b"B" * 100 + b"C" * 50
    assert r.t.state(cid) == "CLOSE-WAIT" and r.counter("out_of_order") == 2


def test_receive_window_closes_and_reading_sends_a_window_update():
    r = Rig(rx_bytes=2048)
    cid, iss = passive(r)
    p = 1001
    for n in (1220, 828):
        out = r.feed(seg(40000, 80, p, iss + 1, ACK, data=bytes(n)))
        p += n
    assert out[-1].wnd == 0 and out[-1].ack == p
    # data beyond a zero window is not taken (only SEG.SEQ = RCV.NXT is acceptable)
    out = r.feed(seg(40000, 80, p, iss + 1, ACK, data=b"z"))
    assert out and out[-1].ack == p and out[-1].wnd == 0
    buf = bytearray(2048)
    assert r.t.recv_into(cid, buf, 0, 500, r.now) == 500
    assert r.take() == []  # 500 < min(buffer/2, MSS): receiver SWS avoidance
    assert r.t.recv_into(cid, buf, 0, 600, r.now) == 600
    out = r.take()
    assert len(out) == 1 and out[0].wnd == 1100 and out[0].ack == p


def test_zero_window_probe_backs_off_and_data_flows_when_it_opens():
    r = Rig(rto_min_ms=200, rto_init_ms=200)
    cid, iss = passive(r, wnd=100)
    q = iss + 1
    r.t.send(cid, bytes(300), 0, 300, r.now)
    out = r.take()
    assert len(out) == 1 and len(out[0].data) == 100
    r.feed(seg(40000, 80, 1001, q + 100, ACK, 0))  # acked, and the window is now 0
    assert r.take() == []
    probes = []
    t0 = r.now
    for _ in range(3):
        out = r.run(r.t.next_deadline() - r.now)
        assert len(out) == 1 and len(out[0].data) == 1 and out[0].seq == (q + 100) & M32
        probes.append(r.now - t0)
        r.feed(seg(40000, 80, 1001, q + 100, ACK, 0))  # still closed: not taken
    assert probes[1] - probes[0] == 2 * probes[0] and probes[2] - probes[1] == 4 * probes[0]
    assert r.counter("window_probes") == 3 and r.counter("timeouts") == 0
    out = r.feed(seg(40000, 80, 1001, q + 100, ACK, 4000))  # opens
    assert sum(len(s.data) for s in out) == 200 and out[0].seq == (q + 100) & M32
