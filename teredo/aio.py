# asyncio for the Teredo interface (aioespnow-sized), the same code on
# MicroPython's asyncio and CPython's:
#
#   iface = teredo.Interface("198.51.100.10")
#   await iface.aup()                 # starts the interface task; qualified
#   s = iface.socket(7)
#   async for data, peer in s:        # or: data, peer = await s.arecvfrom()
#       s.sendto(data, peer)          # sendto never blocks
#
# One task runs the interface: it drains the UDP socket, runs the core's
# timers and wakes the app tasks waiting on a socket (an Event each).
import sys

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio  # type: ignore[no-redef]

from teredo import iface as _iface

ON_MP = sys.implementation.name == "micropython"


def _sleep_ms(ms):
    if ON_MP:
        return asyncio.sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


if ON_MP:
    def _io_wait(sock):
        # a plain generator: the asyncio core parks the task until sock is
        # readable (MicroPython's own streams wait the same way)
        yield asyncio.core._io_queue.queue_read(sock)  # type: ignore[attr-defined]

    async def _readable(sock, ms):
        try:
            await asyncio.wait_for_ms(_io_wait(sock), ms)
        except asyncio.TimeoutError:
            pass
else:
    async def _readable(sock, ms):
        loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        fut = loop.create_future()
        fd = sock.fileno()
        loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
        try:
            await asyncio.wait_for(fut, ms / 1000)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)


async def _discovery(iface):
    """The local discovery socket (RFC 4380 §5.2.8) wakes its own task: a
    task waits on one stream at a time."""
    while True:
        m = iface.msock
        if m is None:
            await _sleep_ms(1000)
            continue
        await _readable(m, 1000)
        if iface.msock is m:
            iface.receive(iface.ticks(), m)


async def run(iface):
    """The interface task: what iface.run() does, as a good asyncio citizen."""
    try:
        await _run(iface)
    finally:
        if iface.disc_task is not None:
            iface.disc_task.cancel()
            iface.disc_task = None


async def _run(iface):
    while True:
        if iface.disc_task is None and iface.msock is not None:
            iface.disc_task = asyncio.create_task(_discovery(iface))
        n = iface.poll(0)
        if n:
            await _sleep_ms(0)  # a burst was handled: let the apps run
            continue
        wait = 1000
        s = iface.sock
        if s is not None:
            d = _iface._diff(iface.next_deadline(), iface.ticks())
            if d < wait:
                wait = d if d > 0 else 0
        if s is None or iface._udp is not None:
            await _sleep_ms(wait if wait < 50 else 50)
        elif wait:
            await _readable(s, wait)


def start(iface):
    """Start the interface task once (open the socket if needed)."""
    if getattr(iface, "task", None) is None:
        if iface.sock is None:
            iface.open()
        iface.task = asyncio.create_task(run(iface))
    return iface.task


async def up(iface, timeout_ms=20000):
    start(iface)
    t0 = iface.ticks()
    while not iface.qualified():
        if _iface._diff(iface.ticks(), t0) >= timeout_ms:
            c = iface.client
            why = c.error or "no answer from Teredo server %s" % c.server_text()
            iface.error = "not qualified after %d ms: %s" % (timeout_ms, why)
            raise OSError(_iface.ETIMEDOUT, iface.error)
        await _sleep_ms(20)
    return iface


def event_of(s):
    """The asyncio Event a socket, stream or listener wakes its task with."""
    if s.waiter is None:
        s.waiter = asyncio.Event()
    return s.waiter


_event = event_of


async def tcp_connect(iface, address):
    from teredo import stream
    return stream.Stream(await stream.aconnect(iface, address))


async def _serve(handler, s, port):
    from teredo import stream
    st = stream.Stream(s)
    try:
        await handler(st, st)
    except Exception as e:  # one connection's failure must not stop the server
        print("teredo: TCP handler on port %d: %r" % (port, e))
    finally:
        if not s.closed:
            s.close()


async def _server(iface, handler, lst):
    try:
        while True:
            s = await lst.aaccept()
            asyncio.create_task(_serve(handler, s, lst.port))
    finally:
        lst.close()


def tcp_server(iface, handler, port, backlog=2):
    """Start accepting on port; handler(reader, writer) per connection."""
    lst = iface.tcp_listen(port, backlog)
    return asyncio.create_task(_server(iface, handler, lst))


async def recvfrom(s, n=_iface.UDP_MAX):
    """The next datagram on socket s: (bytes, (address, port))."""
    ev = _event(s)
    while not s.count:
        if s.closed:
            raise OSError(_iface.ENOTCONN, "socket closed")
        ev.clear()
        await ev.wait()
    return s.recvfrom(n)


async def recv_into(s, buf):
    """The next datagram into buf; its source in s.src6 and s.sport."""
    ev = _event(s)
    while not s.count:
        if s.closed:
            raise OSError(_iface.ENOTCONN, "socket closed")
        ev.clear()
        await ev.wait()
    return s.recv_into(buf)
