# A list of Teredo servers (issue 13, "real-world servers"): each
# qualification try asks every server at once, the first RA wins (the
# nearest by RS/RA round trip; a dead server costs nothing), n and n + 1 are
# one server, status tells which one is in use and what the others did.
# Host names: the Interface resolves them (a fake resolver here), at open()
# and again after a failed qualification.

from teredo import addr, proto, wire
from teredo.client import MAX_SERVERS, Client
from teredo.servers import pairs as server_list
from teredo import servers
from harness import SERVER, FakeUDP, Net, drops, sent
from vectors import NAT_WAN, SERVER_LL, Rand, build_ra, ip4, ip6

A = "198.51.100.10"
A2 = "198.51.100.11"
B = "203.0.113.50"
B2 = "203.0.113.51"
C = "198.18.0.40"


def rs_of(data):
    """(nonce, cone bit, source link-local) of an RS the client sent."""
    hdr = [0, 0, 0, 0]
    assert wire.parse_encap(data, len(data), hdr) == 0
    i = hdr[wire.H_IP]
    assert data[i + 40] == proto.ICMP_RS
    nn = hdr[wire.H_NONCE]
    return bytes(data[nn:nn + 8]), bool(data[i + 16] & 0x80), bytes(data[i + 8:i + 24])


def answer(c, rs, server, now, mport=50000, src=None):
    """The RA `server` sends for the RS datagram rs, fed to the client."""
    nonce, _, ll = rs_of(rs)
    ra = build_ra(SERVER_LL, ll, nonce, ip4(NAT_WAN), mport, ip4(server))
    return c.on_datagram(ra, len(ra), ip4(src or server), proto.PORT, now)


def rs_to(out, ip):
    return [d for i, p, d in out if i == ip and p == proto.PORT]


def by_address(st):
    return dict((s["address"], s) for s in st["servers"])


def test_server_list_pairs_n_and_n_plus_1():
    assert server_list(A) == [[ip4(A), ip4(A2)]]
    assert Client(A, rand=Rand(1)).servers == [[ip4(A), ip4(A2)]]
    assert server_list("%s, %s" % (A, A2)) == [[ip4(A), ip4(A2)]]
    # the secondary named first: still one server, n the primary
    assert server_list([A2, A]) == [[ip4(A), ip4(A2)]]
    assert server_list("%s,%s,%s" % (A, B, A)) == [[ip4(A), ip4(A2)], [ip4(B), ip4(B2)]]
    assert server_list(A, "198.51.100.99") == [[ip4(A), ip4("198.51.100.99")]]
    # the carry of + 1 across bytes
    assert server_list("198.51.100.255")[0][1] == ip4("198.51.101.0")
    for bad, word in (("%s,%s" % (A, B), "server2"), ("10.0.0.1," + A, "global"),
                      (",".join("198.51.100.%d" % (10 + 2 * k) for k in range(MAX_SERVERS + 1)), "at most")):
        try:
            server_list(bad, "198.51.100.99" if word == "server2" else None)
            raise AssertionError(bad)
        except ValueError as e:
            assert word in str(e), (bad, str(e))
    most = ",".join("198.51.100.%d" % (10 + 2 * k) for k in range(MAX_SERVERS))
    assert len(server_list(most)) == MAX_SERVERS


def test_parse_servers_names_and_addresses():
    assert servers.parse("teredo.example.net, %s" % A) == ["teredo.example.net", ip4(A)]
    assert servers.parse("a-b.example.") == ["a-b.example."]
    for bad in ("", "a..b", "-a.example", "a-.example", "a_b.example", "1.2.3", "10.1.2.3",
                A + ",", "x" * 64 + ".example", ("a" * 60 + ".") * 5):
        try:
            servers.parse(bad)
            raise AssertionError(bad)
        except ValueError as e:
            assert str(e), bad


def test_one_server_asks_only_it():
    c = Client(A, rand=Rand(1))
    c.start(1000)
    out = sent(c)
    assert sorted(set((i, p) for i, p, _ in out)) == [(A, proto.PORT)]
    assert len(out) == 2  # the cone RS and the plain one (§5.2.1)
    assert c.status()["servers"] == [{"name": None, "address": A, "state": "asked", "rtt_ms": None}]


def test_a_dead_first_server_costs_one_round_trip():
    c = Client("%s,%s" % (A, B), rand=Rand(1))
    c.start(1000)
    out = sent(c)
    assert len(rs_to(out, A)) == 2 and len(rs_to(out, B)) == 1
    assert not rs_of(rs_to(out, B)[0])[1], "the rank RS carries no cone bit"
    # A is dead; B answers 30 ms later: qualified through B at once
    answer(c, rs_to(out, B)[0], B, 1030)
    st = c.status()
    assert st["state"] == "qualified", st
    assert st["server"] == B and st["server2"] == B2
    assert addr.decode_teredo(c.address)[0] == ip4(B)
    s = by_address(st)
    assert s[B]["state"] == "in use" and s[B]["rtt_ms"] == 30
    assert s[A]["state"] == "asked" and s[A]["rtt_ms"] is None
    # the NAT-type test goes on with B's secondary (no cone RS went to B)
    nxt = sent(c)
    assert [(i, p) for i, p, _ in nxt] == [(B2, proto.PORT)]


def test_the_first_answer_wins_and_the_slower_one_is_timed():
    c = Client("%s,%s" % (A, B), rand=Rand(2))
    c.start(1000)
    out = sent(c)
    answer(c, rs_to(out, B)[0], B, 1012)
    assert c.status()["server"] == B
    # A's answer to its plain RS comes later: counted, A not used
    a_plain = [d for d in rs_to(out, A) if not rs_of(d)[1]][0]
    answer(c, a_plain, A, 1080)
    st = c.status()
    s = by_address(st)
    assert st["server"] == B and s[A]["state"] == "answered" and s[A]["rtt_ms"] == 80, st
    assert s[B]["rtt_ms"] == 12
    assert drops(c, "ra_nonce") == 0
    # a replay of either answer is refused (one RA per nonce)
    answer(c, a_plain, A, 1100)
    answer(c, rs_to(out, B)[0], B, 1100)
    assert drops(c, "ra_nonce") == 2
    assert c.status()["server"] == B and c.status()["state"] == "qualified"


def test_the_in_use_server_answering_first_keeps_it():
    c = Client("%s,%s" % (A, B), rand=Rand(3))
    c.start(1000)
    out = sent(c)
    a_plain = [d for d in rs_to(out, A) if not rs_of(d)[1]][0]
    answer(c, a_plain, A, 1020)
    answer(c, rs_to(out, B)[0], B, 1050)
    st = c.status()
    assert st["server"] == A and st["state"] == "qualified"
    s = by_address(st)
    assert s[A]["state"] == "in use" and s[A]["rtt_ms"] == 20
    assert s[B]["state"] == "answered" and s[B]["rtt_ms"] == 50


def test_an_answer_must_come_from_the_server_asked_with_its_prefix():
    c = Client("%s,%s,%s" % (A, B, C), rand=Rand(4))
    c.start(1000)
    out = sent(c)
    rb = rs_to(out, B)[0]
    # B's nonce in an RA from C: refused, C is not qualified through
    answer(c, rb, C, 1010)
    # B's nonce, from B, but a prefix naming C
    nonce, _, ll = rs_of(rb)
    ra = build_ra(SERVER_LL, ll, nonce, ip4(NAT_WAN), 50000, ip4(C))
    c.on_datagram(ra, len(ra), ip4(B), proto.PORT, 1011)
    # from B's secondary: not the primary that was asked
    answer(c, rb, B, 1012, src=B2)
    # from an address that is no server of ours
    answer(c, rb, B, 1013, src="198.51.100.77")
    assert c.status()["state"] == "qualifying", c.status()
    assert drops(c, "ra_nonce") + drops(c, "ra_invalid") >= 2, c.status()["drops"]
    answer(c, rb, B, 1014)
    assert c.status()["state"] == "qualified" and c.status()["server"] == B


def test_all_dead_goes_offline_naming_them_and_counts_a_failure():
    c = Client("%s,%s" % (A, B), rand=Rand(5))
    c.start(1000)
    now = 1000
    n_rs = len(sent(c))
    while now < 1000 + proto.QUAL_TRIES * proto.QUAL_TIMEOUT_MS + 100:
        now += 100
        c.on_timer(now)
        n_rs += len(sent(c))
    st = c.status()
    assert st["state"] == "offline" and c.failures == 1
    assert A in st["error"] and B in st["error"] and "servers" in st["error"], st["error"]
    assert [s["state"] for s in st["servers"]] == ["no answer", "no answer"]
    # every try asked both (3 RS per try: A's cone and plain, B's plain)
    assert n_rs == 3 * proto.QUAL_TRIES, n_rs


def test_a_failed_refresh_asks_the_others_at_once():
    n = Net("restricted")
    n.c = Client("%s,%s" % (A, B), rand=Rand(6), queue_slots=1)
    n.start()
    n.run(6000)
    assert n.c.status()["state"] == "qualified" and n.c.status()["server"] == A
    n.server_up = False
    n.server2_up = False
    refresh = n.c.cfg["refresh_s"] * 1000
    t = 0
    out = []
    while t < refresh + proto.QUAL_TRIES * proto.QUAL_TIMEOUT_MS + 1000 and not rs_to(out, B):
        t += 100
        n.now += 100
        n.c.on_timer(n.now)
        out = sent(n.c)
    st = n.c.status()
    # not offline with a back-off: qualifying, B asked in the same turn
    assert st["state"] == "qualifying", st
    assert rs_to(out, B) and "stopped answering" in st["error"], (out, st)
    assert n.c.failures == 1
    answer(n.c, rs_to(out, B)[0], B, n.now + 25)
    st = n.c.status()
    assert st["state"] == "qualified" and st["server"] == B and st["error"] is None, st


def test_set_servers_keeps_the_server_in_use():
    c = Client("%s,%s" % (A, B), rand=Rand(7))
    c.start(1000)
    out = sent(c)
    answer(c, [d for d in rs_to(out, A) if not rs_of(d)[1]][0], A, 1010)
    assert c.status()["state"] == "qualified"
    c.set_servers(server_list([B, A]), ["b.example", "a.example"])
    st = c.status()
    assert st["state"] == "qualified" and st["server"] == A and c.si == 1
    assert by_address(st)[A]["name"] == "a.example"
    # the one in use gone from the list: requalify with the rest
    c.set_servers(server_list([B]))
    st = c.status()
    assert st["state"] == "qualifying" and st["server"] == B and not c.has_address
    try:
        c.set_servers([])
        raise AssertionError("empty")
    except ValueError:
        pass


def test_no_server_yet_stays_offline_and_says_so():
    c = Client(None, rand=Rand(8))
    c.start(1000)
    st = c.status()
    assert st["state"] == "offline" and st["server"] is None and st["servers"] == []
    assert "no Teredo server" in st["error"] and c.failures == 1
    assert sent(c) == []


class Resolver:
    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, name):
        self.calls.append(name)
        v = self.table.get(name)
        if isinstance(v, Exception):
            raise v
        return [ip4(x) for x in v or ()]


def _iface(spec, resolver, net):
    from teredo.iface import Interface
    return Interface(spec, rand=Rand(9), clock=lambda: net.now, udp=FakeUDP(net), resolve=resolver,
                     queue_slots=1)


def test_interface_resolves_names_when_it_opens():
    from harness import SERVER
    n = Net("restricted")
    r = Resolver({"dead.example": OSError("no such name"), "teredo.example": [SERVER, "198.51.100.11"]})
    i = _iface("dead.example, teredo.example", r, n)
    assert i.client.servers == [] and r.calls == []
    n.c = i.client
    n.feed = i.feed
    i.open(n.now)
    n.flush()
    n.run(2000)
    st = i.status()
    assert r.calls == ["dead.example", "teredo.example"]
    # n and n + 1 from one name: one server
    assert i.client.servers == [[ip4(SERVER), ip4("198.51.100.11")]]
    assert st["state"] == "qualified" and st["server"] == SERVER, st
    s = dict((x["name"], x) for x in st["servers"])
    assert s["teredo.example"]["state"] == "in use" and s["teredo.example"]["address"] == SERVER
    assert s["dead.example"]["state"] == "unresolved" and "no such name" in s["dead.example"]["error"]


def test_interface_without_any_address_retries_the_names_after_each_failure():
    from harness import SERVER
    n = Net("restricted")
    r = Resolver({"teredo.example": OSError("timed out")})
    i = _iface("teredo.example", r, n)
    n.c = i.client
    n.feed = i.feed
    i.open(n.now)
    st = i.status()
    assert st["state"] == "offline" and "cannot resolve teredo.example" in st["error"], st
    assert "DNS" in st["error"]
    assert r.calls == ["teredo.example"]
    # the name comes back; the client's back-off (8 s) runs out: resolved again
    r.table["teredo.example"] = [SERVER]
    t = 0
    while t < 12000 and not i.qualified():
        t += 100
        n.now += 100
        i.poll(0)
        n.flush()
    assert len(r.calls) >= 2 and i.qualified(), (r.calls, i.status())
    assert i.status()["server"] == SERVER


def test_interface_drops_names_that_give_no_global_address():
    from harness import SERVER
    n = Net("restricted")
    r = Resolver({"lan.example": ["10.0.0.5"], "teredo.example": [SERVER]})
    i = _iface("lan.example,teredo.example", r, n)
    n.c = i.client
    n.feed = i.feed
    i.open(n.now)
    st = i.status()
    assert i.client.servers == [[ip4(SERVER), ip4("198.51.100.11")]]
    assert [x["state"] for x in st["servers"] if x["name"] == "lan.example"] == ["unresolved"]
    try:
        _iface("teredo.example", r, n).__class__("teredo.example", "198.51.100.99", rand=Rand(1),
                                                 udp=FakeUDP(n), resolve=r)
        raise AssertionError("server2 with a name")
    except ValueError as e:
        assert "server2" in str(e)


def test_set_servers_keeps_what_each_listed_server_did():
    c = Client("%s,%s" % (A, B), rand=Rand(10))
    c.start(1000)
    out = sent(c)
    answer(c, rs_to(out, B)[0], B, 1040)
    c.set_servers(server_list([A, B, C]))
    s = by_address(c.status())
    assert s[B]["state"] == "in use" and s[B]["rtt_ms"] == 40
    assert s[A]["state"] == "asked" and s[C]["state"] == "not asked"
    # A's late answer still matches the nonce it was asked with
    answer(c, [d for d in rs_to(out, A) if not rs_of(d)[1]][0], A, 1090)
    assert by_address(c.status())[A]["rtt_ms"] == 90


def test_an_ra_with_no_rs_outstanding_is_refused():
    # before start(): the nonces are still zero; an RA carrying zeros proves nothing
    c = Client(A, rand=Rand(11))
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, bytes(8), ip4(NAT_WAN), 50000, ip4(A))
    c.on_datagram(ra, len(ra), ip4(A), proto.PORT, 5000)
    st = c.status()
    assert drops(c, "ra_nonce") == 1 and c.last_server == 0
    assert st["servers"][0]["state"] == "not asked" and st["servers"][0]["rtt_ms"] is None
    # after stop(): the last RS's nonce is still in memory, its RA is refused all the same
    c.start(6000)
    out = sent(c)
    c.stop("link down")
    plain = [d for d in rs_to(out, A) if not rs_of(d)[1]][0]
    answer(c, plain, A, 6020)
    assert c.status()["state"] == "offline" and drops(c, "ra_nonce") == 2
    assert c.status()["servers"][0]["rtt_ms"] is None


def test_an_origin_bubble_held_back_by_the_2_s_gap_costs_no_bubble_budget():
    from harness import qualified
    n = qualified("restricted", bubble_rate=2)
    c = n.c
    sent(c)

    def origin_bubble(ip4text, now):
        b = bytearray(48)
        wire.build_origin(b, 0, proto.PORT, ip4(ip4text))
        wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
        c.on_datagram(bytes(b), 48, ip4(SERVER), proto.PORT, now)
        return [(i, p) for i, p, _ in sent(c)]

    t = n.now + 5000  # the bubble bucket full again (2 tokens)
    assert origin_bubble("198.51.100.71", t) == [("198.51.100.71", proto.PORT)]
    # the same origin 10 ms later: held back by the gap, no token spent
    assert origin_bubble("198.51.100.71", t + 10) == []
    assert drops(c, "rate_limited") == 1
    # so another origin still finds the second token
    assert origin_bubble("198.51.100.72", t + 20) == [("198.51.100.72", proto.PORT)]
    # and the bucket is empty now
    assert origin_bubble("198.51.100.73", t + 30) == []
    assert drops(c, "rate_limited") == 2
