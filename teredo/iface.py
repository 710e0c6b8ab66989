# The one I/O shell of the library: the sans-I/O Client over a real UDP
# socket, and UDP sockets for apps, on MicroPython (board) and CPython (host)
# alike.  Apps use it the way umqtt or espnow are used:
#
#   iface = teredo.Interface("198.51.100.10")
#   iface.up(20000)                      # qualified, or OSError (reason in status()["error"])
#   s = iface.socket(7)                  # UDP port 7 on our Teredo address
#   data, peer = s.recvfrom(1280)        # peer = ("2001:...", port)
#   s.sendto(data, peer)
#
# The app owns the loop: a blocking socket call runs the interface while it
# waits; iface.poll(ms) runs it once; iface.run() forever; teredo.aio runs it
# as an asyncio task.
#
# What allocates: the platform's recvfrom (a board's returns fresh bytes and a
# tuple) and the memoryview handed to sendto; from feed() to recv_into() and
# from sendto() with a 16-byte address to the transmit ring, nothing
# (heap_lock tests in tests/core/test_iface.py).

import select
import socket
import sys
import time

from teredo import addr, wire
from teredo.client import _diff, EV_ECHO_REPLY, EV_TCP, EV_UDP, QUALIFIED, TX_SLOTS, Client

try:
    import errno
    EAGAIN = errno.EAGAIN
    ETIMEDOUT = errno.ETIMEDOUT
    ENOTCONN = errno.ENOTCONN
    EADDRINUSE = errno.EADDRINUSE
except (ImportError, AttributeError):  # a port without errno
    EAGAIN, ETIMEDOUT, ENOTCONN, EADDRINUSE = 11, 110, 107, 98
try:
    # Linux's values where MicroPython's errno does not name them
    EMSGSIZE = getattr(errno, "EMSGSIZE", 90)
    EHOSTUNREACH = getattr(errno, "EHOSTUNREACH", 113)
except NameError:
    EMSGSIZE, EHOSTUNREACH = 90, 113
ON_MP = sys.implementation.name == "micropython"
# MicroPython's select.poll and asyncio call ioctl() of an io.IOBase
# subclass; CPython's IOBase is a file, which a socket is not.
IOBase = object
if ON_MP:
    from io import IOBase  # type: ignore[assignment]  # noqa: F811
try:
    from os import urandom as _urandom
except ImportError:
    _urandom = None  # type: ignore[assignment]

MASK = 0x3FFFFFFF        # the core's ticks wrap at 2**30 (the ESP32's ticks_ms)
RX_MAX = 1400            # largest datagram read: 1280 (RFC 4380 §5.1.2) + headers
RX_BURST = 16            # datagrams handled per wake-up
PONGS = 8                # echo replies remembered for pong() (a power of 2)
UDP_MAX = 1280 - 48      # largest UDP payload in one Teredo packet (MTU - IPv6 - UDP)
SLOT_HDR = 20            # per queued datagram: length 2, source port 2, source address 16
POLLIN = 1               # select.POLLIN, as MicroPython's stream ioctl speaks it
POLLOUT = 4
MP_STREAM_POLL = 3
MP_STREAM_CLOSE = 4

if hasattr(time, "ticks_ms"):
    def ticks_ms():
        return time.ticks_ms() & MASK  # type: ignore[operator]  # the unix port's ticks are wider
else:
    _mono_ns = time.monotonic_ns  # type: ignore[attr-defined]

    def ticks_ms():
        return (_mono_ns() // 1000000) & MASK


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _rand(bits):
    """The core's random source: the OS / hardware RNG."""
    if _urandom is None:
        import random
        return random.getrandbits(bits)
    b = _urandom(2)
    return ((b[0] << 8) | b[1]) & ((1 << bits) - 1)


def _dst16(a):
    """An IPv6 address as text or 16 bytes -> 16 bytes (no copy for bytes)."""
    if type(a) is str:
        return addr.parse_ipv6(a)
    if len(a) != 16:
        raise ValueError("an IPv6 address is text or 16 bytes")
    return a


def _dotted(text):
    """Only digits and dots: one IPv4 address (no list, no name)."""
    for ch in text:
        if ch != "." and not ("0" <= ch <= "9"):
            return False
    return True


class Interface:
    """The Teredo interface: one UDP socket to the Internet, the client core,
    and the app sockets bound to ports of our Teredo address."""

    def __init__(self, server, server2=None, port=0, rand=None, udp=None, clock=None, tcp=None,
                 client_class=Client, resolve=None, lan=None, **options):
        # client_class: Client, or a subclass (teredo.raw.RawClient for a tun).
        # server: an IPv4 address, or a comma-separated list of addresses and
        # host names; names are resolved at open() and after every
        # qualification that failed (resolve(name) -> [4 bytes, ...]).
        self._names = None  # type: list | None  # the server items, when some are host names
        self._unresolved = []       # names that did not resolve, with the reason
        self._fails = 0             # client.failures when the names were resolved last
        self._resolver = resolve
        if isinstance(server, str) and not _dotted(server):
            from teredo import servers  # names or a list: loaded only then
            items = servers.parse(server)
            for it in items:
                if isinstance(it, str):
                    self._names = items
        if self._names is not None:
            if server2 is not None:
                raise ValueError("server2 goes with a single server address, not with host names")
            server = None
        self.client = client_class(server, server2, rand=rand or _rand, **options)
        self.tcp = None             # the TCP (teredo.tcp), made on first use
        self.tcp_options = tcp or {}  # its options (slots, rx_bytes, tx_bytes, ...)
        self._waiters = []          # streams and listeners a task waits on
        self.ticks = clock or ticks_ms  # int ms wrapping at 2**30 (tests give a fake clock)
        self.port = port            # local UDP port toward the Internet (0: any)
        # (ip, netmask) of the LAN interface, for local discovery (§5.2.8);
        # None: the board's WiFi station interface, when connected
        self.lan = lan
        self.sock = None
        self.msock = None           # joined to 224.0.0.253:3544 (local discovery)
        self.disc_task = None       # the asyncio task waiting on it (teredo.aio)
        self._mfd = -2
        self._udp = udp             # a socket object given by tests (no real I/O)
        self.poller = select.poll()
        self._watch = []            # (stream, callback(now)) the app polls with us
        self._ports = {}            # port -> UDPSocket
        self._sockaddr = {}         # unix port: (ip, port) -> struct sockaddr
        # addresses as ("1.2.3.4", port); the unix port's socket speaks struct sockaddr
        self._tuple_addr = udp is not None or not (ON_MP and sys.platform == "linux")
        self._rxbuf = None if ON_MP else bytearray(RX_MAX)
        self._src4 = bytearray(4)
        self._src_text = None       # the last source address as text, and parsed
        self._src4_parsed = bytearray(4)
        self._fd = -2               # the socket's fd (CPython's poll reports fds)
        self._due = 0
        self._seq = 0
        self._pq = [-1] * PONGS      # seq of the last echo replies to our pings (a ring)
        self._pt = [0] * PONGS       # and the ticks each came at
        self._pn = 0                 # echo replies so far (wraps at 2**30)
        self.error = None           # the shell's own error (socket), beside the client's
        self.on_change = None       # callback(iface) at every state/address change
        self._seen = -1
        self.task = None            # the asyncio task running the interface (teredo.aio)

    # ---- life cycle ---------------------------------------------------------------

    def open(self, now=None):
        """Open the UDP socket and start qualifying (returns at once)."""
        self.close_socket()
        now = self.ticks() if now is None else now
        if self._udp is not None:
            s = self._udp
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(socket.getaddrinfo("0.0.0.0", self.port)[0][-1])
            except OSError as e:
                s.close()
                self.error = "cannot bind UDP port %d (%s): pick another port" % (self.port, e)
                self.client.stop(self.error)
                raise OSError(EADDRINUSE, self.error)
            s.setblocking(False)
            if not ON_MP:
                # RFC 4380 §5.1.2: Teredo packets SHOULD NOT be sent with DF
                # set; Linux sets it by default (path MTU discovery)
                try:
                    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), 0)
                except (OSError, AttributeError):
                    pass
            self.poller.register(s, POLLIN)
        self.sock = s
        self._fd = s.fileno() if hasattr(s, "fileno") else -2
        self.error = None
        if self._udp is None and self.client.cfg["local_discovery"]:
            from teredo import local  # only where discovery is on
            local.open_socket(self)
        if self._names is not None:
            self.resolve()
        self.client.start(now)
        if self._unresolved and not self.client.servers:
            self.client.error = self._why_unresolved()
        self._due = now
        return self

    def resolve(self):
        """Look up the server names (getaddrinfo: this blocks while the
        resolver works) and give the client the servers (teredo.servers)."""
        from teredo import servers
        c = self.client
        self._fails = c.failures
        pairs, labels, self._unresolved = servers.resolve(self._names or (), self._resolver)
        if pairs:
            c.set_servers(pairs, labels)
        elif self._unresolved:
            c.error = self._why_unresolved()

    def _why_unresolved(self):
        return "; ".join([w for _, w in self._unresolved]) + ": check the name and DNS; retrying"

    def up(self, timeout_ms=20000):
        """Open if needed and run until qualified; OSError(ETIMEDOUT) with the
        reason (also in status()["error"]) when it does not qualify in time."""
        if self.sock is None:
            self.open()
        t0 = self.ticks()
        while self.client.state != QUALIFIED:
            left = timeout_ms - _diff(self.ticks(), t0)
            if left <= 0:
                why = self.client.error or "no answer from Teredo server %s" % self.client.server_text()
                self.error = "not qualified after %d ms: %s" % (timeout_ms, why)
                raise OSError(ETIMEDOUT, self.error)
            self.poll(left if left < 100 else 100)
        return self

    def down(self, why):
        """The link went away (WiFi lost): close the socket, forget the address,
        say why in status until open() is called again."""
        self.close_socket()
        self.client.stop(why)

    def close_socket(self):
        for s in (self.sock, self.msock):
            if s is not None and s is not self._udp:
                try:
                    self.poller.unregister(s)
                except (OSError, ValueError, KeyError):
                    pass
                s.close()
        if self.msock is not None:
            self.client.set_lan(None, None, "socket closed")
        self.sock = None
        self.msock = None
        self._mfd = -2

    def close(self):
        for s in list(self._ports.values()):
            s.close()
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.down("closed")

    def aup(self, timeout_ms=20000):
        """await iface.aup(): start the interface task, wait until qualified."""
        from teredo import aio
        return aio.up(self, timeout_ms)

    def astart(self):
        """Start the interface task (asyncio) without waiting."""
        from teredo import aio
        return aio.start(self)

    # ---- what apps read --------------------------------------------------------------

    @property
    def address(self):
        """Our Teredo address as text, or None while not qualified."""
        c = self.client
        return addr.format_ipv6(c.address) if c.has_address and c.state == QUALIFIED else None

    def qualified(self):
        return self.client.state == QUALIFIED

    def status(self):
        st = self.client.status()
        if self.error and not st["error"]:
            st["error"] = self.error
        socks = []
        for p in sorted(self._ports):
            s = self._ports[p]
            socks.append({"port": p, "rx": s.rx, "tx": s.tx, "queued": s.count, "dropped": s.dropped})
        st["sockets"] = socks
        for name, why in self._unresolved:
            st["servers"].append({"name": name, "address": None, "state": "unresolved", "rtt_ms": None,
                                  "error": why})
        if self.tcp is not None:
            st["tcp"] = self.tcp.status()
        return st

    def socket(self, port, rxq=4):
        """A UDP socket bound to our Teredo address and port, with a receive
        queue of rxq datagrams (more are dropped and counted)."""
        if port in self._ports:
            raise OSError(EADDRINUSE, "UDP port %d is already bound" % port)
        s = UDPSocket(self, port, rxq)  # a bad rxq fails before the port is taken
        self.client.bind(port)
        self._ports[port] = s
        return s

    # ---- TCP (teredo.stream) ----------------------------------------------------------

    def tcp_stack(self):
        """The TCP, made (and its rings allocated) on first use."""
        if self.tcp is None:
            import gc
            from teredo.tcp import TCP
            gc.collect()  # the rings want contiguous blocks: gather the free heap first
            self.tcp = TCP(self.client, self.client.rand, **self.tcp_options)
        return self.tcp

    def tcp_listen(self, port, backlog=2):
        """A listening TCP port: .accept() -> (stream, peer); await .aaccept()."""
        from teredo.stream import TCPListener
        self.tcp_stack()
        return TCPListener(self, port, backlog)

    def tcp_connect(self, address, timeout_ms=None):
        """A TCP connection to address = (IPv6 text or 16 bytes, port)."""
        from teredo import stream
        self.tcp_stack()
        return stream.connect(self, address, timeout_ms)

    def atcp_connect(self, address):
        """await iface.atcp_connect(address) -> an asyncio Stream."""
        from teredo import aio
        self.tcp_stack()
        return aio.tcp_connect(self, address)

    def tcp_server(self, handler, port, backlog=2):
        """asyncio.start_server's shape: handler(reader, writer) runs as a
        task for each connection; returns the server's task."""
        from teredo import aio
        self.tcp_stack()
        return aio.tcp_server(self, handler, port, backlog)

    def _waiting(self, obj):
        if obj not in self._waiters:
            self._waiters.append(obj)

    def _not_waiting(self, obj):
        if obj in self._waiters:
            self._waiters.remove(obj)

    def _tcp_wake(self):
        for w in self._waiters:
            if w.waiter is not None:
                w.waiter.set()

    def next_deadline(self):
        """When the core or the TCP wants its timer (ticks ms)."""
        d = self.client.next_deadline()
        if self.tcp is not None:
            t = self.tcp.next_deadline()
            if t is not None and _diff(t, d) < 0:
                d = t
        return d

    def watch(self, stream, callback):
        """Poll stream (readable) with the interface's socket; callback(now)
        runs when it is: an app's own console or sensor, in one wait."""
        self.poller.register(stream, POLLIN)
        self._watch.append((stream, callback, stream.fileno() if hasattr(stream, "fileno") else -2))

    def unwatch(self, stream):
        """Stop polling a stream given to watch()."""
        for w in self._watch:
            if w[0] is stream:
                self._watch.remove(w)
                self.poller.unregister(stream)
                return

    # ---- ping (blocking, for apps and the console) ------------------------------------

    def ping(self, dst, timeout_ms=2000, size=16):
        """One ICMPv6 echo to dst (text or 16 bytes): the round trip in ms, or
        None when no reply came within timeout_ms."""
        if self.client.state != QUALIFIED:
            raise OSError(ENOTCONN, "not qualified: %s" % (self.status()["error"] or "qualifying"))
        self._seq = (self._seq + 1) & 0xFFFF
        t0 = self.ticks()
        n = self._pn
        self.ping_send(dst, self._seq, t0, size)
        while True:
            while n != self._pn:  # every reply since the send, not only the last one
                r = self.pong(n)
                n = (n + 1) & MASK
                if r is not None and r[0] == self._seq:
                    return _diff(r[1], t0)
            if _diff(self.ticks(), t0) >= timeout_ms:
                return None
            self.poll(50)

    def ping_send(self, dst, seq, now, size=16):
        """Send one echo request (no wait); the reply shows in last_pong()."""
        r = self.client.ping(_dst16(dst), seq, now, size)
        self.flush()
        return r

    def last_pong(self):
        """(seq, ticks ms) of the last echo reply to our pings, seq -1: none."""
        k = (self._pn - 1) & (PONGS - 1)
        return self._pq[k], self._pt[k]

    def pong_count(self):
        """How many echo replies to our pings came so far (wraps at 2**30).
        With pong(n), a pinger that looks only now and then still sees each
        of the last PONGS (8) replies, also when several came in one turn
        (a path that opens releases every echo that waited for it at once)."""
        return self._pn

    def pong(self, n):
        """(seq, ticks ms) of echo reply number n (0 = the first, as counted
        by pong_count), or None: not come yet, or more than PONGS ago."""
        age = (self._pn - n) & MASK
        if age == 0 or age > PONGS:
            return None
        k = n & (PONGS - 1)
        return self._pq[k], self._pt[k]

    # ---- the event loop ------------------------------------------------------------------

    def poll(self, timeout_ms=0):
        """Run the interface once: wait up to timeout_ms (less when a timer is
        due; < 0: until one is) for datagrams or a watched stream, handle what
        came, run timers.
        Returns the number of datagrams handled."""
        c = self.client
        now = self.ticks()
        self.flush()
        self._changes()
        handled = 0
        wait = timeout_ms
        if self.sock is not None:
            self._due = self.next_deadline()  # once per turn: it walks the peer table
            d = _diff(self._due, now)
            if d < wait or wait < 0:  # < 0: no limit but the next timer
                wait = d if d > 0 else 0
        if self.sock is not None or self._watch:
            for ev in self._ipoll(wait):
                obj = ev[0]  # MicroPython: the object; CPython: its fd
                now = self.ticks()
                if obj is self.sock or obj == self._fd:
                    handled += self.receive(now)
                elif obj is self.msock or obj == self._mfd:
                    handled += self.receive(now, self.msock)
                else:
                    for w in self._watch:
                        if w[0] is obj or obj == w[2]:
                            w[1](now)
        elif wait > 0:
            _sleep_ms(wait)
        now = self.ticks()
        if self.sock is not None and _diff(now, self._due) >= 0:
            c.on_timer(now)
            if self._names is not None and c.failures != self._fails:
                self.resolve()  # after a failure: the names may point elsewhere now
            if self.tcp is not None:
                self.tcp.on_timer(now)
                self.flush()
                self._tcp_wake()
        self.flush()
        self._changes()
        return handled

    def run(self):
        """Run the interface forever (apps that own no loop of their own)."""
        while True:
            self.poll(1000)

    def _ipoll(self, wait):
        if hasattr(self.poller, "ipoll"):
            return self.poller.ipoll(wait)  # reuses one tuple: no garbage per turn
        return self.poller.poll(wait)

    def _changes(self):
        if self.client.changes != self._seen:
            self._seen = self.client.changes
            if self.on_change is not None:
                self.on_change(self)

    def receive(self, now, s=None):
        """Up to RX_BURST datagrams from the socket (or the discovery
        socket, s): the loop's housekeeping is then paid once per burst, not
        once per packet."""
        n = 0
        disc = s is not None
        if not disc:
            s = self.sock
        if s is None:
            return 0
        ip4 = self._src4
        while n < RX_BURST:
            try:
                if self._rxbuf is not None:
                    k, src = s.recvfrom_into(self._rxbuf)
                    data = self._rxbuf
                else:
                    data, src = s.recvfrom(RX_MAX)
                    k = len(data)
            except OSError:
                break  # EAGAIN: all read
            if self._tuple_addr:  # ("1.2.3.4", port)
                if src[0] != self._src_text:  # most datagrams come from the last source
                    self._src_text = src[0]
                    self._src4_parsed = addr.parse_ipv4(src[0])
                ip4 = self._src4_parsed
                port = src[1]
            else:  # unix port: struct sockaddr_in, copied without a slice
                ip4[0] = src[4]
                ip4[1] = src[5]
                ip4[2] = src[6]
                ip4[3] = src[7]
                port = (src[2] << 8) | src[3]
            if disc:
                self.client.on_discovery(data, k, ip4, port, now)
                self.flush()
            else:
                self.feed(data, k, ip4, port, now)
            n += 1
        return n

    def feed(self, data, n, src4, sport, now):
        """One datagram from the Internet (the socket, or a test) into the core;
        what it answers is sent, what it delivers goes to the app sockets."""
        c = self.client
        ev = c.on_datagram(data, n, src4, sport, now)
        if ev == EV_UDP:
            s = self._ports.get(c.ev_dport)
            if s is not None:
                s._push(c.rx, c.ev_src, c.ev_sport, c.ev_off, c.ev_len)
        elif ev == EV_TCP:
            if self.tcp is not None:
                self.tcp.on_segment(c.rx, c.ev_off, c.ev_off + c.ev_len, now)
                self.flush()
                self._tcp_wake()
            else:
                c.drops[wire.UNSUPPORTED] += 1  # no app uses TCP
        elif ev == EV_ECHO_REPLY:
            k = self._pn & (PONGS - 1)
            self._pq[k] = c.ev_seq
            self._pt[k] = now
            self._pn = (self._pn + 1) & MASK
        self.flush()
        return ev

    def flush(self):
        """Send what the core has for the Internet."""
        c = self.client
        s = self.sock
        n = c.pop_tx()
        while n:
            if s is not None:
                a = c.tx_addr
                if not self._tuple_addr:
                    sa = self._sockaddr.get(a)
                    if sa is None:
                        sa = socket.getaddrinfo(a[0], a[1])[0][-1]  # type: ignore[index]
                        if len(self._sockaddr) > 16:
                            self._sockaddr = {}
                        self._sockaddr[a] = sa
                    a = sa
                try:
                    s.sendto(c.tx_mv[c.tx_off:c.tx_off + n], a)  # type: ignore[index]
                except OSError:
                    pass  # a full socket buffer or a lost link: Teredo retries
            n = c.pop_tx()


class UDPSocket(IOBase):
    """A UDP socket on our Teredo address, named and behaving like
    MicroPython's socket: sendto, recvfrom, recvfrom_into, recv_into,
    settimeout, setblocking, close; select.poll on MicroPython (ioctl)."""

    def __init__(self, iface, port, rxq=4):
        if rxq < 1:
            raise ValueError("rxq must be >= 1")
        self.iface = iface
        self.port = port
        # one block per queued datagram, allocated once (small blocks find
        # room in a fragmented heap where one large one would not)
        self.q = [bytearray(SLOT_HDR + UDP_MAX) for _ in range(rxq)]
        self.qn = rxq
        self.head = 0
        self.count = 0
        self.src6 = bytearray(16)  # the source of what recv_into returned last
        self.sport = 0
        self.rx = 0
        self.tx = 0
        self.dropped = 0           # receive queue full
        self.timeout = None        # None: blocking; 0: non-blocking; else ms
        self.closed = False
        self.waiter = None         # an asyncio Event while a task waits (teredo.aio)

    # ---- receive -----------------------------------------------------------------

    def _push(self, rx, src, sport, off, n):
        if self.count >= self.qn:
            self.dropped += 1
            return
        t = self.head + self.count
        if t >= self.qn:
            t -= self.qn
        q = self.q[t]
        q[0] = n >> 8
        q[1] = n & 0xFF
        q[2] = sport >> 8
        q[3] = sport & 0xFF
        wire.copy(q, 4, rx, src, 16)
        wire.copy(q, SLOT_HDR, rx, off, n)
        self.count += 1
        self.rx += 1
        if self.waiter is not None:
            self.waiter.set()

    def _wait(self):
        """Run the interface until a datagram is queued, within the timeout."""
        if self.count:
            return
        if self.closed:
            raise OSError(ENOTCONN, "socket closed")
        if self.timeout == 0:
            raise OSError(EAGAIN, "no datagram queued")
        t0 = self.iface.ticks()
        while not self.count:
            w = 1000
            if self.timeout is not None:
                w = self.timeout - _diff(self.iface.ticks(), t0)
                if w <= 0:
                    raise OSError(ETIMEDOUT, "no datagram within the timeout")
                if w > 1000:
                    w = 1000
            self.iface.poll(w)

    def recv_into(self, buf, nbytes=0):
        """The next datagram into buf (cut to its size); its source in
        self.src6 (16 bytes) and self.sport.  Allocates nothing."""
        self._wait()
        q = self.q[self.head]
        n = (q[0] << 8) | q[1]
        self.sport = (q[2] << 8) | q[3]
        wire.copy(self.src6, 0, q, 4, 16)
        lim = nbytes if nbytes else len(buf)
        if n > lim:
            n = lim
        wire.copy(buf, 0, q, SLOT_HDR, n)
        self.head += 1
        if self.head >= self.qn:
            self.head = 0
        self.count -= 1
        return n

    def recvfrom_into(self, buf, nbytes=0):
        n = self.recv_into(buf, nbytes)
        return n, (addr.format_ipv6(self.src6), self.sport)

    def recvfrom(self, bufsize):
        buf = bytearray(bufsize if bufsize < UDP_MAX else UDP_MAX)
        n = self.recv_into(buf)
        return bytes(buf[:n]), (addr.format_ipv6(self.src6), self.sport)

    def recv(self, bufsize):
        return self.recvfrom(bufsize)[0]

    # ---- send -----------------------------------------------------------------------

    def sendto(self, data, address):
        """Send data to address = (IPv6 text or 16 bytes, port).  Raises the
        errno a socket would: EMSGSIZE over the Teredo MTU, ENOTCONN when not
        qualified, EAGAIN when the transmit ring is full."""
        iface = self.iface
        # what waits goes first: the ring's slots and the arena (full with
        # fewer than TX_SLOTS datagrams when they are big) are free again;
        # with nothing waiting both are free already
        if iface.client.tq_count:
            iface.flush()
        n = self.send_later(data, address, iface.ticks())
        iface.flush()
        return n

    def send_later(self, data, address, now):
        """sendto without the flush (a burst of datagrams; the heap_lock
        tests): it waits in the transmit ring for the next flush or poll.
        Allocates nothing when address holds 16 bytes."""
        if self.closed:
            raise OSError(ENOTCONN, "socket closed")
        dl = len(data)
        if dl > UDP_MAX:
            raise OSError(EMSGSIZE, "UDP payload over %d bytes (Teredo MTU 1280)" % UDP_MAX)
        c = self.iface.client
        if c.state != QUALIFIED:
            raise OSError(ENOTCONN, "not qualified")
        r = c.send_udp(_dst16(address[0]), address[1], self.port, data, now)
        # a datagram queued behind a connectivity test, or dropped for want of
        # queue room, is sent as far as UDP is concerned (the drop is counted)
        if r and r != wire.QUEUE_FULL:
            if r == wire.TX_FULL or r == wire.RATE_LIMITED:
                raise OSError(EAGAIN, "transmit ring full")
            raise OSError(EHOSTUNREACH, wire_reason(r))
        self.tx += 1
        return dl

    # ---- socket options, select.poll, close -----------------------------------------------

    def settimeout(self, t):
        """None: block; 0: never block (EAGAIN); else seconds (a float is fine)."""
        self.timeout = None if t is None else int(t * 1000)

    def setblocking(self, flag):
        self.timeout = None if flag else 0

    def ioctl(self, req, arg):
        """MicroPython's stream protocol: select.poll and asyncio ask here."""
        if req == MP_STREAM_POLL:
            r = 0
            if arg & POLLIN and self.count:
                r |= POLLIN
            c = self.iface.client
            if arg & POLLOUT and c.state == QUALIFIED and c.tq_count < TX_SLOTS:
                r |= POLLOUT
            return r
        if req == MP_STREAM_CLOSE:
            self.close()
            return 0
        return -1

    def close(self):
        if not self.closed:
            self.closed = True
            self.iface.client.unbind(self.port)
            self.iface._ports.pop(self.port, None)
            if self.waiter is not None:
                self.waiter.set()  # a waiting task sees the socket closed

    # ---- asyncio (teredo.aio) ----------------------------------------------------------

    def arecvfrom(self, n=UDP_MAX):
        from teredo import aio
        return aio.recvfrom(self, n)

    def arecv_into(self, buf):
        from teredo import aio
        return aio.recv_into(self, buf)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.closed:
            raise StopAsyncIteration
        try:
            return await self.arecvfrom()
        except OSError:
            if self.closed:
                raise StopAsyncIteration
            raise

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def wire_reason(r):
    from teredo.client import DROP_NAMES
    return DROP_NAMES[r] if 0 <= r < len(DROP_NAMES) else "error %d" % r
