# TCP (RFC 9293) with RFC 6298 retransmission timers and RFC 5681
# congestion control, sans-I/O, for the IPv6 side of the Teredo client.
#
#   t = TCP(client, rand=getrandbits)    # net: address, arena, tx_alloc, tx_send
#   ev = client.on_datagram(buf, n, src4, sport, now)
#   if ev == EV_TCP: t.on_segment(buf, client.ev_off, client.ev_off + client.ev_len, now)
#   drain client.pop_tx(); call t.on_timer(now) once t.next_deadline() is due
#   lh = t.listen(80, 2); cid = t.accept(lh)        (or cid = t.connect(dst16, 80, now))
#   t.recv_into(cid, buf, off, n, now) / t.send(cid, buf, off, n, now) / t.close(cid, now)
#
# What it does (and does not):
# - Passive and active open, simultaneous open and close, half-close, RST per
#   RFC 9293 §3.10.7 with the RFC 5961 challenge ACKs §3.10.7.4 includes,
#   and RFC 5961 §5.2's ACK range: an ACK older than SND.UNA - MAX.SND.WND
#   gets an ACK and its segment is dropped.
# - Options: we send MSS (the Teredo MTU 1280 - 40 - 20 = 1220) in our SYN and
#   use only the peer's MSS; NOP and End of Option List are understood, every
#   other option is skipped by its length (no window scaling, timestamps or
#   SACK: a 2-4 KB receive ring never needs a window above 65535).  An option
#   whose length is short or runs past the header makes the segment bad
#   (dropped and counted; RFC 9293 §3.1 lets us choose).
# - No urgent data: the URG flag is ignored and its bytes are ordinary data
#   (RFC 6093 asks new applications not to use it).
# - Data in a SYN is not taken; the peer sends it again after the handshake.
# - Out-of-order data: one range beyond a hole is kept, written straight into
#   the receive ring where it belongs (RFC 9293 §3.10.7.4 "SHOULD be held").
# - ISNs are random (rand), as RFC 6528 wants them unpredictable; TIME-WAIT is
#   short (time_wait_ms), so RFC 9293 §3.4.2's quiet time is not kept.
#
# Sequence numbers without big ints: on a 32-bit MicroPython an int of 2**30
# or more is a heap object, so the 32-bit numbers never become ints.  Each
# connection keeps the origin of each sequence space as 4 bytes (sb: ours,
# rb: the peer's, first the ISS and IRS) and every sequence variable is a
# small int offset from it.  Incoming numbers become offsets with _rel (two
# 16-bit halves, clamped to +-2**28: exact near the windows, and far ones keep
# their sign, which is all the comparisons need); outgoing ones are written by
# _put.  When an offset passes REBASE the origin moves forward (_rebase), so
# offsets stay small for ever and the wrap at 2**32 happens only in the bytes.
#
# Times are int milliseconds that wrap at 2**30 (ticks_ms), compared with the
# client's _diff/_add.  A timer value of -1 means "off".
#
# Memory is fixed at construction: `slots` connection slots, each with its own
# receive and transmit ring; `listeners` listening ports.  A SYN finds a slot
# by (in this order) a free one, the oldest TIME-WAIT, the oldest half-open
# one; a listener holds at most `backlog` connections not yet accepted, and a
# SYN beyond that evicts the listener's oldest half-open connection (or is
# dropped when it has none).  A connection that hears nothing for idle_ms is
# reset.  Nothing from the network raises: bad segments are counted (status()).

from teredo import addr, proto, wire

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

# Every tunable with its one default and its range.  TCP(net, rand, **overrides).
DEFAULTS = (
    ("slots", 4, 1, 16),             # connections at once, listener queues included
    ("listeners", 2, 1, 16),         # listening ports at once
    ("rx_bytes", 2048, 256, 0xFFFF),  # receive ring per connection: the largest window offered
    ("tx_bytes", 4096, 256, 0xFFFF),  # transmit ring per connection: unacknowledged + unsent
    ("mss", 1220, 64, 1220),         # RFC 4380 §5.1.2: MTU 1280 - 40 (IPv6) - 20 (TCP)
    ("rto_init_ms", 1000, 1, 600000),  # RFC 6298 §2.1
    ("rto_min_ms", 1000, 1, 600000),   # RFC 6298 §2.4
    ("rto_max_ms", 60000, 1, 600000),  # RFC 6298 §2.5
    ("retries", 8, 1, 30),           # RFC 9293 §3.8.3 R2: 8 backed-off tries of a SYN last > 3 min
    ("ack_delay_ms", 200, 1, 500),   # RFC 9293 §3.8.6.3; every second segment is acked at once
    ("time_wait_ms", 4000, 1, 600000),  # 2*MSL with a 2 s MSL: a small device cannot hold slots long
    ("idle_ms", 120000, 0, 0x10000000),  # reset a connection that hears nothing this long (0: never)
    ("keepalive_ms", 0, 0, 0x1000000),   # RFC 9293 §3.8.4: off unless asked; probe after this silence
    ("nagle", 1, 0, 1),              # RFC 9293 §3.7.4; set_nodelay() turns it off per connection
)

# RFC 9293 §3.3.2 states, named as there.
STATES = ("CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
          "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT")
_CLOSED = const(0)
_SYN_SENT = const(2)
_SYN_RCVD = const(3)
_ESTAB = const(4)
_FIN_WAIT_1 = const(5)
_FIN_WAIT_2 = const(6)
_CLOSE_WAIT = const(7)
_CLOSING = const(8)
_LAST_ACK = const(9)
_TIME_WAIT = const(10)

# RFC 9293 §3.1 control bits
_FIN = const(0x01)
_SYN = const(0x02)
_RST = const(0x04)
_PSH = const(0x08)
_ACK = const(0x10)

# Why a connection ended (error(cid)).
ERRORS = (None, "reset", "refused", "timeout", "idle", "evicted", "closed")
_E_RESET = const(1)
_E_REFUSED = const(2)
_E_TIMEOUT = const(3)
_E_IDLE = const(4)
_E_EVICTED = const(5)
_E_CLOSED = const(6)

# Counters, one name each (status()["counters"]).
COUNTERS = ("rx", "tx", "bad_length", "bad_offset", "bad_checksum", "bad_option", "bad_endpoint",
            "no_listener", "rst_rx", "rst_tx", "unacceptable", "challenge_ack", "syn_dropped",
            "evicted", "retransmits", "fast_retransmits", "timeouts", "dup_acks", "out_of_order",
            "window_probes", "keepalives", "idle_timeouts", "tx_full", "tx_refused")
_C_RX = const(0)
_C_TX = const(1)
_C_LENGTH = const(2)
_C_OFFSET = const(3)
_C_CHECKSUM = const(4)
_C_OPTION = const(5)
_C_ENDPOINT = const(6)
_C_NO_LISTENER = const(7)
_C_RST_RX = const(8)
_C_RST_TX = const(9)
_C_UNACCEPTABLE = const(10)
_C_CHALLENGE = const(11)
_C_SYN_DROPPED = const(12)
_C_EVICTED = const(13)
_C_RETRANSMIT = const(14)
_C_FAST_RETRANSMIT = const(15)
_C_TIMEOUT = const(16)
_C_DUP_ACK = const(17)
_C_OOO = const(18)
_C_PROBE = const(19)
_C_KEEPALIVE = const(20)
_C_IDLE = const(21)
_C_TX_FULL = const(22)
_C_TX_REFUSED = const(23)

_FAR = const(0x10000000)     # _rel's clamp
_MASK30 = const(0x3FFFFFFF)  # byte counts wrap here
REBASE = 1 << 20            # move a sequence origin past this (a plain global: tests lower it)


# ---- ticks (the same arithmetic as client._diff/_add; kept here so that the
# TCP does not need the client module)

_HALF = const(0x20000000)


def _diff(a, b):
    """a - b for tick values that wrap at 2**30, kept within small ints."""
    d = a - b
    if d >= _HALF:
        d = d - _HALF - _HALF
    elif d < -_HALF:
        d = d + _HALF + _HALF
    return d


def _add(a, dt):
    m = _HALF - dt + _HALF  # 2**30 - dt without making 2**30
    if a >= m:
        return a - m
    return a + dt


# ---- sequence numbers as small offsets -------------------------------------

def _rel(b, o, base):
    """The 32-bit number at b[o:o+4] minus the 4-byte base, as a signed
    offset; beyond +-2**28 it is clamped (the sign still says before/after)."""
    hi = ((b[o] << 8) | b[o + 1]) - ((base[0] << 8) | base[1])
    lo = ((b[o + 2] << 8) | b[o + 3]) - ((base[2] << 8) | base[3])
    if lo < 0:
        lo += 0x10000
        hi -= 1
    hi &= 0xFFFF
    if hi >= 0x8000:
        hi -= 0x10000
    if hi >= 0x1000:
        return _FAR
    if hi < -0x1000:
        return -_FAR
    return hi * 0x10000 + lo


def _put(b, o, base, bo, x):
    """b[o:o+4] = base[bo:bo+4] + x (mod 2**32), for a small x of either sign."""
    lo = ((base[bo + 2] << 8) | base[bo + 3]) + (x & 0xFFFF)
    hi = ((base[bo] << 8) | base[bo + 1]) + (x >> 16) + (lo >> 16)
    b[o] = (hi >> 8) & 0xFF
    b[o + 1] = hi & 0xFF
    b[o + 2] = (lo >> 8) & 0xFF
    b[o + 3] = lo & 0xFF


# ---- byte copies without slicing (a slice is a new object on MicroPython) --

def _copy_loop(dst, do, src, so, n):
    for i in range(n):
        dst[do + i] = src[so + i]


def _copy_slice(dst, do, src, so, n):
    dst[do:do + n] = memoryview(src)[so:so + n]


_copy = _copy_loop
try:
    import micropython

    @micropython.viper
    def _copy_viper(dst, do: int, src, so: int, n: int):
        d = ptr8(dst)  # noqa: F821 (viper built-in)
        s = ptr8(src)  # noqa: F821
        i = 0
        while i < n:
            d[do + i] = s[so + i]
            i += 1

    _copy = _copy_viper
except (ImportError, AttributeError, SyntaxError, NameError):  # CPython, or no viper
    import sys

    if sys.implementation.name == "cpython":
        _copy = _copy_slice


class _Conn:
    """One connection slot; its rings are allocated here, once."""

    def __init__(self, slot, rxn, txn):
        self.cid = slot              # slot + 16 * generation
        self.rxn = rxn
        self.txn = txn
        self.rxb = bytearray(rxn)
        self.txb = bytearray(txn)
        self.raddr = bytearray(16)
        self.sb = bytearray(4)       # origin of our sequence space (ISS, then rebased)
        self.rb = bytearray(4)       # origin of the peer's (IRS, then rebased)
        self.user = 0                # 0: free or queued on a listener, 1: the app's, 2: closed by it
        self.clear(0)

    def clear(self, now):
        self.state = _CLOSED
        self.lst = -1                # listener that queued it, until accepted
        self.err = 0
        self.lport = 0
        self.rport = 0
        self.born = 0
        # send side (RFC 9293 §3.3.1), offsets from sb; the ring holds
        # tx_len bytes from offset tx_seq on; fin: the app closed (FIN at tx_seq + tx_len)
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0             # highest sent (snd_nxt goes back on a timeout)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_wnd = 0
        self.smss = 1220  # RFC 9293 §3.7.1: the IPv6 default
        self.tx_head = 0
        self.tx_len = 0
        self.tx_seq = 1
        self.fin = 0
        # receive side, offsets from rb; the ring holds rx_len unread bytes
        # from rx_head; rcv_adv is the right edge we advertised
        self.rx_head = 0
        self.rx_len = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.ooo_a = 0               # one out-of-order range [ooo_a, ooo_b)
        self.ooo_b = 0
        self.ooo_fin = 0
        # RFC 6298 (srtt and rttvar scaled by 8 and 4), RFC 5681
        self.srtt = 0
        self.rttvar = 0
        self.rto = 1000
        self.rtt_seq = -1
        self.rtt_t = 0
        self.tries = 0
        self.cwnd = 0
        self.ssthresh = 0xFFFF
        self.dupacks = 0
        self.recover = 0
        # timers and what is due
        self.t_rtx = -1              # retransmission, persist or TIME-WAIT
        self.t_ack = -1              # delayed ACK
        self.persist = 0
        self.ack_now = 0
        self.acks = 0                # segments received since our last ACK
        self.pend = 0                # output held back: the arena was full
        self.last = now              # last segment heard (idle time-out, keepalive)
        self.kprobes = 0
        self.nodelay = 0
        self.rx_bytes = 0
        self.tx_bytes = 0


class TCP:
    # the options, as attributes (annotations only: nothing on MicroPython)
    slots: int
    listeners: int
    rx_bytes: int
    tx_bytes: int
    mss: int
    rto_init_ms: int
    rto_min_ms: int
    rto_max_ms: int
    retries: int
    ack_delay_ms: int
    time_wait_ms: int
    idle_ms: int
    keepalive_ms: int
    nagle: int

    def __init__(self, net, rand=None, **options):
        for k, v, lo, hi in DEFAULTS:
            if k in options:
                v = options.pop(k)
                if not (type(v) is int or type(v) is bool) or not lo <= v <= hi:
                    raise ValueError("tcp option %s must be an int in %d..%d" % (k, lo, hi))
            setattr(self, k, v)
        if options or rand is None or not self.rto_min_ms <= self.rto_init_ms <= self.rto_max_ms:
            raise ValueError("unknown tcp option %r, no rand(nbits), or not rto_min_ms <= "
                             "rto_init_ms <= rto_max_ms" % list(options))
        self.net = net
        self.rand = rand
        rxn = self.rx_bytes
        # RFC 9293 §3.8.6.2.2: move the right edge by at least min(buffer/2, MSS)
        self.wthr = rxn // 2 if rxn // 2 < self.mss else self.mss
        self.conns = []
        for i in range(self.slots):
            self.conns.append(_Conn(i, rxn, self.tx_bytes))
        self.lport = [0] * self.listeners
        self.lback = [0] * self.listeners
        self.cnt = [0] * len(COUNTERS)
        self.now = 0
        self.born = 0
        self.eph = rand(14)

    # ---- the application's side ---------------------------------------------

    def listen(self, port, backlog=2):
        """Listen on port; returns the listener handle for accept().  backlog:
        connections (half-open or not yet accepted) it may hold at once."""
        if 0 < port <= 0xFFFF and backlog > 0 and port not in self.lport and 0 in self.lport:
            i = self.lport.index(0)
            self.lport[i] = port
            self.lback[i] = backlog
            return i
        raise ValueError("listen: port 1..65535 not yet listening, backlog >= 1, "
                         "and a free listener (the listeners option)")

    def unlisten(self, lh, now):
        """Stop listening; connections not yet accepted are reset."""
        self.lport[lh] = 0
        for c in self.conns:
            if c.lst == lh and c.user == 0 and c.state != _CLOSED:
                self._abort(c, _E_CLOSED, now)

    def accept(self, lh):
        """The oldest established connection of listener lh: its id, or -1."""
        best = None
        for c in self.conns:
            if c.lst == lh and c.user == 0 and (c.state == _ESTAB or c.state == _CLOSE_WAIT) \
                    and (best is None or _diff(c.born, best.born) < 0):
                best = c
        if best is None:
            return -1
        best.user = 1
        best.lst = -1
        return best.cid

    def connect(self, dst, dport, now, sport=0):
        """Active open to the 16-byte address dst; returns the connection id,
        or -1 when no slot is free.  sport 0: an ephemeral port."""
        if len(dst) != 16 or not 0 < dport <= 0xFFFF or not 0 <= sport <= 0xFFFF:
            raise ValueError("connect needs a 16-byte address and ports 1..65535")
        self.now = now
        if sport == 0:
            sport = self._port()
        c = self._slot(-1, now)
        if c is None:
            return -1
        self._open(c, dst, 0, dport, sport, now)
        c.user = 1
        c.state = _SYN_SENT
        self._out(c, now)
        return c.cid

    def send(self, cid, buf, off, n, now):
        """Queue buf[off:off+n]; returns the bytes taken (0: the ring is full),
        -1 when the connection can no longer send (closed, reset)."""
        c = self._conn(cid)
        self.now = now
        st = c.state
        if c.fin or not (_SYN_SENT <= st <= _ESTAB or st == _CLOSE_WAIT):
            return -1
        N = c.txn
        k = N - c.tx_len
        if k > n:
            k = n
        if k <= 0:
            return 0
        p = (c.tx_head + c.tx_len) % N
        m = N - p
        if m >= k:
            _copy(c.txb, p, buf, off, k)
        else:
            _copy(c.txb, p, buf, off, m)
            _copy(c.txb, 0, buf, off + m, k - m)
        c.tx_len += k
        if st >= _ESTAB:
            self._out(c, now)
        return k

    def recv_into(self, cid, buf, off, n, now):
        """Read up to n bytes into buf[off:]; returns the count, 0 when none
        is there yet, -1 at the end of the stream (FIN, reset or closed)."""
        c = self._conn(cid)
        self.now = now
        k = c.rx_len
        if k > n:
            k = n
        if k <= 0:
            return 0 if _SYN_SENT <= c.state <= _FIN_WAIT_2 else -1
        N = c.rxn
        h = c.rx_head
        m = N - h
        if m >= k:
            _copy(buf, off, c.rxb, h, k)
        else:
            _copy(buf, off, c.rxb, h, m)
            _copy(buf, off + m, c.rxb, 0, k - m)
        c.rx_head = (h + k) % N
        c.rx_len -= k
        # reading opened the window: tell the peer when the edge can move
        # by min(buffer/2, MSS) (RFC 9293 §3.8.6.2.2)
        if c.state >= _ESTAB and c.rcv_nxt + N - c.rx_len - c.rcv_adv >= self.wthr:
            c.ack_now = 1
            self._out(c, now)
        return k

    def close(self, cid, now):
        """Close our side (FIN after the queued data); the id is released.
        Unread received data makes it a reset (RFC 2525 §2.17)."""
        c = self._conn(cid)
        self.now = now
        st = c.state
        c.user = 2
        if st == _CLOSED:
            c.user = 0
        elif st == _SYN_RCVD:
            c.fin = 1  # RFC 9293 §3.10.4: the FIN goes once ESTABLISHED
        elif st < _ESTAB or c.rx_len:
            self._abort(c, _E_CLOSED, now)
        elif st == _ESTAB or st == _CLOSE_WAIT:
            c.fin = 1
            c.state = _FIN_WAIT_1 if st == _ESTAB else _LAST_ACK
            self._out(c, now)

    def abort(self, cid, now):
        """Reset the connection (RFC 9293 §3.10.5) and release the id."""
        c = self._conn(cid)
        c.user = 2
        if c.state == _CLOSED:
            c.user = 0
        else:
            self._abort(c, _E_CLOSED, now)

    def state(self, cid):
        return STATES[self._conn(cid).state]

    def error(self, cid):
        """Why the connection ended: None, or one of ERRORS."""
        return ERRORS[self._conn(cid).err]

    def readable(self, cid):
        c = self._conn(cid)
        return c.rx_len > 0 or not _SYN_SENT <= c.state <= _FIN_WAIT_2

    def writable(self, cid):
        c = self._conn(cid)
        st = c.state
        return st == _CLOSED or ((st == _ESTAB or st == _CLOSE_WAIT) and not c.fin and c.tx_len < c.txn)

    def set_nodelay(self, cid, on):
        """Turn Nagle's algorithm off (on=True) for one connection."""
        self._conn(cid).nodelay = 1 if on else 0

    def status(self):
        cs = []
        for c in self.conns:
            if c.state != _CLOSED or c.user == 1:
                cs.append({"cid": c.cid, "local": c.lport, "remote": addr.format_ipv6(c.raddr),
                           "rport": c.rport, "state": STATES[c.state], "rx": c.rx_bytes,
                           "tx": c.tx_bytes, "unread": c.rx_len, "unacked": c.tx_len,
                           "rto": c.rto, "srtt": c.srtt >> 3, "error": ERRORS[c.err]})
        cnt = {}
        for i in range(len(COUNTERS)):
            cnt[COUNTERS[i]] = self.cnt[i]
        return {"listening": [p for p in self.lport if p], "connections": cs, "counters": cnt}

    # ---- timers -------------------------------------------------------------

    def next_deadline(self):
        """When on_timer wants to run (ticks ms), or None."""
        d = -1
        for c in self.conns:
            if c.state == _CLOSED:
                continue
            if c.pend or c.ack_now:
                return self.now
            d = _min(d, c.t_rtx)
            d = _min(d, c.t_ack)
            if self.idle_ms:
                d = _min(d, _add(c.last, self.idle_ms))
            if self._ka(c):
                d = _min(d, _add(c.last, self.keepalive_ms * (c.kprobes + 1)))
        return None if d < 0 else d

    def on_timer(self, now):
        self.now = now
        for c in self.conns:
            if c.state == _CLOSED:
                continue
            if c.t_rtx >= 0 and _diff(now, c.t_rtx) >= 0:
                c.t_rtx = -1
                self._timeout(c, now)
            if c.t_ack >= 0 and _diff(now, c.t_ack) >= 0:
                c.t_ack = -1
                c.ack_now = 1
            if c.state == _CLOSED:
                continue
            el = _diff(now, c.last)
            if self.idle_ms and el >= self.idle_ms:
                self.cnt[_C_IDLE] += 1
                self._abort(c, _E_IDLE, now)
                continue
            if self._ka(c) and el >= self.keepalive_ms * (c.kprobes + 1):
                # RFC 9293 §3.8.4: an ACK with SEG.SEQ = SND.NXT - 1, no data
                self.cnt[_C_KEEPALIVE] += 1
                c.kprobes += 1
                self._xmit(c, c.snd_nxt - 1, 0, _ACK, now)
            if c.pend or c.ack_now:
                self._out(c, now)

    def _ka(self, c):
        return self.keepalive_ms and (c.state == _ESTAB or c.state == _CLOSE_WAIT) \
            and c.snd_una == c.snd_max

    def _timeout(self, c, now):
        """The retransmission, persist or TIME-WAIT timer ran out."""
        st = c.state
        if st == _TIME_WAIT:
            self._closed(c, 0)
            return
        rto = c.rto * 2  # RFC 6298 §5.5 back-off
        if rto > self.rto_max_ms:
            rto = self.rto_max_ms
        if c.persist:
            # RFC 9293 §3.8.6.1: probe a zero window with one byte, backing
            # off, for as long as the peer answers (the idle timer ends it)
            self.cnt[_C_PROBE] += 1
            c.rto = rto
            r = self._seg(c, c.snd_una, 1, now)
            if r > c.snd_nxt:
                c.snd_nxt = r
                if r > c.snd_max:
                    c.snd_max = r
            c.t_rtx = _add(now, rto)
            return
        c.tries += 1
        if c.tries > self.retries:
            self.cnt[_C_TIMEOUT] += 1
            self._abort(c, _E_TIMEOUT, now)
            return
        self.cnt[_C_RETRANSMIT] += 1
        # RFC 5681 §3.1 eq. (4): half the flight, one segment of window
        fl = (c.snd_max - c.snd_una) // 2
        c.ssthresh = fl if fl > 2 * c.smss else 2 * c.smss
        c.cwnd = c.smss
        c.dupacks = 0
        c.recover = c.snd_max  # RFC 6582 §3.2 step 4: no fast retransmit below it
        c.rto = rto
        c.rtt_seq = -1  # Karn: no sample from what was sent twice (RFC 6298 §3)
        c.snd_nxt = c.snd_una  # go back: the SYN, the data, the FIN again
        self._out(c, now)

    # ---- segments in ----------------------------------------------------------

    def on_segment(self, rx, ip, n, now):
        """The IPv6 packet rx[ip:n] with next header 6 (the client's EV_TCP)."""
        self.now = now
        cnt = self.cnt
        cnt[_C_RX] += 1
        t = ip + 40
        plen = n - t
        if n > len(rx) or plen < 20 or ((rx[ip + 4] << 8) | rx[ip + 5]) != plen or rx[ip + 6] != proto.NH_TCP:
            cnt[_C_LENGTH] += 1
            return
        hl = (rx[t + 12] >> 2) & 0x3C
        if hl < 20 or hl > plen:
            cnt[_C_OFFSET] += 1
            return
        if wire.l4_sum(rx, ip, proto.NH_TCP, plen) != 0xFFFF:
            cnt[_C_CHECKSUM] += 1
            return
        sport = (rx[t] << 8) | rx[t + 1]
        dport = (rx[t + 2] << 8) | rx[t + 3]
        if sport == 0 or dport == 0 or rx[ip + 8] == 0xFF:
            cnt[_C_ENDPOINT] += 1  # port 0 or a multicast source
            return
        fl = rx[t + 13]
        # options (RFC 9293 §3.2): only MSS is used, the others are skipped;
        # 1220 is the IPv6 default without one (RFC 9293 §3.7.1)
        mss = 1220
        o = t + 20
        e = t + hl
        while o < e:
            k = rx[o]
            if k == 0:
                break
            if k == 1:
                o += 1
                continue
            if o + 1 >= e or rx[o + 1] < 2 or o + rx[o + 1] > e:
                cnt[_C_OPTION] += 1
                return
            if k == 2 and rx[o + 1] == 4:
                mss = (rx[o + 2] << 8) | rx[o + 3]
            o += rx[o + 1]
        if mss > self.mss:
            mss = self.mss
        if mss < 64:
            mss = 64
        dlen = plen - hl
        c = None
        for x in self.conns:
            if x.state != _CLOSED and x.lport == dport and x.rport == sport \
                    and wire.eq(rx, ip + 8, x.raddr, 0, 16):
                c = x
                break
        if c is not None and c.state == _TIME_WAIT and fl & (_SYN | _ACK | _RST) == _SYN \
                and _rel(rx, t + 4, c.rb) > c.rcv_nxt:
            # a new SYN above the old sequence numbers ends TIME-WAIT (RFC 9293 §3.10.7.4, RFC 6191)
            self._closed(c, 0)
            c = None
        if c is None:
            self._listen_in(rx, ip, fl, dlen, sport, dport, mss, now)
            return
        c.last = now
        c.kprobes = 0
        if c.state == _SYN_SENT:
            self._syn_sent(c, rx, ip, fl, dlen, mss, now)
        else:
            self._other(c, rx, ip, hl, fl, dlen, now)
        if c.state != _CLOSED:
            self._out(c, now)

    def _listen_in(self, rx, ip, fl, dlen, sport, dport, mss, now):
        """RFC 9293 §3.10.7.1 (no connection) and §3.10.7.2 (LISTEN)."""
        cnt = self.cnt
        L = -1
        for i in range(len(self.lport)):
            if self.lport[i] == dport:
                L = i
        if fl & _RST:
            cnt[_C_RST_RX] += 1
            return
        if L < 0 or fl & _ACK:
            if L < 0:
                cnt[_C_NO_LISTENER] += 1
            self._reset(rx, ip, fl, dlen)
            return
        if not fl & _SYN:
            cnt[_C_UNACCEPTABLE] += 1
            return
        c = self._slot(L, now)
        if c is None:
            cnt[_C_SYN_DROPPED] += 1
            return
        self._open(c, rx, ip + 8, sport, dport, now)
        c.lst = L
        c.state = _SYN_RCVD
        self._synced(c, rx, ip + 40, mss)
        self._out(c, now)

    def _synced(self, c, rx, t, mss):
        """A SYN from the peer: its IRS, window and MSS."""
        for i in range(4):
            c.rb[i] = rx[t + 4 + i]
        c.rcv_nxt = 1
        c.rcv_adv = 1 + c.rxn
        c.snd_wnd = c.max_wnd = (rx[t + 14] << 8) | rx[t + 15]
        c.snd_wl1 = 0
        c.smss = mss
        # RFC 5681 §3.1 initial window
        iw = 2 * mss if 2 * mss > 4380 else 4380
        c.cwnd = iw if iw < 4 * mss else 4 * mss

    def _syn_sent(self, c, rx, ip, fl, dlen, mss, now):
        """RFC 9293 §3.10.7.3."""
        t = ip + 40
        a = 0
        if fl & _ACK:
            a = _rel(rx, t + 8, c.sb)
            if a <= 0 or a > c.snd_max:
                self._reset(rx, ip, fl, dlen)
                return
            if fl & _RST:
                self.cnt[_C_RST_RX] += 1
                self._closed(c, _E_REFUSED)
                return
        elif fl & _RST:
            return
        if not fl & _SYN:
            return
        self._synced(c, rx, t, mss)
        if fl & _ACK:
            c.snd_wl2 = a
            c.state = _ESTAB
            if c.tries:
                c.cwnd = c.smss  # RFC 5681 §3.1: one segment after a lost SYN
                if c.rto < 3000:
                    c.rto = 3000  # RFC 6298 §5.7: the SYN was sent again (so no sample)
            self._ack(c, a, now)
            c.ack_now = 1
        else:
            c.state = _SYN_RCVD  # simultaneous open: SYN,ACK with our ISS
            c.snd_nxt = 0

    def _other(self, c, rx, ip, hl, fl, dlen, now):
        """RFC 9293 §3.10.7.4, the synchronized states and SYN-RECEIVED."""
        cnt = self.cnt
        t = ip + 40
        st = c.state
        seq = _rel(rx, t + 4, c.rb)
        slen = dlen + ((fl >> 1) & 1) + (fl & _FIN)
        nxt = c.rcv_nxt
        wnd = c.rcv_adv - nxt
        if st == _SYN_RCVD and fl & (_SYN | _ACK) == _SYN and seq == 0:
            c.snd_nxt = 0  # the peer sent its SYN again: our SYN,ACK was lost
            return
        # first: the sequence number (a zero window still takes SEG.SEQ = RCV.NXT)
        ok = seq == nxt
        if not ok and wnd > 0:
            ok = nxt <= seq < nxt + wnd or (slen > 0 and nxt <= seq + slen - 1 < nxt + wnd)
        if not ok:
            cnt[_C_UNACCEPTABLE] += 1
            if not fl & _RST:
                c.ack_now = 1
                if st == _TIME_WAIT and fl & _FIN:
                    c.t_rtx = _add(now, self.time_wait_ms)  # the FIN again: restart 2*MSL
            return
        # second: RST; only the exact one counts, others get a challenge (RFC 5961 §3.2)
        if fl & _RST:
            cnt[_C_RST_RX] += 1
            if seq != nxt:
                cnt[_C_CHALLENGE] += 1
                c.ack_now = 1
                return
            # RFC 9293 §3.10.7.4 second: in SYN-RECEIVED a passive open goes
            # back to LISTEN (the queue slot ends quietly), an active one was refused
            self._closed(c, _E_RESET if st != _SYN_RCVD else 0 if c.lst >= 0 else _E_REFUSED)
            return
        # fourth: a SYN here gets a challenge ACK (RFC 5961 §4)
        if fl & _SYN:
            cnt[_C_CHALLENGE] += 1
            c.ack_now = 1
            return
        # fifth: the ACK
        if not fl & _ACK:
            return
        a = _rel(rx, t + 8, c.sb)
        w = (rx[t + 14] << 8) | rx[t + 15]
        if st == _SYN_RCVD:
            if a <= c.snd_una or a > c.snd_max:
                self._reset(rx, ip, fl, dlen)
                return
            # (a close() in SYN-RECEIVED queued its FIN: RFC 9293 §3.10.4)
            c.state = st = _FIN_WAIT_1 if c.fin else _ESTAB
            if c.tries:
                c.cwnd = c.smss  # RFC 5681 §3.1: our SYN,ACK was lost
            c.snd_wl1 = seq
            c.snd_wl2 = a
            c.snd_wnd = w
        if a > c.snd_max:
            c.ack_now = 1  # acknowledges what we never sent
            return
        if a < c.snd_una - c.max_wnd:
            # RFC 5961 §5.2: older than any window the peer offered (also an
            # ACK beyond SND.NXT by nearly 2**31, whose offset from the origin
            # wraps): an ACK back, the segment dropped
            cnt[_C_CHALLENGE] += 1
            c.ack_now = 1
            return
        if a > c.snd_una:
            self._ack(c, a, now)
        elif a == c.snd_una and slen == 0 and w and w == c.snd_wnd and c.snd_max > a:
            self._dupack(c, a, now)
        if c.snd_wl1 < seq or (c.snd_wl1 == seq and c.snd_wl2 <= a):
            c.snd_wnd = w
            c.snd_wl1 = seq
            c.snd_wl2 = a
            if w > c.max_wnd:
                c.max_wnd = w
            if w and c.persist:
                # the window opened: send again from SND.UNA (a probe byte
                # may be out, not taken)
                c.persist = 0
                c.snd_nxt = c.snd_una
                c.t_rtx = -1
        if c.fin and c.snd_una > c.tx_seq + c.tx_len:  # our FIN is acknowledged
            if st == _FIN_WAIT_1:
                c.state = st = _FIN_WAIT_2
            elif st == _CLOSING:
                self._time_wait(c, now)
                return
            elif st == _LAST_ACK:
                self._closed(c, 0)
                return
        # seventh: the text, eighth: the FIN
        if dlen and _ESTAB <= st <= _FIN_WAIT_2:
            self._data(c, rx, t + hl, seq, dlen, fl, now)
        if fl & _FIN and seq + dlen == c.rcv_nxt and _ESTAB <= st <= _FIN_WAIT_2:
            self._fin(c, now)
        self._rebase(c)

    def _ack(self, c, a, now):
        """New data acknowledged: SND.UNA < a <= SND.MAX."""
        acked = a - c.snd_una
        if c.snd_una < c.tx_seq:  # (not snd_una == 0: a rebase makes that 0 too)
            acked -= 1  # our SYN: not data, no slow-start growth (RFC 5681 §3.1)
        k = a - c.tx_seq
        if k > c.tx_len:
            k = c.tx_len  # the FIN takes a number, not a byte
        if k > 0:
            c.tx_head = (c.tx_head + k) % c.txn
            c.tx_len -= k
            c.tx_seq += k
            c.tx_bytes = (c.tx_bytes + k) & _MASK30
        c.snd_una = a
        if c.snd_nxt < a:
            c.snd_nxt = a
        c.tries = 0
        if c.rtt_seq >= 0 and a >= c.rtt_seq:
            # RFC 6298 §2.2/§2.3, in ms; rttvar holds 4*RTTVAR, so RTO = SRTT + rttvar
            r = _diff(now, c.rtt_t)
            if r > 0xFFFFF:
                r = 0xFFFFF
            if r < 1:
                r = 1
            if c.srtt == 0:
                c.srtt = r << 3
                c.rttvar = r << 1
            else:
                r -= c.srtt >> 3
                c.srtt += r
                if r < 0:
                    r = -r
                c.rttvar += r - (c.rttvar >> 2)
            r = (c.srtt >> 3) + (c.rttvar if c.rttvar > 1 else 1)
            c.rto = self.rto_min_ms if r < self.rto_min_ms else (
                self.rto_max_ms if r > self.rto_max_ms else r)
            c.rtt_seq = -1
        # RFC 5681 §3.1 growth; RFC 6582 ends fast recovery (a partial ACK
        # sends the next hole at once)
        if c.dupacks >= 3:
            if a < c.recover:
                self._seg(c, a, c.smss, now)
                c.cwnd = c.cwnd - acked + c.smss if acked < c.cwnd else c.smss
            else:
                c.cwnd = c.ssthresh
                c.dupacks = 0
        else:
            c.dupacks = 0
            if c.cwnd < c.ssthresh:
                c.cwnd += acked if acked < c.smss else c.smss
            elif acked and c.cwnd < 0x10000:
                c.cwnd += c.smss * c.smss // c.cwnd + 1
        # RFC 6298 §5.2/§5.3
        c.persist = 0
        c.t_rtx = -1 if a == c.snd_max else _add(now, c.rto)

    def _dupack(self, c, a, now):
        """RFC 5681 §3.2: the third duplicate ACK sends the hole again."""
        self.cnt[_C_DUP_ACK] += 1
        c.dupacks += 1
        if c.dupacks == 3:
            if a < c.recover:
                c.dupacks = 0  # still the loss we recovered from (RFC 6582 §3.2)
                return
            self.cnt[_C_FAST_RETRANSMIT] += 1
            fl = (c.snd_max - a) // 2
            c.ssthresh = fl if fl > 2 * c.smss else 2 * c.smss
            c.recover = c.snd_max
            c.rtt_seq = -1
            self._seg(c, a, c.smss, now)
            c.cwnd = c.ssthresh + 3 * c.smss
        elif c.dupacks > 3:
            c.cwnd += c.smss  # each one left the network

    def _data(self, c, rx, d, seq, dlen, fl, now):
        """Segment text inside the window into the receive ring."""
        nxt = c.rcv_nxt
        k = nxt - seq
        if k > 0:
            d += k
            dlen -= k
            seq = nxt
        k = c.rcv_adv - seq
        if dlen > k:
            dlen = k
            fl = 0  # trimmed: the FIN is beyond the window
            c.ack_now = 1  # and the peer learns our window
        if dlen <= 0:
            return
        N = c.rxn
        p = (c.rx_head + c.rx_len + seq - nxt) % N
        m = N - p
        if m >= dlen:
            _copy(c.rxb, p, rx, d, dlen)
        else:
            _copy(c.rxb, p, rx, d, m)
            _copy(c.rxb, 0, rx, d + m, dlen - m)
        e = seq + dlen
        a = c.ooo_a
        b = c.ooo_b
        if seq == nxt:
            fin = 0
            if b > a and a <= e:
                if b >= e:  # the hole is filled: ACK at once (RFC 5681 §4.2)
                    e = b
                    fin = c.ooo_fin
                c.ooo_a = c.ooo_b = 0
                c.ack_now = 1
            k = e - nxt
            c.rcv_nxt = e
            c.rx_bytes = (c.rx_bytes + k) & _MASK30
            if c.user == 2:  # closed by the app: nobody reads, keep the window open
                c.rx_head = (c.rx_head + c.rx_len + k) % N
                c.rx_len = 0
            else:
                c.rx_len += k
            # RFC 9293 §3.8.6.3: ACK every second segment at once, delay the others
            c.acks += 1
            if c.acks >= 2:
                c.ack_now = 1
            elif c.t_ack < 0:
                c.t_ack = _add(now, self.ack_delay_ms)
            if fin:
                self._fin(c, now)
            return
        self.cnt[_C_OOO] += 1
        c.ack_now = 1  # a duplicate ACK at once (RFC 5681 §4.2)
        if b <= a or e < a or seq > b:  # no range, or apart from it: keep the nearer one
            if b <= a or seq < a:
                c.ooo_a = seq
                c.ooo_b = e
                c.ooo_fin = fl & _FIN
        else:
            if seq < a:
                c.ooo_a = seq
            if e >= b:
                c.ooo_b = e
                c.ooo_fin = fl & _FIN

    def _fin(self, c, now):
        """RFC 9293 §3.10.7.4 eighth: the peer's FIN, in sequence."""
        c.rcv_nxt += 1
        c.ack_now = 1
        st = c.state
        if st == _ESTAB:
            c.state = _CLOSE_WAIT
        elif st == _FIN_WAIT_1:
            c.state = _CLOSING
        elif st == _FIN_WAIT_2:
            self._time_wait(c, now)

    def _time_wait(self, c, now):
        c.state = _TIME_WAIT
        c.t_rtx = _add(now, self.time_wait_ms)
        c.t_ack = -1
        c.persist = 0

    def _rebase(self, c):
        """Move the origins forward so that the offsets stay small ints."""
        k = c.rcv_nxt
        if k > REBASE:
            _put(c.rb, 0, c.rb, 0, k)
            c.rcv_nxt = 0
            c.rcv_adv -= k
            c.snd_wl1 -= k
            c.ooo_a -= k
            c.ooo_b -= k
        k = c.snd_una
        if k > REBASE:
            _put(c.sb, 0, c.sb, 0, k)
            c.snd_una = 0
            c.snd_nxt -= k
            c.snd_max -= k
            c.tx_seq -= k
            c.snd_wl2 -= k
            c.recover -= k
            if c.rtt_seq >= 0:
                c.rtt_seq -= k

    # ---- segments out ----------------------------------------------------------

    def _out(self, c, now):
        """Send what the state, the windows and the ACKs due allow."""
        st = c.state
        c.pend = 0
        if st == _SYN_SENT or st == _SYN_RCVD:
            if c.snd_nxt == 0:
                if not self._xmit(c, 0, 0, _SYN if st == _SYN_SENT else _SYN | _ACK, now):
                    return
                c.snd_nxt = 1
                if c.snd_max == 0:  # time the first SYN only (Karn)
                    c.snd_max = 1
                    c.rtt_seq = 1
                    c.rtt_t = now
                if c.t_rtx < 0:
                    c.t_rtx = _add(now, c.rto)
        elif _ESTAB <= st <= _LAST_ACK:
            end = c.tx_seq + c.tx_len
            una = c.snd_una
            while True:
                nxt = c.snd_nxt
                n = end - nxt
                if n > 0:
                    w = c.snd_wnd if c.snd_wnd < c.cwnd else c.cwnd
                    w -= nxt - una
                    if n > w:
                        n = w
                    if n > c.smss:
                        n = c.smss
                    if n <= 0:
                        break
                    # sender SWS avoidance and Nagle (RFC 9293 §3.8.6.2.1,
                    # §3.7.4): a small segment waits while data is in flight,
                    # unless it is all there is and Nagle is off, or it is half
                    # the largest window the peer offered
                    if nxt != una and n < c.smss and 2 * n < c.max_wnd and (
                            n < end - nxt or (self.nagle and not c.nodelay)):
                        break
                elif not c.fin or nxt > end:
                    break
                r = self._seg(c, nxt, n, now)
                if r < 0:
                    return
                if nxt == c.snd_max and c.rtt_seq < 0:
                    c.rtt_seq = r
                    c.rtt_t = now
                c.snd_nxt = r
                if r > c.snd_max:
                    c.snd_max = r
                if c.t_rtx < 0:
                    c.t_rtx = _add(now, c.rto)
            if c.snd_wnd == 0 and end > c.snd_nxt and c.snd_nxt == una and c.t_rtx < 0:
                c.persist = 1  # a zero window: probe it (RFC 9293 §3.8.6.1)
                c.t_rtx = _add(now, c.rto)
        if c.ack_now and st >= _SYN_RCVD:
            self._xmit(c, c.snd_nxt, 0, _ACK, now)

    def _seg(self, c, seq, lim, now):
        """Send the segment starting at seq: at most lim bytes (and the SMSS)
        of the ring, with FIN when it reaches the end of a closed stream.
        Returns the number after it, or -1 when nothing went out."""
        end = c.tx_seq + c.tx_len
        n = end - seq
        if n > lim:
            n = lim
        if n > c.smss:
            n = c.smss
        if n < 0:
            n = 0
        f = _ACK
        if n and seq + n == end:
            f = _ACK | _PSH
        if c.fin and seq + n == end:
            f |= _FIN
        elif n == 0:
            return -1
        if not self._xmit(c, seq, n, f, now):
            return -1
        return seq + n + (f & _FIN)

    def _wnd(self, c):
        """The window to offer; its right edge moves only by wthr or more
        (receiver SWS avoidance, RFC 9293 §3.8.6.2.2) and never back."""
        edge = c.rcv_nxt + c.rxn - c.rx_len
        if edge - c.rcv_adv >= self.wthr:
            c.rcv_adv = edge
        w = c.rcv_adv - c.rcv_nxt
        return w if w > 0 else 0

    def _xmit(self, c, seq, n, fl, now):
        """Build and send one segment: sequence offset seq, n bytes of the
        transmit ring from there, flags fl.  False when the arena is full."""
        net = self.net
        hl = 24 if fl & _SYN else 20
        k = 40 + hl + n
        o = net.tx_alloc(k)
        if o < 0:
            c.pend = 1  # on_timer sends it once the shell has drained the arena
            self.cnt[_C_TX_FULL] += 1
            return False
        a = net.arena
        u = self._ip6(a, o, hl + n, c.raddr, 0)
        a[u] = c.lport >> 8
        a[u + 1] = c.lport & 0xFF
        a[u + 2] = c.rport >> 8
        a[u + 3] = c.rport & 0xFF
        _put(a, u + 4, c.sb, 0, seq)
        if fl & _ACK:
            _put(a, u + 8, c.rb, 0, c.rcv_nxt)
            c.ack_now = 0
            c.acks = 0
            c.t_ack = -1
        else:
            a[u + 8] = a[u + 9] = a[u + 10] = a[u + 11] = 0
        a[u + 12] = hl << 2
        a[u + 13] = fl
        w = self._wnd(c)
        a[u + 14] = w >> 8
        a[u + 15] = w & 0xFF
        a[u + 18] = a[u + 19] = 0
        if hl == 24:
            a[u + 20] = 2  # MSS option (RFC 9293 §3.2)
            a[u + 21] = 4
            a[u + 22] = self.mss >> 8
            a[u + 23] = self.mss & 0xFF
        if n:
            N = c.txn
            i = (c.tx_head + seq - c.tx_seq) % N
            m = N - i
            d = u + hl
            if m >= n:
                _copy(a, d, c.txb, i, n)
            else:
                _copy(a, d, c.txb, i, m)
                _copy(a, d + m, c.txb, 0, n - m)
        self._finish(o, k, now)
        return True

    def _reset(self, rx, ip, fl, dlen):
        """RST for a segment that has no connection or an unacceptable ACK
        (RFC 9293 §3.10.7.1): <SEQ=SEG.ACK><CTL=RST> when it had an ACK, else
        <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.  Never for a RST."""
        if fl & _RST:
            return
        net = self.net
        o = net.tx_alloc(60)
        if o < 0:
            self.cnt[_C_TX_FULL] += 1
            return
        a = net.arena
        t = ip + 40
        u = self._ip6(a, o, 20, rx, ip + 8)
        a[u] = rx[t + 2]
        a[u + 1] = rx[t + 3]
        a[u + 2] = rx[t]
        a[u + 3] = rx[t + 1]
        for i in range(4, 20):
            a[u + i] = 0
        if fl & _ACK:
            _copy(a, u + 4, rx, t + 8, 4)
            a[u + 13] = _RST
        else:
            _put(a, u + 8, rx, t + 4, dlen + ((fl >> 1) & 1) + (fl & _FIN))
            a[u + 13] = _RST | _ACK
        a[u + 12] = 0x50
        self.cnt[_C_RST_TX] += 1
        self._finish(o, 60, self.now)

    def _ip6(self, a, o, plen, dst, d):
        """IPv6 header at a[o] to dst[d:d+16]; returns the TCP header offset."""
        a[o] = 0x60
        a[o + 1] = a[o + 2] = a[o + 3] = 0
        a[o + 4] = plen >> 8
        a[o + 5] = plen & 0xFF
        a[o + 6] = proto.NH_TCP
        a[o + 7] = proto.HOP_LIMIT
        a[o + 8:o + 24] = self.net.address
        _copy(a, o + 24, dst, d, 16)
        return o + 40

    def _finish(self, o, k, now):
        """Checksum (RFC 8200 §8.1 pseudo-header) and hand the packet over."""
        a = self.net.arena
        wire.set_l4_checksum(a, o, proto.NH_TCP, k - 40, o + 56)
        self.cnt[_C_TX] += 1
        if self.net.tx_send(o, k, now):
            self.cnt[_C_TX_REFUSED] += 1  # lost like on the wire; retransmission mends it

    # ---- slots ------------------------------------------------------------------

    def _conn(self, cid):
        s = cid & 15
        if cid >= 0 and s < len(self.conns):
            c = self.conns[s]
            if c.cid == cid and c.user == 1:
                return c
        raise ValueError("no connection %r (closed or never opened)" % cid)

    def _slot(self, L, now):
        """A slot for a new connection of listener L (-1: connect), or None."""
        q = 0
        half = free = tw = anyhalf = orphan = None
        for c in self.conns:
            s = c.state
            if s == _CLOSED:
                if c.user == 0 and free is None:
                    free = c
                continue
            if c.lst == L and L >= 0 and c.user == 0:
                q += 1
                if s == _SYN_RCVD:
                    half = _older(half, c)
            if s == _TIME_WAIT and c.user != 1:
                tw = _older(tw, c)
            elif s == _SYN_RCVD and c.lst >= 0:
                anyhalf = _older(anyhalf, c)
            elif c.user == 2:
                orphan = _older(orphan, c)  # closed by the app, still closing
        if L >= 0 and q >= self.lback[L]:
            v = half  # the listener is full: its oldest half-open one goes
        else:
            v = free or tw or anyhalf or orphan
        if v is not None and v.state != _CLOSED:
            if v.state != _TIME_WAIT:
                self.cnt[_C_EVICTED] += 1
            if v.user == 2:
                self._abort(v, _E_EVICTED, now)
            self._closed(v, _E_EVICTED)
        return v

    def _open(self, c, src, so, rport, lport, now):
        s = c.cid & 15
        c.clear(now)
        c.cid = ((((c.cid >> 4) + 1) & 0xFFFFF) << 4) | s
        self.born = (self.born + 1) & _MASK30
        c.born = self.born
        _copy(c.raddr, 0, src, so, 16)
        c.rport = rport
        c.lport = lport
        for i in range(0, 4, 2):  # a random ISS (RFC 9293 §3.4.1, RFC 6528)
            v = self.rand(16)
            c.sb[i] = v >> 8
            c.sb[i + 1] = v & 0xFF
        c.rto = self.rto_init_ms

    def _port(self):
        """An ephemeral port (RFC 6335 §6: 49152..65535) no connection uses."""
        p = self.eph
        while True:
            p = (p + 1) & 0x3FFF
            for c in self.conns:
                if c.state != _CLOSED and c.lport == p + 49152:
                    break
            else:
                self.eph = p
                return p + 49152

    def _abort(self, c, err, now):
        if _SYN_RCVD <= c.state <= _LAST_ACK:
            self.cnt[_C_RST_TX] += 1
            self._xmit(c, c.snd_nxt, 0, _RST, now)  # RFC 9293 §3.10.5 <SEQ=SND.NXT><CTL=RST>
        self._closed(c, err)

    def _closed(self, c, err):
        c.state = _CLOSED
        c.err = err
        c.t_rtx = c.t_ack = -1
        c.pend = c.ack_now = c.persist = 0
        if c.user != 1:
            c.user = 0


def _older(a, b):
    return b if a is None or _diff(b.born, a.born) < 0 else a


def _min(d, t):
    """The earlier of two deadlines, -1 meaning none."""
    if t < 0:
        return d
    if d < 0 or _diff(t, d) < 0:
        return t
    return d
