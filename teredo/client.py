# The Teredo client state machine (RFC 4380 §5.2 with RFC 5991 and RFC 6081
# updates), sans-I/O.  A shell feeds it datagrams and the time, and sends what
# pop_tx() hands back:
#
#   c = Client("198.51.100.10", rand=getrandbits)
#   c.start(now_ms)
#   loop: c.on_datagram(buf, n, src_ip4, src_port, now_ms) / c.on_timer(now_ms)
#         n = c.pop_tx(); while n: sendto(c.tx_mv[c.tx_off:c.tx_off+n], c.tx_addr)
#   sleep until c.next_deadline()
#
# After every call the shell must drain pop_tx() before feeding the next
# datagram: replies are built in place in the receive buffer.
#
# Times are int milliseconds that wrap at 2**30 (the ESP32's ticks_ms); all
# arithmetic on them goes through _diff/_add, which stay inside small ints.

from teredo import addr, proto, wire
from teredo.peers import (F_BUBBLES, F_LAST_RX, F_LAST_TX, F_LAST_USE, F_NEXT, F_PORT,
                          F_PROBES, F_Q, F_QLEN, F_TEREDO, F_TRUSTED, F_USED, F_WINDOW, NF,
                          PeerTable)

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

# Every tunable with its one default.  Client(**overrides) takes these names.
DEFAULTS = (
    ("refresh_s", proto.REFRESH_S),      # RFC 4380 §5.2 / RFC 6081 §5.1.1 refresh interval
    ("qual_timeout_ms", proto.QUAL_TIMEOUT_MS),  # T of §5.2.1
    ("qual_tries", proto.QUAL_TRIES),    # N of §5.2.1
    ("cone_probe", True),                # probe for a cone NAT first (§5.2.1)
    ("cone_grace_ms", 5),                # wait for the cone RA after the first RA (sent together)
    ("backoff_min_ms", 8000),            # offline: first retry of qualification
    ("backoff_max_ms", 128000),          # offline: longest wait between retries
    ("symmetric_retry_ms", 120000),      # symmetric NAT: slow retry
    ("max_peers", 8),                    # bounded peer list (LRU)
    ("queue_slots", 2),                  # peers that may hold queued packets at once
    ("queue_bytes", 1280),               # per-peer queue (§5.2.4), bytes
    ("echo_rate", 200),                  # echo replies per second (0: no limit)
    ("echo_burst", 50),
    ("bubble_rate", 20),                 # unsolicited direct bubbles per second
    ("ping_ident", 0x7464),              # ICMPv6 echo identifier of our own pings
    ("unreach_rate", 10),                # ICMPv6 port unreachable per second (RFC 4443 §2.4 (f))
    ("max_ports", 8),                    # UDP ports that may be bound at once
)

STATES = ("offline", "qualifying", "qualified", "symmetric")
OFFLINE = const(0)
QUALIFYING = const(1)
QUALIFIED = const(2)
SYMMETRIC = const(3)

NATS = ("unknown", "cone", "restricted", "symmetric")

# Qualification phases (RFC 4380 §5.2.1, the RS to the primary address with
# and without the cone bit are sent together; see _send_rs).
PH_NONE = const(0)
PH_PRIMARY = const(1)     # RS (cone and non-cone) to the primary address
PH_CONE_WAIT = const(2)   # non-cone RA in; a short wait for the cone RA
PH_SECONDARY = const(3)   # RS (non-cone) to the secondary address
PH_REFRESH = const(4)     # qualified; refresh RS outstanding (§5.2.5)

# Events returned by on_datagram for the application.
EV_NONE = const(0)
# (rx is the buffer given to on_datagram; it is only read, never written)
EV_ECHO_REPLY = const(1)  # reply to ping(): ev_seq, source at rx[ev_src]
EV_UDP = const(2)         # UDP datagram: rx[ev_off:ev_off+ev_len], ev_sport, ev_dport
EV_TCP = const(3)         # TCP segment: the IPv6 packet rx[ev_off:ev_off+ev_len], for tcp.on_segment

UNREACHABLE = const(19)
NO_PORT = const(20)       # UDP datagram for a port nobody bound
DROP_NAMES = wire.DROP_NAMES + ("unreachable", "no_port")

RX_BYTES = const(1536)
ARENA_BYTES = const(1600)
TX_SLOTS = const(8)
HALF = const(0x20000000)


def _diff(a, b):
    """a - b for tick values that wrap at 2**30, kept within small ints."""
    d = a - b
    if d >= HALF:
        d = d - HALF - HALF
    elif d < -HALF:
        d = d + HALF + HALF
    return d


def _add(a, dt):
    m = HALF - dt + HALF  # 2**30 - dt without making 2**30
    if a >= m:
        return a - m
    return a + dt


class Client:
    def __init__(self, server, server2=None, rand=None, **options):
        cfg = {}
        for k, v in DEFAULTS:
            cfg[k] = v
        for k in options:
            if k not in cfg:
                raise ValueError("unknown client option %r" % k)
            v = options[k]
            if type(v) is not type(cfg[k]):
                raise ValueError("option %s must be %s" % (k, type(cfg[k]).__name__))
            cfg[k] = v
        if cfg["refresh_s"] < 10 or cfg["refresh_s"] > 3600:
            raise ValueError("refresh_s must be 10..3600 seconds")
        if cfg["max_peers"] < 1 or cfg["queue_slots"] < 1 or cfg["queue_bytes"] < 1280:
            raise ValueError("max_peers and queue_slots must be >= 1, queue_bytes >= 1280")
        self.cfg = cfg
        if rand is None:
            raise ValueError("a random source rand(nbits) is required")
        self.rand = rand
        self.server4 = _ip4(server, "server")
        if server2 is None:
            s2 = bytearray(self.server4)
            i = 3
            while i >= 0:  # RFC 4380 §5.2: secondary = primary + 1 by convention
                s2[i] = (s2[i] + 1) & 0xFF
                if s2[i]:
                    break
                i -= 1
            self.server2_4 = bytes(s2)
        else:
            self.server2_4 = _ip4(server2, "server2")
        if self.server2_4 == self.server4:
            raise ValueError("server2 must differ from server")
        self.server_addr = (addr.format_ipv4(self.server4), proto.PORT)
        self.server2_addr = (addr.format_ipv4(self.server2_4), proto.PORT)

        self.rx = b""  # the datagram being handled (the caller's buffer, read only)
        self.rx_peer = -1  # its trusted peer entry, while it is being handled
        self.arena = bytearray(ARENA_BYTES)
        self.arena_mv = memoryview(self.arena)
        self.arena_used = 0
        self.hdr = [0, 0, 0, 0]
        self.res = [0, 0]
        self.tmp4 = bytearray(4)
        self.tq_mv = [None] * TX_SLOTS
        self.tq_off = [0] * TX_SLOTS
        self.tq_len = [0] * TX_SLOTS
        self.tq_addr = [None] * TX_SLOTS
        self.tq_head = 0
        self.tq_count = 0
        self.tx_mv = None
        self.tx_off = 0
        self.tx_addr = None

        self.peers = PeerTable(cfg["max_peers"], cfg["queue_slots"], cfg["queue_bytes"])
        self.drops = [0] * len(DROP_NAMES)
        self.rx_count = 0
        self.tx_count = 0
        self.changes = 0          # bumped on every state/address change
        self.state = OFFLINE
        self.nat = 0
        self.error = None
        self.phase = PH_NONE
        self.cone = False
        self.address = bytearray(16)
        self.has_address = False
        self.mapped4 = bytearray(4)
        self.mapped_port = 0
        self.first4 = bytearray(4)  # mapping seen through the primary address
        self.first_port = 0
        self.mtu = proto.MTU_DEFAULT
        self.nonce_cone = bytearray(8)
        self.nonce_nc = bytearray(8)
        self.tries = 0
        self.deadline = 0
        self.backoff = cfg["backoff_min_ms"]
        self.last_server = 0
        self.refresh_at = 0
        self.started = 0
        self.relay = None
        self.local = None
        self._now = 0
        # token buckets: echo replies, unsolicited bubbles, ICMPv6 errors
        self.tokens = [cfg["echo_burst"] * 1000, cfg["bubble_rate"] * 1000, cfg["unreach_rate"] * 1000]
        self.tokens_t = [0, 0, 0]
        self.ports = []  # bound UDP ports: datagrams for others are dropped (no_port)
        self.ev_seq = 0
        self.ev_src = 0
        self.ev_off = 0
        self.ev_len = 0
        self.ev_sport = 0
        self.ev_dport = 0

    # ---- public API ---------------------------------------------------------

    def start(self, now):
        self._now = now
        self.error = None
        self.started = now
        for i in range(len(self.tokens_t)):
            self.tokens_t[i] = now
        self._qualify(now)

    def stop(self, why):
        """The shell lost its socket or link: forget the address and stay
        offline, saying why, until start() is called again."""
        self._forget_address()
        self.phase = PH_NONE
        self.error = why
        self.backoff = self.cfg["backoff_min_ms"]
        self._set_state(OFFLINE, self._now)
        self.deadline = _add(self._now, HALF - 1)

    def set_local(self, text):
        """The shell tells the core its local ip:port, for status only."""
        self.local = text

    def next_deadline(self):
        """The earliest time on_timer wants to run (ticks ms)."""
        d = self.deadline
        v = self.peers.v
        for i in range(self.peers.n):
            b = i * NF
            if v[b + F_USED] and v[b + F_PROBES] > 0 and _diff(v[b + F_NEXT], d) < 0:
                d = v[b + F_NEXT]
        return d

    def pop_tx(self):
        """Length of the next datagram to send (0: none).  It is
        tx_mv[tx_off:tx_off+n], to be sent to tx_addr."""
        if self.tq_count == 0:
            self.arena_used = 0
            self.peers.release_pending()
            return 0
        h = self.tq_head
        self.tx_mv = self.tq_mv[h]
        self.tx_off = self.tq_off[h]
        self.tx_addr = self.tq_addr[h]
        self.tq_mv[h] = None
        self.tq_head = (h + 1) % TX_SLOTS
        self.tq_count -= 1
        self.tx_count += 1
        return self.tq_len[h]

    def ping(self, dst, seq, now, size=16):
        """Send an ICMPv6 echo request to the 16-byte address dst; the reply
        comes back as EV_ECHO_REPLY.  Returns a drop reason (0 = sent or queued)."""
        if self.state != QUALIFIED:
            return self._drop(wire.NOT_QUALIFIED)
        o = self._arena(40 + 8 + size)
        if o < 0:
            return self._drop(wire.TX_FULL)
        a = self.arena
        for i in range(size):
            a[o + 48 + i] = i & 0xFF
        n = wire.build_echo(a, o, proto.ICMP_ECHO_REQUEST, self.address, dst,
                            self.cfg["ping_ident"], seq & 0xFFFF, None, size)
        return self._output(a, self.arena_mv, o, n, now)

    def bind(self, port):
        """Accept UDP datagrams for port (1..65535); the others are dropped
        and counted (no_port) and answered, rate limited, with an ICMPv6
        port unreachable (RFC 4443 §3.1, code 4)."""
        if type(port) is not int or port < 1 or port > 65535:
            raise ValueError("port must be 1..65535")
        if port in self.ports:
            raise ValueError("port %d is already bound" % port)
        if len(self.ports) >= self.cfg["max_ports"]:
            raise ValueError("no more than %d bound ports (max_ports)" % self.cfg["max_ports"])
        self.ports.append(port)

    def unbind(self, port):
        if port in self.ports:
            self.ports.remove(port)

    def send_udp(self, dst, dport, sport, data, now):
        """Send a UDP datagram over IPv6 to the 16-byte address dst."""
        if self.state != QUALIFIED:
            return self._drop(wire.NOT_QUALIFIED)
        dl = len(data)
        if 48 + dl > self.mtu:
            return self._drop(wire.TOO_BIG)
        o = self._arena(48 + dl)
        if o < 0:
            return self._drop(wire.TX_FULL)
        n = wire.build_udp6(self.arena, o, self.address, dst, sport, dport, data, dl)
        return self._output(self.arena, self.arena_mv, o, n, now)

    # ---- the IPv6 layer of the TCP (tcp.py) ----------------------------------

    def tx_alloc(self, n):
        """Room for an n-byte IPv6 packet in the arena: its offset, or -1
        when the arena is full until the shell has drained pop_tx()."""
        return self._arena(n)

    def tx_send(self, off, n, now):
        """Send the IPv6 packet arena[off:off+n]; 0 or a drop reason."""
        if self.state != QUALIFIED:
            return self._drop(wire.NOT_QUALIFIED)
        return self._output(self.arena, self.arena_mv, off, n, now)

    def status(self):
        """The status object; the same fields on host and board."""
        drops = {}
        for i in range(1, len(DROP_NAMES)):
            if self.drops[i]:
                drops[DROP_NAMES[i]] = self.drops[i]
        return {
            "state": STATES[self.state],
            "server": self.server_addr[0],
            "server2": self.server2_addr[0],
            "nat": NATS[self.nat],
            "address": addr.format_ipv6(self.address) if self.has_address else None,
            "mapped": ("%s:%d" % (addr.format_ipv4(self.mapped4), self.mapped_port))
            if self.has_address else None,
            "local": self.local,
            "relay": self.relay,
            "refresh_s": self.cfg["refresh_s"],
            "uptime_s": _diff(self._now, self.started) // 1000,
            "peers": self.peers.count(),
            "rx": self.rx_count,
            "tx": self.tx_count,
            "drops": drops,
            "error": self.error,
        }

    # ---- timers -------------------------------------------------------------

    def on_timer(self, now):
        self._now = now
        if _diff(now, self.deadline) >= 0:
            self._state_timer(now)
        v = self.peers.v
        for i in range(self.peers.n):
            b = i * NF
            if v[b + F_USED] and v[b + F_PROBES] > 0 and _diff(now, v[b + F_NEXT]) >= 0:
                self._probe(i, now)

    def _state_timer(self, now):
        ph = self.phase
        if self.state == QUALIFIED and ph != PH_REFRESH:
            # §5.2.5: refresh when nothing came from the server within the
            # randomised refresh interval
            if _diff(now, self.refresh_at) >= 0:
                self.phase = PH_REFRESH
                self.tries = 0
                self._send_rs(now)
            else:
                self.deadline = self.refresh_at
            return
        if ph == PH_CONE_WAIT:
            self._to_secondary(now)
            return
        if ph in (PH_PRIMARY, PH_SECONDARY, PH_REFRESH):
            if self.tries < self.cfg["qual_tries"]:
                self._send_rs(now)
                return
            if ph == PH_REFRESH:
                self._lost(now, "server %s stopped answering refreshes; requalifying"
                           % self.server_addr[0])
            elif ph == PH_PRIMARY:
                self._lost(now, "no answer from Teredo server %s (UDP %d) after %d tries: "
                           "check the server address and that UDP is not blocked"
                           % (self.server_addr[0], proto.PORT, self.tries))
            else:
                self._lost(now, "secondary server address %s did not answer; the server "
                           "needs two consecutive addresses (or set server2)"
                           % self.server2_addr[0])
            return
        # offline or symmetric: time to try again
        self._qualify(now)

    def _qualify(self, now):
        self._set_state(QUALIFYING, now)
        self.phase = PH_PRIMARY
        self.tries = 0
        self._send_rs(now)

    def _lost(self, now, why):
        self._forget_address()
        self.error = why
        self.phase = PH_NONE
        self._set_state(OFFLINE, now)
        self.deadline = _add(now, self.backoff)
        self.backoff = min(self.backoff * 2, self.cfg["backoff_max_ms"])

    def _forget_address(self):
        if self.has_address:
            self.has_address = False
            self.changes += 1
        for i in range(self.peers.n):
            self.peers.free(i)
        self.relay = None

    def _set_state(self, s, now):
        if self.state != s:
            self.state = s
            self.changes += 1

    def _send_rs(self, now):
        """RS with a fresh nonce (RFC 5991 §3).  In the primary phase the RS
        with the cone bit and the one without go out together: the cone RA
        comes from the other server address (RFC 4380 §5.3.2), which a
        restricted NAT drops because we have not yet sent to that address; so
        both tests run in one round trip instead of N*T seconds apart.  A late
        cone RA after we write to the secondary address carries an old nonce
        and is refused, so it cannot mislabel a restricted NAT as cone."""
        self.tries += 1
        ph = self.phase
        if ph == PH_PRIMARY:
            if self.cfg["cone_probe"]:
                self._rs(self.nonce_cone, True, self.server_addr)
            self._rs(self.nonce_nc, False, self.server_addr)
        elif ph == PH_SECONDARY:
            self._rs(self.nonce_nc, False, self.server2_addr)
        else:  # refresh with the cone bit that got us qualified (§5.2.5)
            self._rs(self.nonce_cone if self.cone else self.nonce_nc, self.cone, self.server_addr)
        self.deadline = _add(now, self.cfg["qual_timeout_ms"])

    def _rs(self, nonce, cone, to):
        self._random(nonce, 8)
        o = self._arena(13 + 48)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        n = wire.build_rs(self.arena, o, nonce, cone)
        self._tx(self.arena_mv, o, n, to)

    def _to_secondary(self, now):
        self._random(self.nonce_cone, 8)  # a late cone RA is now stale
        self.phase = PH_SECONDARY
        self.tries = 0
        self._send_rs(now)

    # ---- receive ------------------------------------------------------------

    def on_datagram(self, buf, n, src4, sport, now):
        """One UDP datagram from src4 (4 bytes) port sport.  Returns EV_*."""
        self._now = now
        if n > RX_BYTES:
            self._drop(wire.TOO_BIG)
            return EV_NONE
        # Work on the caller's buffer (a board's recvfrom already made a fresh
        # one): no receive buffer of our own, and nothing is copied unless a
        # reply is built from it.
        self.rx = rx = buf
        hdr = self.hdr
        r = wire.parse_encap(rx, n, hdr)
        if r:
            self._drop(r)
            return EV_NONE
        self.rx_count += 1
        ip = hdr[wire.H_IP]
        nh = rx[ip + 6]
        from_server = sport == proto.PORT and (wire.eq(src4, 0, self.server4, 0, 4)
                                               or wire.eq(src4, 0, self.server2_4, 0, 4))
        if from_server:
            if nh == proto.NH_ICMPV6 and n - ip >= 41 and rx[ip + 40] == proto.ICMP_RA:
                self._on_ra(src4, now)
                return EV_NONE
            if self.state != QUALIFIED:
                self._drop(wire.NOT_QUALIFIED)
                return EV_NONE
            if not wire.eq(rx, ip + 24, self.address, 0, 16):
                self._drop(wire.NOT_FOR_US)
                return EV_NONE
            # §5.2.3: a valid packet for us from the server is an interaction
            # with it (RAs count once _on_ra has accepted them)
            self.last_server = now
            self._schedule_refresh(now)
            og = hdr[wire.H_ORIGIN]
            if og >= 0:
                # Relayed by the server with an origin indication: open the
                # path with a direct bubble to the origin, addressed to the
                # IPv6 source of what was relayed, as relays expect (§5.2.3,
                # §5.2.9 and RFC 4380 §5.4.1 seen from the client side).
                self._origin_bubble(og, ip, now)
            if nh == proto.NH_NONE:
                return EV_NONE
            return self._deliver(ip, n, now)

        if self.state != QUALIFIED:
            self._drop(wire.NOT_QUALIFIED)
            return EV_NONE
        if not wire.eq(rx, ip + 24, self.address, 0, 16):
            self._drop(wire.NOT_FOR_US)
            return EV_NONE
        src = ip + 8
        peers = self.peers
        v = peers.v
        p = peers.find(rx, src)
        if p >= 0:
            b = p * NF
            if v[b + F_TRUSTED] and v[b + F_PORT] == sport and wire.eq(peers.ip4, p * 4, src4, 0, 4):
                # §5.2.3 case 1
                v[b + F_LAST_RX] = now
                v[b + F_LAST_USE] = now
                if nh == proto.NH_NONE:
                    return EV_NONE
                self.rx_peer = p  # a reply goes back to it: no second lookup
                r = self._deliver(ip, n, now)
                self.rx_peer = -1
                return r
            if (not v[b + F_TRUSTED] and not v[b + F_TEREDO] and v[b + F_PROBES] > 0
                    and nh == proto.NH_ICMPV6
                    and n - ip == 40 + 8 + 8 and rx[ip + 40] == proto.ICMP_ECHO_REPLY
                    and wire.eq(rx, ip + 48, peers.nonce, p * 8, 8)):
                # §5.2.3 case 2: the reply to our connectivity test (§5.2.9)
                if wire.l4_sum(rx, ip, proto.NH_ICMPV6, 16) != 0xFFFF:
                    self._drop(wire.CHECKSUM)
                    return EV_NONE
                self._trust(p, src4, sport, now)
                self.relay = "%s:%d" % (peers.addr[p][0], sport)
                self.changes += 1
                return EV_NONE
        if addr.is_teredo(rx, src):
            # §5.2.3 case 3: the mapping in the address must be the UDP source
            if (addr.teredo_port(rx, src) != sport
                    or not addr.teredo_mapped_matches(rx, src, src4, 0)):
                self._drop(wire.SPOOFED)
                return EV_NONE
            if p < 0:
                p = peers.new(rx, src, now, _sub(now, proto.PEER_VALID_MS))
            self._trust(p, src4, sport, now)
            if nh == proto.NH_NONE:
                return EV_NONE
            return self._deliver(ip, n, now)
        # §5.2.3 case 6: a native source we hold no trusted entry for.  Be
        # generous in what we accept; anything we send back goes through the
        # connectivity test first (§5.2.4 case 2).
        if nh == proto.NH_NONE:
            self._drop(wire.UNTRUSTED)
            return EV_NONE
        return self._deliver(ip, n, now)

    def _deliver(self, ip, n, now):
        """Hand an accepted packet to the local stack: answer echo requests,
        report echo replies to our pings and UDP datagrams as events."""
        rx = self.rx
        nh = rx[ip + 6]
        plen = n - ip - 40
        r = wire.UNSUPPORTED
        if nh == proto.NH_TCP:
            # checked (length, checksum) by the TCP, which parses it anyway
            self.ev_src = ip + 8
            self.ev_off = ip
            self.ev_len = n - ip
            return EV_TCP
        if nh == proto.NH_ICMPV6 or nh == proto.NH_UDP:
            if plen < 8 or (nh == proto.NH_UDP and ((rx[ip + 44] << 8) | rx[ip + 45]) != plen):
                r = wire.LENGTH
            elif wire.l4_sum(rx, ip, nh, plen) != 0xFFFF:
                r = wire.CHECKSUM
            elif nh == proto.NH_UDP:
                dport = (rx[ip + 42] << 8) | rx[ip + 43]
                if dport not in self.ports:
                    self._port_unreachable(ip, n, now)
                    return EV_NONE
                self.ev_src = ip + 8
                self.ev_sport = (rx[ip + 40] << 8) | rx[ip + 41]
                self.ev_dport = dport
                self.ev_off = ip + 48
                self.ev_len = plen - 8
                return EV_UDP
            elif rx[ip + 40] == proto.ICMP_ECHO_REQUEST:
                # RFC 4443 §4.2, rate limited so the board cannot be used
                # as a reflector (RFC 4443 §2.4 (f) in spirit)
                if self._token(0, now, self.cfg["echo_rate"], self.cfg["echo_burst"]):
                    # the reply is the request copied (one memcpy when the
                    # datagram is the bare IPv6 packet) and changed in place
                    k = n - ip
                    o = self._arena(k)
                    if o < 0:
                        r = wire.TX_FULL
                    else:
                        a = self.arena
                        if ip == 0 and len(rx) == n:
                            a[o:o + k] = rx
                        else:
                            a[o:o + k] = memoryview(rx)[ip:n]
                        wire.echo_to_reply(a, o)
                        self._output(a, self.arena_mv, o, k, now, self.rx_peer)
                        return EV_NONE
                else:
                    r = wire.RATE_LIMITED
            elif rx[ip + 40] == proto.ICMP_ECHO_REPLY and (
                    (rx[ip + 44] << 8) | rx[ip + 45]) == self.cfg["ping_ident"]:
                self.ev_seq = (rx[ip + 46] << 8) | rx[ip + 47]
                self.ev_src = ip + 8
                return EV_ECHO_REPLY
        self.drops[r] += 1
        return EV_NONE

    def _port_unreachable(self, ip, n, now):
        """Drop and count a datagram for an unbound port; answer it with an
        ICMPv6 destination unreachable, code 4 (RFC 4443 §3.1), carrying as
        much of it as fits in the minimum MTU, at most unreach_rate a second
        (§2.4 (f)); never to a multicast or unspecified source (§2.4 (e))."""
        self.drops[NO_PORT] += 1
        rx = self.rx
        if rx[ip + 8] == 0xFF or addr.is_unspecified(rx, ip + 8):
            return
        if not self._token(2, now, self.cfg["unreach_rate"], self.cfg["unreach_rate"]):
            self.drops[wire.RATE_LIMITED] += 1
            return
        c = n - ip
        if c > proto.MTU_MIN - 48:
            c = proto.MTU_MIN - 48
        o = self._arena(48 + c)
        if o < 0:
            self.drops[wire.TX_FULL] += 1
            return
        a = self.arena
        wire.build_ipv6(a, o, 8 + c, proto.NH_ICMPV6, proto.HOP_LIMIT, self.address,
                        memoryview(rx)[ip + 8:ip + 24])
        a[o + 40] = proto.ICMP_DST_UNREACH
        a[o + 41] = proto.ICMP_PORT_UNREACH
        for i in range(o + 42, o + 48):
            a[i] = 0
        a[o + 48:o + 48 + c] = memoryview(rx)[ip:ip + c]
        wire.set_l4_checksum(a, o, proto.NH_ICMPV6, 8 + c, o + 42)
        self._output(a, self.arena_mv, o, 48 + c, now, self.rx_peer)

    def _on_ra(self, src4, now):
        rx = self.rx
        hdr = self.hdr
        ip = hdr[wire.H_IP]
        cone_dst = wire.eq(rx, ip + 24, proto.LL_CONE, 0, 16)
        nonce = self.nonce_cone if cone_dst else self.nonce_nc
        ll = proto.LL_CONE if cone_dst else proto.LL_NONCONE
        r = wire.parse_ra(rx, hdr, nonce, ll, self.server4, self.res, self.tmp4)
        if r:
            self._drop(r)
            return
        self._random(nonce, 8)  # one RA per nonce: replays are now stale
        self.last_server = now  # §5.2.3: a valid RA is an interaction with the server
        port = self.res[0]
        mtu = self.res[1]
        ph = self.phase
        from_primary = wire.eq(src4, 0, self.server4, 0, 4)
        if ph in (PH_PRIMARY, PH_CONE_WAIT):
            if cone_dst:
                if from_primary:
                    # A cone RA must come from the other address (§5.3.2);
                    # from the same one it proves nothing about the NAT.
                    self._drop(wire.RA_INVALID)
                    return
                self._qualified(True, 1, self.tmp4, port, mtu, now)
                return
            if ph == PH_PRIMARY and from_primary:
                self.first4[0:4] = self.tmp4
                self.first_port = port
                if self.cfg["cone_probe"]:
                    self.phase = PH_CONE_WAIT
                    self.deadline = _add(now, self.cfg["cone_grace_ms"])
                else:
                    self._to_secondary(now)
                return
            self._drop(wire.RA_INVALID)
            return
        if ph == PH_SECONDARY:
            if cone_dst or from_primary:
                self._drop(wire.RA_NONCE)
                return
            if port == self.first_port and wire.eq(self.tmp4, 0, self.first4, 0, 4):
                self._qualified(False, 2, self.tmp4, port, mtu, now)
            else:
                # §5.2.1: different mappings for the two server addresses
                self.phase = PH_NONE
                self._forget_address()
                self.nat = 3
                self.error = ("symmetric NAT: the mapped port differs per destination (%s:%d "
                              "then %s:%d); Teredo cannot work through it. Forward a UDP "
                              "port to this device and set it as the client port "
                              "(RFC 4380 §5.2.10). Retrying every %d s."
                              % (addr.format_ipv4(self.first4), self.first_port,
                                 addr.format_ipv4(self.tmp4), port,
                                 self.cfg["symmetric_retry_ms"] // 1000))
                self._set_state(SYMMETRIC, now)
                self.deadline = _add(now, self.cfg["symmetric_retry_ms"])
            return
        if ph == PH_REFRESH or self.state == QUALIFIED:
            # §5.2.5: the mapping must still match our address
            if port == self.mapped_port and wire.eq(self.tmp4, 0, self.mapped4, 0, 4):
                self.phase = PH_NONE
                self.tries = 0
                self.mtu = mtu
                self._schedule_refresh(now)
                return
            old = "%s:%d" % (addr.format_ipv4(self.mapped4), self.mapped_port)
            self._forget_address()
            self._qualify(now)
            self.error = ("NAT mapping changed (was %s, now %s:%d); requalified"
                          % (old, addr.format_ipv4(self.tmp4), port))
            return
        self._drop(wire.RA_NONCE)

    def _qualified(self, cone, nat, mapped4, port, mtu, now):
        """§5.2.1: build our address from the RA's prefix and the origin
        indication, with RFC 5991 random flag bits."""
        self.cone = cone
        self.nat = nat
        self.mapped4[0:4] = mapped4
        self.mapped_port = port
        self.mtu = mtu
        flags = addr.random_flags(self.rand, cone)
        addr.build_teredo(self.server4, flags, port, mapped4, self.address, 0)
        self.has_address = True
        self.error = None
        self.phase = PH_NONE
        self.tries = 0
        self.backoff = self.cfg["backoff_min_ms"]
        self.changes += 1
        self._set_state(QUALIFIED, now)
        self._schedule_refresh(now)

    def _schedule_refresh(self, now):
        """§5.2: randomised refresh interval, 75..100 % of the interval."""
        r = self.cfg["refresh_s"] * 1000
        jitter = (self.rand(16) * (r // 4)) >> 16
        self.refresh_at = _add(now, r - jitter)
        if self.phase != PH_REFRESH:
            self.deadline = self.refresh_at

    # ---- transmit -------------------------------------------------------------

    def _output(self, buf, mv, ip, n, now, p=-1):
        """§5.2.4: send the IPv6 packet buf[ip:ip+n] to its destination."""
        if n > self.mtu:
            return self._drop(wire.TOO_BIG)
        dst = ip + 24
        peers = self.peers
        v = peers.v
        if p < 0:
            p = peers.find(buf, dst)
        b = p * NF
        if p >= 0 and v[b + F_TRUSTED] and _diff(now, v[b + F_LAST_RX]) < proto.PEER_VALID_MS:
            # case 1
            v[b + F_LAST_TX] = now
            v[b + F_LAST_USE] = now
            return self._tx(mv, ip, n, peers.addr[p])
        if p < 0:
            p = peers.new(buf, dst, now, _sub(now, proto.PEER_VALID_MS))
            b = p * NF
        elif v[b + F_TRUSTED]:
            v[b + F_TRUSTED] = 0  # expired: test the path again
        v[b + F_LAST_USE] = now
        if v[b + F_TEREDO]:
            # §5.2.4 cases 4/5 (we always take case 5, as §5.2.4 allows):
            # global check on the mapped address first
            for i in range(4):
                self.tmp4[i] = buf[dst + 12 + i] ^ 0xFF
            if not addr.is_global_ipv4(self.tmp4, 0) or addr.teredo_port(buf, dst) == 0:
                return self._drop(wire.NON_GLOBAL)  # port 0 is no mapping either
        if not peers.enqueue(p, buf, ip, n):
            return self._drop(wire.QUEUE_FULL)
        if v[b + F_PROBES] == 0:
            v[b + F_PROBES] = proto.PROBE_TRIES + 1
            self._probe(p, now)
        return 0

    def _probe(self, p, now):
        """One round of the connectivity test (native peer, §5.2.9) or of
        bubbles (Teredo peer, §5.2.4 case 5, §5.2.6); 2 s apart, 3 repeats."""
        peers = self.peers
        v = peers.v
        b = p * NF
        v[b + F_PROBES] -= 1
        if v[b + F_PROBES] <= 0:
            # never answered: what was queued is lost
            if v[b + F_QLEN]:
                self.drops[UNREACHABLE] += 1
            peers.free(p)
            return
        v[b + F_NEXT] = _add(now, proto.PROBE_RETRY_MS)
        if v[b + F_TEREDO]:
            self._bubbles(p, now)
            return
        nonce = peers.nonce
        for k in range(p * 8, p * 8 + 8, 2):
            r = self.rand(16)
            nonce[k] = r >> 8
            nonce[k + 1] = r & 0xFF
        o = self._arena(56)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        a = self.arena
        n = wire.build_echo(a, o, proto.ICMP_ECHO_REQUEST, self.address, peers.ip6[p * 16:p * 16 + 16],
                            0, 0, nonce[p * 8:p * 8 + 8], 8)
        self._tx(self.arena_mv, o, n, self.server_addr)

    def _bubbles(self, p, now):
        # §5.2.6: at least 2 s apart, at most 4 in 300 s without an answer
        v = self.peers.v
        b = p * NF
        if _diff(now, v[b + F_WINDOW]) >= proto.BUBBLE_WINDOW_MS:
            v[b + F_WINDOW] = now
            v[b + F_BUBBLES] = 0
        if (_diff(now, v[b + F_LAST_TX]) < proto.BUBBLE_MIN_GAP_MS
                or v[b + F_BUBBLES] >= proto.BUBBLE_MAX_IN_WINDOW):
            self._drop(wire.RATE_LIMITED)
            return
        v[b + F_LAST_TX] = now
        v[b + F_BUBBLES] += 1
        ip6 = self.peers.ip6[p * 16:p * 16 + 16]
        # direct bubble to the mapped address and port in the peer's address
        for i in range(4):
            self.tmp4[i] = ip6[12 + i] ^ 0xFF
        o = self._arena(40)
        if o >= 0:
            wire.build_bubble(self.arena, o, self.address, ip6)
            self._tx(self.arena_mv, o, 40, (addr.format_ipv4(self.tmp4), addr.teredo_port(ip6, 0)))
        # indirect bubble through the peer's own server (in its prefix)
        if addr.is_global_ipv4(ip6, 4):
            o = self._arena(40)
            if o >= 0:
                wire.build_bubble(self.arena, o, self.address, ip6)
                self._tx(self.arena_mv, o, 40, (addr.format_ipv4(ip6, 4), proto.PORT))

    def _origin_bubble(self, og, ip, now):
        rx = self.rx
        wire.origin_ip_into(rx, og, self.tmp4)
        if not addr.is_global_ipv4(self.tmp4, 0) or wire.origin_port(rx, og) == 0:
            self._drop(wire.NON_GLOBAL)
            return
        if not self._token(1, now, self.cfg["bubble_rate"], self.cfg["bubble_rate"]):
            self._drop(wire.RATE_LIMITED)
            return
        o = self._arena(40)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        # to the IPv6 source of the relayed packet (a relay uses its
        # link-local address there), from our Teredo address
        wire.build_ipv6(self.arena, o, 0, proto.NH_NONE, proto.HOP_LIMIT, self.address,
                        memoryview(rx)[ip + 8:ip + 24])
        self._tx(self.arena_mv, o, 40, (addr.format_ipv4(self.tmp4), wire.origin_port(rx, og)))

    def _trust(self, p, src4, sport, now):
        """Mark the peer trusted at the UDP source it answered from, and send
        what was queued for it (§5.2.3 cases 2 and 3)."""
        peers = self.peers
        v = peers.v
        b = p * NF
        v[b + F_TRUSTED] = 1
        if peers.addr[p] is None or v[b + F_PORT] != sport or not wire.eq(peers.ip4, p * 4, src4, 0, 4):
            peers.ip4[p * 4:p * 4 + 4] = src4
            v[b + F_PORT] = sport
            peers.addr[p] = (addr.format_ipv4(src4), sport)
        v[b + F_LAST_RX] = now
        v[b + F_LAST_USE] = now
        v[b + F_PROBES] = 0
        v[b + F_BUBBLES] = 0
        qi = v[b + F_Q]
        if qi >= 0:
            q = peers.qbufs[qi]
            mv = peers.qmvs[qi]
            to = peers.addr[p]
            o = 0
            while o < v[b + F_QLEN]:
                n = (q[o] << 8) | q[o + 1]
                self._tx(mv, o + 2, n, to)
                o += 2 + n
            peers.qrelease[qi] = True  # reusable once the ring has drained
            peers.drop_queue(p)
            v[b + F_LAST_TX] = now

    def _tx(self, mv, off, n, to):
        if self.tq_count >= TX_SLOTS:
            return self._drop(wire.TX_FULL)
        t = (self.tq_head + self.tq_count) % TX_SLOTS
        self.tq_mv[t] = mv
        self.tq_off[t] = off
        self.tq_len[t] = n
        self.tq_addr[t] = to
        self.tq_count += 1
        return 0

    def _arena(self, n):
        o = self.arena_used
        if o + n > ARENA_BYTES:
            return -1
        self.arena_used = o + n
        return o

    # ---- helpers ----------------------------------------------------------------

    def _drop(self, reason):
        self.drops[reason] += 1
        return reason

    def _random(self, buf, n):
        for i in range(0, n, 2):
            v = self.rand(16)
            buf[i] = v >> 8
            if i + 1 < n:
                buf[i + 1] = v & 0xFF

    def _token(self, k, now, rate, burst):
        """Token bucket k (0: echo replies, 1: unsolicited bubbles), in
        milli-tokens so that it stays in small ints.  rate 0: no limit."""
        if rate == 0:
            return True
        t = self.tokens[k]
        el = _diff(now, self.tokens_t[k])
        self.tokens_t[k] = now
        if el > 0:
            t += (el if el < 10000 else 10000) * rate
            if t > burst * 1000:
                t = burst * 1000
        if t < 1000:
            self.tokens[k] = t
            return False
        self.tokens[k] = t - 1000
        return True


def _sub(a, dt):
    """a - dt for 0 <= dt < 2**29, wrapping at 2**30."""
    d = a - dt
    if d < 0:
        d = d + HALF + HALF
    return d


def _ip4(v, what):
    if isinstance(v, str):
        try:
            b = addr.parse_ipv4(v)
        except ValueError as e:
            raise ValueError("%s: %s" % (what, e))
    else:
        b = bytes(v)
        if len(b) != 4:
            raise ValueError("%s must be an IPv4 address" % what)
    if not addr.is_global_ipv4(b):
        raise ValueError("%s %s is not a global unicast IPv4 address (RFC 4380 §5.2.4); "
                         "use the Teredo server's public address" % (what, addr.format_ipv4(b)))
    return b
