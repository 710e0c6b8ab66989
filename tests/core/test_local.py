# Local client discovery (RFC 4380 §5.2.8, §5.2.3 cases 4-5, §5.2.4 case 3):
# two clients behind one NAT, on one LAN, find each other with bubbles to the
# Teredo IPv4 discovery address and then talk over the LAN, not through the
# NAT (which would need hairpinning) nor the server.  CPython and MicroPython.

from harness import Net, drops, sent
from teredo import addr, proto, wire
from teredo.client import Client
from teredo.peers import F_TRUSTED, NF
from vectors import NAT_WAN, SERVER, Rand, ip4, ip6

MASK = "255.255.255.0"
A_IP = "198.18.1.2"
B_IP = "198.18.1.3"
A_PORT = 40000
B_PORT = 40001
GROUP = (proto.DISCOVERY_ADDR, proto.PORT)


def qualified_pair(lan=True):
    """Clients A and B behind the same NAT (mapped NAT_WAN:50000 and
    :50001), qualified, NAT test done; with their LAN given when lan."""
    a = Net("restricted", seed=7)
    b = Net("restricted", seed=9)
    b.base_port = 50001
    for n in (a, b):
        n.start()
        n.run(5000)
        assert n.c.status()["state"] == "qualified"
    if lan:
        assert a.c.set_lan(A_IP, MASK) and b.c.set_lan(B_IP, MASK)
    return a, b


class Lan:
    """The LAN between A and B: a datagram to the discovery address reaches
    the other one's on_discovery (and is looped back to the sender's own, as
    Linux does), one to the other's local address its on_datagram; the rest
    goes out through the NAT (the Net)."""

    def __init__(self, a, b):
        self.nets = (a, b)
        self.me = ((A_IP, A_PORT), (B_IP, B_PORT))
        self.log = []        # (from index, to, datagram) of all that A and B sent
        self.events = []     # (index, event, ev_seq)

    def pump(self, rounds=20):
        for _ in range(rounds):
            moved = False
            for k in (0, 1):
                n = self.nets[k]
                for ip, port, d in sent(n.c):
                    moved = True
                    self.log.append((k, (ip, port), d))
                    src4 = ip4(self.me[k][0])
                    if (ip, port) == GROUP:
                        for j in (0, 1):
                            self.nets[j].c.on_discovery(d, len(d), src4, self.me[k][1], n.now)
                    elif (ip, port) == self.me[1 - k]:
                        o = self.nets[1 - k]
                        ev = o.c.on_datagram(d, len(d), src4, self.me[k][1], o.now)
                        if ev:
                            self.events.append((1 - k, ev, o.c.ev_seq))
                    else:
                        n.outbound(d, (ip, port))
                n.flush()
            if not moved:
                return

    def timers(self, now):
        for n in self.nets:
            n.now = now
            n.c.on_timer(now)
        self.pump()

    def internet(self):
        """What A and B sent anywhere but the LAN."""
        return [e for e in self.log if e[1] != GROUP and e[1] not in self.me]


def discovery_bubble(src6, ttl=1, dst6=None, payload=b""):
    b = bytearray(40 + len(payload))
    wire.build_ipv6(b, 0, len(payload), proto.NH_NONE, ttl, src6, dst6 or proto.ALL_NODES)
    b[40:] = payload
    return b


def test_discovery_bubble_is_sent_at_qualification_and_every_200_to_300_s():
    a, _ = qualified_pair()
    c = a.c
    t = a.now
    assert c.next_deadline() == t  # announced at once
    c.on_timer(t)
    out = [(ip, port, d) for ip, port, d in sent(c) if (ip, port) == GROUP]
    assert len(out) == 1
    d = out[0][2]
    # §5.2.8: a minimal IPv6 packet, next header 59, payload 0, hop limit 1,
    # from our Teredo address to ff02::1
    assert len(d) == 40 and d[0] >> 4 == 6 and d[4:6] == b"\x00\x00" and d[6] == 59 and d[7] == 1
    assert d[8:24] == bytes(c.address) and d[24:40] == proto.ALL_NODES
    nxt = c.disc_at
    assert 200000 <= (nxt - t) <= 300000, nxt - t
    c.on_timer(nxt - 1)
    assert GROUP not in [(ip, port) for ip, port, _ in sent(c)]
    assert c.next_deadline() <= nxt
    c.on_timer(nxt)
    assert [(ip, port) for ip, port, _ in sent(c)].count(GROUP) == 1
    # the intervals are random: another seed, another interval
    assert c.disc_at - nxt != nxt - t


def test_no_discovery_without_a_lan_or_when_turned_off():
    a, _ = qualified_pair(lan=False)
    c = a.c
    assert c.status()["local_discovery"] == "off: no LAN address yet"
    for t in (a.now, a.now + 300000):
        c.on_timer(t)
        assert GROUP not in [(ip, port) for ip, port, _ in sent(c)]
    d = discovery_bubble(ip6("2001:0:c633:640a:8000:3ffe:3400:8ff8"))
    c.on_discovery(d, 40, ip4(B_IP), B_PORT, a.now)
    assert drops(c, "discovery") == 1 and c.peers.count() == 0
    off = Client(SERVER, rand=Rand(1), local_discovery=False)
    assert off.status()["local_discovery"] == "off: turned off"
    assert off.set_lan(A_IP, MASK) is False and not off.lan_on
    assert off.status()["local_discovery"] == "off: turned off"
    assert c.set_lan(None, None, "no multicast") is False
    assert c.status()["local_discovery"] == "off: no multicast"
    assert c.set_lan("0.0.0.0", MASK) is False and not c.lan_on
    assert c.set_lan(A_IP, MASK) and c.status()["local_discovery"] == "on"


def test_two_clients_behind_one_nat_find_each_other_and_ping_over_the_lan():
    a, b = qualified_pair()
    lan = Lan(a, b)
    lan.timers(a.now)
    # A's discovery bubble made B's entry for A (local, not trusted) and B's
    # unicast reply; B announced itself at once, so A knows B too, and A's
    # reply to that trusted A at B (case 5)
    for n in (a, b):
        assert n.c.status()["local_peers"] == 1, n.c.status()
    pa = b.c.peers.find(a.c.address, 0)
    pb = a.c.peers.find(b.c.address, 0)
    assert pa >= 0 and pb >= 0
    assert b.c.peers.addr[pa] == (A_IP, A_PORT)
    lan.log = []
    a.c.ping(bytes(b.c.address), 5, a.now)
    lan.pump()
    assert (0, 1, 5) in lan.events, lan.events  # EV_ECHO_REPLY with seq 5 at A
    # all of it over the LAN: no bubble to the server, nothing to the NAT's
    # public address (hairpinning), and the echo went to B's local address
    assert lan.internet() == [], lan.internet()
    echo = [e for e in lan.log if e[0] == 0 and len(e[2]) > 40 and e[2][40] == proto.ICMP_ECHO_REQUEST]
    assert [e[1] for e in echo] == [(B_IP, B_PORT)]
    assert a.c.peers.addr[pb] == (B_IP, B_PORT)
    # and B's answer went to A's local address
    reply = [e for e in lan.log if e[0] == 1 and len(e[2]) > 40 and e[2][40] == proto.ICMP_ECHO_REPLY]
    assert [e[1] for e in reply] == [(A_IP, A_PORT)]


def test_without_local_discovery_the_pair_goes_through_the_nat():
    # the same ping with discovery off: bubbles to B's mapped (public)
    # address and through the server; nothing reaches B over the LAN
    a, b = qualified_pair(lan=False)
    lan = Lan(a, b)
    a.c.ping(bytes(b.c.address), 5, a.now)
    lan.pump()
    assert lan.events == []
    assert (NAT_WAN, 50001) in [e[1] for e in lan.internet()]
    assert (SERVER, proto.PORT) in [e[1] for e in lan.internet()]


def test_a_unicast_bubble_from_an_unknown_local_address_is_refused():
    # §5.2.3 case 5 needs the entry that a discovery bubble makes: before
    # it, a packet whose source is not the mapping in its Teredo address is
    # spoofed
    a, b = qualified_pair()
    d = bytearray(40)
    wire.build_bubble(d, 0, b.c.address, a.c.address)
    assert a.c.on_datagram(d, 40, ip4(B_IP), B_PORT, a.now) == 0
    assert drops(a.c, "spoofed") == 1 and a.c.peers.find(b.c.address, 0) < 0
    # after B's discovery bubble, but from another local port: refused too
    db = discovery_bubble(b.c.address)
    a.c.on_discovery(db, 40, ip4(B_IP), B_PORT, a.now)
    p = a.c.peers.find(b.c.address, 0)
    assert p >= 0 and not a.c.peers.v[p * NF + F_TRUSTED]
    a.c.on_datagram(d, 40, ip4(B_IP), B_PORT + 1, a.now)
    assert drops(a.c, "spoofed") == 2 and not a.c.peers.v[p * NF + F_TRUSTED]
    a.c.on_datagram(d, 40, ip4("198.18.1.4"), B_PORT, a.now)
    assert drops(a.c, "spoofed") == 3 and not a.c.peers.v[p * NF + F_TRUSTED]
    a.c.on_datagram(d, 40, ip4(B_IP), B_PORT, a.now)
    assert drops(a.c, "spoofed") == 3 and a.c.peers.v[p * NF + F_TRUSTED] == 1
    assert a.c.peers.addr[p] == (B_IP, B_PORT)


def test_discovery_bubbles_that_break_a_rule_are_dropped_and_counted():
    a, b = qualified_pair()
    c = a.c
    good = b.c.address
    other_nat = bytearray(good)
    other_nat[15] ^= 1  # mapped IPv4 (obfuscated) differs: another NAT
    no_port = bytearray(good)
    no_port[10] = 0xFF
    no_port[11] = 0xFF  # mapped port 0
    cases = [
        (discovery_bubble(good), "198.18.2.3", B_PORT),            # not our subnet
        (discovery_bubble(good), "198.18.0.3", B_PORT),
        (discovery_bubble(good), B_IP, 0),                         # port 0
        (discovery_bubble(ip6("2001:db8::3")), B_IP, B_PORT),      # not a Teredo address
        (discovery_bubble(good, dst6=bytes(c.address)), B_IP, B_PORT),  # not to ff02::1
        (discovery_bubble(good, payload=b"\x00" * 8), B_IP, B_PORT),    # not a bubble
        (discovery_bubble(other_nat), B_IP, B_PORT),
        (discovery_bubble(no_port), B_IP, B_PORT),
        (b"\x60\x00", B_IP, B_PORT),                               # not even IPv6
    ]
    for k, (d, ip, port) in enumerate(cases):
        before = drops(c, "discovery") + drops(c, "short")
        c.on_discovery(d, len(d), ip4(ip), port, a.now)
        assert drops(c, "discovery") + drops(c, "short") == before + 1, k
        assert c.peers.count() == 0 and sent(c) == [], k
    # a discovery bubble with a payload type other than 59 is no bubble
    d = discovery_bubble(good)
    d[6] = proto.NH_UDP
    c.on_discovery(d, 40, ip4(B_IP), B_PORT, a.now)
    assert drops(c, "discovery") == 9 and c.peers.count() == 0
    # our own, looped back by the IPv4 stack: ignored, not counted
    own = discovery_bubble(c.address)
    c.on_discovery(own, 40, ip4(A_IP), A_PORT, a.now)
    assert drops(c, "discovery") == 9 and c.peers.count() == 0 and sent(c) == []
    # the same good bubble is accepted: entry and a unicast reply to B
    c.on_discovery(discovery_bubble(good), 40, ip4(B_IP), B_PORT, a.now)
    assert c.peers.count() == 1
    assert (B_IP, B_PORT) in [(ip, port) for ip, port, _ in sent(c)]


def test_discovery_before_qualification_is_dropped():
    c = Client(SERVER, rand=Rand(2))
    c.set_lan(A_IP, MASK)
    c.start(1000)
    sent(c)
    d = discovery_bubble(ip6("2001:0:c633:640a:8000:3ffe:3400:8ff8"))
    c.on_discovery(d, 40, ip4(B_IP), B_PORT, 1000)
    assert drops(c, "discovery") == 1 and c.peers.count() == 0 and sent(c) == []


def test_replies_to_discovery_bubbles_keep_the_bubble_limits():
    # §5.2.6: one peer flooding discovery bubbles gets a reply at most every
    # 2 s and 4 in 300 s; our own early announcement once per 10 s
    a, b = qualified_pair()
    c = a.c
    d = discovery_bubble(b.c.address)
    replies = 0
    announces = 0
    t = a.now
    c.on_timer(t)
    sent(c)  # our own first announcement
    for k in range(150):  # one a second
        now = t + 1000 * k
        c.on_discovery(d, 40, ip4(B_IP), B_PORT, now)
        c.on_timer(now)
        for ip, port, _ in sent(c):
            replies += (ip, port) == (B_IP, B_PORT)
            announces += (ip, port) == GROUP
    assert replies == 4, replies
    # one early announcement for the newcomer, then only the 200..300 s timer
    assert announces == 1, announces


def test_a_new_local_peer_triggers_one_early_announcement_per_10_s():
    a, b = qualified_pair()
    c = a.c
    t = a.now
    c.on_timer(t)
    sent(c)
    others = []
    for k in range(3):
        o = bytearray(b.c.address)
        o[9] ^= k + 1  # other clients behind the same NAT: other flag bits
        others.append(o)
    # a newcomer 1 ms after our own periodic bubble: it came up after that
    # one and did not hear it, so it gets one now (found in the lab)
    c.on_discovery(discovery_bubble(others[0]), 40, ip4("198.18.1.5"), 4000, t + 1)
    c.on_timer(t + 1)
    assert [(ip, port) for ip, port, _ in sent(c)].count(GROUP) == 1
    c.on_discovery(discovery_bubble(others[1]), 40, ip4("198.18.1.6"), 4000, t + 10000)
    c.on_timer(t + 10000)
    assert [(ip, port) for ip, port, _ in sent(c)].count(GROUP) == 0  # 9.999 s after
    c.on_discovery(discovery_bubble(others[2]), 40, ip4("198.18.1.7"), 4000, t + 10001)
    c.on_timer(t + 10001)
    assert [(ip, port) for ip, port, _ in sent(c)].count(GROUP) == 1  # 10 s after
    # a known local peer's periodic bubble announces nothing, and is no
    # status change (each newcomer was one)
    ch = c.changes
    c.on_discovery(discovery_bubble(others[0]), 40, ip4("198.18.1.5"), 4000, t + 45000)
    assert c.changes == ch
    c.on_timer(t + 45000)
    assert [(ip, port) for ip, port, _ in sent(c)].count(GROUP) == 0
    assert c.status()["local_peers"] == 3
    c.on_discovery(discovery_bubble(b.c.address), 40, ip4(B_IP), B_PORT, t + 45001)
    assert c.changes == ch + 1 and c.status()["local_peers"] == 4


def b_found_by_a():
    """(a, b, t): A announced itself at t and heard B's discovery bubble."""
    a, b = qualified_pair()
    c = a.c
    t = a.now
    c.on_timer(t)
    sent(c)
    c.on_discovery(discovery_bubble(b.c.address), 40, ip4(B_IP), B_PORT, t)
    sent(c)
    return a, b, t


def test_a_local_peer_expires_600_s_after_its_last_discovery_bubble():
    # §5.2.4 case 3 holds for 600 s; then the peer is an ordinary Teredo peer
    # (bubbles to its mapped address and through the server)
    a, b, t = b_found_by_a()
    c = a.c
    c.on_timer(t + 599999)
    sent(c)
    assert c.status()["local_peers"] == 1
    c.ping(bytes(b.c.address), 1, t + 599999)
    dst = [(ip, port) for ip, port, _ in sent(c)]
    assert (B_IP, B_PORT) in dst and GROUP in dst and (NAT_WAN, 50001) not in dst, dst
    # a fresh pair of clients: at exactly 600 s the entry is no longer local
    a, b, t = b_found_by_a()
    c = a.c
    a.run(600000, step=1000)  # refreshes answered by the server
    assert a.now == t + 600000 and c.status()["state"] == "qualified"
    assert c.status()["local_peers"] == 0
    c.ping(bytes(b.c.address), 1, t + 600000)
    dst = [(ip, port) for ip, port, _ in sent(c)]
    assert (B_IP, B_PORT) not in dst and (NAT_WAN, 50001) in dst, dst
    # and a unicast bubble from its local address is no longer trusted
    d = bytearray(40)
    wire.build_bubble(d, 0, b.c.address, c.address)
    c.on_datagram(d, 40, ip4(B_IP), B_PORT, t + 600000)
    assert drops(c, "spoofed") == 1


def test_turning_discovery_off_stops_the_local_path():
    a, b = qualified_pair()
    c = a.c
    c.on_discovery(discovery_bubble(b.c.address), 40, ip4(B_IP), B_PORT, a.now)
    sent(c)
    c.set_lan(None, None, "socket closed")
    assert c.status()["local_peers"] == 0 and c.status()["local_discovery"] == "off: socket closed"
    c.ping(bytes(b.c.address), 1, a.now + 3000)
    dst = [(ip, port) for ip, port, _ in sent(c)]
    assert (B_IP, B_PORT) not in dst and GROUP not in dst


def test_the_symmetric_nat_message_names_both_mappings():
    # the mapping seen through each server address, whatever part differs
    n = Net("symmetric")
    n.start()
    n.run(5000)
    e = n.c.status()["error"]
    assert n.c.status()["state"] == "symmetric", n.c.status()
    assert "%s:50000 toward %s" % (NAT_WAN, SERVER) in e, e
    assert "%s:50001 toward 198.51.100.11" % NAT_WAN in e, e
    assert "mapped port differs" not in e
    # an address that differs (a NAT with a pool of public addresses)
    n = Net("restricted")
    real = n.server_rx

    def other_address(data, ip, mport):
        n.wan = ip4("203.0.113.9") if ip == "198.51.100.11" else ip4(NAT_WAN)
        real(data, ip, mport)
    n.server_rx = other_address
    n.start()
    n.run(5000)
    e = n.c.status()["error"]
    assert n.c.status()["state"] == "symmetric", n.c.status()
    assert "203.0.113.9:50000 toward 198.51.100.11" in e, e
    assert addr.format_ipv4(n.c.s2map4) == "203.0.113.9"


def test_a_client_that_knows_its_lan_announces_itself_with_its_first_address():
    # the discovery bubble goes out with the RA that qualified us, in the
    # same call: a peer that came up meanwhile hears it at once
    n = Net("restricted")
    c = n.c
    assert c.set_lan(A_IP, MASK)
    c.start(n.now)
    out = []
    real = n.outbound

    def log(data, to):
        out.append((to, n.c.state))
        real(data, to)
    n.outbound = log
    n.flush()
    assert c.status()["state"] == "qualified"
    assert out.count((GROUP, 2)) == 1, out  # sent once, by then qualified
    assert c.next_deadline() != n.now
    # and the timer sends no second one
    c.on_timer(n.now)
    assert GROUP not in [(ip, port) for ip, port, _ in sent(c)]
