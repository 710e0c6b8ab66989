# The TCP state machine (teredo/tcp.py), continued from test_tcp.py
# (two modules, so that each fits the MicroPython test heap): resets,
# unacceptable segments, bounds (SYN floods, slots, idle time-out), bad
# segments and status.

from tcpkit import ACK, FIN, M32, PEER, PEER2, RST, SYN, Rig, active, passive, seg


def test_rst_on_a_closed_port():
    r = Rig()
    out = r.feed(seg(40000, 81, 777, 0, SYN, mss=1000))
    assert len(out) == 1 and out[0].flags == RST | ACK and out[0].ack == 778 and out[0].seq == 0
    assert out[0].dst == PEER and out[0].sport == 81 and out[0].dport == 40000
    out = r.feed(seg(40000, 81, 777, 123456, ACK, data=b"xy"))
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == 123456
    assert r.feed(seg(40000, 81, 777, 0, RST)) == []  # never a RST for a RST
    r.t.listen(80, 2)
    out = r.feed(seg(40000, 80, 1, 999, ACK))  # an ACK to a listener (§3.10.7.2)
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == 999
    assert r.counter("no_listener") == 2 and r.counter("rst_tx") == 3


def test_rst_and_unacceptable_segments_in_established():
    r = Rig()
    cid, iss = passive(r)
    # old data (a retransmission): not acceptable, answered with an ACK
    out = r.feed(seg(40000, 80, 900, iss + 1, ACK, data=b"old"))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 1001
    # an ACK of data never sent: ACK and drop
    out = r.feed(seg(40000, 80, 1001, iss + 5000, ACK))
    assert len(out) == 1 and out[0].ack == 1001
    # a RST in the window but not at RCV.NXT: challenge ACK (RFC 5961 §3.2)
    out = r.feed(seg(40000, 80, 1500, 0, RST))
    assert len(out) == 1 and out[0].flags == ACK and r.t.state(cid) == "ESTABLISHED"
    # outside the window: silently dropped
    assert r.feed(seg(40000, 80, 900000, 0, RST)) == []
    # a SYN on an established connection, in the window or not: an ACK (RFC 5961 §4)
    for sq in (1500, 5555):
        out = r.feed(seg(40000, 80, sq, 0, SYN))
        assert len(out) == 1 and out[0].flags == ACK and r.t.state(cid) == "ESTABLISHED"
    assert r.counter("challenge_ack") == 2
    # the exact RST resets
    assert r.feed(seg(40000, 80, 1001, 0, RST)) == []
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "reset"
    buf = bytearray(4)
    assert r.t.recv_into(cid, buf, 0, 4, r.now) == -1 and r.t.send(cid, buf, 0, 4, r.now) == -1
    r.t.close(cid, r.now)
    assert r.t.conns[cid & 15].user == 0
    try:
        r.t.state(cid)
        raise AssertionError("a released id must not be usable")
    except ValueError:
        pass


def test_syn_received_rst_returns_to_listen_and_bad_ack_gets_rst():
    r = Rig()
    r.t.listen(80, 2)
    out = r.feed(seg(40000, 80, 100, 0, SYN))
    sa = out[0]
    out = r.feed(seg(40000, 80, 101, sa.seq + 9, ACK))  # unacceptable ACK in SYN-RECEIVED
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (sa.seq + 9) & M32
    assert r.t.conns[0].state == 3  # still SYN-RECEIVED
    out = r.feed(seg(40000, 80, 100, 0, SYN))  # the SYN again: SYN,ACK again
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].seq == sa.seq
    r.feed(seg(40000, 80, 101, 0, RST))
    assert r.t.conns[0].state == 0 and r.t.conns[0].user == 0 and r.t.accept(0) == -1


def test_active_open_refused_and_unacceptable_syn_ack():
    r = Rig()
    cid = r.t.connect(PEER, 80, r.now)
    s = r.take()[0]
    out = r.feed(seg(80, s.sport, 5, s.seq + 7, SYN | ACK))  # wrong ACK: RST <SEQ=SEG.ACK>
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (s.seq + 7) & M32
    assert r.t.state(cid) == "SYN-SENT"
    r.feed(seg(80, s.sport, 0, s.seq + 1, RST | ACK))
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "refused"
    assert r.t.readable(cid) and r.t.writable(cid)  # so a waiting app wakes and sees it


def test_syn_flood_cannot_exhaust_slots_and_a_real_client_still_connects():
    r = Rig(slots=4)
    lh = r.t.listen(80, 2)
    src = bytearray(PEER2)
    for i in range(200):  # spoofed sources, never completing
        src[14] = i >> 8
        src[15] = i & 0xFF
        r.feed(seg(1024 + i, 80, i * 1000, 0, SYN, src=src))
        half = sum(1 for c in r.t.conns if c.state == 3)
        assert half <= 2
    st = r.t.status()["counters"]
    assert st["evicted"] == 198 and st["syn_dropped"] == 0
    cid, iss = passive(r, sport=50000)
    assert cid >= 0
    # and a second listener is not starved by the first one's flood
    cid2, iss2 = passive(r, port=22, sport=50001)
    assert cid2 >= 0 and lh != r.t.lport.index(22)


def test_backlog_full_of_established_connections_drops_syns():
    r = Rig(slots=4)
    r.t.listen(80, 2)
    for sp in (100, 101):
        o = r.feed(seg(sp, 80, 5, 0, SYN))
        r.feed(seg(sp, 80, 6, o[0].seq + 1, ACK))
    assert r.feed(seg(102, 80, 5, 0, SYN)) == []  # no half-open one to evict
    assert r.counter("syn_dropped") == 1
    assert r.t.accept(0) >= 0 and r.t.accept(0) >= 0 and r.t.accept(0) == -1


def test_time_wait_slot_is_reused_when_all_slots_are_taken():
    r = Rig(slots=1, time_wait_ms=60000)
    cid, iss, sport = active(r)
    r.t.close(cid, r.now)
    r.take()
    r.feed(seg(80, sport, 5001, iss + 2, ACK | FIN))
    assert r.state(cid) == "TIME-WAIT"
    cid2 = r.t.connect(PEER, 80, r.now)
    assert cid2 >= 0 and cid2 != cid and r.t.state(cid2) == "SYN-SENT"


def test_idle_timeout_resets_and_keepalive_keeps_a_live_peer():
    r = Rig(idle_ms=10000)
    cid, iss = passive(r)
    out = r.run(10000)
    assert len(out) == 1 and out[0].flags == RST and out[0].seq == (iss + 1) & M32
    assert r.t.error(cid) == "idle" and r.counter("idle_timeouts") == 1
    r = Rig(idle_ms=10000, keepalive_ms=3000)
    cid, iss = passive(r)
    for _ in range(5):
        out = r.run(3000)
        assert len(out) == 1 and out[0].seq == iss & M32 and out[0].data == b""  # SND.NXT - 1
        r.feed(seg(40000, 80, 1001, iss + 1, ACK))  # the peer answers
    assert r.t.state(cid) == "ESTABLISHED" and r.counter("keepalives") == 5


def test_close_with_unread_data_resets_rfc2525():
    r = Rig()
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"unread"))
    r.t.close(cid, r.now)
    out = r.take()
    assert len(out) == 1 and out[0].flags == RST
    assert r.t.conns[cid & 15].state == 0


def test_output_waits_for_the_arena_and_resumes_from_on_timer():
    # the client's arena holds one full segment per drain (ARENA_BYTES 1600)
    r = Rig(arena=1600, tx_bytes=4096)
    cid, iss = passive(r, wnd=30000)
    r.t.set_nodelay(cid, True)  # else Nagle holds the last 560 bytes for an ACK
    assert r.t.send(cid, bytes(3000), 0, 3000, r.now) == 3000
    out = r.take()
    assert len(out) == 1 and len(out[0].data) == 1220
    assert r.t.next_deadline() == r.now  # more to send now
    sent = 1220
    for _ in range(5):
        r.t.on_timer(r.now)
        for s in r.take():
            sent += len(s.data)
    assert sent == 3000 and r.counter("tx_full") >= 2


def test_bad_segments_are_dropped_and_counted():
    r = Rig()
    cid, iss = passive(r)
    good = seg(40000, 80, 1001, iss + 1, ACK, data=b"abc")
    b = bytearray(good)
    b[60] ^= 1
    assert r.feed(b) == []
    b = bytearray(good)
    b[52] = 0x40  # data offset 16 bytes
    r.feed(b)
    b = bytearray(good)
    b[52] = 0xF0  # 60 bytes, beyond the packet
    r.feed(b)
    r.feed(good[:50])
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, opts=bytes([1, 1, 9, 0])))  # option length 0
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, opts=bytes([1, 1, 8, 9])))  # runs past the header
    r.feed(seg(0, 80, 1001, iss + 1, ACK))
    c = r.t.status()["counters"]
    assert c["bad_checksum"] == 1 and c["bad_offset"] == 2 and c["bad_length"] == 1
    assert c["bad_option"] == 2 and c["bad_endpoint"] == 1
    # unknown options are skipped: timestamps and SACK-permitted on a SYN
    out = r.feed(seg(40001, 80, 50, 0, SYN, opts=bytes([2, 4, 1, 0, 4, 2, 8, 10]
                                                       + [0] * 8 + [1, 1, 1, 0])))
    assert len(out) == 1 and out[0].flags == SYN | ACK
    assert r.t.conns[1].smss == 256
    assert r.t.state(cid) == "ESTABLISHED"


def test_status_lists_connections():
    r = Rig()
    cid, iss = passive(r)
    r.feed(seg(40000, 80, 1001, iss + 1, ACK, data=b"12345"))
    st = r.t.status()
    assert st["listening"] == [80]
    c = st["connections"][0]
    assert c["cid"] == cid and c["local"] == 80 and c["rport"] == 40000
    assert c["remote"] == "2001:db8:f::100" and c["state"] == "ESTABLISHED" and c["rx"] == 5
