# teredo.tcp held to its tunables and module constants (the module-level and
# __init__ mutants `make mutate` left alive), on both interpreters: each
# option's default seen in behaviour (slots, listeners, ring sizes, RTO start,
# floor, ceiling and back-off, retries, TIME-WAIT, idle time-out, Nagle),
# each option's range at both ends with the ValueError naming it, the
# rto_min_ms <= rto_init_ms <= rto_max_ms rule, the receiver's SWS threshold
# min(buffer/2, MSS), timers across the 2**30 tick wrap, the counters a
# duplicate ACK and a refused packet land in, what rand is asked for, send()
# wanting a buffer, and sequence origins moved past REBASE (2**20) so that an
# ACK far beyond SND.NXT is still told from an old one (RFC 9293 §3.4).
# Lean: rings are small unless a default ring size is the point.

from tcpkit import ACK, FIN, M32, ME, PEER, SYN, FakeNet, Rig, Seg, active, seg
from teredo.tcp import TCP
from vectors import Rand


def _small(**o):
    """A TCP with small rings (and whatever o sets)."""
    for k, v in (("slots", 1), ("rx_bytes", 256), ("tx_bytes", 256)):
        if k not in o:
            o[k] = v
    return TCP(FakeNet(ME), rand=Rand(2), **o)


def _raises(f, *a, **o):
    """f(*a, **o) raises ValueError: its message."""
    try:
        f(*a, **o)
    except ValueError as e:
        return str(e)
    raise AssertionError("no ValueError")


def _synack(r, cid, pseq, mss=1220, wnd=8192):
    """Answer rig r's SYN (the one segment it sent) and return (iss, sport)."""
    s = r.take()
    assert len(s) == 1 and s[0].flags == SYN, s
    r.feed(seg(80, s[0].sport, pseq, s[0].seq + 1, SYN | ACK, wnd, mss=mss))
    assert r.t.state(cid) == "ESTABLISHED"
    return s[0].seq, s[0].sport


def _steps(t, now, k):
    """Fire t's timers at their deadlines, k times at most: [(time since the
    previous one, segments sent)], and the time of the last."""
    out = []
    for _ in range(k):
        d = t.next_deadline()
        if d is None:
            break
        t.on_timer(d)
        out.append((d - now, len(t.net.drain())))
        now = d
    return out, now


# ---- options: ranges, defaults, the RTO rule ----------------------------------

def test_every_option_at_both_ends_of_its_range():
    # DEFAULTS' ranges; one past either end is a ValueError that names the
    # option and its range (a misconfiguration says what to change)
    for k, lo, hi in (("slots", 1, 16), ("listeners", 1, 16), ("rx_bytes", 256, 0xFFFF),
                      ("tx_bytes", 256, 0xFFFF), ("mss", 64, 1220), ("rto_init_ms", 1, 600000),
                      ("rto_min_ms", 1, 600000), ("rto_max_ms", 1, 600000), ("retries", 1, 30),
                      ("ack_delay_ms", 1, 500), ("time_wait_ms", 1, 600000),
                      ("idle_ms", 0, 0x10000000), ("keepalive_ms", 0, 0x1000000), ("nagle", 0, 1)):
        msg = "tcp option %s must be an int in %d..%d" % (k, lo, hi)
        for v in (lo - 1, hi + 1):
            assert _raises(_small, **{k: v}) == msg, (k, v)
        for v in (lo, hi):
            if v > 4096 and k[1:] == "x_bytes":
                continue  # a 64 KB ring does not fit the test heap: the message holds hi
            o = {k: v}
            if k[:4] == "rto_":  # keep rto_min_ms <= rto_init_ms <= rto_max_ms
                o = {"rto_min_ms": v, "rto_init_ms": v, "rto_max_ms": v}
            assert getattr(_small(**o), k) == v, (k, v)


def test_option_values_must_be_ints_and_bools_count():
    # bools pass as the ints they are; a float or a string does not
    assert _small(nagle=True).nagle is True and _small(nagle=False).nagle is False
    for v in (1.0, "1"):
        assert _raises(_small, nagle=v) == "tcp option nagle must be an int in 0..1"


def test_unknown_option_missing_rand_and_the_rto_order():
    tail = ", no rand(nbits), or not rto_min_ms <= rto_init_ms <= rto_max_ms"
    assert _raises(_small, colour=1) == "unknown tcp option ['colour']" + tail
    assert _raises(TCP, FakeNet(ME), slots=1) == "unknown tcp option []" + tail
    # RFC 6298 §2: the initial RTO must lie within [floor, ceiling]
    assert _raises(_small, rto_min_ms=1001) == "unknown tcp option []" + tail
    assert _raises(_small, rto_init_ms=60001) == "unknown tcp option []" + tail
    assert _raises(_small, rto_init_ms=5, rto_min_ms=6, rto_max_ms=7).endswith(tail)
    assert _small(rto_init_ms=60000).rto_init_ms == 60000  # == rto_max_ms (default) is fine
    assert _small(rto_init_ms=999, rto_min_ms=999).rto_min_ms == 999  # == rto_min_ms too


def test_default_slots_and_listeners():
    t = TCP(FakeNet(ME), rand=Rand(3), rx_bytes=256, tx_bytes=256)
    cids = [t.connect(PEER, 80, 1000) for _ in range(5)]
    assert min(cids[:4]) >= 0 and cids[4] == -1  # 4 slots, all SYN-SENT: none to take
    assert len(t.status()["connections"]) == 4
    assert t.listen(80) == 0 and t.listen(81) == 1  # 2 listeners
    assert _raises(t.listen, 82).startswith("listen: port 1..65535")
    assert t.nagle == 1  # (Nagle on: only its truth is used, the attribute shows the default)


def test_default_ring_sizes():
    # the SYN offers the whole 2048-byte receive ring (RFC 9293 §3.8.6); the
    # transmit ring takes 4096 bytes and then no more
    net = FakeNet(ME)
    t = TCP(net, rand=Rand(4), slots=1)
    cid = t.connect(PEER, 80, 1000)
    s = [Seg(p) for p in net.drain()]
    assert len(s) == 1 and s[0].flags == SYN and s[0].wnd == 2048 and s[0].mss == 1220
    buf = bytearray(256)
    assert [t.send(cid, buf, 0, 256, 1000) for _ in range(17)] == [256] * 16 + [0]


def test_syn_backoff_rto_ceiling_and_retries():
    # RFC 6298 §2.1 (RTO 1 s), §5.5 (doubled each time), §2.5 (at most 60 s);
    # RFC 9293 §3.8.3 R2: 8 retransmissions (243 s in all), then the open fails
    r = Rig(slots=1, idle_ms=0)
    cid = r.t.connect(PEER, 80, r.now)
    assert len(r.take()) == 1
    steps, now = _steps(r.t, r.now, 12)
    # the 9th time-out sends nothing: SYN-SENT ends quietly
    assert steps == [(1000, 1), (2000, 1), (4000, 1), (8000, 1), (16000, 1), (32000, 1),
                     (60000, 1), (60000, 1), (60000, 0)]
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "timeout"
    assert r.counter("retransmits") == 8 and r.counter("timeouts") == 1
    assert r.t.next_deadline() is None


def test_default_idle_timeout_is_120_s():
    # a SYN-SENT connection hears nothing: reset at exactly 120 s, before its
    # eighth SYN (due at 123 s)
    r = Rig(slots=1)
    cid = r.t.connect(PEER, 80, r.now)
    r.take()
    steps, now = _steps(r.t, r.now, 6)
    assert steps == [(1000, 1), (2000, 1), (4000, 1), (8000, 1), (16000, 1), (32000, 1)]
    assert r.t.next_deadline() == r.now + 120000
    r.t.on_timer(r.now + 119999)
    assert r.t.state(cid) == "SYN-SENT" and r.counter("idle_timeouts") == 0
    r.t.on_timer(r.now + 120000)
    assert r.t.state(cid) == "CLOSED" and r.t.error(cid) == "idle"
    assert r.counter("idle_timeouts") == 1 and r.net.drain() == []


def test_default_rto_floor_is_1_s():
    # RFC 6298 §2.4: an RTT sample under 1 ms still gives an RTO of 1 s
    r = Rig(slots=1)
    cid, iss, sport = active(r)
    assert r.t.status()["connections"][0]["rto"] == 1000
    assert r.t.send(cid, b"abc", 0, 3, r.now) == 3 and len(r.take()) == 1
    assert r.t.next_deadline() == r.now + 1000


def test_default_time_wait_is_4_s():
    r = Rig(slots=1)
    cid, iss, sport = active(r, pseq=5000)
    r.t.close(cid, r.now)
    assert r.take()[0].flags & FIN
    r.feed(seg(80, sport, 5001, iss + 2, ACK))
    out = r.feed(seg(80, sport, 5001, iss + 2, FIN | ACK))
    assert len(out) == 1 and out[0].ack == 5002
    assert r.t.next_deadline() == r.now + 4000
    r.t.on_timer(r.now + 3999)
    assert [c["state"] for c in r.t.status()["connections"]] == ["TIME-WAIT"]
    r.t.on_timer(r.now + 4000)
    assert r.t.status()["connections"] == [] and r.t.next_deadline() is None


def test_nagle_is_on_by_default():
    # RFC 9293 §3.7.4: a small segment waits while data is unacknowledged
    r = Rig(slots=1)
    cid, iss, sport = active(r)
    assert r.t.send(cid, b"0123456789", 0, 10, r.now) == 10
    assert [len(s.data) for s in r.take()] == [10]
    assert r.t.send(cid, b"abcde", 0, 5, r.now) == 5 and r.take() == []
    out = r.feed(seg(80, sport, 5001, iss + 11, ACK))
    assert len(out) == 1 and out[0].data == b"abcde" and out[0].seq == (iss + 11) & M32
    r.t.set_nodelay(cid, True)  # off: the next small one goes at once
    assert r.t.send(cid, b"xy", 0, 2, r.now) == 2
    assert [s.data for s in r.take()] == [b"xy"]


def test_window_update_threshold_is_min_half_buffer_and_mss():
    # RFC 9293 §3.8.6.2.2: after a full ring is read, the window reopens
    # (an ACK with it) once min(RCV.BUFF/2, MSS) bytes are free: 100 with an
    # MSS of 100, 128 (half of 256) with 1220
    for mss, thr in ((100, 100), (1220, 128)):
        r = Rig(slots=1, rx_bytes=256, mss=mss)
        cid = r.t.connect(PEER, 80, r.now)
        iss, sport = _synack(r, cid, 7000)
        r.take()
        r.feed(seg(80, sport, 7001, iss + 1, ACK, data=bytes(128)))
        out = r.feed(seg(80, sport, 7129, iss + 1, ACK, data=bytes(128)))
        assert len(out) == 1 and out[0].ack == 7257 and out[0].wnd == 0, out
        buf = bytearray(256)
        assert r.t.recv_into(cid, buf, 0, thr - 1, r.now) == thr - 1 and r.take() == []
        assert r.t.recv_into(cid, buf, 0, 1, r.now) == 1
        out = r.take()
        assert len(out) == 1 and out[0].flags == ACK and out[0].wnd == thr and out[0].ack == 7257


# ---- ticks, counters, rand, buffers --------------------------------------------

def test_syn_timer_across_the_tick_wrap():
    # ticks wrap at 2**30: a SYN sent 500 ms before the wrap is due again at 500
    r = Rig(slots=1, now=0x3FFFFE0C)
    assert r.t.connect(PEER, 80, r.now) >= 0 and len(r.take()) == 1
    assert r.t.next_deadline() == 500
    r.t.on_timer(499)
    assert r.take() == []
    r.t.on_timer(500)
    s = r.take()
    assert len(s) == 1 and s[0].flags == SYN and r.t.next_deadline() == 2500


def test_dup_ack_and_tx_refused_counters():
    # RFC 5681 §3.2: three duplicate ACKs, counted as such, resend the hole
    r = Rig(slots=1)
    cid, iss, sport = active(r)
    assert r.t.send(cid, bytes(100), 0, 100, r.now) == 100 and len(r.take()) == 1
    outs = [r.feed(seg(80, sport, 5001, iss + 1, ACK)) for _ in range(3)]
    assert outs[0] == outs[1] == []
    out = outs[2]
    assert len(out) == 1 and out[0].seq == (iss + 1) & M32 and len(out[0].data) == 100
    assert r.counter("dup_acks") == 3 and r.counter("fast_retransmits") == 1
    assert r.counter("timeouts") == 0 and r.counter("out_of_order") == 0
    # a packet the shell could not send is counted as refused, not as a full arena
    r.feed(seg(80, sport, 5001, iss + 101, ACK))
    r.net.refuse = 1
    assert r.t.send(cid, b"z", 0, 1, r.now) == 1
    out = r.take()
    assert len(out) == 1 and out[0].data == b"z"  # handed over; the shell refused it
    assert r.counter("tx_refused") == 1 and r.counter("tx_full") == 0


class _Bits:
    """rand(nbits) that records what it is asked for."""

    def __init__(self):
        self.asked = []

    def __call__(self, bits):
        self.asked.append(bits)
        return 0x2AAA & ((1 << bits) - 1)


def test_rand_gives_a_14_bit_port_seed_and_16_bit_iss_halves():
    # RFC 6335 §6: 2**14 ephemeral ports from 49152; RFC 6528: a random ISS
    rnd = _Bits()
    net = FakeNet(ME)
    t = TCP(net, rand=rnd, slots=1, rx_bytes=256, tx_bytes=256)
    assert rnd.asked == [14]
    t.connect(PEER, 80, 1000)
    assert rnd.asked == [14, 16, 16]
    s = Seg(net.drain()[0])
    assert s.sport == 49152 + 0x2AAB and s.seq == 0x2AAA2AAA


def test_send_wants_a_buffer():
    # send() copies from a buffer (bytes, bytearray, memoryview); a list is
    # refused with TypeError and nothing is queued
    r = Rig(slots=1)
    cid, iss, sport = active(r)
    try:
        r.t.send(cid, [104, 105], 0, 2, r.now)
        raise AssertionError("a list was taken")
    except TypeError:
        pass
    assert r.take() == []
    assert r.t.send(cid, memoryview(b"hi"), 0, 2, r.now) == 2
    out = r.take()
    assert len(out) == 1 and out[0].data == b"hi" and out[0].seq == (iss + 1) & M32


# ---- sequence origins ----------------------------------------------------------

BUF = bytes(1024)


def _pump(r, cid, base, sport, queued, target):
    """Send and acknowledge data until target bytes (from base) are acked;
    every ACK is for all that was sent, none beyond target."""
    acked = queued
    while acked < target:
        n = target - queued
        if n > 0:
            queued += r.t.send(cid, BUF, 0, n if n < 1024 else 1024, r.now)
        for s in r.take():
            e = (s.seq + len(s.data) - base) & M32
            if e > acked:
                acked = e
        r.feed(seg(80, sport, 5001, base + acked, ACK, 0xFFFF))
    return queued


def test_origin_moves_past_rebase_so_far_acks_keep_their_side():
    # RFC 9293 §3.4: sequence numbers compare modulo 2**32.  After 2**19 and
    # then 2**20 bytes acknowledged (the origin moves once SND.UNA is more
    # than 2**20 past it), an ACK 2**31 - 1000 beyond SND.NXT acknowledges
    # something not yet sent: an ACK, the segment dropped (§3.10.7.4 fifth)
    r = Rig(slots=1, tx_bytes=4096)
    cid, iss, sport = active(r)
    r.t.set_nodelay(cid, True)
    base = iss + 1
    q = _pump(r, cid, base, sport, 0, 1 << 19)
    q = _pump(r, cid, base, sport, q, 1 << 20)
    assert q == 1 << 20 and r.t.status()["connections"][0]["unacked"] == 0
    far = (base + (1 << 20) + (1 << 31) - 1000) & M32
    out = r.feed(seg(80, sport, 5001, far, ACK, 0xFFFF))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 5001
    assert out[0].seq == (base + (1 << 20)) & M32
    # and the stream goes on at the right numbers
    assert r.t.send(cid, b"tail", 0, 4, r.now) == 4
    out = r.take()
    assert len(out) == 1 and out[0].seq == (base + (1 << 20)) & M32 and out[0].data == b"tail"


def test_ack_beyond_snd_nxt_by_almost_half_the_space_is_not_an_old_ack():
    # the same ACK 2**31 - 100 beyond SND.NXT, but 300 bytes after the handshake
    # (the origin has not moved): it must be answered and its data dropped
    r = Rig(slots=1)
    cid, iss, sport = active(r)
    assert r.t.send(cid, bytes(300), 0, 300, r.now) == 300 and len(r.take()) == 1
    assert r.feed(seg(80, sport, 5001, iss + 301, ACK)) == []
    far = (iss + 301 + (1 << 31) - 100) & M32
    out = r.feed(seg(80, sport, 5001, far, ACK, data=b"hijack"))
    assert len(out) == 1 and out[0].flags == ACK and out[0].ack == 5001, out
    assert r.t.recv_into(cid, bytearray(8), 0, 8, r.now) == 0
