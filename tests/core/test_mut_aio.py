# teredo.aio held to what it does (the mutants `make mutate` left alive), on
# both interpreters' asyncio: the interface task's waits (after a burst a zero
# sleep and another poll; on a real socket a wait there until the next timer,
# at most 1 s; on a test's socket or none, sleeps of at most 50 ms), its
# discovery task on iface.msock and that task's end with it, aup's timeout
# and reason, _readable on a real loopback socket, recv_into's wake-ups and
# ENOTCONN, tcp_server's task per connection.  Where the waits are what is
# checked, aio._sleep_ms and aio._readable are replaced by recorders that
# only yield.  Every wait is bounded: a mutant that hangs fails in seconds.
# The interface is mostly a scripted stand-in (Shell): a board-sized heap
# holds this module beside asyncio and one client core, not several.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import socket
import sys

from harness import V6HOST, ip6
from teredo import aio, iface
from vectors import SERVER, Rand

ON_MP = sys.implementation.name == "micropython"
SOCK = "the UDP socket"          # stand-ins: aio hands them on, never reads them
LAN = "the discovery socket"
LAN2 = "the discovery socket, reopened"


class Stop(Exception):
    """Ends a scripted run of a task."""


class Core:
    """The client core as aio.up and a UDPSocket see it."""

    error = None

    def server_text(self):
        return SERVER

    def unbind(self, port):
        pass


class Shell:
    """What teredo.aio asks of an Interface, scripted: poll() answers the
    next of polls (then raises Stop); the next timer is due ms after now;
    qualified after qualify_at waits (never: -1).  log: the waits
    ("sleep", ms) and ("read", socket, ms) of its tasks, and its receive()
    calls; on_wait(entry) and on_poll() change it mid-run."""

    def __init__(self, sock=None, udp=None, due=5000, polls=()):
        self.sock = sock
        self._udp = udp
        self.msock = None
        self.disc_task = None
        self.task = None
        self.error = None
        self.client = Core()
        self._ports = {}
        self.now = 1000
        self.due = due
        self.polls = list(polls)
        self.polled = []         # poll()'s timeouts
        self.tasks = []          # disc_task at each poll()
        self.log = []
        self.stop_after = 0      # receive() raises Stop at that call
        self.qualify_at = -1
        self.on_wait = None
        self.on_poll = None

    def ticks(self):
        return self.now

    def next_deadline(self):
        return (self.now + self.due) & iface.MASK

    def qualified(self):
        return len(self.log) == self.qualify_at

    def poll(self, ms):
        self.polled.append(ms)
        self.tasks.append(self.disc_task)
        if self.on_poll is not None:
            self.on_poll()
        if not self.polls:
            raise Stop()
        return self.polls.pop(0)

    def receive(self, now, s):
        self.log.append(("receive", now, s))
        if len([e for e in self.log if e[0] == "receive"]) == self.stop_after:
            raise Stop()
        return 0

    def wait(self, entry):
        self.log.append(entry)
        if self.on_wait is not None:
            self.on_wait(entry)


def drive(coro, waits, bound=2):
    """Run coro (bounded) with aio's waits handed to waits(entry) instead;
    "stopped" when Stop ended it."""
    saved = (aio._sleep_ms, aio._readable)

    def sleep_ms(ms):
        waits(("sleep", ms))
        return asyncio.sleep(0)

    async def readable(s, ms):
        waits(("read", s, ms))
        await asyncio.sleep(0)

    aio._sleep_ms = sleep_ms
    aio._readable = readable
    try:
        return asyncio.run(asyncio.wait_for(coro, bound))
    except Stop:
        return "stopped"
    finally:
        aio._sleep_ms, aio._readable = saved


async def spin(k=10):
    for _ in range(k):
        await asyncio.sleep(0)


def run_task(sh):
    """The interface task over sh until its polls run out."""
    return drive(aio.run(sh), sh.wait)


# ---- the interface task: how long it waits, on what -------------------------------

def test_a_burst_is_followed_by_a_zero_sleep_and_another_poll_at_once():
    sh = Shell(SOCK, polls=[3, 0])
    assert run_task(sh) == "stopped"
    assert sh.polled == [0, 0, 0]  # poll never waits itself: the task does
    assert sh.log == [("sleep", 0), ("read", SOCK, 1000)], sh.log


def test_on_a_real_socket_the_task_waits_there_until_the_next_timer_and_1_s_at_most():
    for due, want in ((5000, 1000), (200, 200), (1, 1)):
        sh = Shell(SOCK, due=due, polls=[0])
        assert run_task(sh) == "stopped"
        assert sh.log == [("read", SOCK, want)], (due, sh.log)


def test_an_overdue_timer_is_run_at_once_without_a_wait():
    for due in (0, -5):
        sh = Shell(SOCK, due=due, polls=[0, 0])
        assert run_task(sh) == "stopped"
        assert sh.log == [] and sh.polled == [0, 0, 0], (due, sh.log)


def test_a_socket_a_test_gave_is_polled_every_50_ms_at_most():
    for due, want in ((5000, 50), (49, 49), (20, 20)):
        sh = Shell(SOCK, udp=SOCK, due=due, polls=[0])
        assert run_task(sh) == "stopped"
        assert sh.log == [("sleep", want)], (due, sh.log)


def test_without_a_socket_the_task_sleeps_50_ms_whatever_the_timers_say():
    sh = Shell(None, due=10, polls=[0])
    assert run_task(sh) == "stopped"  # and no discovery task to cancel
    assert sh.log == [("sleep", 50)], sh.log
    assert sh.tasks == [None, None] and sh.disc_task is None


# ---- the discovery task ------------------------------------------------------------

def test_run_starts_one_discovery_task_once_msock_opens_and_cancels_it_as_it_ends():
    sh = Shell(SOCK, udp=SOCK, polls=[0, 0, 0])

    def open_lan():
        sh.msock = LAN

    sh.on_poll = open_lan

    async def main():
        try:
            await aio.run(sh)
        except Stop:
            pass
        n = len(sh.log)
        await spin()
        return n, len(sh.log), sh.disc_task

    n, later, left = drive(main(), sh.wait)
    d = sh.tasks[-1]
    assert sh.tasks[0] is None and d is not None  # none before the socket opened
    assert sh.tasks[1] is d and sh.tasks[2] is d  # one task, started once
    assert ("read", LAN, 1000) in sh.log and ("receive", 1000, LAN) in sh.log
    assert left is None and d.done()  # cancelled when the interface task ended
    assert later == n  # and it waits no more


def test_discovery_sleeps_1_s_while_there_is_no_socket_then_waits_on_it_and_reads_it():
    sh = Shell()
    sh.stop_after = 2

    def opened(entry):
        if entry == ("sleep", 1000):
            sh.msock = LAN

    sh.on_wait = opened
    assert drive(aio._discovery(sh), sh.wait) == "stopped"
    read = [("read", LAN, 1000), ("receive", 1000, LAN)]
    assert sh.log == [("sleep", 1000)] + read + read, sh.log


def test_discovery_does_not_read_a_socket_closed_while_it_waited():
    sh = Shell()
    sh.msock = LAN
    sh.stop_after = 1

    def close_then_reopen(entry):
        sh.msock = None if entry == ("read", LAN, 1000) else LAN2

    sh.on_wait = close_then_reopen
    assert drive(aio._discovery(sh), sh.wait) == "stopped"
    assert sh.log == [("read", LAN, 1000), ("sleep", 1000), ("read", LAN2, 1000),
                      ("receive", 1000, LAN2)], sh.log


class LanSocket:
    """The discovery socket, fake: its datagrams, then EAGAIN."""

    def __init__(self, datagrams):
        self.q = list(datagrams)
        self.reads = 0

    def recvfrom(self, n):
        self.reads += 1
        if not self.q:
            raise OSError(iface.EAGAIN, "nothing queued")
        return self.q.pop(0), ("192.168.1.20", 3544)

    def recvfrom_into(self, buf):
        d, a = self.recvfrom(len(buf))
        buf[0:len(d)] = d
        return len(d), a


class Sink:
    """The Internet, as far as an interface that is never answered needs one."""

    def sendto(self, mv, to):
        pass


def test_an_interface_task_reads_msock_and_its_cancel_ends_the_discovery_task():
    i = iface.Interface(SERVER, rand=Rand(7), clock=lambda: 1000, udp=Sink(), queue_slots=1,
                        max_peers=2)  # a small core: a board-sized heap holds the module too
    m = LanSocket([bytes(48)])
    waits = []

    async def main():
        t = i.astart()
        i.msock = m  # joined to the discovery group (teredo.local does it in open())
        for _ in range(50):
            await asyncio.sleep(0)
            if m.reads >= 2:
                break
        d = i.disc_task
        t.cancel()
        await spin()
        return d

    d = drive(main(), waits.append)
    assert m.reads >= 2 and ("read", m, 1000) in waits
    # the datagram reached the core: local discovery is off there, so refused and counted
    assert i.client.status()["drops"].get("discovery") == 1
    assert d is not None and d.done() and i.disc_task is None
    i.msock = None
    i.close()


# ---- aup ---------------------------------------------------------------------------

def up(sh, *timeout):
    """aio.up(sh, *timeout) with the interface task running already: the
    error it raised, or None."""
    sh.task = "running"

    async def main():
        try:
            await aio.up(sh, *timeout)
        except OSError as e:
            return e
        return None

    return drive(main(), sh.wait)


def test_aup_gives_up_after_exactly_timeout_ms_with_the_reason():
    sh = Shell()
    sh.now = iface.MASK - 100  # the ticks wrap while it waits

    def tick(entry):
        sh.now = (sh.now + entry[1]) & iface.MASK

    sh.on_wait = tick
    e = up(sh, 500)
    assert sh.log == [("sleep", 20)] * 25  # 20 ms sleeps, up to 500 ms and not one more
    assert e is not None and e.args[:1] == (iface.ETIMEDOUT,), e
    assert e.args[1] == "not qualified after 500 ms: no answer from Teredo server " + SERVER, e.args
    assert sh.error == e.args[1]


def test_aup_waits_20_s_by_default_and_returns_once_qualified():
    sh = Shell()

    def tick(entry):  # a coarse clock: a second passes at each sleep
        sh.now += 1000

    sh.on_wait = tick
    e = up(sh)
    assert e is not None and e.args[:1] == (iface.ETIMEDOUT,), e
    assert e.args[1].startswith("not qualified after 20000 ms: "), e.args
    assert len(sh.log) == 20
    sh = Shell()
    sh.qualify_at = 3
    assert up(sh, 500) is None and sh.log == [("sleep", 20)] * 3 and sh.error is None


# ---- _readable and _sleep_ms, on a real socket and the real asyncio ----------------------

def loopback():
    """A UDP socket on 127.0.0.1 and its address (MicroPython's socket has
    no getsockname: try ports until one binds)."""
    for port in range(47311, 47411):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a = socket.getaddrinfo("127.0.0.1", port)[0][-1]
        try:
            s.bind(a)
            return s, a
        except OSError:
            s.close()
    raise OSError(iface.EADDRINUSE, "no free UDP port on 127.0.0.1")


def test_readable_returns_when_a_datagram_arrives():
    s, a = loopback()

    async def send_later():
        await asyncio.sleep(0.02)
        s.sendto(b"x", a)

    async def main():
        asyncio.create_task(send_later())
        t0 = iface.ticks_ms()
        await aio._readable(s, 1000)
        return iface._diff(iface.ticks_ms(), t0)

    try:
        ms = asyncio.run(main())
    finally:
        s.close()
    assert 10 <= ms < 500, ms  # woken by the datagram, not the 1 s timeout


def test_readable_gives_up_quietly_after_ms():
    s, _ = loopback()

    async def main():
        t0 = iface.ticks_ms()
        r = await asyncio.wait_for(aio._readable(s, 30), 2)
        return r, iface._diff(iface.ticks_ms(), t0)

    try:
        r, ms = asyncio.run(main())
    finally:
        s.close()
    assert r is None and 25 <= ms < 1000, ms


def test_sleep_ms_and_readable_hand_asyncio_milliseconds_as_its_own_unit():
    s, a = loopback()
    s.sendto(b"x", a)  # readable at once: what is checked is the timeout handed on
    got = []
    names = ("sleep_ms", "wait_for_ms") if ON_MP else ("sleep", "wait_for")
    saved = (getattr(asyncio, names[0]), getattr(asyncio, names[1]))

    def sleep(t):
        got.append(("sleep", t))
        return saved[0](0)

    def wait_for(aw, t):
        got.append(("wait", t))
        return saved[1](aw, t)

    async def main():
        setattr(asyncio, names[0], sleep)
        setattr(asyncio, names[1], wait_for)
        try:
            await aio._sleep_ms(250)
            await aio._readable(s, 250)
        finally:
            setattr(asyncio, names[0], saved[0])
            setattr(asyncio, names[1], saved[1])

    try:
        asyncio.run(main())
    finally:
        s.close()
    want = 250 if ON_MP else 0.25
    assert got == [("sleep", want), ("wait", want)], got


# ---- recv_into, on a UDPSocket -------------------------------------------------------

def udp_socket(sh, port):
    s = iface.UDPSocket(sh, port, 1)
    sh._ports[port] = s
    return s


def deliver(s, sport, data):
    """What Interface.feed does with a UDP datagram from V6HOST for s."""
    rx = bytearray(ip6(V6HOST) + data)
    s._push(rx, 0, sport, 16, len(data))


def test_arecv_into_returns_a_queued_datagram_without_waiting():
    s = udp_socket(Shell(), 7)
    deliver(s, 4000, b"hello")
    buf = bytearray(16)
    k = asyncio.run(asyncio.wait_for(s.arecv_into(buf), 0.5))
    assert k == 5 and buf[:5] == b"hello" and s.sport == 4000 and bytes(s.src6) == ip6(V6HOST)


def test_a_task_waiting_in_arecv_into_is_woken_by_a_datagram():
    s = udp_socket(Shell(), 7)
    buf = bytearray(16)

    async def main():
        t = asyncio.create_task(s.arecv_into(buf))
        try:
            await spin()
            waited = not t.done()
            deliver(s, 4001, b"late")
            return waited, await asyncio.wait_for(t, 0.5)
        finally:
            t.cancel()

    waited, k = asyncio.run(main())
    assert waited and k == 4 and buf[:4] == b"late" and s.sport == 4001


def test_arecv_into_on_a_closed_socket_raises_enotconn_and_a_close_wakes_a_waiter():
    sh = Shell()
    s = udp_socket(sh, 7)
    s2 = udp_socket(sh, 8)
    s.close()
    buf = bytearray(16)

    async def main():
        out = []
        try:
            await asyncio.wait_for(s.arecv_into(buf), 0.5)
        except OSError as e:  # a timeout is one too on CPython: its args tell them apart
            out.append(e.args)
        t = asyncio.create_task(s2.arecv_into(buf))
        try:
            await spin()
            out.append(t.done())
            s2.close()
            await asyncio.wait_for(t, 0.5)
        except OSError as e:
            out.append(e.args)
        finally:
            t.cancel()
        return out

    closed = (iface.ENOTCONN, "socket closed")
    assert asyncio.run(main()) == [closed, False, closed]


# ---- tcp_server --------------------------------------------------------------------

class Conn:
    """A TCPStream as _serve sees it."""

    def __init__(self, peer):
        self.peer = peer
        self.closed = False
        self.closes = 0

    def close(self):
        self.closes += 1
        self.closed = True


class Listener:
    """A TCPListener, fake: its connections, then nobody; and the iface
    whose tcp_listen() gives it (recorded)."""

    def __init__(self, conns):
        self.conns = list(conns)
        self.port = 80
        self.closed = False
        self.listens = []

    def tcp_listen(self, port, backlog):
        self.listens.append((port, backlog))
        return self

    async def aaccept(self):
        while not self.conns:
            await asyncio.sleep(0.01)  # the test cancels the server: bounded
        return self.conns.pop(0)

    def close(self):
        self.closed = True


def serve(handler, conn):
    """aio._serve of one connection, what it printed."""
    printed = []
    aio.print = printed.append
    try:
        asyncio.run(asyncio.wait_for(aio._serve(handler, conn, 80), 1))
    finally:
        del aio.print
    return printed


def test_serve_reports_a_failing_handler_and_closes_its_stream():
    c = Conn(("2001:db8::1", 1000))

    async def handler(r, w):
        raise ValueError("boom")

    printed = serve(handler, c)
    assert len(printed) == 1 and printed[0].startswith("teredo: TCP handler on port 80: ValueError(")
    assert "boom" in printed[0] and c.closes == 1


def test_serve_closes_the_stream_once_whether_the_handler_closed_it_or_not():
    left, closed = Conn(("2001:db8::1", 1000)), Conn(("2001:db8::2", 1001))

    async def leaves_open(r, w):
        pass

    async def closes(r, w):
        r.s.close()

    assert serve(leaves_open, left) == [] and serve(closes, closed) == []
    assert left.closes == 1 and closed.closes == 1


def test_tcp_server_runs_a_handler_per_connection_and_closes_the_listener_when_cancelled():
    peers = (("2001:db8::1", 1000), ("2001:db8::2", 1001))
    conns = [Conn(p) for p in peers]
    lst = Listener(conns)
    seen = []

    async def handler(r, w):
        seen.append((r is w, r.get_extra_info("peername")))

    async def main():
        t = aio.tcp_server(lst, handler, 80)
        try:
            for _ in range(50):
                await asyncio.sleep(0)
                if len(seen) == 2:
                    break
            await spin()
            was_open = not lst.closed
        finally:
            t.cancel()
        await spin()
        return was_open

    assert asyncio.run(asyncio.wait_for(main(), 2))
    assert lst.listens == [(80, 2)]  # the default backlog
    assert seen == [(True, peers[0]), (True, peers[1])], seen
    assert lst.closed and [c.closes for c in conns] == [1, 1]
