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
from teredo.peers import (F_BUBBLES, F_LAST_RX, F_LAST_TX, F_LAST_USE, F_LOCAL, F_LOCAL_RX,
                          F_LPORT, F_NEXT, F_PORT, F_PROBES, F_Q, F_QLEN, F_TEREDO, F_TRUSTED,
                          F_USED, F_WINDOW, NF, PeerTable)

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
    ("cone_probe", True),                # also test for a cone NAT (§5.2.1), for status only
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
    ("local_discovery", True),           # §5.2.8, once the shell gives the LAN (set_lan)
)

STATES = ("offline", "qualifying", "qualified", "symmetric")
OFFLINE = const(0)
QUALIFYING = const(1)
QUALIFIED = const(2)
SYMMETRIC = const(3)

NATS = ("unknown", "cone", "restricted", "symmetric")

# Qualification phases (RFC 4380 §5.2.1 and §5.2.5).  The client is usable
# at the first RA from the primary address (one round trip, as miredo); the
# NAT-type tests of §5.2.1 then run in the background (NT_*) and only set the
# status field, since RFC 5991 takes the cone bit out of the address.
_PH_NONE = const(0)
_PH_PRIMARY = const(1)     # RS to the primary address (with the cone RS, see _send_rs)
_PH_REFRESH = const(2)     # qualified; refresh RS outstanding (§5.2.5)
_PH_STOPPED = const(3)     # stop(): nothing until start()
_NT_NONE = const(0)
_NT_CONE = const(1)        # waiting T for the cone RA from the secondary address
_NT_CHECK = const(2)       # the secondary's mapping differed: the primary's again
_NT_S2 = const(3)          # RS to the secondary address outstanding: _NT_S2 + tries - 1
# New peer entries per second (a burst of max_peers), from a bucket of their
# own (§7.3.3: a flood of new sources must not churn the peer table).
_PEER_RATE = const(5)
# A list of servers: each qualification try asks all of them at once and the
# first to answer is used (the nearest by RS/RA round trip; a dead one costs
# nothing).  What each did, for status:
MAX_SERVERS = const(4)
_SV_NEW = const(0)         # not asked yet
_SV_ASKED = const(1)       # RS out, no answer yet
_SV_OK = const(2)          # answered (srv_rtt holds the round trip)
_SV_SILENT = const(3)      # asked and did not answer
SERVER_STATES = ("not asked", "asked", "answered", "no answer", "in use")

# Events returned by on_datagram for the application.
EV_NONE = const(0)
# (rx is the buffer given to on_datagram; it is only read, never written)
EV_ECHO_REPLY = const(1)  # reply to ping(): ev_seq, source at rx[ev_src]
EV_UDP = const(2)         # UDP datagram: rx[ev_off:ev_off+ev_len], ev_sport, ev_dport
EV_TCP = const(3)         # TCP segment: the IPv6 packet rx[ev_off:ev_off+ev_len], for tcp.on_segment

UNREACHABLE = const(20)
NO_PORT = const(21)       # UDP datagram for a port nobody bound
DISCOVERY = const(22)     # a local discovery bubble refused (§5.2.8 checks)
DROP_NAMES = wire.DROP_NAMES + ("unreachable", "no_port", "discovery")

RX_BYTES = const(1536)
ARENA_BYTES = const(1600)
TX_SLOTS = const(8)
_ORIGIN_SLOTS = const(4)  # recent origins answered with a bubble (_reply_bubble)
_HALF = const(0x20000000)
# Ticks wrap at 2**30 ms (6.2 days of difference): on_timer runs at least
# every _WAKE_MS (next_deadline says so) and clamps every stored past time to
# at most _AGE_MS ago, longer than any window it is compared with (300 s of
# §5.2.6, 30 s of §5.2.4, the NAT UDP timeout), so no difference ever wraps.
_WAKE_MS = const(60000)
_AGE_MS = const(600000)
# RFC 4787 REQ-5: a NAT keeps a UDP mapping (and its filter) open at least
# 2 minutes, 5 recommended; what we sent within this time may still hold it.
_NAT_UDP_TIMEOUT_MS = const(300000)
# Hot-path copies of protocol constants, folded by MicroPython's compiler
# (each proto.X or wire.X costs two dictionary look-ups per use);
# tests/core/test_defaults.py holds them equal to the originals.
_PORT = const(3544)              # proto.PORT
_NH_TCP = const(6)               # proto.NH_TCP
_NH_UDP = const(17)              # proto.NH_UDP
_NH_ICMPV6 = const(58)           # proto.NH_ICMPV6
_NH_NONE = const(59)             # proto.NH_NONE
_ICMP_ECHO_REQUEST = const(128)  # proto.ICMP_ECHO_REQUEST
_ICMP_ECHO_REPLY = const(129)    # proto.ICMP_ECHO_REPLY
_ICMP_RA = const(134)            # proto.ICMP_RA
_PEER_VALID_MS = const(30000)    # proto.PEER_VALID_MS
_H_IP = const(0)                 # wire.H_IP
_H_NONCE = const(1)              # wire.H_NONCE
_H_ORIGIN = const(2)             # wire.H_ORIGIN
_H_END = const(3)                # wire.H_END


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
        # the servers: [primary, secondary] IPv4 per server, in the order
        # given; per server the RS/RA round trip of its last answer (-1: none)
        # and what it did (_SV_*).  The one in use is si (server4, ...).
        self.servers = []
        self.srv_rtt = []
        self.srv_st = []
        self.labels = []
        self.si = 0
        self.srv_nonce = []        # the nonce of the last RS to each server not in use
        self.rs_t = 0              # when the last RS round went out
        self.failures = 0          # qualifications given up (shells re-resolve names)
        self.server4 = bytes(4)
        self.server2_4 = bytes(4)
        self.server_addr = ("0.0.0.0", proto.PORT)  # (none yet: servers is empty)
        self.server2_addr = ("0.0.0.0", proto.PORT)
        first = None
        if isinstance(server, (list, tuple)) or (isinstance(server, str) and "," in server):
            from teredo import servers  # a list: loaded only by those who give one
            first = servers.pairs(server, server2)
        elif server is not None:
            p = _ip4(server, "server")
            s = _ip4(server2, "server2") if server2 is not None else _next4(p)
            if s == p:
                raise ValueError("server2 must differ from server")
            first = [[p, s]]

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
        self.phase = _PH_NONE
        self.nt = _NT_NONE
        self.nt_deadline = 0
        self.warning = None
        self.address = bytearray(16)
        self.has_address = False
        self.mapped4 = bytearray(4)
        self.mapped_port = 0
        self.first4 = bytearray(4)  # mapping seen through the primary address
        self.first_port = 0
        self.s2map4 = bytearray(4)  # mapping seen through the secondary, when it differed
        self.s2_port = 0
        self.mtu = proto.MTU_DEFAULT
        self.nonce_cone = bytearray(8)
        self.nonce_nc = bytearray(8)
        self.cone_sent = False
        self.s2_t = -1        # when we last wrote to the secondary address (-1: never)
        self.tries = 0
        self.deadline = 0
        self.backoff = cfg["backoff_min_ms"]
        self.last_server = 0
        self.refresh_at = 0
        # uptime: whole seconds, ms not yet a second, counted up to; and the
        # uptime of the last connectivity test that passed (-1: none)
        self.up = [0, 0, 0, -1]
        self.relay = None
        self.local = None
        # local discovery (§5.2.8): our LAN's IPv4 and netmask (set_lan), on
        # when both are known; when the next discovery bubble goes out
        self.lan = bytearray(8)
        self.lan_on = False
        self.lan_why = "no LAN address yet" if cfg["local_discovery"] else "turned off"
        self.disc_at = 0
        self.early_t = -1  # the last early announcement (on_discovery)
        self._now = 0
        # origins: IPv4 high and low 16 bits, port, time of the bubble; next slot
        self.og = [0] * (4 * _ORIGIN_SLOTS + 1)
        # token buckets: echo replies, unsolicited bubbles, ICMPv6 errors, new peer entries
        self.tokens = [cfg["echo_burst"] * 1000, cfg["bubble_rate"] * 1000, cfg["unreach_rate"] * 1000,
                       cfg["max_peers"] * 1000]
        self.tokens_t = [0, 0, 0, 0]
        self.ports = []  # bound UDP ports: datagrams for others are dropped (no_port)
        self.ev_seq = 0
        self.ev_src = 0
        self.ev_off = 0
        self.ev_len = 0
        self.ev_sport = 0
        self.ev_dport = 0
        if len(first or ()) > 1:
            self.set_servers(first)
        elif first:
            self.servers = first
            self.labels = [None]
            self.srv_rtt = [-1]
            self.srv_st = [_SV_NEW]
            self.srv_nonce = [bytearray(8)]
            self._use(0)

    # ---- public API ---------------------------------------------------------

    def start(self, now):
        self._now = now
        self.error = None
        self.up[0] = 0
        self.up[1] = 0
        self.up[2] = now
        self.up[3] = -1
        for i in range(len(self.tokens_t)):
            self.tokens_t[i] = now
        self._qualify(now)

    def stop(self, why):
        """The shell lost its socket or link: forget the address and stay
        offline, saying why, until start() is called again."""
        self._forget_address()
        self.phase = _PH_NONE
        self.warning = None
        self.error = why
        self.backoff = self.cfg["backoff_min_ms"]
        self._set_state(OFFLINE, self._now)
        self.phase = _PH_STOPPED

    def set_servers(self, pairs, labels=None):
        """The servers to use: [[primary4, secondary4], ...] (servers.pairs()
        makes them), at most MAX_SERVERS; labels: a name per server (the
        host name it was resolved from) or None.  The server in use stays
        in use when it is still listed; otherwise the client requalifies.
        (In teredo.servers, loaded only by those who give a list.)"""
        from teredo import servers
        servers.set_servers(self, pairs, labels)

    def _use(self, k):
        p, s = self.servers[k]
        if not wire.eq(p, 0, self.server4, 0, 4):
            self.s2_t = -1  # we have not written to this server's secondary
        self.si = k
        self.server4 = p
        self.server2_4 = s
        self.server_addr = (addr.format_ipv4(p), proto.PORT)
        self.server2_addr = (addr.format_ipv4(s), proto.PORT)

    def set_refresh(self, refresh_s, now):
        """A new refresh interval (§5.2.5), in force from the next refresh on:
        no new qualification, the address stays."""
        if type(refresh_s) is not int or refresh_s < 10 or refresh_s > 3600:
            raise ValueError("refresh_s must be 10..3600 seconds")
        self.cfg["refresh_s"] = refresh_s
        if self.state == QUALIFIED:
            self._schedule_refresh(now)

    def set_local(self, text):
        """The shell tells the core its local ip:port, for status only."""
        self.local = text

    def set_lan(self, ip, mask, why=None):
        """The shell tells the core the IPv4 address and netmask of its LAN
        interface (text or 4 bytes) and that it receives what comes to the
        discovery address 224.0.0.253 (on_discovery): local discovery
        (§5.2.8) is on from then, unless the local_discovery option is off.
        ip None: off, why says why.  Returns whether it is on."""
        self.lan_on = False
        if ip is None or not self.cfg["local_discovery"]:
            self.lan_why = why or "turned off"
            return False
        from teredo import local  # the discovery code: loaded only when it is on
        return local.set_lan(self, ip, mask)

    def next_deadline(self):
        """The earliest time on_timer wants to run (ticks ms): never later
        than _WAKE_MS from the last time seen (see _AGE_MS)."""
        d = _add(self._now, _WAKE_MS)
        if self.phase != _PH_STOPPED and _diff(self.deadline, d) < 0:
            d = self.deadline
        if self.nt and _diff(self.nt_deadline, d) < 0:
            d = self.nt_deadline
        if self.lan_on and self.state == QUALIFIED and _diff(self.disc_at, d) < 0:
            d = self.disc_at
        # the peer walk is run once per loop turn: F_PROBES first (nearly
        # always 0), no range object, the entry offset stepped
        v = self.peers.v
        b = 0
        e = self.peers.n * NF
        while b < e:
            if v[b + F_PROBES] > 0 and v[b + F_USED] and _diff(v[b + F_NEXT], d) < 0:
                d = v[b + F_NEXT]
            b += NF
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
            "server": self.server_addr[0] if self.servers else None,
            "server2": self.server2_addr[0] if self.servers else None,
            "servers": self._server_status(),
            "nat": NATS[self.nat],
            "address": addr.format_ipv6(self.address) if self.has_address else None,
            "mapped": ("%s:%d" % (addr.format_ipv4(self.mapped4), self.mapped_port))
            if self.has_address else None,
            "local": self.local,
            "relay": self.relay,
            "refresh_s": self.cfg["refresh_s"],
            "uptime_s": self._age(self._now),
            "relay_ok_s_ago": self.up[0] - self.up[3] if self.up[3] >= 0 else None,
            "peers": self.peers.count(),
            "local_discovery": "on" if self.lan_on else "off: " + self.lan_why,
            "local_peers": self._lan().count(self) if self.lan_on else 0,
            "rx": self.rx_count,
            "tx": self.tx_count,
            "drops": drops,
            "error": self.error,
            "warning": self.warning,
        }

    def _server_status(self):
        out = []
        for k in range(len(self.servers)):
            st = self.srv_st[k]
            if k == self.si and self.state == QUALIFIED:
                st = 4
            out.append({"name": self.labels[k], "address": addr.format_ipv4(self.servers[k][0]),
                        "state": SERVER_STATES[st],
                        "rtt_ms": self.srv_rtt[k] if self.srv_rtt[k] >= 0 else None})
        return out

    # ---- timers -------------------------------------------------------------

    def on_timer(self, now):
        self._now = now
        self._age(now)
        if self.phase == _PH_STOPPED:
            return
        if _diff(now, self.deadline) >= 0:
            self._state_timer(now)
        if self.nt and _diff(now, self.nt_deadline) >= 0:
            self._nat_timer(now)
        if self.lan_on and self.state == QUALIFIED and _diff(now, self.disc_at) >= 0:
            self._lan().discover(self, now)
        v = self.peers.v
        for i in range(self.peers.n):
            b = i * NF
            if v[b + F_USED] and v[b + F_PROBES] > 0 and _diff(now, v[b + F_NEXT]) >= 0:
                self._probe(i, now)

    def _age(self, now):
        """Clamp stored past times to at most _AGE_MS ago (see _WAKE_MS): an
        idle trusted entry must not look fresh again when ticks wrap, nor
        LRU or the bubble window go wrong.  And accumulate the uptime in
        whole seconds (a tick difference goes negative after 6.2 days);
        returns it."""
        up = self.up
        el = _diff(now, up[2])
        if el > 0:
            up[2] = now
            ms = up[1] + el
            up[0] += ms // 1000
            up[1] = ms % 1000
        old = _sub(now, _AGE_MS)
        v = self.peers.v
        for i in range(self.peers.n):
            b = i * NF
            if v[b + F_USED]:
                for f in range(b + F_LAST_RX, b + F_LOCAL_RX + 1):
                    if _diff(now, v[f]) > _AGE_MS:
                        v[f] = old
        og = self.og
        for k in range(3, 4 * _ORIGIN_SLOTS, 4):
            if _diff(now, og[k]) > _AGE_MS:
                og[k] = old
        for k in range(len(self.tokens_t)):
            if _diff(now, self.tokens_t[k]) > _AGE_MS:
                self.tokens_t[k] = old
        if self.s2_t >= 0 and _diff(now, self.s2_t) > _AGE_MS:
            self.s2_t = old
        if self.early_t >= 0 and _diff(now, self.early_t) > _AGE_MS:
            self.early_t = old
        return up[0]

    def _state_timer(self, now):
        ph = self.phase
        if self.state == QUALIFIED and ph != _PH_REFRESH:
            # §5.2.5: refresh when nothing came from the server within the
            # randomised refresh interval
            if _diff(now, self.refresh_at) >= 0:
                self.phase = _PH_REFRESH
                self.tries = 0
                self._send_rs(now)
            else:
                self.deadline = self.refresh_at
            return
        if ph == _PH_PRIMARY or ph == _PH_REFRESH:
            if self.tries < self.cfg["qual_tries"]:
                self._send_rs(now)
                return
            self.srv_st[self.si] = _SV_SILENT
            self.failures += 1
            if ph == _PH_REFRESH:
                why = "server %s stopped answering refreshes; requalifying" % self.server_addr[0]
                if len(self.servers) > 1:
                    # the others may answer: ask them all now, no back-off
                    self._forget_address()
                    self._qualify(now)
                    self.error = why
                    return
                self._lost(now, why)
            else:
                for k in range(len(self.servers)):
                    if self.srv_st[k] == _SV_ASKED:
                        self.srv_st[k] = _SV_SILENT
                self._lost(now, "no answer from Teredo server%s %s (UDP %d) after %d tries: "
                           "check the server address and that UDP is not blocked"
                           % ("s" if len(self.servers) > 1 else "", self.server_text(), proto.PORT,
                              self.tries))
            return
        # offline or symmetric: time to try again
        self._qualify(now)

    def server_text(self):
        """The servers as text for messages: addresses, with the names they came from."""
        if len(self.servers) == 1 and not self.labels[0]:
            return self.server_addr[0]
        from teredo import servers
        return servers.text(self)

    def _qualify(self, now):
        if not self.servers:
            # the shell has no address for any server yet (names that did not resolve)
            self.failures += 1
            self._lost(now, self.error or "no Teredo server address")
            return
        self._set_state(QUALIFYING, now)
        self.phase = _PH_PRIMARY
        self.nt = _NT_NONE
        self.tries = 0
        self.cone_sent = False
        self._send_rs(now)

    def _nat_timer(self, now):
        """The background NAT-type test of §5.2.1: no cone RA within T, so
        ask the secondary address; N tries, T apart."""
        if self.nt == _NT_CONE:
            self._random(self.nonce_cone, 8)  # a late cone RA is stale from now on
            self.nt = _NT_S2 - 1
        elif self.nt - _NT_S2 + 1 >= self.cfg["qual_tries"]:
            # §5.2.1 would call the service unusable; but the primary address
            # answers and relays, so keep serving with the NAT type unknown
            # (as miredo, which never asks the secondary address).
            self.nt = _NT_NONE
            self.nat = 0
            self.changes += 1
            self.warning = ("secondary server address %s did not answer: NAT type unknown"
                            % self.server2_addr[0])
            if self.state != QUALIFIED:
                self._qualified(self.first4, self.first_port, self.mtu, now)
            return
        self.nt += 1  # one more try
        self.s2_t = now
        # the cone nonce, fresh: the cone test is over (a cone RA is refused)
        self._rs(self.nonce_cone, False, self.server2_addr)
        self.nt_deadline = _add(now, self.cfg["qual_timeout_ms"])

    def _lost(self, now, why):
        self._forget_address()
        self.error = why
        self.phase = _PH_NONE
        self._set_state(OFFLINE, now)
        self.deadline = _add(now, self.backoff)
        self.backoff = min(self.backoff * 2, self.cfg["backoff_max_ms"])

    def _forget_address(self):
        self.nt = _NT_NONE
        if self.has_address:
            self.has_address = False
            self.changes += 1
        for i in range(self.peers.n):
            self.peers.free(i)
        self.relay = None
        self.up[3] = -1

    def _set_state(self, s, now):
        if self.state != s:
            self.state = s
            self.changes += 1

    def _send_rs(self, now):
        """RS with a fresh nonce (RFC 5991 §3) to the primary address.  While
        qualifying, the RS with the cone bit goes out with it: the cone RA
        comes from the other server address (RFC 4380 §5.3.2), which a
        restricted NAT lets in only if we wrote to that address ourselves.
        So the cone test is made only when we have not written to the
        secondary address within a NAT's UDP timeout (RFC 4787 REQ-5): after
        a restart, our own earlier RS would still hold the filter open and a
        restricted NAT would pass for a cone one.  Refreshes never carry the
        cone bit: since RFC 5991 our address has C = 0 (§5.2.5 asks for the
        cone bit that qualified us)."""
        self.tries += 1
        if (self.phase == _PH_PRIMARY and self.cfg["cone_probe"]
                and (self.s2_t < 0 or _diff(now, self.s2_t) >= _NAT_UDP_TIMEOUT_MS)):
            self.cone_sent = True
            self._rs(self.nonce_cone, True, self.server_addr)
        self._rs(self.nonce_nc, False, self.server_addr)
        self.rs_t = now
        if self.srv_st[self.si] == _SV_NEW:
            self.srv_st[self.si] = _SV_ASKED
        if self.phase == _PH_PRIMARY and self.nt == _NT_NONE and len(self.servers) > 1:
            # the others, each with a nonce of its own: the first RA wins
            for k in range(len(self.servers)):
                if k != self.si:
                    if self.srv_st[k] == _SV_NEW:
                        self.srv_st[k] = _SV_ASKED
                    self._rs(self.srv_nonce[k], False, (addr.format_ipv4(self.servers[k][0]), proto.PORT))
        self.deadline = _add(now, self.cfg["qual_timeout_ms"])

    def _rs(self, nonce, cone, to):
        self._random(nonce, 8)
        o = self._arena(13 + 48)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        n = wire.build_rs(self.arena, o, nonce, cone)
        self._tx(self.arena_mv, o, n, to)

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
        if n >= 40 and rx[0] >> 4 == 6 and 40 + ((rx[4] << 8) | rx[5]) == n:
            # the common case, a bare IPv6 packet that fills the datagram:
            # what parse_encap finds for it, without the call
            hdr[_H_IP] = 0
            hdr[_H_NONCE] = -1
            hdr[_H_ORIGIN] = -1
            hdr[_H_END] = n
            ip = 0
        else:
            r = wire.parse_encap(rx, n, hdr)
            if r:
                self._drop(r)
                return EV_NONE
            n = hdr[_H_END]  # RFC 6081 trailers, if any, end here
            ip = hdr[_H_IP]
        self.rx_count += 1
        nh = rx[ip + 6]
        from_server = sport == _PORT and (wire.eq(src4, 0, self.server4, 0, 4)
                                               or wire.eq(src4, 0, self.server2_4, 0, 4))
        if (not from_server and sport == _PORT and len(self.servers) > 1
                and nh == _NH_ICMPV6 and n - ip >= 41 and rx[ip + 40] == _ICMP_RA):
            for k in range(len(self.servers)):
                if wire.eq(src4, 0, self.servers[k][0], 0, 4):
                    self._rank_ra(k, now)
                    return EV_NONE
        if from_server:
            if nh == _NH_ICMPV6 and n - ip >= 41 and rx[ip + 40] == _ICMP_RA:
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
            # relayed by the server: open the path with a direct bubble
            self._reply_bubble(hdr[_H_ORIGIN], ip, now)
            if nh == _NH_NONE:
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
                if nh == _NH_NONE:
                    return EV_NONE
                self.rx_peer = p  # a reply goes back to it: no second lookup
                r = self._deliver(ip, n, now)
                self.rx_peer = -1
                return r
            if (not v[b + F_TRUSTED] and not v[b + F_TEREDO] and v[b + F_PROBES] > 0
                    and nh == _NH_ICMPV6
                    and n - ip == 40 + 8 + 8 and rx[ip + 40] == _ICMP_ECHO_REPLY
                    and wire.eq(rx, ip + 48, peers.nonce, p * 8, 8)):
                # §5.2.3 case 2: the reply to our connectivity test (§5.2.9)
                if wire.l4_sum(rx, ip, _NH_ICMPV6, 16) != 0xFFFF:
                    self._drop(wire.CHECKSUM)
                    return EV_NONE
                self._trust(p, src4, sport, now)
                self.up[3] = self._age(now)
                self.relay = "%s:%d" % (peers.addr[p][0], sport)
                self.changes += 1
                return EV_NONE
        if addr.is_teredo(rx, src):
            # §5.2.3 case 3: the mapping in the address must be the UDP source
            if (addr.teredo_port(rx, src) != sport
                    or not addr.teredo_mapped_matches(rx, src, src4, 0)):
                if p >= 0 and self._local_from(p, src4, sport, now):
                    # §5.2.3 case 5: from the local address of a peer that
                    # local discovery found (§5.2.8): trusted there
                    self._trust(p, src4, sport, now)
                    if nh == _NH_NONE:
                        return EV_NONE
                    return self._deliver(ip, n, now)
                self._drop(wire.SPOOFED)
                return EV_NONE
            if p < 0:
                p = self._new_peer(rx, src, now)
                if p < 0:
                    return EV_NONE
            self._trust(p, src4, sport, now)
            if nh == _NH_NONE:
                return EV_NONE
            return self._deliver(ip, n, now)
        # §5.2.3 case 6: a native source we hold no trusted entry for.  Be
        # generous in what we accept; anything we send back goes through the
        # connectivity test first (§5.2.4 case 2).
        if nh == _NH_NONE:
            self._drop(wire.UNTRUSTED)
            return EV_NONE
        return self._deliver(ip, n, now)

    def on_discovery(self, buf, n, src4, sport, now):
        """One datagram that came to the Teredo IPv4 discovery address
        (224.0.0.253, §2.17), from the shell's socket joined to that group
        (teredo.local, loaded by set_lan).  Returns EV_NONE."""
        if not self.lan_on:
            self._now = now
            self._drop(DISCOVERY)
            return EV_NONE
        return self._lan().on_discovery(self, buf, n, src4, sport, now)

    def _lan(self):
        from teredo import local  # loaded by set_lan when it turned discovery on
        return local

    def _local_from(self, p, src4, sport, now):
        """Whether src4:sport is the local address of peer p, a local peer
        (§5.2.3 case 5, §5.2.4 case 3: a discovery bubble within 600 s)."""
        return (self._is_local(p, now) and self.peers.v[p * NF + F_LPORT] == sport
                and wire.eq(self.peers.lip4, p * 4, src4, 0, 4))

    def _deliver(self, ip, n, now):
        """Hand an accepted packet to the local stack: answer echo requests,
        report echo replies to our pings and UDP datagrams as events."""
        rx = self.rx
        nh = rx[ip + 6]
        plen = n - ip - 40
        r = wire.UNSUPPORTED
        if (rx[ip + 8] & 0xE0) != 0x20:
            # not global unicast, 2000::/3 (RFC 4291 §2.4): ::, ::1, multicast,
            # link-local, ULA, IPv4-mapped...: a spoofed source (§5.2.3 case 6,
            # §7.3.3); never answered, never given an entry or a test
            r = wire.NON_GLOBAL
        elif nh == _NH_TCP:
            # checked (length, checksum) by the TCP, which parses it anyway
            self.ev_src = ip + 8
            self.ev_off = ip
            self.ev_len = n - ip
            return EV_TCP
        elif nh == _NH_ICMPV6 or nh == _NH_UDP:
            if plen < 8 or (nh == _NH_UDP and ((rx[ip + 44] << 8) | rx[ip + 45]) != plen):
                r = wire.LENGTH
            elif (wire.l4_sum(rx, ip, nh, plen) != 0xFFFF
                  or (nh == _NH_UDP and rx[ip + 46] == 0 and rx[ip + 47] == 0)):
                r = wire.CHECKSUM  # RFC 8200 §8.1: a zero UDP checksum over IPv6 is discarded
            elif nh == _NH_UDP:
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
            elif rx[ip + 40] == _ICMP_ECHO_REQUEST:
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
            elif rx[ip + 40] == _ICMP_ECHO_REPLY and (
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
        if self.state == OFFLINE or self.state == SYMMETRIC:
            # no RS outstanding (not started, stopped, given up, or waiting
            # to retry): a nonce still in memory proves nothing
            self._drop(wire.RA_NONCE)
            return
        rx = self.rx
        hdr = self.hdr
        ip = hdr[wire.H_IP]
        cone_dst = wire.eq(rx, ip + 24, proto.LL_CONE, 0, 16)
        from_primary = wire.eq(src4, 0, self.server4, 0, 4)
        # one nonce per kind of RS outstanding: cone, primary, secondary
        # one nonce per kind of RS outstanding: primary, and cone or secondary
        nonce = self.nonce_nc if from_primary and not cone_dst else self.nonce_cone
        ll = proto.LL_CONE if cone_dst else proto.LL_NONCONE
        r = wire.parse_ra(rx, hdr, nonce, ll, self.server4, self.res, self.tmp4)
        if r:
            self._drop(r)
            return
        self._random(nonce, 8)  # one RA per nonce: replays are now stale
        self.last_server = now  # §5.2.3: a valid RA is an interaction with the server
        if from_primary and not cone_dst:
            self.srv_st[self.si] = _SV_OK
            self.srv_rtt[self.si] = _diff(now, self.rs_t)
        m4 = self.tmp4
        port = self.res[0]
        mtu = self.res[1]
        qualifying = self.state == QUALIFYING and self.phase == _PH_PRIMARY
        if cone_dst:
            # A cone RA must come from the other address (§5.3.2); from the
            # same one it proves nothing about the NAT.
            if from_primary or not (qualifying or self.nt == _NT_CONE):
                self._drop(wire.RA_INVALID)
                return
            self.nat = 1
            self.changes += 1  # shells report status at every change
            self.nt = _NT_NONE
            if self.state != QUALIFIED:
                self._qualified(m4, port, mtu, now)
            return
        if not from_primary:
            if self.nt < _NT_S2:
                self._drop(wire.RA_NONCE)
                return
            self.nt = _NT_NONE
            if port == self.first_port and wire.eq(m4, 0, self.first4, 0, 4):
                self.nat = 2
                self.changes += 1
                if self.state != QUALIFIED:
                    self._qualified(m4, port, mtu, now)
                return
            # §5.2.1: different mappings for the two server addresses.  But
            # the NAT may have rebooted since the primary's answer: ask the
            # primary again before calling it symmetric.
            self.s2map4[0:4] = m4
            self.s2_port = port
            self.nt = _NT_CHECK
            self.nt_deadline = _add(now, _HALF - 1)  # the RS retries below time it
            self.phase = _PH_REFRESH if self.state == QUALIFIED else _PH_PRIMARY
            self.tries = 0
            self._send_rs(now)
            return
        if self.nt == _NT_CHECK:
            self.nt = _NT_NONE
            if port == self.first_port and wire.eq(m4, 0, self.first4, 0, 4):
                self.phase = _PH_NONE
                self._forget_address()
                self.nat = 3
                self.error = ("symmetric NAT: the mapping differs per destination (%s:%d "
                              "toward %s, %s:%d toward %s); Teredo cannot work through it. "
                              "Forward a UDP port to this device and set it as the client port "
                              "(RFC 4380 §5.2.10). Retrying every %d s."
                              % (addr.format_ipv4(m4), port, self.server_addr[0],
                                 addr.format_ipv4(self.s2map4), self.s2_port, self.server2_addr[0],
                                 self.cfg["symmetric_retry_ms"] // 1000))
                self._set_state(SYMMETRIC, now)
                self.deadline = _add(now, self.cfg["symmetric_retry_ms"])
                return
            # the mapping moved: a new primary answer (below) or a changed one
        if qualifying:
            self._first_ra(m4, port, mtu, now)
            return
        if self.state == QUALIFIED:
            # §5.2.5: the mapping must still match our address
            if port == self.mapped_port and wire.eq(m4, 0, self.mapped4, 0, 4):
                self.phase = _PH_NONE
                self.tries = 0
                self.mtu = mtu
                self._schedule_refresh(now)
                return
            old = "%s:%d" % (addr.format_ipv4(self.mapped4), self.mapped_port)
            self._forget_address()
            self._qualify(now)
            self.error = ("NAT mapping changed (was %s, now %s:%d); requalified"
                          % (old, addr.format_ipv4(m4), port))
            return
        self._drop(wire.RA_NONCE)

    def _first_ra(self, m4, port, mtu, now):
        """The primary's answer while qualifying: usable now; the NAT type
        follows (§5.2.1)."""
        self.first4[0:4] = m4
        self.first_port = port
        self.mtu = mtu
        self.warning = None
        if self.nat == 3:
            # it was symmetric: test again before using the address
            self.phase = _PH_NONE
            self.deadline = _add(now, _HALF - 1)
        elif self._qualified(m4, port, mtu, now) and self.nat:
            return  # same mapping and server as before: the NAT type stands
        else:
            self.nat = 0
            self.changes += 1
        if self.cone_sent:
            self.nt = _NT_CONE
            self.nt_deadline = _add(now, self.cfg["qual_timeout_ms"])
        else:
            self.nt = _NT_S2 - 1  # no try yet
            self._nat_timer(now)

    def _rank_ra(self, k, now):
        """An RA from the primary of server k, not the one in use: the answer
        to the rank RS of _send_rs.  Its round trip goes into status; while
        qualifying, the first one to come makes k the server in use."""
        if self.state == OFFLINE or self.state == SYMMETRIC:
            self._drop(wire.RA_NONCE)  # no RS outstanding (see _on_ra)
            return
        nonce = self.srv_nonce[k]
        r = wire.parse_ra(self.rx, self.hdr, nonce, proto.LL_NONCONE, self.servers[k][0],
                          self.res, self.tmp4)
        if r:
            self._drop(r)
            return
        self._random(nonce, 8)
        self.srv_st[k] = _SV_OK
        self.srv_rtt[k] = _diff(now, self.rs_t)
        if self.state != QUALIFYING or self.phase != _PH_PRIMARY or self.nt != _NT_NONE:
            return  # a slower one: counted, not used
        # the one we asked first may still answer: its nonce goes with it
        self.srv_nonce[self.si][0:8] = self.nonce_nc
        self._use(k)
        # the cone RS went to the other server: no cone test this time
        self.cone_sent = False
        self._random(self.nonce_nc, 8)
        self._random(self.nonce_cone, 8)
        self.last_server = now
        self._first_ra(self.tmp4, self.res[0], self.res[1], now)

    def _qualified(self, mapped4, port, mtu, now):
        """§5.2.1: build our address from the RA's prefix and the origin
        indication, with RFC 5991 random flag bits and the cone bit 0.  When
        the server and mapping are those of the last address (a blip, a
        restart), the flag bits are kept too, so the address stays the same
        (as miredo).  Returns True then."""
        a = self.address
        same = (wire.eq(a, 4, self.server4, 0, 4) and addr.teredo_port(a, 0) == port
                and addr.teredo_mapped_matches(a, 0, mapped4, 0))
        self.mapped4[0:4] = mapped4
        self.mapped_port = port
        self.mtu = mtu
        addr.build_teredo(self.server4, addr.teredo_flags(a, 0) if same else addr.random_flags(self.rand),
                          port, mapped4, a, 0)
        self.has_address = True
        self.error = None
        self.phase = _PH_NONE
        self.tries = 0
        self.backoff = self.cfg["backoff_min_ms"]
        self.changes += 1
        self._set_state(QUALIFIED, now)
        self._schedule_refresh(now)
        if self.lan_on:
            self._lan().discover(self, now)  # §5.2.8: tell the LAN at once
        return same

    def _schedule_refresh(self, now):
        """§5.2: randomised refresh interval, 75..100 % of the interval.
        Every intermediate stays under 2**30 (900000 * 1023 at most): a big
        int is a heap allocation on a 32-bit board."""
        r = self.cfg["refresh_s"] * 1000
        jitter = ((r // 4) * self.rand(10)) >> 10
        self.refresh_at = _add(now, r - jitter)
        if self.phase != _PH_REFRESH:
            self.deadline = self.refresh_at

    # ---- transmit -------------------------------------------------------------

    def _output(self, buf, mv, ip, n, now, p=-1):
        """§5.2.4: send the IPv6 packet buf[ip:ip+n] to its destination."""
        if n > self.mtu:
            return self._drop(wire.TOO_BIG)
        dst = ip + 24
        if (buf[dst] & 0xE0) != 0x20:  # not 2000::/3 (RFC 4291 §2.4)
            return self._drop(wire.NON_GLOBAL)  # no connectivity test to ff02::1 etc.
        peers = self.peers
        v = peers.v
        if p < 0:
            p = peers.find(buf, dst)
        b = p * NF
        if p >= 0 and v[b + F_TRUSTED] and _diff(now, v[b + F_LAST_RX]) < _PEER_VALID_MS:
            # case 1
            v[b + F_LAST_TX] = now
            v[b + F_LAST_USE] = now
            return self._tx(mv, ip, n, peers.addr[p])
        if p < 0:
            for k in range(len(peers.qowner)):  # a free queue buffer, before taking an entry
                if peers.qowner[k] < 0 and not peers.qrelease[k]:
                    break
            else:
                return self._drop(wire.QUEUE_FULL)
            p = self._new_peer(buf, dst, now)
            if p < 0:
                return -p
            b = p * NF
        elif v[b + F_TRUSTED]:
            v[b + F_TRUSTED] = 0  # expired: test the path again
        v[b + F_LAST_USE] = now
        if v[b + F_TEREDO] and not self._is_local(p, now):
            # §5.2.4 cases 4/5 (we always take case 5, as §5.2.4 allows):
            # global check on the mapped address first
            for i in range(4):
                self.tmp4[i] = buf[dst + 12 + i] ^ 0xFF
            if not addr.is_global_ipv4(self.tmp4, 0) or addr.teredo_port(buf, dst) == 0:
                return self._drop(wire.NON_GLOBAL)  # port 0 is no mapping either
        if not peers.enqueue(p, buf, ip, n):
            return self._drop(wire.QUEUE_FULL)
        if v[b + F_PROBES] == 0:
            # §5.2.4 cases 2 and 5: the test (or bubbles) once, then repeated
            # up to 3 times 2 s apart, and a last 2 s for the answer; one
            # nonce for the whole test, so a late reply still counts (§5.2.9)
            v[b + F_PROBES] = proto.PROBE_TRIES + 2
            self._random(peers.nonce, 8, p * 8)
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
            # never answered: what was queued is lost; the entry stays (LRU)
            # with its bubble count for §5.2.6's 300 s
            if v[b + F_QLEN]:
                self.drops[UNREACHABLE] += 1
            v[b + F_PROBES] = 0
            peers.drop_queue(p)
            return
        v[b + F_NEXT] = _add(now, proto.PROBE_RETRY_MS)
        if v[b + F_TEREDO]:
            if self._is_local(p, now):
                # §5.2.4 case 3: a unicast bubble to its local address and a
                # local discovery bubble (its reply, §5.2.3 case 4, is what
                # trusts it here, case 5)
                if self._bubble_ok(p, now):
                    self._lan().local_bubble(self, p)
                    self._lan().discover(self, now)
                return
            self._bubbles(p, now)
            return
        nonce = peers.nonce
        o = self._arena(56)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        a = self.arena
        n = wire.build_echo(a, o, proto.ICMP_ECHO_REQUEST, self.address, peers.ip6[p * 16:p * 16 + 16],
                            0, 0, nonce[p * 8:p * 8 + 8], 8)
        self._tx(self.arena_mv, o, n, self.server_addr)

    def _is_local(self, p, now):
        v = self.peers.v
        b = p * NF
        return self.lan_on and v[b + F_LOCAL] == 1 and _diff(now, v[b + F_LOCAL_RX]) < proto.LOCAL_VALID_MS

    def _bubble_ok(self, p, now):
        """§5.2.6: no bubble to peer p less than 2 s after the last
        transmission to it, nor once 4 went out in 300 s without a direct
        response (_trust clears the count; a failed entry keeps it).  Counts
        the bubble when it may go."""
        v = self.peers.v
        b = p * NF
        if _diff(now, v[b + F_WINDOW]) >= proto.BUBBLE_WINDOW_MS:
            v[b + F_WINDOW] = now
            v[b + F_BUBBLES] = 0
        if (_diff(now, v[b + F_LAST_TX]) < proto.BUBBLE_MIN_GAP_MS
                or v[b + F_BUBBLES] >= proto.BUBBLE_MAX_IN_WINDOW):
            self._drop(wire.RATE_LIMITED)
            return False
        v[b + F_LAST_TX] = now
        v[b + F_BUBBLES] += 1
        return True

    def _bubbles(self, p, now):
        if not self._bubble_ok(p, now):
            return
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

    def _reply_bubble(self, og, ip, now):
        """A packet relayed by our server: answer with a direct bubble to
        where it came from, so that the sender can reach us directly (§5.2.3,
        §5.2.9 and §5.4.1 seen from the client side).  With an origin
        indication, to the origin (a relay), addressed to the IPv6 source it
        used (relays use a link-local one), at most one per origin per 2 s
        (§5.2.6's gap).  Without one (§5.3.1 makes it a should for servers),
        to the mapping in a Teredo source address, under all of §5.2.6 (the
        peer's entry, its gap and count), as miredo guesses it."""
        rx = self.rx
        src = ip + 8
        t4 = self.tmp4
        if og >= 0:
            wire.origin_ip_into(rx, og, t4)
            port = wire.origin_port(rx, og)
        elif addr.is_teredo(rx, src):
            for i in range(4):
                t4[i] = rx[src + 12 + i] ^ 0xFF
            port = addr.teredo_port(rx, src)
        else:
            return
        if not addr.is_global_ipv4(t4, 0) or port == 0:
            self._drop(wire.NON_GLOBAL)
            return
        if og >= 0:
            # one per origin per 2 s: a few recent origins are remembered.
            # The gap is checked before the bubble budget is spent.
            g = self.og
            hi = (t4[0] << 8) | t4[1]
            lo = (t4[2] << 8) | t4[3]
            k = 0
            while k < 4 * _ORIGIN_SLOTS and not (g[k] == hi and g[k + 1] == lo and g[k + 2] == port):
                k += 4
            if k < 4 * _ORIGIN_SLOTS and _diff(now, g[k + 3]) < proto.BUBBLE_MIN_GAP_MS:
                self._drop(wire.RATE_LIMITED)
                return
            if not self._token(1, now, self.cfg["bubble_rate"], self.cfg["bubble_rate"]):
                self._drop(wire.RATE_LIMITED)
                return
            if k == 4 * _ORIGIN_SLOTS:
                k = g[k]  # the oldest is replaced
                g[4 * _ORIGIN_SLOTS] = (k + 4) % (4 * _ORIGIN_SLOTS)
                g[k] = hi
                g[k + 1] = lo
                g[k + 2] = port
            g[k + 3] = now
        else:
            if not self._token(1, now, self.cfg["bubble_rate"], self.cfg["bubble_rate"]):
                self._drop(wire.RATE_LIMITED)
                return
            p = self.peers.find(rx, src)
            if p < 0:
                p = self._new_peer(rx, src, now)
            if p < 0 or not self._bubble_ok(p, now):
                return
        o = self._arena(40)
        if o < 0:
            self._drop(wire.TX_FULL)
            return
        wire.build_ipv6(self.arena, o, 0, proto.NH_NONE, proto.HOP_LIMIT, self.address,
                        memoryview(rx)[src:src + 16])
        self._tx(self.arena_mv, o, 40, (addr.format_ipv4(t4), port))

    def _new_peer(self, buf, off, now):
        """A new peer entry for the IPv6 address at buf[off], or minus the
        drop reason (counted).  New entries come from a token bucket of their own
        (§7.3.3: a flood of new sources, spoofed or not, must not churn the
        table) and never evict a valid trusted one (PeerTable.new)."""
        if not self._token(3, now, _PEER_RATE, self.cfg["max_peers"]):
            return -self._drop(wire.RATE_LIMITED)
        p = self.peers.new(buf, off, now, _sub(now, proto.PEER_VALID_MS))
        if p < 0:
            return -self._drop(wire.QUEUE_FULL)  # every entry valid and trusted
        return p

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

    def _random(self, buf, n, off=0):
        for i in range(off, off + n, 2):
            v = self.rand(16)
            buf[i] = v >> 8
            if i + 1 < off + n:
                buf[i + 1] = v & 0xFF

    def _token(self, k, now, rate, burst):
        """Token bucket k (0: echo replies, 1: unsolicited bubbles, 2: ICMPv6
        errors, 3: new peer entries), in milli-tokens so that it stays in
        small ints.  rate 0: no limit."""
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
        d = d + _HALF + _HALF
    return d


def _next4(b):
    """RFC 4380 §5.2: the secondary address is the primary + 1 by convention."""
    s2 = bytearray(b)
    i = 3
    while i >= 0:
        s2[i] = (s2[i] + 1) & 0xFF
        if s2[i]:
            break
        i -= 1
    return bytes(s2)


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
