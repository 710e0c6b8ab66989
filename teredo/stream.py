# TCP streams on the Teredo interface: the sans-I/O TCP (teredo/tcp.py) seen
# as MicroPython's socket streams and asyncio streams.
#
#   srv = iface.tcp_listen(80)           # sync: c = srv.accept(); c.read(100)
#   c = iface.tcp_connect(("2001:db8::1", 80))
#   c.write(b"GET / HTTP/1.0\r\n\r\n"); c.read(1000); c.close()
#
#   await iface.tcp_server(handler, 80)  # asyncio: handler(reader, writer),
#                                        # as asyncio.start_server gives it
#
# The TCP is made on first use (its rings are allocated then, once: an app
# that uses no TCP pays nothing for it); without it, TCP segments are dropped
# and counted.  A stream's blocking calls run the interface while they wait.

from teredo import addr
from teredo.iface import (EAGAIN, ENOTCONN, ETIMEDOUT, MP_STREAM_CLOSE, MP_STREAM_POLL, POLLIN, POLLOUT,
                          IOBase, _diff, _dst16)

try:
    import errno
    ECONNRESET = errno.ECONNRESET
    ECONNREFUSED = errno.ECONNREFUSED
except (ImportError, AttributeError):
    ECONNRESET, ECONNREFUSED = 104, 111

_ERRNO = {"reset": ECONNRESET, "refused": ECONNREFUSED, "timeout": ETIMEDOUT, "idle": ETIMEDOUT,
          "evicted": ECONNRESET, "closed": ENOTCONN}


class _Waitable(IOBase):
    """Blocking and asyncio waits shared by streams and listeners."""

    def __init__(self, iface):
        self.iface = iface
        self.timeout = None   # None: block; 0: never block; else ms
        self.waiter = None    # asyncio Event while a task waits (set by Interface._tcp_wake)
        self.nwait = 0        # tasks waiting now (a reader and a writer may share a stream)

    def settimeout(self, t):
        self.timeout = None if t is None else int(t * 1000)

    def setblocking(self, flag):
        self.timeout = None if flag else 0

    def _block(self, ready):
        """Run the interface until ready() or the timeout."""
        if ready():
            return
        if self.timeout == 0:
            raise OSError(EAGAIN, "would block")
        i = self.iface
        t0 = i.ticks()
        while not ready():
            w = 1000
            if self.timeout is not None:
                w = self.timeout - _diff(i.ticks(), t0)
                if w <= 0:
                    raise OSError(ETIMEDOUT, "timed out")
                if w > 1000:
                    w = 1000
            i.poll(w)

    async def _await(self, ready):
        from teredo import aio
        ev = aio.event_of(self)
        self.iface._waiting(self)
        self.nwait += 1
        try:
            while not ready():
                ev.clear()
                await ev.wait()
        finally:
            # off the interface's list only when the last waiting task leaves:
            # the other one (reader or writer) still needs its wake-ups
            self.nwait -= 1
            if not self.nwait:
                self.iface._not_waiting(self)

    def _wake(self):
        """Wake the tasks waiting on us (they see closed and return)."""
        if self.waiter is not None:
            self.waiter.set()


class TCPStream(_Waitable):
    """One TCP connection: read/readinto/readline/write/close, blocking or
    not, select.poll (ioctl) on MicroPython, and the async methods of
    asyncio's Stream (read, readinto, readexactly, readline, write + drain,
    close + wait_closed, get_extra_info) for asyncio servers and clients."""

    def __init__(self, iface, cid):
        _Waitable.__init__(self, iface)
        self.cid = cid
        self.closed = False
        self.peer = None
        for c in iface.tcp.status()["connections"]:
            if c["cid"] == cid:
                self.peer = (c["remote"], c["rport"])
        self._one = bytearray(1)

    # ---- state ---------------------------------------------------------------

    def state(self):
        return "CLOSED" if self.closed else self.iface.tcp.state(self.cid)

    def _readable(self):
        return self.closed or self.iface.tcp.readable(self.cid)

    def _writable(self):
        return self.closed or self.iface.tcp.writable(self.cid)

    def _fail(self):
        e = None if self.closed else self.iface.tcp.error(self.cid)
        raise OSError(_ERRNO.get(e or "closed", ENOTCONN), "connection %s" % (e or "closed"))

    # ---- reading ------------------------------------------------------------------

    def readinto(self, buf, nbytes=0):
        """Bytes read into buf (at least 1, waiting as the timeout allows);
        0 at the end of the stream."""
        self._block(self._readable)
        return self._take(buf, nbytes)

    def _take(self, buf, nbytes=0):
        if self.closed:
            return 0
        i = self.iface
        n = i.tcp.recv_into(self.cid, buf, 0, nbytes or len(buf), i.ticks())
        i.flush()
        if n < 0:
            e = i.tcp.error(self.cid)
            if e is not None and e != "closed":
                self._fail()
            return 0
        return n

    def read(self, n=-1):
        """Up to n bytes (b"" at the end of the stream); n < 0: until the end."""
        if n < 0:
            out = b""
            while True:
                k = self.read(1220)
                if not k:
                    return out
                out += k
        buf = bytearray(n)
        k = self.readinto(buf)
        return bytes(buf[:k]) if k < n else bytes(buf)

    def readline(self):
        out = bytearray()
        while True:
            if not self.readinto(self._one):
                return bytes(out)
            out.append(self._one[0])
            if self._one[0] == 10:
                return bytes(out)

    # ---- writing ---------------------------------------------------------------------

    def write(self, buf):
        """Queue all of buf, waiting for room as the timeout allows; returns
        the bytes queued (fewer only when non-blocking)."""
        off = 0
        n = len(buf)
        while off < n:
            off = self._queue(buf, off, n)
            if off < n:
                if self.timeout == 0:
                    if off:
                        return off
                    raise OSError(EAGAIN, "the transmit ring is full")
                self._block(self._writable)
        return off

    def _queue(self, buf, off, n):
        """Hand the TCP what fits of buf[off:n]; the new offset (OSError when
        the connection can no longer send)."""
        if self.closed:
            self._fail()
        i = self.iface
        k = i.tcp.send(self.cid, buf, off, n - off, i.ticks())
        i.flush()
        if k < 0:
            self._fail()
        return off + k

    def send(self, buf):
        return self.write(buf)

    def recv(self, n):
        return self.read(n)

    # ---- close -------------------------------------------------------------------------

    def close(self):
        """Close our side: a FIN after what is queued (the TCP finishes it)."""
        if not self.closed:
            self.closed = True
            i = self.iface
            i.tcp.close(self.cid, i.ticks())
            i.flush()
            self._wake()

    def abort(self):
        if not self.closed:
            self.closed = True
            i = self.iface
            i.tcp.abort(self.cid, i.ticks())
            i.flush()
            self._wake()

    def ioctl(self, req, arg):
        if req == MP_STREAM_POLL:
            r = 0
            if arg & POLLIN and self._readable():
                r |= POLLIN
            if arg & POLLOUT and self._writable():
                r |= POLLOUT
            return r
        if req == MP_STREAM_CLOSE:
            self.close()
            return 0
        return -1

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ---- asyncio (Stream's methods) -----------------------------------------------------

    async def areadinto(self, buf):
        await self._await(self._readable)
        return self._take(buf)

    async def aread(self, n=-1):
        if n < 0:
            out = b""
            while True:
                k = await self.aread(1220)
                if not k:
                    return out
                out += k
        buf = bytearray(n)
        k = await self.areadinto(buf)
        return bytes(buf[:k])

    async def areadexactly(self, n):
        out = b""
        while len(out) < n:
            k = await self.aread(n - len(out))
            if not k:
                raise EOFError
            out += k
        return out

    async def areadline(self):
        out = bytearray()
        while True:
            if not await self.areadinto(self._one):
                return bytes(out)
            out.append(self._one[0])
            if self._one[0] == 10:
                return bytes(out)

    async def awrite(self, buf):
        off = 0
        n = len(buf)
        while off < n:
            off = self._queue(buf, off, n)
            if off < n:
                await self._await(self._writable)
        return n


class Stream:
    """asyncio's Stream over a TCPStream: what a handler of
    asyncio.start_server gets as reader and writer (one object for both)."""

    def __init__(self, s):
        self.s = s
        self.pending = []

    def get_extra_info(self, what):
        return self.s.peer if what == "peername" else None

    def read(self, n=-1):
        return self.s.aread(n)

    def readinto(self, buf):
        return self.s.areadinto(buf)

    def readexactly(self, n):
        return self.s.areadexactly(n)

    def readline(self):
        return self.s.areadline()

    def write(self, buf):
        self.pending.append(bytes(buf))

    async def drain(self):
        p = self.pending
        self.pending = []
        for b in p:
            await self.s.awrite(b)

    def close(self):
        pass  # as asyncio's: the close happens in wait_closed

    async def wait_closed(self):
        await self.drain()
        self.s.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        await self.wait_closed()


class TCPListener(_Waitable):
    """A listening port: accept() gives TCPStreams."""

    def __init__(self, iface, port, backlog):
        _Waitable.__init__(self, iface)
        self.port = port
        self.lh = iface.tcp.listen(port, backlog)
        self.closed = False
        self._cid = -1

    def _ready(self):
        if self.closed:
            return True
        if self._cid < 0:
            self._cid = self.iface.tcp.accept(self.lh)
        return self._cid >= 0

    def _pop(self):
        if self.closed:
            raise OSError(ENOTCONN, "listener closed")
        cid = self._cid
        self._cid = -1
        return TCPStream(self.iface, cid)

    def accept(self):
        """The next connection: (TCPStream, (address, port)), as socket.accept."""
        self._block(self._ready)
        s = self._pop()
        return s, s.peer

    async def aaccept(self):
        await self._await(self._ready)
        return self._pop()

    def ioctl(self, req, arg):
        if req == MP_STREAM_POLL:
            return POLLIN if arg & POLLIN and self._ready() else 0
        if req == MP_STREAM_CLOSE:
            self.close()
            return 0
        return -1

    def close(self):
        if not self.closed:
            self.closed = True
            i = self.iface
            i.tcp.unlisten(self.lh, i.ticks())
            if self._cid >= 0:
                i.tcp.abort(self._cid, i.ticks())
            i.flush()
            self._wake()


def connect(iface, address, timeout_ms=None):
    """An active open to address = (IPv6 text or 16 bytes, port): a
    TCPStream once established (blocking), or OSError."""
    i = iface
    cid = i.tcp.connect(_dst16(address[0]), address[1], i.ticks())
    i.flush()
    if cid < 0:
        raise OSError(EAGAIN, "no free TCP connection slot (the tcp slots option)")
    s = TCPStream(i, cid)
    s.peer = (addr.format_ipv6(_dst16(address[0])), address[1])
    if timeout_ms is not None:
        s.timeout = timeout_ms
    s._block(lambda: i.tcp.state(cid) != "SYN-SENT")
    s.timeout = None
    if i.tcp.state(cid) not in ("ESTABLISHED", "CLOSE-WAIT"):
        s._fail()
    return s


async def aconnect(iface, address):
    i = iface
    cid = i.tcp.connect(_dst16(address[0]), address[1], i.ticks())
    i.flush()
    if cid < 0:
        raise OSError(EAGAIN, "no free TCP connection slot (the tcp slots option)")
    s = TCPStream(i, cid)
    s.peer = (addr.format_ipv6(_dst16(address[0])), address[1])
    await s._await(lambda: i.tcp.state(cid) != "SYN-SENT")
    if i.tcp.state(cid) not in ("ESTABLISHED", "CLOSE-WAIT"):
        s._fail()
    return s
