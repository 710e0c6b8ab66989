# teredo.stream held to what it does (the mutants `make mutate` left alive),
# on both interpreters: blocking, timed and non-blocking reads and writes
# with the errno a socket gives (EAGAIN, ETIMEDOUT, ENOTCONN, ECONNRESET,
# ECONNREFUSED), the waits a blocking call makes (at most 1 s each, the last
# one what is left of the timeout), read/readinto/readline at their edges,
# partial writes, close and abort, select.poll's ioctl masks, a listener's
# accept, connect and aconnect, and the asyncio Stream over a stream with
# the wake-ups of its waiting tasks.
# The TCP and the interface are scripted stand-ins (FakeTCP answers as
# teredo.tcp does; Shell's clock moves only in poll, and it wakes tasks with
# Interface's own code), so every wait is bounded: a mutant that loops for
# ever fails in a second.  Lean: this module shares a board-sized heap with
# the client core, the interface and asyncio.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from teredo import aio, stream
from teredo.iface import Interface
from teredo.stream import EAGAIN, ECONNREFUSED, ECONNRESET, ENOTCONN, ETIMEDOUT
from harness import ip6  # (imported last: the heap then fragments less)

CID = 7
POLL = stream.MP_STREAM_POLL      # 3: select.poll's request
CLOSE = stream.MP_STREAM_CLOSE    # 4
IN = stream.POLLIN                # 1
OUT = stream.POLLOUT              # 4
ALL = IN | OUT
# what MicroPython loads on first use, loaded with this module (mp_run packs
# modules together; loaded later, they cut the free heap into small pieces)
PRELOAD = (aio, asyncio.Event, asyncio.wait_for)
E = b""
B = str.encode   # text as bytes: on a board a bytes constant costs 70 bytes of heap, a str 20
NOSLOT = (EAGAIN, "no free TCP connection slot (the tcp slots option)")


class FakeTCP:
    """teredo.tcp's application side for one connection (cid) and one
    listener: segs are received bytes not yet read, as text (a recv_into
    reads from one segment at most), eof the peer's FIN after them, room the
    free bytes of the transmit ring, sent what it took, as text.  As in the
    real TCP, an id closed by the app is gone (ValueError) and error() is
    not None only once it is CLOSED."""

    def __init__(self, segs=(), eof=False, room=100, cid=CID):
        self.cid = cid
        self.st = "ESTABLISHED"
        self.err = None
        self.segs = list(segs)
        self.eof = eof
        self.room = room
        self.sent = ""
        self.asked = []        # n of each recv_into
        self.log = []          # (what, id, now) of close, abort, unlisten
        self.pending = []      # ids accept() gives, in order
        self.known = [cid, 99]
        self.gone = False
        self.free = True       # connect finds a free slot
        self.calls = 0

    def _c(self, cid):
        self.calls += 1
        assert self.calls < 3000, "a loop that never ends"
        if cid != self.cid or self.gone:
            raise ValueError(cid)

    def status(self):
        cs = []
        for c in self.known:
            cs.append({"cid": c, "remote": "2001:db8::%x" % c, "rport": 1000 + c})
        return {"connections": cs}

    def state(self, cid):
        self._c(cid)
        return self.st

    def error(self, cid):
        self._c(cid)
        return self.err

    def readable(self, cid):
        self._c(cid)
        return bool(self.segs) or self.eof or self.st == "CLOSED"

    def writable(self, cid):
        self._c(cid)
        return self.st == "CLOSED" or (self.st == "ESTABLISHED" and self.room > 0)

    def recv_into(self, cid, buf, off, n, now):
        self._c(cid)
        self.asked.append(n)
        if not self.segs:
            return -1 if self.eof or self.st == "CLOSED" else 0
        d = self.segs[0]
        k = min(len(d), n)
        if k <= 0:
            return 0
        for j in range(k):
            buf[off + j] = ord(d[j])
        if k < len(d):
            self.segs[0] = d[k:]
        else:
            self.segs.pop(0)
        return k

    def send(self, cid, buf, off, n, now):
        self._c(cid)
        if self.st != "ESTABLISHED":
            return -1
        k = min(self.room, n)
        if k <= 0:
            return 0
        self.sent += bytes(buf[off:off + k]).decode()
        self.room -= k
        return k

    def close(self, cid, now):
        self.log.append(("close", cid, now))
        self.gone = True

    def abort(self, cid, now):
        self.log.append(("abort", cid, now))
        self.gone = True

    def listen(self, port, backlog):
        self.listening = (port, backlog)
        return 2

    def accept(self, lh):
        return self.pending.pop(0) if self.pending else -1

    def unlisten(self, lh, now):
        self.log.append(("unlisten", lh, now))

    def connect(self, dst, dport, now):
        self.dialed = (bytes(dst), dport, now)
        self.st = "SYN-SENT"
        return self.cid if self.free else -1


def act(t, x):
    """One scripted change to TCP t: a segment arrives (bytes), the ring
    has x bytes free (int), ids to accept (a list), the connection is in
    state x (upper case) or ended with error x (lower case), a call."""
    if type(x) is bytes:
        t.segs.append(x.decode())
    elif type(x) is int:
        t.room = x
    elif type(x) is list:
        t.pending += x
    elif type(x) is str:
        if x < "a":
            t.st = x
        else:
            t.st = "CLOSED"
            t.err = x
    elif x is not None:
        x()


class Shell:
    """What a stream asks of an Interface: a clock that moves only in
    poll(w) (by w, or by step), each wait kept in waits, and script: what
    happens in each of the next polls (see act)."""

    _waiting = Interface._waiting
    _not_waiting = Interface._not_waiting
    _tcp_wake = Interface._tcp_wake

    def __init__(self, tcp, step=0, script=()):
        self.tcp = tcp
        self.now = 5000
        self.step = step
        self.script = list(script)
        self.waits = []
        self._waiters = []

    def ticks(self):
        return self.now

    flush = ticks   # nothing to send: any call without effect will do

    def poll(self, w):
        self.waits.append(w)
        assert len(self.waits) < 40, "a wait that never ends"
        self.now += self.step or w
        if self.script:
            act(self.tcp, self.script.pop(0))


def conn(tcp, **kw):
    i = Shell(tcp, **kw)
    return i, stream.TCPStream(i, tcp.cid)


def err(f, *a):
    """The args of the OSError f(*a) raises (None: it returned)."""
    try:
        f(*a)
    except OSError as e:
        return e.args
    return None


def arun(i, coro, *steps):
    """coro's result (or its OSError's args, or "EOF") run as a task; each
    step (see act), once the task has had time to wait, changes the TCP and
    wakes the waiting tasks as the interface does.  At most 1 s."""
    async def main():
        task = asyncio.create_task(coro)
        for x in steps:
            for _ in range(6):
                await asyncio.sleep(0)
            act(i.tcp, x)
            i._tcp_wake()
        return await asyncio.wait_for(task, 1)
    try:
        return asyncio.run(main())
    except OSError as e:
        return e.args
    except EOFError:
        return "EOF"


# ---- blocking, timeouts, non-blocking -----------------------------------------------------

def test_a_timeout_waits_at_most_a_second_at_a_time_then_etimedout():
    for t, step, waits in ((2.5, 0, [1000, 1000, 500]), (2.5, 1499, [1000, 1000]),
                           (1.25, 1249, [1000, 1]), (0.25, 0, [250])):
        i, s = conn(FakeTCP(), step=step)   # step: how far the clock moves a poll
        s.settimeout(t)
        assert err(s.readinto, bytearray(2)) == (ETIMEDOUT, "timed out")
        assert i.waits == waits, (t, i.waits)


def test_blocking_reads_wait_for_data_and_non_blocking_ones_give_eagain():
    i, s = conn(FakeTCP(), script=(None, None, B("hi")))
    s.settimeout(2.5)
    s.settimeout(None)
    assert s.read(10) == B("hi") and i.waits == [1000, 1000, 1000], i.waits
    s.setblocking(False)
    assert err(s.read, 5) == (EAGAIN, "would block")
    s.settimeout(0)
    assert err(s.readline) == (EAGAIN, "would block")
    i.tcp.segs.append("xyz")
    assert s.read(5) == B("xyz") and len(i.waits) == 3
    s.setblocking(True)
    i.script = [B("late")]
    assert s.read(9) == B("late") and len(i.waits) == 4


# ---- reading ------------------------------------------------------------------------

def test_readinto_and_read_take_what_is_asked_and_nothing_at_the_end():
    t = FakeTCP(["hello", "!"], eof=True)
    i, s = conn(t)
    b = bytearray(8)
    assert s.readinto(b, 3) == 3 and bytes(b) == B("hel\0\0\0\0\0")
    assert s.readinto(b) == 2 and b[:3] == B("lol") and t.asked == [3, 8]
    assert s.read(0) == E and s.read(10) == B("!")
    assert s.readinto(b) == 0 and s.read(10) == E and s.recv(3) == E and s.read() == E
    t = FakeTCP(["hel", "lo", "\n"], eof=True)
    i, s = conn(t)
    assert s.read(2) == B("he") and s.read() == B("llo\n")
    assert t.asked == [2, 1220, 1220, 1220, 1220], t.asked   # to the end: an MSS at a time


def test_readline_joins_segments_and_ends_at_a_newline_or_the_end():
    i, s = conn(FakeTCP(["ab", "c\nde", "f"], eof=True))
    assert s.readline() == B("abc\n") and s.readline() == B("def") and s.readline() == E


def test_a_reset_connection_raises_econnreset_after_what_came_before():
    t = FakeTCP(["ok"])
    act(t, "reset")
    i, s = conn(t)
    assert s.read(5) == B("ok")
    assert err(s.read, 5) == (ECONNRESET, "connection reset")
    assert err(s.write, B("x")) == (ECONNRESET, "connection reset")
    t.err = "closed"                   # closed by us another way: the end, no error
    assert s.read(5) == E and err(s.write, B("x")) == (ENOTCONN, "connection closed")


# ---- writing ---------------------------------------------------------------------------

def test_writes_wait_for_room_or_queue_what_fits_when_non_blocking():
    t = FakeTCP(room=4)
    i, s = conn(t, script=(10,))
    assert s.write(b"abcdef") == 6 and t.sent == "abcdef" and i.waits == [1000]
    t.room = 0
    i.script = [None, 3]
    assert s.send(b"xyz") == 3 and t.sent == "abcdefxyz" and len(i.waits) == 3
    t.room = 2
    assert s.write(b"!?") == 2 and len(i.waits) == 3    # it just fits: no wait
    t.sent = ""
    t.room = 4
    s.setblocking(False)
    assert s.write(bytearray(B("abcdef"))) == 4 and t.sent == "abcd"
    assert err(s.send, B("ef")) == (EAGAIN, "the transmit ring is full")
    t.room = 2
    s.settimeout(1.5)
    assert err(s.write, B("ef+")) == (ETIMEDOUT, "timed out")
    assert t.sent == "abcdef" and i.waits[3:] == [1000, 500]


# ---- close, abort, state, ioctl ------------------------------------------------------------

def test_close_and_abort_end_the_stream_once():
    t = FakeTCP(["unread"])
    i, s = conn(t)
    assert s.peer == ("2001:db8::7", 1007) and s.state() == "ESTABLISHED" and not s.closed
    with s as s2:
        assert s2 is s
    s.close()
    assert s.state() == "CLOSED" and t.log == [("close", CID, 5000)]
    assert s.read(5) == E and s.readinto(bytearray(2)) == 0
    assert err(s.write, B("x")) == (ENOTCONN, "connection closed")
    assert s.ioctl(POLL, ALL) == ALL   # poll wakes the app to see the end
    t = FakeTCP()
    i, s = conn(t)
    s.abort()
    s.abort()
    s.close()
    assert s.state() == "CLOSED" and t.log == [("abort", CID, 5000)] and s.read(1) == E


def test_ioctl_poll_gives_the_asked_flags_that_are_ready():
    t = FakeTCP(room=0)
    i, s = conn(t)
    assert s.ioctl(POLL, ALL) == 0 and s.ioctl(POLL, 0) == 0
    t.segs.append("a")
    assert s.ioctl(POLL, ALL) == IN and s.ioctl(POLL, OUT) == 0
    t.room = 5
    assert s.ioctl(POLL, ALL) == ALL and s.ioctl(POLL, OUT) == OUT and s.ioctl(POLL, IN) == IN
    t.segs = []
    assert s.ioctl(POLL, ALL) == OUT and s.ioctl(POLL, IN) == 0
    act(t, "reset")                    # error, hang-up: both, so the app fails there
    assert s.ioctl(POLL, ALL) == ALL
    assert s.ioctl(99, 0) == -1 and s.ioctl(5, 0) == -1 and not s.closed
    assert s.ioctl(CLOSE, 0) == 0 and s.closed


# ---- listener and connect --------------------------------------------------------------------

def test_accept_gives_the_connections_in_order_and_close_resets_the_one_held():
    t = FakeTCP(cid=0)
    t.known = [5, 0]
    t.pending = [0, 5]                 # id 0: the first connection of slot 0
    i = Shell(t)
    lst = stream.TCPListener(i, 80, 3)
    assert t.listening == (80, 3)
    assert lst.ioctl(POLL, OUT) == 0 and lst.ioctl(POLL, IN) == IN and lst.ioctl(POLL, ALL) == IN
    c, peer = lst.accept()
    assert c.cid == 0 and peer == ("2001:db8::0", 1000) and c.peer == peer
    c, peer = lst.accept()
    assert c.cid == 5 and peer == ("2001:db8::5", 1005)
    assert lst.ioctl(POLL, IN) == 0
    lst.setblocking(False)
    assert err(lst.accept) == (EAGAIN, "would block") and i.waits == []
    lst.setblocking(True)
    i.script = [None, [9]]
    t.known = [9]
    c, peer = lst.accept()
    assert c.cid == 9 and i.waits == [1000, 1000]
    assert lst.ioctl(99, 0) == -1 and lst.ioctl(5, 0) == -1 and not lst.closed
    t.pending = [0]
    assert lst.ioctl(POLL, IN) == IN
    assert lst.ioctl(CLOSE, 0) == 0 and lst.closed
    assert t.log == [("unlisten", 2, 7000), ("abort", 0, 7000)]
    assert err(lst.accept) == (ENOTCONN, "listener closed")
    lst.close()
    lst = stream.TCPListener(Shell(t), 81, 1)
    lst.close()
    assert t.log[2:] == [("unlisten", 2, 5000)]   # nothing held: nothing reset


def test_connect_waits_for_the_handshake_or_fails_with_the_reason():
    for cid in (0, CID):
        t = FakeTCP(cid=cid)
        i = Shell(t, script=(None, "ESTABLISHED"))
        s = stream.connect(i, ("2001:db8::1", 443))
        assert s.cid == cid and s.peer == ("2001:db8::1", 443)
        assert t.dialed == (ip6("2001:db8::1"), 443, 5000) and i.waits == [1000, 1000]
    i = Shell(FakeTCP(), script=("CLOSE-WAIT",))
    s = stream.connect(i, (bytes(15) + B("\x02"), 80), 3000)
    assert s.peer == ("::2", 80) and s.timeout is None
    i = Shell(FakeTCP(), script=("refused",))
    assert err(stream.connect, i, ("::1", 80)) == (ECONNREFUSED, "connection refused")
    i = Shell(FakeTCP())
    assert err(stream.connect, i, ("::1", 80), 2500) == (ETIMEDOUT, "timed out")
    assert i.waits == [1000, 1000, 500]
    i.tcp.free = False
    assert err(stream.connect, i, ("::1", 80)) == NOSLOT


# ---- asyncio ------------------------------------------------------------------------------

def test_stream_reads_as_asyncio_streams_do():
    t = FakeTCP(["hello", "wor", "ld\nmore", "\n"], eof=True)
    i, s = conn(t)
    r = stream.Stream(s)
    b = bytearray(8)
    assert arun(i, r.readinto(b)) == 5 and b[:5] == B("hello")
    assert arun(i, r.read(0)) == E and arun(i, r.read(2)) == B("wo")
    assert arun(i, r.readline()) == B("rld\n") and arun(i, r.readline()) == B("more\n")
    assert arun(i, r.readline()) == E and arun(i, r.read(4)) == E
    i, s = conn(FakeTCP(["ab", "cdefg"], eof=True))
    r = stream.Stream(s)
    assert arun(i, r.readexactly(5)) == B("abcde")      # the second read asks for 3 only
    assert arun(i, r.readexactly(2)) == B("fg") and arun(i, r.readexactly(1)) == "EOF"
    t = FakeTCP(["x", "yz"], eof=True)
    i, s = conn(t)
    assert arun(i, stream.Stream(s).read()) == B("xyz") and t.asked == [1220, 1220, 1220]
    i, s = conn(FakeTCP(["abc"], eof=True))
    assert arun(i, s.aread()) == B("abc")
    i, s = conn(FakeTCP(["ab"], eof=True))
    assert arun(i, s.areadexactly(3)) == "EOF"


def test_a_waiting_task_is_woken_by_data_a_reset_or_an_abort():
    t = FakeTCP()
    i, s = conn(t)
    r = stream.Stream(s)
    assert arun(i, r.readline(), B("ab"), B("c\n")) == B("abc\n")
    assert i._waiters == [] and s.nwait == 0
    i, s = conn(FakeTCP())             # (a new stream: its Event is of this run's loop)
    assert arun(i, s.aread(3), "reset") == (ECONNRESET, "connection reset")
    i, s = conn(FakeTCP())
    assert arun(i, s.aread(10), None, s.abort) == E
    assert i.tcp.log == [("abort", CID, 5000)]


def test_stream_writes_wait_in_drain_for_room_and_wait_closed_closes():
    t = FakeTCP(room=4)
    i, s = conn(t)
    w = stream.Stream(s)
    assert w.get_extra_info("peername") == ("2001:db8::7", 1007)
    assert w.get_extra_info("sockname") is None
    w.write(b"abc")
    w.write(bytearray(B("def")))
    assert t.sent == ""               # nothing leaves before drain
    arun(i, w.drain(), 1, 10)
    assert t.sent == "abcdef" and w.pending == []
    t.room = 3
    assert arun(i, s.awrite(b"xyz")) == 3 and t.sent == "abcdefxyz"   # it just fits
    w.write(b"!")
    t.room = 1
    arun(i, w.wait_closed())
    assert t.sent == "abcdefxyz!" and t.log == [("close", CID, 5000)]
    t = FakeTCP()
    act(t, "reset")
    i, s = conn(t)
    assert arun(i, s.awrite(b"x")) == (ECONNRESET, "connection reset")


def test_aaccept_and_aconnect_wait_for_the_connection():
    t = FakeTCP()
    i = Shell(t)
    s = arun(i, stream.TCPListener(i, 80, 2).aaccept(), [CID])
    assert s.cid == CID and s.peer == ("2001:db8::7", 1007)
    for cid in (0, CID):
        t = FakeTCP(cid=cid)
        i = Shell(t)
        s = arun(i, stream.aconnect(i, ("2001:db8::1", 8000)), "ESTABLISHED")
        assert s.cid == cid and s.peer == ("2001:db8::1", 8000)
        assert t.dialed[:2] == (ip6("2001:db8::1"), 8000)
    i = Shell(FakeTCP())
    assert arun(i, stream.aconnect(i, ("::1", 80)), "refused") == (ECONNREFUSED, "connection refused")
    i.tcp.free = False
    assert arun(i, stream.aconnect(i, ("::1", 80))) == NOSLOT
