# Mutation tests for teredo/client.py (lines before _lost): the NAT-type
# test's phases against a refresh, the wake-up and deadline edges, the
# clamping of old ticks at exactly _AGE_MS, the server list limit, the
# events the shell tells apart.  Plain asserts: CPython and MicroPython.

from teredo import client as cl
from teredo import proto, wire
from teredo.client import Client
from teredo.peers import F_LAST_RX, F_LOCAL_RX, NF
from harness import Net, drops, sent
from test_servers import A, A2, B, C, answer, rs_of, rs_to
from vectors import RELAY, SERVER, V6HOST, Rand, ip4, ip6


def test_events_are_distinct():
    evs = [cl.EV_NONE, cl.EV_ECHO_REPLY, cl.EV_UDP, cl.EV_TCP]
    for i in range(4):
        for j in range(i + 1, 4):
            assert evs[i] != evs[j], evs


def _refresh_while_nat_test_waits(**opts):
    """Qualified, the NAT-type test still waiting (qual_timeout_ms long),
    when the refresh RA from the primary comes: it must not be taken for
    the re-check of a symmetric NAT."""
    n = Net("restricted", qual_timeout_ms=60000, refresh_s=10, **opts)
    n.start()
    assert n.c.status()["state"] == "qualified"
    assert n.c.nt != 0
    rs0 = len(n.sent("out"))
    n.run(10100)
    assert len(n.sent("out")) > rs0  # the refresh went out and was answered
    st = n.c.status()
    assert st["state"] == "qualified", st
    assert st["error"] is None, st
    return n


def test_refresh_during_the_cone_wait():
    n = _refresh_while_nat_test_waits()
    assert n.c.cone_sent


def test_refresh_during_the_secondary_wait():
    n = Net("restricted", qual_timeout_ms=60000, refresh_s=10, cone_probe=False)
    n.server2_up = False
    n.start()
    assert n.c.status()["state"] == "qualified"
    assert n.c.nt != 0
    n.run(10100)
    st = n.c.status()
    assert st["state"] == "qualified", st
    assert st["error"] is None and st["nat"] == "unknown", st


def test_wake_at_most_60_s_and_not_for_a_stopped_client():
    c = Client(SERVER, rand=Rand(3), refresh_s=3600)
    c.start(1000)
    sent(c)
    assert c.next_deadline() == 1000 + proto.QUAL_TIMEOUT_MS
    c.stop("link down")
    # the state timer's deadline is earlier, but a stopped client ignores it
    assert c.next_deadline() == 1000 + 60000
    c.on_timer(5000)
    assert c.next_deadline() == 5000 + 60000
    assert sent(c) == []


def test_state_deadline_one_ms_inside_the_wake_up():
    c = Client(SERVER, rand=Rand(3), qual_timeout_ms=100000)
    c.start(1000)
    sent(c)
    c.on_timer(1000 + 40001)  # deadline 101000 is 60000 - 1 away
    assert sent(c) == []
    assert c.next_deadline() == 101000
    c.on_timer(1000 + 40000 + 2)
    assert c.next_deadline() == 101000
    c.on_timer(1000 + 40000)  # exactly 60000 away
    assert c.next_deadline() == 101000


def test_nat_deadline_one_ms_inside_the_wake_up():
    n = Net("restricted", qual_timeout_ms=100000, refresh_s=3600)
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified" and c.nt
    nd = c.nt_deadline
    assert nd == n.now + 100000
    c.on_timer(nd - 59999)
    assert c.next_deadline() == nd
    c.on_timer(nd - 60000)
    assert c.next_deadline() == nd
    c.on_timer(nd - 50000)
    assert c.next_deadline() == nd


def test_nat_timer_fires_at_its_exact_deadline():
    n = Net("restricted", qual_timeout_ms=5000, refresh_s=3600)
    n.start()
    c = n.c
    nd = c.nt_deadline
    n.server2_up = False
    sent(c)
    c.on_timer(nd - 1)
    assert sent(c) == []
    c.on_timer(nd)
    out = sent(c)
    assert len(out) == 1 and out[0][0] == "198.51.100.11", out


def test_old_ticks_are_clamped_at_exactly_age_ms():
    c = Client(SERVER, rand=Rand(3))
    c.start(1000)
    sent(c)
    c.on_timer(1000 + 600000)
    assert c.tokens_t == [1000, 1000, 1000, 1000], c.tokens_t
    assert c.og == [0, 0, 0, 1000] * 4 + [0], c.og  # never used: 0 was older still
    c.on_timer(1000 + 600001)
    assert c.tokens_t == [1001, 1001, 1001, 1001], c.tokens_t
    # the times of the 4 origin slots (the others are addresses and ports)
    assert c.og == [0, 0, 0, 1001] * 4 + [0], c.og
    assert c.s2_t == -1  # never written to the secondary: stays "never"


def test_old_peer_times_are_clamped_field_by_field():
    c = Client(SERVER, rand=Rand(3), max_peers=4)
    c.start(1000)
    sent(c)
    v = c.peers.v
    a6 = bytearray(16)
    a6[0] = 0x20
    for p in (0, 1):
        a6[15] = p + 1
        assert c.peers.new(a6, 0, 1000, 1000) == p
        for f in range(F_LAST_RX, F_LOCAL_RX + 1):
            v[p * NF + f] = 1000
    before = list(v)
    c.on_timer(1000 + 600001)
    for p in range(4):
        for f in range(NF):
            k = p * NF + f
            if p < 2 and F_LAST_RX <= f <= F_LOCAL_RX:
                assert v[k] == 1001, (p, f, v[k])
            else:
                assert v[k] == before[k], (p, f, v[k], before[k])


def test_secondary_write_time_is_clamped():
    for t0 in (0, 1000):
        n = Net("restricted", now=t0, cone_probe=False)
        n.start()
        c = n.c
        assert c.s2_t == t0, c.s2_t
        c.on_timer(t0 + 600000)
        assert c.s2_t == t0
        c.on_timer(t0 + 600001)
        assert c.s2_t == t0 + 1, (t0, c.s2_t)


def test_max_servers_is_4():
    assert cl.MAX_SERVERS == 4
    four = "%s,%s,%s,198.18.0.60" % (A, B, C)
    c = Client(four, rand=Rand(1))
    assert len(c.servers) == 4
    try:
        Client(four + ",198.18.0.80", rand=Rand(1))
        raise AssertionError("5 servers taken")
    except ValueError:
        pass
    c.set_servers(c.servers)
    try:
        c.set_servers(c.servers + [c.servers[0]])
        raise AssertionError("5 servers taken")
    except ValueError:
        pass


def _origin_bubble(c, relay4, now):
    """A bubble relayed by our server with an origin indication (a relay at
    relay4, port 3544): how many bubbles the client sends back."""
    b = bytearray(48)
    wire.build_origin(b, 0, proto.PORT, ip4(relay4))
    wire.build_bubble(b, 8, ip6("fe80::8000:ffff:ffff:fffe"), c.address)
    c.on_datagram(bytes(b), 48, ip4(SERVER), proto.PORT, now)
    return [o for o in sent(c) if o[0] == relay4]


def test_four_origins_are_remembered():
    n = Net("restricted", refresh_s=3600)
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified"
    sent(c)
    t = n.now
    relays = ["198.51.100.%d" % (30 + k) for k in range(5)]
    for k in range(4):
        assert len(_origin_bubble(c, relays[k], t)) == 1, k
    # all four remembered: within 2 s, none answered again
    for k in range(4):
        assert _origin_bubble(c, relays[k], t + 10) == [], k
    # a fifth replaces the oldest, which is answered again
    assert len(_origin_bubble(c, relays[4], t + 20)) == 1
    assert len(_origin_bubble(c, relays[0], t + 30)) == 1
    assert _origin_bubble(c, relays[4], t + 40) == []


def _peer6(k):
    """(Teredo address, mapped IPv4, port) of Teredo peer k."""
    a = bytearray(16)
    a[0] = 0x20
    a[1] = 0x01
    a[4:8] = ip4(SERVER)
    m4 = ip4("198.51.100.%d" % (100 + k))
    port = 20000 + k
    a[10] = (port >> 8) ^ 0xFF
    a[11] = (port & 0xFF) ^ 0xFF
    for i in range(4):
        a[12 + i] = m4[i] ^ 0xFF
    return a, m4, port


def _teredo_bubble(c, k, now):
    """A direct bubble from Teredo peer k (its mapping in its address): a
    new peer entry if there is room and a token."""
    a, m4, port = _peer6(k)
    b = bytearray(40)
    wire.build_bubble(b, 0, a, c.address)
    c.on_datagram(bytes(b), 40, m4, port, now)
    sent(c)
    return c.peers.find(a, 0)


def test_new_peer_entries_5_a_second_after_the_burst():
    n = Net("restricted", refresh_s=3600, max_peers=8)
    n.start()
    c = n.c
    sent(c)
    t = n.now
    # the burst is max_peers
    for k in range(8):
        assert _teredo_bubble(c, k, t) >= 0, k
    r0 = drops(c, "rate_limited")
    q0 = drops(c, "queue_full")
    # one second later 5 tokens, not 6 nor 4 (each spent on a newcomer that
    # finds the table full of valid trusted entries)
    for k in range(8, 16):
        assert _teredo_bubble(c, k, t + 1000) < 0, k
    assert drops(c, "rate_limited") == r0 + 3, c.status()["drops"]
    assert drops(c, "queue_full") == q0 + 5, c.status()["drops"]
    # then one per 200 ms, not a ms sooner
    assert _teredo_bubble(c, 20, t + 1199) < 0
    assert drops(c, "rate_limited") == r0 + 4 and drops(c, "queue_full") == q0 + 5
    assert _teredo_bubble(c, 21, t + 1200) < 0
    assert drops(c, "rate_limited") == r0 + 4 and drops(c, "queue_full") == q0 + 6


def _from_peer(c, k, pkt, now):
    a, m4, port = _peer6(k)
    c.on_datagram(pkt, len(pkt), m4, port, now)
    return sent(c)


def test_unreachable_burst_is_unreach_rate_at_the_start():
    n = Net("restricted", refresh_s=3600)
    n.start()
    c = n.c
    sent(c)
    a, m4, port = _peer6(1)
    b = bytearray(48 + 4)
    k = wire.build_udp6(b, 0, a, c.address, 7000, 9, b"abcd", 4)
    pkt = bytes(b[:k])
    got = 0
    for _i in range(12):
        got += len(_from_peer(c, 1, pkt, n.now))  # the same ms: no refill
    assert got == 10, got
    assert drops(c, "no_port") == 12 and drops(c, "rate_limited") == 2, c.status()["drops"]
    # then one per 100 ms (10 a second), not a ms sooner
    assert _from_peer(c, 1, pkt, n.now + 99) == []
    assert len(_from_peer(c, 1, pkt, n.now + 100)) == 1


def test_unsolicited_bubble_burst_is_bubble_rate_at_the_start():
    n = Net("restricted", refresh_s=3600)
    n.start()
    c = n.c
    sent(c)
    got = 0
    for k in range(22):
        got += len(_origin_bubble(c, "198.51.100.%d" % (130 + k), n.now))
    assert got == 20, got
    # then one per 50 ms (20 a second), not a ms sooner
    assert _origin_bubble(c, "198.51.100.160", n.now + 49) == []
    assert len(_origin_bubble(c, "198.51.100.161", n.now + 50)) == 1


def test_a_fresh_client_makes_the_cone_test_at_once():
    # never wrote to the secondary: the cone RS goes with the first try,
    # however soon after boot (ticks near 0)
    for t0 in (0, 1000, 299000):
        n = Net("cone", now=t0)
        n.start()
        st = n.c.status()
        assert st["state"] == "qualified" and st["nat"] == "cone", (t0, st)


def test_status_before_start():
    c = Client(SERVER, rand=Rand(2))
    st = c.status()
    assert st["state"] == "offline" and st["uptime_s"] == 0, st
    assert st["relay_ok_s_ago"] is None, st
    assert st["address"] is None and st["drops"] == {}, st
    assert st["servers"] == [{"name": None, "address": SERVER, "state": "not asked", "rtt_ms": None}], st
    assert c.next_deadline() == 0  # start() not called yet: wake at once


def test_echo_burst_at_the_start():
    n = Net("restricted", refresh_s=3600, echo_burst=3, echo_rate=1)
    n.start()
    c = n.c
    sent(c)
    a, m4, port = _peer6(2)
    b = bytearray(56)
    k = wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, a, c.address, 1, 1, b"12345678", 8)
    pkt = bytes(b[:k])
    got = 0
    for _i in range(5):
        got += len(_from_peer(c, 2, pkt, n.now))
    assert got == 3, got
    # then one a second, not a ms sooner
    assert _from_peer(c, 2, pkt, n.now + 999) == []
    assert len(_from_peer(c, 2, pkt, n.now + 1000)) == 1


def test_connectivity_test_rounds_at_their_exact_times():
    # also where ticks are 2**29 ahead: an unrelated field would be "later"
    for t in (1000, 1 << 29):
        _connectivity_test_rounds(t)


def _connectivity_test_rounds(t):
    n = Net("restricted", now=t, refresh_s=3600, cone_probe=False)
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified" and c.nt == 0
    n.relay_up = False
    sent(c)
    t0 = n.now
    assert c.send_udp(ip6(V6HOST), 7, 7000, b"x", t0) == 0
    assert len(sent(c)) == 1  # the test's first echo request
    for k in range(1, 5):
        nxt = t0 + 2000 * k
        assert c.next_deadline() == nxt, (k, c.next_deadline(), nxt)
        c.on_timer(nxt - 1)
        assert sent(c) == [], k
        c.on_timer(nxt)
        assert len(sent(c)) == (1 if k < 4 else 0), k
    assert drops(c, "unreachable") == 1
    assert c.next_deadline() == t0 + 8000 + 60000


def test_relay_proven_in_the_first_second():
    n = Net("restricted", refresh_s=3600, cone_probe=False)
    n.start()
    c = n.c
    c.ping(ip6(V6HOST), 1, n.now)
    n.flush()
    st = c.status()
    assert st["relay"] == RELAY + ":3544", st
    assert st["uptime_s"] == 0 and st["relay_ok_s_ago"] == 0, st


def test_rtt_of_an_answer_in_the_same_ms_is_0():
    c = Client(A, rand=Rand(4))
    c.start(1000)
    out = sent(c)
    plain = [d for i, p, d in out if not rs_of(d)[1]]
    answer(c, plain[0], A, 1000)
    st = c.status()
    assert st["state"] == "qualified", st
    assert st["servers"][0]["rtt_ms"] == 0 and st["servers"][0]["state"] == "in use", st


def test_restart_resets_the_uptime_and_the_buckets():
    c = Client(SERVER, rand=Rand(4))
    c.start(1000)
    c.on_timer(3999)
    assert c.status()["uptime_s"] == 2
    c.stop("down")
    c.start(5000)
    assert c.tokens_t == [5000, 5000, 5000, 5000], c.tokens_t
    st = c.status()
    assert st["uptime_s"] == 0 and st["relay_ok_s_ago"] is None, st
    c.on_timer(5001)  # 999 ms left over from before must not count
    assert c.status()["uptime_s"] == 0
    c.on_timer(6000)
    assert c.status()["uptime_s"] == 1


def test_set_refresh_and_bind_bounds():
    c = Client(SERVER, rand=Rand(4), max_ports=3)
    for ok in (10, 3600):
        c.set_refresh(ok, 0)
        assert c.cfg["refresh_s"] == ok
    for bad in (9, 3601):
        try:
            c.set_refresh(bad, 0)
            raise AssertionError(bad)
        except ValueError:
            pass
    for ok in (1, 65535, 80):
        c.bind(ok)
    for bad in (0, 65536, 81):  # out of range, or a fourth port
        try:
            c.bind(bad)
            raise AssertionError(bad)
        except ValueError:
            pass
    assert c.ports == [1, 65535, 80]


def test_the_first_drop_reason_is_in_status():
    c = Client(SERVER, rand=Rand(4))
    c.start(1000)
    c.on_datagram(b"\x60\x00", 2, ip4(SERVER), proto.PORT, 1000)
    assert c.status()["drops"] == {wire.DROP_NAMES[1]: 1}, c.status()["drops"]


def test_a_new_server_has_not_been_written_to():
    c = Client("%s,%s" % (A, B), rand=Rand(4))
    c.start(1000)
    out = sent(c)
    plain = [d for d in rs_to(out, A) if not rs_of(d)[1]]
    answer(c, plain[0], A, 1010)
    assert c.status()["server"] == A and c.nt != 0
    c.on_timer(1010 + proto.QUAL_TIMEOUT_MS)  # no cone RA: the secondary is asked
    assert rs_to(sent(c), A2)
    assert c.s2_t == 1010 + proto.QUAL_TIMEOUT_MS
    c.set_servers(c.servers)  # A stays in use
    assert c.status()["server"] == A and c.s2_t == 1010 + proto.QUAL_TIMEOUT_MS
    # another server (only the last byte differs): the cone test again
    c.set_servers([[ip4("198.51.100.50"), ip4("198.51.100.51")]])
    assert c.s2_t == -1
    out = sent(c)
    assert [rs_of(d)[1] for i, p, d in out] == [True, False], out


def test_a_dead_server_gets_exactly_qual_tries_rs():
    c = Client(SERVER, rand=Rand(4))
    c.start(1000)
    plain = 0
    now = 1000
    while now < 1000 + 4 * proto.QUAL_TIMEOUT_MS:
        plain += len([1 for i, p, d in sent(c) if not rs_of(d)[1]])
        now += 100
        c.on_timer(now)
    assert plain == proto.QUAL_TRIES, plain
    st = c.status()
    assert st["state"] == "offline" and ("after %d tries" % proto.QUAL_TRIES) in st["error"], st


def test_symmetric_then_the_secondary_silent_qualifies_with_nat_unknown():
    n = Net("symmetric", refresh_s=3600)
    n.start()
    n.run(10000)
    c = n.c
    assert c.status()["state"] == "symmetric", c.status()
    n.server2_up = False
    ch = c.changes
    n.run(120000 + (proto.QUAL_TRIES + 2) * proto.QUAL_TIMEOUT_MS)
    st = c.status()
    assert st["state"] == "qualified" and st["nat"] == "unknown", st
    assert "did not answer" in st["warning"], st
    assert c.changes > ch


def test_the_nat_test_giving_up_is_one_change():
    n = Net("restricted", refresh_s=3600, cone_probe=False)
    n.server2_up = False
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified" and c.warning is None
    ch = c.changes
    n.run((proto.QUAL_TRIES - 1) * proto.QUAL_TIMEOUT_MS + 100)
    assert c.changes == ch and c.warning is None
    n.run(proto.QUAL_TIMEOUT_MS)
    assert c.warning is not None and c.changes == ch + 1, (c.changes, ch)


def test_a_refresh_gets_exactly_qual_tries_rs():
    n = Net("restricted", refresh_s=10, cone_probe=False)
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified"
    n.server_up = False
    rs = 0
    t = 0
    while t < 10000 + (proto.QUAL_TRIES + 1) * proto.QUAL_TIMEOUT_MS:
        t += 100
        n.now += 100
        c.on_timer(n.now)
        rs += len([1 for i, p, d in sent(c) if i == SERVER])
        if c.status()["state"] != "qualified":
            break
    st = c.status()
    assert rs == proto.QUAL_TRIES, rs
    assert st["state"] == "offline" and "stopped answering" in st["error"], st


def test_a_failed_refresh_asks_the_other_server_in_the_same_turn():
    n = Net("restricted", refresh_s=10, cone_probe=False)
    n.c = Client("%s,%s" % (A, B), rand=Rand(6), queue_slots=1, refresh_s=10, cone_probe=False)
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified" and c.status()["server"] == A
    n.server_up = False
    t = 0
    while c.status()["state"] == "qualified" and t < 10000 + (proto.QUAL_TRIES + 1) * proto.QUAL_TIMEOUT_MS:
        t += 100
        n.now += 100
        c.on_timer(n.now)
        out = sent(c)
    # given up on A: B asked at once, never offline in between
    assert c.status()["state"] == "qualifying", c.status()
    assert rs_to(out, B), out


def test_a_probe_1_ms_before_the_nat_test_deadline_comes_first():
    n = Net("restricted", refresh_s=3600, qual_timeout_ms=2001)
    n.start()
    c = n.c
    t0 = n.now
    assert c.status()["state"] == "qualified" and c.nt_deadline == t0 + 2001
    n.relay_up = False
    sent(c)
    assert c.send_udp(ip6(V6HOST), 7, 7000, b"x", t0) == 0
    assert c.next_deadline() == t0 + 2000
