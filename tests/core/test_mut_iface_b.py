# The I/O shell (teredo.iface) held to its exact behaviour, part 2: over the
# simulated Internet (harness.Net) sendto's errnos and the full transmit
# ring, up() and its timeout, ping; and what needs no socket: the receive
# queue (ring order, rxq, dropped, sizes and truncation), socket timeouts,
# the clock, the RNG, server text, run(), the TCP and asyncio entry points,
# wire_reason.  Part 1 (over doubles): test_mut_iface.py.  Runs on CPython
# and on the MicroPython unix port.
import sys

from teredo import iface
from teredo.client import DROP_NAMES, TX_SLOTS
from harness import RELAY, SERVER, V6HOST, FakeUDP, Net, Rand, interface, ip4, ip6


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


class Time:
    """The time module's double for _sleep_ms (sleep, and sleep_ms when ms)."""

    def __init__(self, log, ms):
        self.log = log
        if ms:
            self.sleep_ms = lambda t: log.append(("ms", t))

    def sleep(self, s):
        self.log.append(("s", s))


def on_net(nat="restricted"):
    """(Net, Interface) not opened: the socket is the simulated Internet,
    the poller passes the time it is asked to wait and delivers."""
    n = Net(nat)
    i = iface.Interface(SERVER, rand=Rand(7), clock=lambda: n.now, udp=FakeUDP(n), queue_slots=1,
                        max_peers=2)
    n.c = i.client
    n.feed = i.feed

    def tick(w):
        if w > 0:
            n.now = (n.now + w) & iface.MASK
        n.flush()

    i.poller = Poller(tick)
    return n, i


def err(f, *a):
    try:
        f(*a)
    except OSError as e:
        return e.args
    raise AssertionError("no OSError")


def test_sendto_on_a_qualified_interface():
    n, i = interface()
    assert i.tcp_options == {} and i.status()["local_discovery"] == "off: no LAN address yet"
    s = i.socket(7, rxq=1)
    assert err(s.sendto, b"x", ("fe80::1", 9)) == (iface.EHOSTUNREACH, "non_global")
    assert i.ping(V6HOST, 0) is None  # the relay's test: sent; the reply comes with flush
    n.flush()
    dst = (ip6(V6HOST), 9)
    for _ in range(TX_SLOTS):
        s.send_later(b"x", dst, n.now)  # nothing drains the ring
    assert i.client.tq_count == TX_SLOTS and s.ioctl(3, 4) == 0  # not writable
    assert s.sendto(b"yz", dst) == 2 and s.tx == TX_SLOTS + 1  # sendto drains it first
    assert s.ioctl(3, 4) == 4
    # a second open() requalifies: no address meanwhile (the core keeps its own)
    i.open(n.now)
    assert i.client.has_address and i.address is None
    i.close()
    assert s.closed and i.sock is None


def test_up_opens_once_and_qualifies():
    n, i = on_net()
    saved = iface.time
    try:
        iface.time = Time([], True)
        assert i.up(5000) is i and i.qualified()
        sent = i.sock.sent
        changes = i.client.changes
        assert i.up(5000) is i and i.sock.sent == sent and i.client.changes == changes
    finally:
        iface.time = saved
    i.close()


def test_up_times_out_saying_why():
    n, i = on_net()
    n.server_up = False
    n.server2_up = False
    polls = []
    real = i.poll

    def poll(ms=0):
        polls.append(ms)
        return real(ms)

    i.poll = poll
    t0 = n.now
    assert err(i.up, 301) == (iface.ETIMEDOUT, "not qualified after 301 ms: no answer from Teredo server "
                              + SERVER)
    assert polls == [100, 100, 100, 1] and n.now - t0 == 301
    assert i.status()["error"] == i.error
    polls[:] = []
    assert err(i.up, 299)[0] == iface.ETIMEDOUT and polls == [100, 100, 99]
    t0 = n.now
    why = err(i.up)[1]
    assert n.now - t0 == 20000 and i.client.error.startswith("no answer from Teredo server " + SERVER)
    assert why == "not qualified after 20000 ms: " + i.client.error
    assert i.status()["error"] == i.client.error
    assert err(i.ping, V6HOST) == (iface.ENOTCONN, "not qualified: " + i.client.error)
    i.close()


def test_ping_waits_for_the_reply_then_times_out_at_2_s():
    n, i = interface()
    steps = []

    def tick(w):
        s = steps.pop(0) if steps else w
        if s > 0:
            n.now += s
        n.flush()

    p = Poller(tick)
    i.poller = p
    assert i.ping(V6HOST, 1000) == 50 and p.waits == [50] and i.last_pong() == (1, n.now)
    k = len(n.log)
    assert i.ping_send(V6HOST, 7, n.now) == 0
    out = n.log[k:]
    assert len(out) == 1 and out[0][1] == RELAY and len(out[0][3]) == 40 + 8 + 16
    n.flush()
    assert i.last_pong()[0] == 7
    n.relay_up = False
    steps[:] = [1000, 999, 1, 1, 1]
    t0 = n.now
    assert i.ping(ip6(V6HOST)) is None and n.now - t0 == 2000
    k = len(n.log)
    i.ping(V6HOST, 0)
    assert len(n.log[k][3]) == 40 + 8 + 16
    i.close()


def test_poll_without_a_limit_still_wakes_for_the_next_timer():
    n, i = interface()

    def tick(w):
        assert w >= 0, "poll(-1) would sleep through the timer"
        n.now += w

    p = Poller(tick)
    i.poller = p
    d = i.next_deadline() - n.now
    assert 0 < d < 100000
    i.poll(-1)
    assert p.waits == [d]
    i.close()


def test_ticks_ms_is_milliseconds_wrapping_at_2_30():
    t = iface.ticks_ms()
    assert 0 <= t <= iface.MASK and iface.MASK == (1 << 30) - 1
    if not hasattr(iface, "_mono_ns"):
        return  # MicroPython: time.ticks_ms, masked (no clock to fake)
    saved = iface._mono_ns
    k = 1 << 15
    got = []
    try:
        for v in (5 * 1000000, 5 * 1000000 + 999999, (k * k + 5) * 1000000):
            iface._mono_ns = lambda v=v: v
            got.append(iface.ticks_ms())
    finally:
        iface._mono_ns = saved
    assert got == [5, 5, 5]


def test_rand_takes_two_bytes_of_the_os_rng_masked_to_bits():
    saved = iface._urandom
    asked = []

    def fake(n):
        asked.append(n)
        return b"\xa5\x3d\x77"[:n]

    try:
        iface._urandom = fake
        got = [iface._rand(16), iface._rand(12), iface._rand(8), iface._rand(1)]
    finally:
        iface._urandom = saved
    assert got == [0xA53D, 0x53D, 0x3D, 1] and asked == [2, 2, 2, 2]


def test_dotted_is_digits_and_dots_only():
    assert iface._dotted("198.51.100.10") and iface._dotted("0.9")
    for t in ("a", "1.2.3.x", "9:1", "/"):
        assert not iface._dotted(t), t


class Mod:
    """A stand-in for a module imported on first use (teredo.aio, teredo.stream, teredo.tcp)."""


def test_tcp_and_asyncio_entry_points_pass_their_defaults():
    calls = []
    m = Mod()
    m.up = lambda it, t: calls.append(("up", t))
    m.tcp_server = lambda it, h, port, backlog: calls.append(("server", port, backlog))
    m.TCPListener = lambda it, port, backlog: calls.append(("listen", port, backlog))
    m.TCP = lambda c, rand, **o: calls.append(("tcp", o)) or "tcp"
    import teredo
    names = ("aio", "stream", "tcp")
    saved = [(sys.modules.get("teredo." + k), teredo.__dict__.get(k)) for k in names]
    i = iface.Interface(SERVER, udp=object(), clock=lambda: 0, tcp={"slots": 1}, queue_slots=1, max_peers=2)
    try:
        for k in names:  # as if imported: in sys.modules and on the package
            sys.modules["teredo." + k] = m
            setattr(teredo, k, m)
        assert i.tcp_stack() == "tcp" and i.tcp_stack() == "tcp" and i.tcp == "tcp"
        i.aup()
        i.tcp_server(None, 80)
        i.tcp_listen(81)
    finally:
        for k, (mod, attr) in zip(names, saved):
            if mod is None:
                del sys.modules["teredo." + k]
            else:
                sys.modules["teredo." + k] = mod
            if attr is None:
                delattr(teredo, k)
            else:
                setattr(teredo, k, attr)
        i.tcp = None
    assert calls == [("tcp", {"slots": 1}), ("up", 20000), ("server", 80, 2), ("listen", 81, 2)]


def test_interface_takes_a_4_byte_server_and_its_rand():
    calls = []
    r = Rand(7)

    def rand(bits):
        calls.append(bits)
        return r(bits)

    i = iface.Interface(ip4(SERVER), rand=rand, udp=object(), clock=lambda: 1000, queue_slots=1,
                        max_peers=2)
    assert i.port == 0 and i.tcp_options == {}
    i.open(1000)
    assert calls and i.status()["server"] == SERVER
    i.close()


def test_settimeout_runs_the_interface_then_etimedout():
    clk = [1000]
    i = iface.Interface(SERVER, udp=object(), clock=lambda: clk[0], queue_slots=1, max_peers=2)
    s = i.socket(7, rxq=1)
    steps = [999, 1000, 1]
    polls = []

    def poll(ms=0):
        polls.append(ms)
        if len(polls) > 10:
            raise AssertionError("no timeout")
        clk[0] += steps.pop(0) if steps else 0

    i.poll = poll
    s.settimeout(2)
    assert err(s.recvfrom, 10) == (iface.ETIMEDOUT, "no datagram within the timeout")
    assert polls == [1000, 1000, 1] and clk[0] == 3000
    s.settimeout(0.25)
    polls[:] = []
    steps[:] = [249, 1]
    assert err(s.recv_into, bytearray(4))[0] == iface.ETIMEDOUT and polls == [250, 1]


def test_run_polls_a_second_at_a_time_forever():
    i = iface.Interface(SERVER, udp=object(), queue_slots=1, max_peers=2)
    polls = []

    def poll(ms=0):
        polls.append(ms)
        if len(polls) == 3:
            raise KeyboardInterrupt

    i.poll = poll
    try:
        i.run()
    except KeyboardInterrupt:
        pass
    assert polls == [1000, 1000, 1000]


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


def test_socket_queue_is_a_ring_of_rxq_slots_in_order():
    i = iface.Interface(SERVER, udp=object(), queue_slots=1, max_peers=2)
    s = i.socket(7, rxq=3)
    s.setblocking(False)
    for k in range(3):
        slot(s, 300 + k, 1000 + k, 0x11 + k)
    slot(s, 5, 9, 9)  # the queue is full: dropped and counted
    assert s.count == 3 and s.dropped == 1 and s.rx == 3
    buf = bytearray(400)
    assert s.recv_into(buf) == 300 and buf[299] == 299 & 0xFF and s.sport == 1000
    assert s.src6[15] == 0x11 and s.src6[0:4] == b"\x20\x01\x0d\xb8"
    assert s.recvfrom_into(buf) == (301, ("2001:db8::12", 1001))
    slot(s, 3, 2000, 0x21)  # behind the third, in the first slot again
    slot(s, 4, 2001, 0x22)
    assert s.recvfrom(1280) == (bytes([k & 0xFF for k in range(302)]), ("2001:db8::13", 1002))
    assert s.recvfrom(1280) == (b"\x00\x01\x02", ("2001:db8::21", 2000))
    assert s.recv(2) == b"\x00\x01" and bytes(s.src6)[15] == 0x22 and s.sport == 2001
    assert s.count == 0 and s.rx == 5 and s.dropped == 1
    st = i.status()["sockets"]
    assert st == [{"port": 7, "rx": 5, "tx": 0, "queued": 0, "dropped": 1}]
    assert err(s.recv_into, buf) == (iface.EAGAIN, "no datagram queued")


def test_socket_default_queue_holds_four_and_sizes_cut_the_datagram():
    i = iface.Interface(SERVER, udp=object(), queue_slots=1, max_peers=2)
    s = i.socket(7)
    s.setblocking(False)
    for k in range(5):
        slot(s, 20, 7, k + 1)
    assert s.count == 4 and s.dropped == 1
    buf = bytearray(30)
    assert s.recvfrom_into(buf) == (20, ("2001:db8::1", 7))
    assert s.recvfrom_into(buf, 6) == (6, ("2001:db8::2", 7)) and buf[5] == 5 and buf[6] == 6
    assert s.recvfrom(10) == (bytes(range(10)), ("2001:db8::3", 7))
    assert s.recv_into(buf, 0) == 20
    s.close()
    s = iface.UDPSocket(i, 9)
    for k in range(5):
        slot(s, 1, 7, k + 1)
    assert s.count == 4 and s.dropped == 1
    s = None
    try:
        iface.UDPSocket(i, 9, 0)
    except ValueError as e:
        assert str(e) == "rxq must be >= 1"
    else:
        raise AssertionError("rxq 0 accepted")


def test_wire_reason_names_a_drop_or_gives_its_number():
    n = len(DROP_NAMES)
    assert iface.wire_reason(0) == "ok" and iface.wire_reason(n - 1) == DROP_NAMES[n - 1]
    assert iface.wire_reason(n) == "error %d" % n and iface.wire_reason(-1) == "error -1"


def test_anext_ends_when_the_socket_closes_and_raises_otherwise():
    i = iface.Interface(SERVER, udp=object(), queue_slots=1, max_peers=2)
    s = i.socket(7, rxq=1)

    async def closing():
        s.close()
        raise OSError(iface.ENOTCONN, "socket closed")

    async def timing_out():
        raise OSError(iface.ETIMEDOUT, "no datagram within the timeout")

    s.arecvfrom = timing_out
    try:
        s.__anext__().send(None)
    except OSError as e:
        assert e.args[0] == iface.ETIMEDOUT
    else:
        raise AssertionError("the error was swallowed")
    s.arecvfrom = closing
    try:
        s.__anext__().send(None)
    except StopAsyncIteration:
        pass
    else:
        raise AssertionError("no StopAsyncIteration")

