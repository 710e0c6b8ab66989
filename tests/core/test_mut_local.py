# Local client discovery (teredo/local.py, RFC 4380 §5.2.8, §5.2.3 case 4)
# as mutation testing found it untested: set_lan's checks and the exact 8
# bytes it keeps, each of on_discovery's checks at its edge, the entry a
# discovery bubble makes or updates (its local address at its own 4 bytes of
# lip4, its last reception), the early announcement's first time at tick 0,
# the 40 bytes each bubble takes of the arena, the 200..300 s draw, and
# open_socket's calls on a fake socket module (and a fake network module for
# the MicroPython branch).  On CPython and the MicroPython unix port.
import sys

from harness import Seq, drops, qualified, sent
from teredo import local, proto, wire
from teredo.client import ARENA_BYTES, RX_BYTES, Client
from teredo.peers import F_LAST_RX, F_LOCAL, F_LOCAL_RX, F_LPORT, NF
from vectors import SERVER, Rand, ip4, ip6

MASK = "255.255.255.0"
A_IP = "198.18.1.2"
GROUP = (proto.DISCOVERY_ADDR, proto.PORT)


def lan_client(mask=MASK, **opts):
    """A qualified client (NAT test done) on LAN A_IP/mask, its first
    announcement sent and drained."""
    n = qualified(**opts)
    c = n.c
    assert c.set_lan(A_IP, mask)
    c.on_timer(n.now)
    assert GROUP in [(ip, port) for ip, port, _ in sent(c)]
    return n, c


def other(c, k):
    """Another client behind our NAT: our Teredo address with another
    (obfuscated) mapped port."""
    a = bytearray(c.address)
    a[11] ^= k
    return a


def bubble(src6, dst6=proto.ALL_NODES, before=b""):
    k = len(before)
    b = bytearray(k + 40)
    b[:k] = before
    wire.build_ipv6(b, k, 0, proto.NH_NONE, 1, src6, dst6)
    return b


def dests(c):
    return [(ip, port) for ip, port, _ in sent(c)]


def test_set_lan_wants_4_bytes_each_and_keeps_them_as_its_8_bytes():
    c = Client(SERVER, rand=Rand(1), queue_slots=1)
    for ip, mask in ((A_IP, b"\xff\xff\xff"), (b"\xc6\x12\x01", MASK), (A_IP, bytes(5))):
        try:
            c.set_lan(ip, mask)
        except ValueError as e:
            assert "IPv4" in str(e), e
        else:
            raise AssertionError((ip, mask))
    # a zero address or mask: off, and why (the 8 bytes untouched)
    for ip, mask in (("0.0.0.0", MASK), (A_IP, "0.0.0.0"), (A_IP, bytes(4)), (bytearray(4), MASK)):
        assert c.set_lan(ip, mask) is False and not c.lan_on, (ip, mask)
        assert c.status()["local_discovery"] == "off: no LAN address"
        assert bytes(c.lan) == bytes(8)
    c._now = 1234
    assert c.set_lan(bytearray(ip4(A_IP)), "255.255.255.252") is True and c.lan_on
    assert bytes(c.lan) == ip4(A_IP) + ip4("255.255.255.252")
    assert c.disc_at == 1234 and c.status()["local_discovery"] == "on"
    assert c.set_lan("198.18.7.9", b"\xff\xff\x00\x00") is True
    assert bytes(c.lan) == b"\xc6\x12\x07\x09\xff\xff\x00\x00"


def test_a_datagram_of_rx_bytes_is_parsed_and_one_more_is_too_big():
    # the shell's buffer holds RX_BYTES: a bubble padded with empty
    # trailers (RFC 6081 §4, type 0) to exactly that is still a bubble
    n, c = lan_client()
    d = bytearray(RX_BYTES + 1)
    d[:40] = bubble(other(c, 1))
    rx = c.status()["rx"]
    c.on_discovery(d, RX_BYTES + 1, ip4("198.18.1.3"), 4000, n.now)
    assert drops(c, "too_big") == 1 and c.peers.count() == 0 and c.status()["rx"] == rx
    c.on_discovery(d, RX_BYTES, ip4("198.18.1.3"), 4000, n.now)
    assert drops(c, "too_big") == 1 and c.peers.count() == 1
    assert c.status()["rx"] == rx + 1  # one per accepted discovery bubble
    assert ("198.18.1.3", 4000) in dests(c)


def test_each_check_compares_all_16_bytes_and_every_byte_of_the_subnet():
    # /30: 198.18.1.0..3; .5 differs from us only in the last byte's masked bits
    n, c = lan_client(mask="255.255.255.252")
    cases = []
    own = bytearray(c.address)
    own[15] ^= 1  # not our own (another mapped IPv4): refused and counted
    cases.append((bubble(own), "198.18.1.3"))
    dst = bytearray(proto.ALL_NODES)
    dst[15] = 2  # ff02::2, all routers
    cases.append((bubble(other(c, 1), dst), "198.18.1.3"))
    cases.append((bubble(other(c, 1)), "198.18.1.5"))
    rx = c.status()["rx"]
    for k in range(len(cases)):
        d, ip = cases[k]
        c.on_discovery(d, 40, ip4(ip), 4000, n.now)
        assert drops(c, "discovery") == k + 1, k
        assert c.peers.count() == 0 and sent(c) == [] and c.status()["rx"] == rx, k
    # a discovery bubble is a bare IPv6 packet (§5.2.8): behind an origin
    # indication (which only a server adds) it is refused and counted
    o = bytearray(8)
    wire.build_origin(o, 0, 1234, ip4("198.51.100.10"))
    d = bubble(other(c, 1), before=o)
    c.on_discovery(d, 48, ip4("198.18.1.3"), 4000, n.now)
    assert drops(c, "discovery") == len(cases) + 1 and c.peers.count() == 0 and c.status()["rx"] == rx
    assert dests(c) == []
    # the same bubble bare is accepted
    d = bubble(other(c, 1))
    c.on_discovery(d, 40, ip4("198.18.1.3"), 4000, n.now)
    assert c.peers.count() == 1 and c.status()["rx"] == rx + 1
    assert ("198.18.1.3", 4000) in dests(c)


def test_each_local_peer_keeps_its_own_local_address_and_port():
    n, c = lan_client()
    t = n.now
    peers = c.peers
    ips = ("198.18.1.3", "198.18.1.4", "198.18.1.5")
    for k in range(3):
        c.on_discovery(bubble(other(c, k + 1)), 40, ip4(ips[k]), 4001 + k, t + 100 * k)
        p = peers.find(other(c, k + 1), 0)
        assert p == k
        # §5.2.8: a new entry's last reception is now; local since now
        assert peers.v[p * NF + F_LAST_RX] == t + 100 * k and peers.v[p * NF + F_LOCAL_RX] == t + 100 * k
        assert peers.v[p * NF + F_LOCAL] == 1 and peers.v[p * NF + F_LPORT] == 4001 + k
        # §5.2.3 case 4: the unicast reply goes where the bubble came from
        assert (ips[k], 4001 + k) in dests(c), k
    assert len(peers.lip4) == 4 * peers.n
    assert bytes(peers.lip4[:12]) == ip4(ips[0]) + ip4(ips[1]) + ip4(ips[2])
    # the first moves to another local address: its 4 bytes change, no others
    c.on_discovery(bubble(other(c, 1)), 40, ip4("198.18.1.9"), 4009, t + 3000)
    assert dests(c) == [("198.18.1.9", 4009)]
    assert peers.v[F_LAST_RX] == t and peers.v[F_LOCAL_RX] == t + 3000 and peers.v[F_LPORT] == 4009
    assert len(peers.lip4) == 4 * peers.n
    assert bytes(peers.lip4) == ip4("198.18.1.9") + ip4(ips[1]) + ip4(ips[2]) + bytes(4 * peers.n - 12)
    for k in (1, 2):
        assert peers.v[k * NF + F_LPORT] == 4001 + k
        assert peers.v[k * NF + F_LAST_RX] == t + 100 * k
    # each one's unicast bubble (§5.2.4 case 3) goes to its own address
    for k in (1, 2):
        c.on_discovery(bubble(other(c, k + 1)), 40, ip4(ips[k]), 4001 + k, t + 4000)
        assert dests(c) == [(ips[k], 4001 + k)], k
    assert c.status()["local_peers"] == 3


def test_local_peers_counts_each_entry_by_its_own_fields_past_the_17th():
    # entry 0 a native peer whose address ends in 00:00:00 (a zero key),
    # entries 1..17 local peers: all 17 count
    n, c = lan_client(max_peers=18)
    t = n.now
    c.ping(ip6("2001:db8::100:0"), 1, t)
    assert c.peers.find(ip6("2001:db8::100:0"), 0) == 0
    for k in range(1, 18):
        c.on_discovery(bubble(other(c, k)), 40, ip4("198.18.1.%d" % (10 + k)), 4000, t)
        sent(c)
    assert c.peers.find(other(c, 17), 0) == 17
    assert c.status()["local_peers"] == 17


def test_the_first_newcomer_at_tick_0_is_the_last_early_announcement_for_10_s():
    n, c = lan_client(now=(1 << 30) - 5000)
    assert n.now == 0
    c.on_discovery(bubble(other(c, 1)), 40, ip4("198.18.1.3"), 4000, 0)
    assert dests(c).count(GROUP) == 1
    c.on_discovery(bubble(other(c, 2)), 40, ip4("198.18.1.4"), 4000, 5000)
    assert dests(c) == [("198.18.1.4", 4000)]
    c.on_discovery(bubble(other(c, 3)), 40, ip4("198.18.1.5"), 4000, 10000)
    assert dests(c).count(GROUP) == 1


def test_the_next_discovery_bubble_is_drawn_from_10_random_bits():
    n, c = lan_client()
    for r, after in ((1023, 299902), (0, 200000), (512, 250000)):
        c.rand = Seq([r])
        t = c.disc_at
        local.discover(c, t)
        assert dests(c) == [GROUP], r
        assert c.disc_at == t + after, (r, c.disc_at - t)


def test_a_discovery_bubble_takes_40_bytes_of_the_arena():
    n, c = lan_client()
    for left, ok in ((40, True), (39, False), (0, False)):
        t = c.disc_at
        c.arena_used = ARENA_BYTES - left  # what queued datagrams hold
        before = drops(c, "tx_full")
        local.discover(c, t)
        if ok:
            assert dests(c) == [GROUP] and drops(c, "tx_full") == before, left
        else:
            assert dests(c) == [] and drops(c, "tx_full") == before + 1, left
        assert 200000 <= c.disc_at - t <= 300000  # rescheduled either way


def test_a_unicast_bubble_to_a_local_peer_takes_40_bytes_of_the_arena():
    n, c = lan_client()
    t = n.now
    src = other(c, 1)
    c.on_discovery(bubble(src), 40, ip4("198.18.1.3"), 4000, t)
    assert ("198.18.1.3", 4000) in dests(c)
    k = 1
    for left, ok in ((40, True), (39, False), (0, False)):
        # a known local peer again, 2 s on: no announcement, only the reply
        c.arena_used = ARENA_BYTES - left
        before = drops(c, "tx_full")
        c.on_discovery(bubble(src), 40, ip4("198.18.1.3"), 4000, t + 2000 * k)
        k += 1
        if ok:
            assert dests(c) == [("198.18.1.3", 4000)] and drops(c, "tx_full") == before, left
        else:
            assert dests(c) == [] and drops(c, "tx_full") == before + 1, left


# ---- open_socket on a fake socket module -------------------------------------

class Rec:
    """A client (set_lan) or poller (register) that records its calls."""

    def __init__(self):
        self.calls = []

    def set_lan(self, *a):
        self.calls.append(a)

    def register(self, *a):
        self.calls.append(a)


class Sock:
    def __init__(self, mod):
        self.mod = mod
        self.calls = []

    def _do(self, what, a):
        self.calls.append((what, a))
        if self.mod.fail == what:
            raise OSError("address in use")

    def setsockopt(self, *a):
        self._do("setsockopt", a)

    def bind(self, a):
        self._do("bind", a)

    def setblocking(self, a):
        self._do("setblocking", a)

    def close(self):
        self.calls.append(("close",))


class FdSock(Sock):
    def fileno(self):
        return 42


class SocketModule:
    AF_INET = 21
    SOCK_DGRAM = 22
    SOL_SOCKET = 23
    SO_REUSEADDR = 24

    def __init__(self, fail=None, fileno=True, join=True):
        self.fail = fail
        self.fileno = fileno
        if join:
            self.IP_ADD_MEMBERSHIP = 25
        self.made = []
        self.asked = []

    def socket(self, af, kind):
        if self.fail == "socket":
            raise OSError("no sockets")
        s = FdSock(self) if self.fileno else Sock(self)
        self.made.append((af, kind, s))
        return s

    def getaddrinfo(self, host, port):
        self.asked.append((host, port))
        return [(31, 32, 33, "c", (host, port)), (41, 42, 43, "d", ("0.0.0.0", 1))]


class Iface:
    def __init__(self, lan):
        self.client = Rec()
        self.poller = Rec()
        self.lan = lan
        self.msock = None
        self._mfd = -1


class Network:
    """A fake MicroPython network module: WLAN(STA_IF) is itself."""

    def __init__(self, up=True, fail=False, sta=True):
        self.up = up
        self.fail = fail
        if sta:
            self.STA_IF = 7

    def WLAN(self, k):
        assert k == 7
        return self

    def isconnected(self):
        if self.fail:
            raise OSError("radio off")
        return self.up

    def ifconfig(self):
        return ("198.18.5.6", "255.255.0.0", "198.18.0.1", "198.18.0.1")


class Impl:
    def __init__(self, name):
        self.name = name


class Sys:
    def __init__(self, name):
        self.implementation = Impl(name)


def open_with(mod, lan, platform=None, network=None):
    """local.open_socket on an Iface with lan, socket module mod; as on
    platform (a fake sys.implementation.name) with network as the network
    module (None: no such module)."""
    i = Iface(lan)
    real = (local.socket, local.sys, sys.modules.get("network"))
    local.socket = mod
    if platform:
        local.sys = Sys(platform)
    if network:
        sys.modules["network"] = network
    elif "network" in sys.modules:
        del sys.modules["network"]
    try:
        local.open_socket(i)
    finally:
        local.socket = real[0]
        local.sys = real[1]
        if real[2] is not None:
            sys.modules["network"] = real[2]
        elif "network" in sys.modules:
            del sys.modules["network"]
    return i


LAN = ("198.18.1.2", "255.255.255.0")
MREQ = bytes([224, 0, 0, 253, 198, 18, 1, 2])


def test_open_socket_binds_the_group_joins_it_on_the_lan_address_and_turns_discovery_on():
    mod = SocketModule()
    i = open_with(mod, LAN)
    (af, kind, m), = mod.made
    assert (af, kind) == (21, 22) and i.msock is m
    assert mod.asked == [("224.0.0.253", 3544)]
    # IPPROTO_IP is 0 where the module lacks the name (MicroPython's)
    assert m.calls == [("setsockopt", (23, 24, 1)), ("bind", ("224.0.0.253", 3544)),
                       ("setsockopt", (0, 25, MREQ)), ("setblocking", False)], m.calls
    assert i.poller.calls == [(m, 1)] and i._mfd == 42
    assert i.client.calls == [("198.18.1.2", "255.255.255.0")]
    # a socket without fileno (MicroPython's)
    mod = SocketModule(fileno=False)
    i = open_with(mod, LAN)
    assert i._mfd == -2 and i.msock is mod.made[0][2]
    assert i.client.calls == [("198.18.1.2", "255.255.255.0")]


def test_open_socket_that_cannot_join_closes_the_socket_and_says_why():
    why = "cannot join 224.0.0.253:3544 on 198.18.1.2 ("
    for mod, lan in ((SocketModule(fail="bind"), LAN), (SocketModule(fail="setblocking"), LAN),
                     (SocketModule(join=False), LAN), (SocketModule(), ("198.18.1", "255.255.255.0"))):
        i = open_with(mod, lan)
        (_, _, m), = mod.made
        assert m.calls[-1] == ("close",) and i.msock is None and i.poller.calls == []
        (a,) = i.client.calls
        assert a[:2] == (None, None) and a[2].startswith(why.replace("198.18.1.2", lan[0])), a
        assert mod.fail is None or a[2] == why + "address in use)", a
    mod = SocketModule(fail="socket")
    i = open_with(mod, LAN)
    assert mod.made == [] and i.msock is None
    assert i.client.calls == [(None, None, why + "no sockets)")]


def test_open_socket_without_a_lan_asks_the_wifi_only_on_micropython():
    off = (None, None, "no LAN address (Interface(lan=(ip, netmask)))")
    for platform in ("cpython", None):
        mod = SocketModule()
        i = open_with(mod, None, platform, Network())
        if platform or sys.implementation.name != "micropython":
            assert i.client.calls == [off] and mod.made == [] and i.msock is None
    # on MicroPython: the station interface's address and netmask, when connected
    mod = SocketModule()
    i = open_with(mod, None, "micropython", Network())
    assert i.client.calls == [("198.18.5.6", "255.255.0.0")]
    assert mod.made[0][2].calls[2] == ("setsockopt", (0, 25, bytes([224, 0, 0, 253, 198, 18, 5, 6])))
    # the LAN given wins
    mod = SocketModule()
    i = open_with(mod, LAN, "micropython", Network())
    assert i.client.calls == [LAN] and mod.made[0][2].calls[2] == ("setsockopt", (0, 25, MREQ))
    # not connected, no network module, no STA_IF, an OSError: no LAN address
    for net in (Network(up=False), None, Network(sta=False), Network(fail=True)):
        mod = SocketModule()
        i = open_with(mod, None, "micropython", net)
        assert i.client.calls == [off] and mod.made == []
