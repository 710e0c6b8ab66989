# A simulated Internet for the client core, on CPython and MicroPython alike:
# the client behind a NAT ('cone', 'restricted' or 'symmetric'), a Teredo
# server double with two addresses (answers RS with RA as RFC 4380 §5.3.2
# says), a relay double toward native IPv6, all driven by a fake clock.

from teredo import addr, proto, wire
from teredo.client import Client
from vectors import (LOCAL, NAT_WAN, RELAY, SERVER, SERVER2, SERVER_LL, V6HOST, Rand,  # noqa: F401
                     build_ra, ip4, ip6)


TICKS_MASK = (1 << 30) - 1


class Net:
    """A client behind a NAT, a Teredo server with two addresses, a relay
    toward native IPv6, driven by a fake clock.  nat is 'cone', 'restricted'
    or 'symmetric'.  server_up/relay_up switch the doubles off and on."""

    def __init__(self, nat="restricted", seed=7, now=1000, **opts):
        self.now = now  # ticks ms, wrapping at 2**30 as on the ESP32 (run)
        self.nat = nat
        self.wan = ip4(NAT_WAN)
        self.base_port = 50000
        self.mappings = {}  # dest (ip, port) -> mapped port (symmetric)
        self.opened = []    # (ip, port) the client has sent to (filtering)
        self.server_up = True
        self.server2_up = True
        self.relay_up = True
        self.relay_pending = []  # datagrams the relay holds for the client
        self.log = []       # (what, detail) of everything that crossed the NAT
        self.inbox = []     # datagrams for the client: (bytes, src4, sport)
        if "queue_slots" not in opts:
            opts["queue_slots"] = 1  # one queue buffer: room for the test run in 64K of heap
        cls = opts.pop("client_class", Client)  # or a subclass (teredo.raw.RawClient)
        self.c = cls(SERVER, rand=Rand(seed), **opts)
        self.events = []
        self.feed = None    # where datagrams for the client go (default: its core)

    def mapped_port(self, dst):
        if self.nat == "symmetric":
            if dst not in self.mappings:
                self.mappings[dst] = self.base_port + len(self.mappings)
            return self.mappings[dst]
        return self.base_port

    def flush(self):
        """Send everything the client queued; deliver what comes back."""
        c = self.c
        rounds = 0
        while rounds < 50:
            rounds += 1
            n = c.pop_tx()
            while n:
                data = bytes(c.tx_mv[c.tx_off:c.tx_off + n])
                self.outbound(data, c.tx_addr)
                n = c.pop_tx()
            if not self.inbox:
                return
            inbox = self.inbox
            self.inbox = []
            feed = self.feed or c.on_datagram
            for data, src4, sport in inbox:
                ev = feed(data, len(data), src4, sport, self.now)
                if ev:
                    self.events.append((ev, c.ev_seq))

    def inbound(self, data, src_text, sport):
        """A datagram from the Internet to the NAT's mapping."""
        key = (src_text, sport)
        if self.nat != "cone" and key not in self.opened:
            if self.nat == "symmetric" or (src_text, sport) not in self.opened:
                self.log.append(("nat-drop", src_text))
                return
        self.inbox.append((data, ip4(src_text), sport))

    def outbound(self, data, to):
        if to not in self.opened:
            self.opened.append(to)
        mport = self.mapped_port(to)
        ip, port = to
        self.log.append(("out", ip, port, data))
        if port == proto.PORT and ip in (SERVER, SERVER2):
            self.server_rx(data, ip, mport)
        elif ip == RELAY and port == proto.PORT:
            self.relay_rx(data, mport)

    def server_rx(self, data, ip, mport):
        if (ip == SERVER and not self.server_up) or (ip == SERVER2 and not self.server2_up):
            return
        hdr = [0, 0, 0, 0]
        if wire.parse_encap(data, len(data), hdr):
            return
        i = hdr[wire.H_IP]
        if data[i + 6] == proto.NH_ICMPV6 and data[i + 40] == proto.ICMP_RS:
            nn = hdr[wire.H_NONCE]
            nonce = data[nn:nn + 8]
            cone = data[i + 16] & 0x80
            src = SERVER2 if (cone and ip == SERVER) else (SERVER if cone else ip)
            if src == SERVER2 and not self.server2_up:
                return
            ra = build_ra(SERVER_LL, data[i + 8:i + 24], nonce, self.wan, mport, ip4(SERVER))
            self.inbound(ra, src, proto.PORT)
            return
        if data[i + 6] == proto.NH_ICMPV6 and data[i + 40] == proto.ICMP_ECHO_REQUEST:
            # connectivity test: forwarded natively to the host, whose reply
            # is routed to the relay
            if addr.format_ipv6(data[i + 24:i + 40]) == V6HOST and self.relay_up:
                n = len(data) - i - 48
                self.native_reply(data[i + 8:i + 24], data[i + 48:i + 48 + n],
                                  (data[i + 44] << 8) | data[i + 45], (data[i + 46] << 8) | data[i + 47])
            return

    def relay_indirect_bubble(self, client6):
        """The relay cannot reach a restricted client: it sends a bubble via
        the client's server, which adds an origin indication (RFC 4380 §5.4.1)."""
        b = bytearray(48)
        wire.build_origin(b, 0, proto.PORT, ip4(RELAY))
        wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), client6)
        self.inbound(bytes(b), SERVER, proto.PORT)

    def relay_rx(self, data, mport):
        if not self.relay_up:
            return
        hdr = [0, 0, 0, 0]
        if wire.parse_encap(data, len(data), hdr):
            return
        i = hdr[wire.H_IP]
        nh = data[i + 6]
        self.relay_seen = getattr(self, "relay_seen", 0) + 1
        if nh == proto.NH_NONE:
            # the client's direct bubble opened its NAT: deliver what waited
            pending = self.relay_pending
            self.relay_pending = []
            for d in pending:
                self.inbound(d, RELAY, proto.PORT)
        elif nh == proto.NH_ICMPV6 and data[i + 40] == proto.ICMP_ECHO_REQUEST:
            # a ping through the relay to the native host: it answers
            if addr.format_ipv6(data[i + 24:i + 40]) == V6HOST:
                n = len(data) - i - 48
                self.native_reply(data[i + 8:i + 24], data[i + 48:i + 48 + n],
                                  (data[i + 44] << 8) | data[i + 45], (data[i + 46] << 8) | data[i + 47])
        elif nh == proto.NH_ICMPV6 and data[i + 40] == proto.ICMP_ECHO_REPLY:
            self.native_got = getattr(self, "native_got", 0) + 1

    def native_reply(self, dst6, payload, ident, seq):
        b = bytearray(48 + len(payload))
        n = wire.build_echo(b, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), dst6, ident, seq,
                            payload, len(payload))
        self.from_relay(bytes(b[:n]), dst6)

    def from_relay(self, data, dst6):
        """The relay sends to a Teredo client: directly once the client's NAT
        lets it in, else it holds the packet and sends a bubble through the
        client's server (RFC 4380 §5.4.1)."""
        if self.nat == "cone" or (RELAY, proto.PORT) in self.opened:
            self.inbound(data, RELAY, proto.PORT)
            return
        self.relay_pending.append(data)
        self.relay_indirect_bubble(dst6)

    def native_ping(self, seq, size=8):
        """The IPv6-only host pings the client; the packet arrives from the relay."""
        b = bytearray(48 + size)
        n = wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), self.c.address,
                            0x1234, seq, bytes(size), size)
        self.from_relay(bytes(b[:n]), self.c.address)

    def run(self, ms, step=100):
        """Advance the fake clock, firing the client's timers."""
        left = ms
        while left > 0:
            left -= step
            self.now = (self.now + step) & TICKS_MASK
            self.c.on_timer(self.now)
            self.flush()

    def start(self):
        self.c.start(self.now)
        self.flush()

    def sent(self, kind):
        return [e for e in self.log if e[0] == kind]


class FakeUDP:
    """The Interface's UDP socket, wired to the simulated Internet."""

    def __init__(self, net):
        self.net = net
        self.sent = 0

    def sendto(self, mv, to):
        self.sent += 1
        self.net.outbound(bytes(mv), to)


def interface(nat="restricted", **opts):
    """(Net, Interface): an Interface whose socket is the simulated Internet
    and whose clock is the Net's, qualified."""
    from teredo.iface import Interface
    if "queue_slots" not in opts:
        opts["queue_slots"] = 1
    n = Net(nat)
    i = Interface(SERVER, rand=Rand(7), clock=lambda: n.now, udp=FakeUDP(n), **opts)
    n.c = i.client
    n.feed = i.feed
    i.open(n.now)
    n.flush()
    n.run(2000)
    assert i.qualified(), i.status()
    return n, i


def qualified(nat="restricted", **opts):
    """A Net whose client has qualified and finished its NAT-type test
    (T = 4 s of waiting for a cone RA, then the secondary address: 5 s)."""
    n = Net(nat, **opts)
    n.start()
    n.run(5000)
    assert n.c.status()["state"] == "qualified", n.c.status()
    return n


def with_relay(nat="restricted", **opts):
    """A qualified client whose relay is trusted (its ping test is done)."""
    n = qualified(nat, **opts)
    n.c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    assert n.c.status()["relay"] == RELAY + ":3544"
    return n



def sent(c):
    """Drain the client: [(ip, port, datagram)]."""
    out = []
    k = c.pop_tx()
    while k:
        out.append((c.tx_addr[0], c.tx_addr[1], bytes(c.tx_mv[c.tx_off:c.tx_off + k])))
        k = c.pop_tx()
    return out


def to(out):
    """The (ip, port) destinations of what sent() drained."""
    return [(ip, port) for ip, port, _ in out]


def origin_packet(c, origin, port):
    """A bubble relayed by our server with an origin indication."""
    b = bytearray(48)
    wire.build_origin(b, 0, port, ip4(origin))
    wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    return b


def rs_sent_to(out, ip):
    """The RS datagrams (no trailers) among sent() that went to ip."""
    return [d for i, p, d in out if i == ip and p == proto.PORT and len(d) == 61 and d[53] == proto.ICMP_RS]


def arena_filled():
    """A client with a trusted relay whose transmit arena is full: five
    echo replies of 320 bytes wait in it, not yet drained."""
    n = with_relay()
    c = n.c
    sent(c)
    e = bytearray(320)
    wire.build_echo(e, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 1, 1, bytes(272), 272)
    for _ in range(5):
        c.on_datagram(e, 320, ip4(RELAY), proto.PORT, n.now)
    return n, e


def symmetric_retest():
    """(Net, time): a client found behind a symmetric NAT, its retry due,
    and the primary's first RA of the retry fed (the NAT test follows)."""
    n = Net("symmetric", symmetric_retry_ms=20000)
    c = n.c
    n.start()
    n.run(5000)
    assert c.status()["state"] == "symmetric"
    t = c.deadline
    c.on_timer(t)
    (rs,) = rs_sent_to(sent(c), SERVER)
    ra = build_ra(SERVER_LL, rs[13 + 8:13 + 24], rs[4:12], ip4(NAT_WAN), 50000, ip4(SERVER))
    c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, t + 5)
    return n, t


def drops(c, name):
    return c.status()["drops"].get(name, 0)


class Seq:
    """rand(bits) from a fixed list of 16-bit values, masked to bits."""

    def __init__(self, values):
        self.values = values
        self.i = 0

    def __call__(self, bits):
        v = self.values[self.i % len(self.values)]
        self.i += 1
        return v & ((1 << bits) - 1)

# micropython.heap_lock() where there is one; no-ops on CPython, where the
# tests that use it still check their results.
try:
    import micropython
    heap_lock = micropython.heap_lock
    heap_unlock = micropython.heap_unlock
    ON_MP = True
except (ImportError, AttributeError):
    ON_MP = False

    def heap_lock():
        pass

    def heap_unlock():
        return 0
