# The I/O shell (teredo.iface) held to its exact behaviour, over doubles of
# the poller, the socket, the socket module, the clock and the core: the
# UDPSocket's errnos, blocking reads and ioctl, feed, the receive path (tuple
# addresses and the unix port's struct sockaddr), flush and its sockaddr
# cache, open, close, status, resolving names, poll's wait, dispatch and
# timers, watch/unwatch, next_deadline with a TCP.  The rest (the receive
# queue, timeouts, up, ping, ...): test_mut_iface_b.py, split for the heap of
# the MicroPython runs.  Runs on CPython and on the MicroPython unix port.
import sys

from teredo import iface, wire
from teredo.client import DROP_NAMES, EV_ECHO_REPLY, EV_TCP, EV_UDP
from harness import ON_MP, RELAY, SERVER, V6HOST, Rand, ip4, ip6


class Poller:
    """select.poll's double: records registrations and waits; poll() lets
    tick(wait) pass the time and returns the next scripted events."""

    def __init__(self, tick=None):
        self.reg = []
        self.unreg = []
        self.waits = []
        self.events = []
        self.tick = tick
        self.fail = None  # what unregister raises

    def register(self, obj, flags):
        self.reg.append((obj, flags))

    def unregister(self, obj):
        self.unreg.append(obj)
        if self.fail is not None:
            raise self.fail

    def poll(self, wait):
        self.waits.append(wait)
        if len(self.waits) > 3000:
            raise AssertionError("the loop never ends")
        if self.tick is not None:
            self.tick(wait)
        return self.events.pop(0) if self.events else []


class Sock:
    """The Interface's UDP socket double: scripted datagrams (data, source),
    then EAGAIN; what is sent is kept."""

    def __init__(self, rx=()):
        self.rx = list(rx)
        self.out = []
        self.calls = []
        self.empty = 0
        self.closed = False

    def _next(self, kind):
        self.calls.append(kind)
        if not self.rx:
            self.empty += 1
            if self.empty > 20:
                raise AssertionError("reads on after EAGAIN")
            raise OSError(iface.EAGAIN, "no datagram")
        return self.rx.pop(0)

    def recvfrom_into(self, buf):
        d, src = self._next("into")
        k = len(d) if len(d) < len(buf) else len(buf)
        buf[0:k] = d[0:k]
        return k, src

    def recvfrom(self, n):
        d, src = self._next("from")
        return memoryview(d)[:n], src

    def sendto(self, data, a):
        self.out.append((bytes(data), a))
        if len(self.out) == self.fail_at:
            raise OSError(105, "no buffer space")

    fail_at = 0

    def close(self):
        self.closed = True


class Fd:
    """A stream with a file descriptor (what CPython's poll reports)."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


class Plain:
    """A stream without fileno (MicroPython's poll reports the object)."""


class Core:
    """The client core's double for feed() and flush(): a scripted event,
    scripted datagrams to send."""

    def __init__(self):
        self.ev = EV_UDP
        self.rx = bytearray(64)
        self.ev_dport = 7
        self.ev_src = 8
        self.ev_sport = 0x1234
        self.ev_off = 24
        self.ev_len = 5
        self.ev_seq = 0
        self.drops = [0] * len(DROP_NAMES)
        self.tx = []
        self.tx_addr = None

    def on_datagram(self, data, n, src4, sport, now):
        return self.ev

    def pop_tx(self):
        if not self.tx:
            return 0
        self.tx_addr, d = self.tx.pop(0)
        self.tx_mv = memoryview(d)
        self.tx_off = 0
        return len(d)

    def bind(self, port):
        pass

    def unbind(self, port):
        pass


class TCP:
    """teredo.tcp's double: its deadline, and what the shell hands it."""

    def __init__(self):
        self.at = None
        self.ticks = []
        self.segs = []

    def next_deadline(self):
        return self.at

    def on_timer(self, now):
        self.ticks.append(now)

    def on_segment(self, rx, a, b, now):
        self.segs.append((a, b, now))


class Time:
    """The time module's double for _sleep_ms (sleep, and sleep_ms when ms)."""

    def __init__(self, log, ms):
        self.log = log
        if ms:
            self.sleep_ms = lambda t: log.append(("ms", t))

    def sleep(self, s):
        self.log.append(("s", s))


def shell(**opts):
    """(Interface, clock, poller) over doubles, not opened: the clock is
    clk[0], the poller passes the time it is asked to wait."""
    clk = [1000]

    def tick(w):
        if w > 0:
            clk[0] += w

    i = iface.Interface(SERVER, rand=Rand(7), udp=Sock(), clock=lambda: clk[0], queue_slots=1,
                        max_peers=2, **opts)
    p = Poller(tick)
    i.poller = p
    return i, clk, p


def slot(s, n, sport, last):
    """Queue an n-byte datagram in s as the core hands it over: source
    2001:db8::...:last, payload bytes (k & 0xFF)."""
    rx = bytearray(16 + n)
    rx[0:2] = b"\x20\x01"
    rx[2:4] = b"\x0d\xb8"
    rx[15] = last
    for k in range(n):
        rx[16 + k] = k & 0xFF
    s._push(rx, 0, sport, 16, n)


def err(f, *a):
    try:
        f(*a)
    except OSError as e:
        return e.args
    raise AssertionError("no OSError")


def test_sleep_ms_uses_sleep_ms_or_seconds_and_poll_sleeps_without_a_socket():
    saved = iface.time
    log = []
    i, clk, p = shell()
    try:
        iface.time = Time(log, False)
        iface._sleep_ms(500)
        iface.time = Time(log, True)
        iface._sleep_ms(7)
        i.on_change = lambda it: log.append(it.client.changes)
        # no socket, nothing watched: poll sleeps what it was asked, never 0
        assert i.poll(0) == 0 and i.poll(1) == 0 and i.poll(30) == 0
    finally:
        iface.time = saved
    assert log == [("s", 0.5), ("ms", 7), 0, ("ms", 1), ("ms", 30)] and p.waits == []


def test_socket_errnos_before_qualification_and_after_close():
    i, clk, p = shell()
    s = i.socket(7, rxq=1)
    assert err(s.sendto, bytes(iface.UDP_MAX + 1), (V6HOST, 9)) == (
        iface.EMSGSIZE, "UDP payload over 1232 bytes (Teredo MTU 1280)")
    assert err(s.sendto, b"x", (V6HOST, 9)) == (iface.ENOTCONN, "not qualified")
    assert err(i.socket, 7) == (iface.EADDRINUSE, "UDP port 7 is already bound")
    s.settimeout(0)
    assert err(s.recvfrom, 10) == (iface.EAGAIN, "no datagram queued")
    s.close()
    assert s.closed and err(s.recvfrom, 10) == (iface.ENOTCONN, "socket closed")
    assert err(s.sendto, b"x", (V6HOST, 9)) == (iface.ENOTCONN, "socket closed")
    i.socket(7, rxq=1).close()  # the port is free again
    assert i.status()["sockets"] == [] and p.waits == []
    assert (iface.EAGAIN, iface.ETIMEDOUT, iface.ENOTCONN, iface.EADDRINUSE) == (11, 110, 107, 98)
    assert (iface.EMSGSIZE, iface.EHOSTUNREACH) == (90, 113)


def test_blocking_socket_polls_a_second_at_a_time_until_a_datagram():
    i, clk, p = shell()
    s = i.socket(7, rxq=1)
    s.settimeout(0)
    s.settimeout(None)  # blocking again
    polls = []

    def poll(ms=0):
        polls.append(ms)
        if len(polls) > 5:
            raise AssertionError("never returned")
        if len(polls) == 2:
            slot(s, 3, 53, 1)

    i.poll = poll
    assert s.recvfrom(10) == (b"\x00\x01\x02", ("2001:db8::1", 53)) and polls == [1000, 1000]
    s.setblocking(False)
    assert err(s.recvfrom, 10)[0] == iface.EAGAIN
    s.setblocking(True)
    polls[:] = []
    assert s.recvfrom(10)[1] == ("2001:db8::1", 53) and polls == [1000, 1000]


def test_ioctl_speaks_micropythons_stream_protocol():
    i, clk, p = shell()
    s = i.socket(7, rxq=1)
    assert s.ioctl(3, 1) == 0
    slot(s, 1, 1, 1)
    assert s.ioctl(3, 1 | 4) == 1  # MP_STREAM_POLL, POLLIN | POLLOUT: readable, not qualified
    assert s.ioctl(99, 0) == -1 and not s.closed
    assert s.ioctl(4, 0) == 0 and s.closed  # MP_STREAM_CLOSE
    assert i.status()["sockets"] == []


def test_feed_hands_udp_tcp_and_echo_replies_on():
    i, clk, p = shell()
    assert i.last_pong() == (-1, 0)
    c = Core()
    i.client = c
    s = i.socket(7, rxq=1)
    s.setblocking(False)
    c.rx[8:24] = ip6(V6HOST)
    c.rx[24:29] = b"hello"
    assert i.feed(b"x", 1, ip4(RELAY), 3544, 1000) == EV_UDP
    assert s.recvfrom(64) == (b"hello", (V6HOST, 0x1234))
    c.ev = EV_TCP
    i.feed(b"x", 1, ip4(RELAY), 3544, 1000)  # no TCP: counted as unsupported
    assert c.drops[wire.UNSUPPORTED] == 1
    t = TCP()
    i.tcp = t
    i.feed(b"x", 1, ip4(RELAY), 3544, 1001)
    assert t.segs == [(24, 29, 1001)] and c.drops[wire.UNSUPPORTED] == 1
    c.ev = EV_ECHO_REPLY
    c.ev_seq = 9
    i.feed(b"x", 1, ip4(RELAY), 3544, 1234)
    assert i.last_pong() == (9, 1234)


def test_receive_reads_bursts_of_16_with_tuple_sources():
    i, clk, p = shell()
    rx = [(b"\x01" * 1401, ("198.51.100.20", 3544)), (b"\x02\x03", ("198.51.100.20", 3545))]
    for k in range(18):
        rx.append((bytes([k]), ("203.0.113.9", 9 + k)))
    sock = Sock(rx)
    i.sock = sock
    got = []

    def feed(data, n, src4, sport, now):
        got.append(((n, data[0], data[n - 1]), src4, bytes(src4), sport, now))

    i.feed = feed
    assert i.receive(1000) == 16 and len(got) == 16
    assert got[0][0] == (1400, 1, 1) and got[1][0] == (2, 2, 3)  # RX_MAX: 1400
    assert got[0][1] is got[1][1]  # the last source's parse is reused
    assert got[1][2] == ip4("198.51.100.20") and got[2][2] == ip4("203.0.113.9")
    assert [g[3] for g in got[:4]] == [3544, 3545, 9, 10] and got[15][0] == (1, 13, 13)
    assert i.receive(1001) == 4 and got[19][4] == 1001 and got[19][3] == 26
    assert i.receive(1002) == 0 and sock.empty == 2
    assert sock.calls[0] == ("from" if ON_MP else "into")
    i.sock = None
    assert i.receive(1003) == 0


def test_receive_parses_the_unix_ports_struct_sockaddr():
    i = iface.Interface(SERVER, queue_slots=1, max_peers=2)  # no socket given: the platform's kind
    i.poller = Poller()
    sa1 = bytes([2, 0, 0x0D, 0x96, 198, 51, 100, 20]) + bytes(8)
    sa2 = bytes([2, 0, 0xAB, 0xCD, 10, 20, 30, 40]) + bytes(8)
    native = ON_MP and sys.platform == "linux"
    i.sock = Sock([(b"a", sa1 if native else ("198.51.100.20", 3478))])
    got = []
    i.feed = lambda data, n, src4, sport, now: got.append((bytes(src4), sport))
    assert i.receive(5) == 1
    i._tuple_addr = False  # as on the unix port
    i.sock = Sock([(b"b", sa2), (b"c", sa1)])
    assert i.receive(6) == 2
    assert got == [(bytes([198, 51, 100, 20]), 3478), (bytes([10, 20, 30, 40]), 0xABCD),
                   (bytes([198, 51, 100, 20]), 3478)]
    i.close()


class SockMod:
    """The socket module's double: getaddrinfo gives a marked struct
    sockaddr first (a decoy after it); sockets record what is done."""
    AF_INET = 2
    SOCK_DGRAM = 2
    IPPROTO_IP = 0

    def __init__(self):
        self.asked = []
        self.made = []
        self.bind_error = None
        self.opt_error = None

    def getaddrinfo(self, host, port):
        self.asked.append((host, port))
        return [(2, 2, 17, "canon", ("sa", host, port)), (10, 1, 6, "", ("decoy",))]

    def socket(self, fam, typ):
        s = RealSock(self)
        self.made.append(s)
        return s


class RealSock(Sock):
    def __init__(self, mod):
        Sock.__init__(self)
        self.mod = mod
        self.log = []

    def bind(self, a):
        self.log.append(("bind", a))
        if self.mod.bind_error is not None:
            raise self.mod.bind_error

    def setblocking(self, flag):
        self.log.append(("blocking", flag))

    def setsockopt(self, level, opt, v):
        self.log.append(("opt", level, opt, v))
        if self.mod.opt_error is not None:
            raise self.mod.opt_error

    def fileno(self):
        return 42


def test_flush_sends_to_tuples_or_cached_sockaddrs():
    i, clk, p = shell()
    c = Core()
    i.client = c
    sock = Sock()
    i.sock = sock
    m = SockMod()
    saved = iface.socket
    try:
        iface.socket = m
        c.tx = [(("198.51.100.10", 3544), b"ab")]
        i.flush()
        assert sock.out == [(b"ab", ("198.51.100.10", 3544))] and m.asked == []
        i._tuple_addr = False  # the unix port's socket speaks struct sockaddr
        sock.out = []
        c.tx = [(("10.0.0.%d" % k, 3544), b"x") for k in range(17)] + [(("10.0.0.0", 3544), b"y")]
        i.flush()
        assert len(m.asked) == 17 and sock.out[17] == (b"y", ("sa", "10.0.0.0", 3544))
        c.tx = [(("10.0.0.99", 3544), b"z"), (("10.0.0.0", 3544), b"w")]
        i.flush()  # a 17-entry cache is cleared before the 18th
        assert m.asked[17:] == [("10.0.0.99", 3544), ("10.0.0.0", 3544)]
        sock.out = []
        sock.fail_at = 1
        c.tx = [(("10.0.0.0", 3544), b"1"), (("10.0.0.0", 3544), b"2")]
        i.flush()  # a send that fails is left to Teredo's retries
        assert [o[0] for o in sock.out] == [b"1", b"2"]
        i.sock = None
        c.tx = [(("10.0.0.1", 1), b"q")]
        i.flush()  # no socket: drained, not sent
        assert c.tx == [] and len(sock.out) == 2
    finally:
        iface.socket = saved


def test_open_binds_nonblocking_without_df_and_reports_a_port_in_use():
    m = SockMod()
    saved = iface.socket
    i = iface.Interface(SERVER, port=4000, rand=Rand(7), clock=lambda: 5, queue_slots=1, max_peers=2)
    p = Poller()
    i.poller = p
    try:
        iface.socket = m
        m.opt_error = OSError(22, "EINVAL")
        i.open()
        s = m.made[0]
        want = [("bind", ("sa", "0.0.0.0", 4000)), ("blocking", False)]
        if not ON_MP:  # RFC 4380 §5.1.2: IP_MTU_DISCOVER (10) = IP_PMTUDISC_DONT (0)
            want.append(("opt", 0, 10, 0))
        assert s.log == want and p.reg == [(s, 1)] and i.sock is s and i._fd == 42
        m.opt_error = AttributeError("setsockopt")
        i.open()  # the first socket is closed and a second opened
        assert s.closed and p.unreg == [s] and i.sock is m.made[1]
        m.bind_error = OSError(iface.EADDRINUSE, "in use")
        try:
            i.open()
        except OSError as e:
            why = e.args[1]
            assert e.args[0] == iface.EADDRINUSE
        else:
            raise AssertionError("bound a port in use")
        assert why.startswith("cannot bind UDP port 4000 (") and why.endswith("): pick another port")
        assert m.made[2].closed and i.sock is None and i.error == why
        st = i.status()
        assert st["state"] == "offline" and st["error"] == why
    finally:
        iface.socket = saved


def test_close_socket_closes_both_sockets_whatever_unregister_raises():
    i, clk, p = shell()
    i.open(1000)
    assert i.status()["local_discovery"] == "off: no LAN address yet"
    for e in (OSError(2, "x"), ValueError("x"), KeyError(3)):
        a = Sock()
        b = Sock()
        i.sock = a
        i.msock = b
        p.fail = e
        i.close_socket()
        assert a.closed and b.closed and i.sock is None and i.msock is None
    assert p.unreg[-2:] == [a, b] and i.status()["local_discovery"] == "off: socket closed"


def test_close_closes_app_sockets_and_cancels_the_task():
    i, clk, p = shell()
    s = i.socket(7, rxq=1)
    s2 = i.socket(8, rxq=1)
    log = []

    class Task:
        def cancel(self):
            log.append("cancel")

    i.task = Task()
    i.close()
    assert s.closed and s2.closed and log == ["cancel"] and i.task is None
    assert i.status()["error"] == "closed" and i.status()["sockets"] == []
    i.close()  # again: no task to cancel
    assert log == ["cancel"]


def test_names_are_resolved_at_open_and_after_a_failure():
    asked = []

    def resolve(name):
        asked.append(name)
        if name == "bad.example":
            raise OSError("no such name")
        return [ip4(SERVER)]

    clk = [1000]
    i = iface.Interface("teredo.example,bad.example", rand=Rand(7), udp=Sock(), clock=lambda: clk[0],
                        resolve=resolve, queue_slots=1, max_peers=2)
    i.poller = Poller()
    i.open(1000)
    st = i.status()
    assert asked == ["teredo.example", "bad.example"] and st["error"] is None
    assert st["servers"][1] == {"name": "bad.example", "address": None, "state": "unresolved",
                                "rtt_ms": None, "error": "cannot resolve bad.example (no such name)"}
    assert st["servers"][0]["name"] == "teredo.example" and st["servers"][0]["address"] == SERVER
    i.poll(0)
    assert len(asked) == 2  # no failure, no new look-up
    i.client.failures += 1
    clk[0] = i.next_deadline()
    i.poll(0)
    assert len(asked) == 4
    i.close()


def test_poll_dispatches_the_sockets_and_watched_streams():
    i, clk, p = shell()
    hits = []
    streams = [Fd(2), Fd(0), Fd(-1), Fd(-3), Plain()]
    for k in range(5):
        i.watch(streams[k], lambda now, k=k: hits.append(k))
    assert p.reg == [(streams[k], 1) for k in range(5)]
    evs = [(2, 1), (0, 1), (-1, 1), (-3, 1), (streams[4], 1)]
    p.events = [evs]
    assert i.poll(0) == 0 and hits == [0, 1, 2, 3, 4]  # not opened
    i.open(1000)
    i.sock.rx = [(b"junk", ("198.51.100.20", 3544))]
    i.msock = Sock([(b"bubble", ("198.51.100.21", 3544))])
    p.events = [evs + [(i.sock, 1), (i.msock, 1)]]
    assert i.poll(0) == 2 and hits == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert i.status()["drops"]["discovery"] == 1
    i.msock = None
    i.unwatch(streams[1])
    i.unwatch(Plain())  # not watched: nothing
    assert p.unreg == [streams[1]]
    p.events = [[(0, 1), (2, 1), (streams[4], 1)]]
    i.poll(0)
    assert hits[10:] == [0, 4]
    i.close()


def test_poll_waits_for_the_next_timer_and_runs_it_when_due():
    i, clk, p = shell()
    seen = []
    i.on_change = lambda it: seen.append(it.client.changes)
    saved = iface.time
    log = []
    try:
        iface.time = Time(log, True)  # a wrong branch sleeps here, not for real
        i.open(1000)
        sock = i.sock
        assert i.poll() == 0 and p.waits == [0] and seen == [1]
        rs = len(sock.out)  # the RS (and the cone RS)
        assert rs > 0
        d = i.next_deadline() - clk[0]
        assert 0 < d < 100000
        i.poll(100000)  # waits until the RS timer, which then sends the second RS
        assert p.waits[1] == d and clk[0] == 1000 + d and len(sock.out) == 2 * rs and seen == [1]
        t = TCP()
        i.tcp = t
        due = i.next_deadline()
        clk[0] = due - 1
        i.poll(0)
        assert p.waits[2] == 0 and t.ticks == []
        i.poll(1000)
        assert p.waits[3] == 1 and t.ticks == [due] and len(sock.out) > 2 * rs
        clk[0] = i.next_deadline() + 5
        i.poll(1000)
        assert p.waits[4] == 0 and len(t.ticks) == 2
        i.close_socket()
        i.poll(0)
        assert len(t.ticks) == 2 and log == []
    finally:
        iface.time = saved


def test_next_deadline_is_the_earlier_of_core_and_tcp():
    i, clk, p = shell()
    i.open(1000)
    d = i.client.next_deadline()
    t = TCP()
    i.tcp = t
    got = []
    for at in (None, d - 5, d - 1, d, d + 5):
        t.at = at
        got.append(i.next_deadline() - d)
    assert got == [0, -5, -1, 0, 0]
    i.tcp = None
    i.close()
