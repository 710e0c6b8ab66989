# Every timer of the client at its edge, to the millisecond: the RS time-out
# T = 4 s and N = 3 (RFC 4380 §5.2.1), the back-off, the background NAT test's
# T for the cone RA, the symmetric retry, the 60 s wake-up, the 300 s before a
# restart sends the cone RS again, the randomised refresh (§5.2.5) at both ends of its range,
# and all of it across the 2**30 ms tick wrap of an ESP32.  The client is
# driven directly (on_timer at exact times); harness.Net only builds it and
# plays the server.  On CPython and the MicroPython unix port alike.
from teredo import proto, wire
from teredo.client import _add, _diff, _sub
from harness import SERVER, SERVER2, Net, ip4, qualified
from harness import sent

TOP = 1 << 30  # ticks wrap here

# Tests that show a known bug (tests/core/conftest.py; tests/mp_run.py).


def rs(out):
    """(server, cone bit) of the RSs in sent() output."""
    return [(ip, d[13 + 16] & 0x80 != 0) for ip, port, d in out
            if port == proto.PORT and d[1] == proto.AUTH_TYPE and d[13 + 40] == proto.ICMP_RS]


def const_rand(v):
    return lambda bits: v & ((1 << bits) - 1)


def test_tick_arithmetic_at_its_edges():
    half = TOP >> 1
    assert _diff(5, 3) == 2 and _diff(3, 5) == -2
    assert _diff(half - 1, 0) == half - 1 and _diff(half, 0) == -half
    assert _diff(0, half) == -half and _diff(0, half + 1) == half - 1
    assert _diff(5, TOP - 5) == 10 and _diff(TOP - 5, 5) == -10
    assert _diff(TOP - 1, 0) == -1 and _diff(0, TOP - 1) == 1
    assert _add(TOP - 1, 1) == 0 and _add(TOP - 2, 1) == TOP - 1 and _add(TOP - 10, 30) == 20
    assert _add(0, half - 1) == half - 1 and _add(5, 0) == 5 and _add(half, half - 1) == TOP - 1
    assert _add(half + 1, half - 1) == 0
    assert _sub(5, 5) == 0 and _sub(4, 5) == TOP - 1 and _sub(0, 30000) == TOP - 30000
    assert _sub(30000, 30000) == 0 and _sub(30001, 30000) == 1


def _silent_start(t0, **opts):
    n = Net("restricted", **opts)
    n.server_up = False
    n.server2_up = False
    c = n.c
    c.start(t0)
    return n, c


def _rs_rounds(c, t0, at):
    """Fire the timer at t0 + each of at; how many RSs each time."""
    got = []
    for dt in at:
        c.on_timer(_add(t0, dt))
        got.append(len(rs(sent(c))))
    return got


def test_rs_every_4_s_three_times_then_offline_with_backoff():
    for t0 in (1000, TOP - 5000):  # and across the tick wrap
        n, c = _silent_start(t0, backoff_min_ms=8000, backoff_max_ms=32000)
        assert len(rs(sent(c))) == 2 and c.next_deadline() == _add(t0, 4000)
        assert _rs_rounds(c, t0, (3999, 4000, 7999, 8000, 11999)) == [0, 2, 0, 2, 0]
        assert c.status()["state"] == "qualifying"
        c.on_timer(_add(t0, 12000))
        assert sent(c) == [] and c.status()["state"] == "offline"
        # back-off: 8 s, 16 s, 32 s, then stays at the maximum
        t = _add(t0, 12000)
        for wait in (8000, 16000, 32000, 32000):
            assert c.next_deadline() == _add(t, wait), (t0, wait)
            c.on_timer(_add(t, wait - 1))
            assert sent(c) == [] and c.status()["state"] == "offline"
            c.on_timer(_add(t, wait))
            assert len(rs(sent(c))) == 2 and c.status()["state"] == "qualifying"
            t = _add(t, wait)
            assert _rs_rounds(c, t, (4000, 8000)) == [2, 2]
            c.on_timer(_add(t, 12000))
            t = _add(t, 12000)
            assert c.status()["state"] == "offline"


def test_qual_tries_and_timeout_options():
    n, c = _silent_start(1000, qual_tries=2, qual_timeout_ms=1000)
    sent(c)
    assert _rs_rounds(c, 1000, (999, 1000)) == [0, 2]
    c.on_timer(2999)
    assert sent(c) == [] and c.status()["state"] == "qualifying"
    c.on_timer(3000)
    assert sent(c) == [] and c.status()["state"] == "offline"


def test_cone_probe_off_goes_straight_to_the_secondary():
    n = Net("restricted", cone_probe=False)
    n.c.start(n.now)
    assert rs(sent(n.c)) == [(SERVER, False)]
    n = Net("restricted", cone_probe=False)
    n.start()
    n.run(200)
    st = n.c.status()
    assert st["state"] == "qualified" and st["nat"] == "restricted"


def _server_contact(n, t):
    """A bubble from the server to us: an interaction that restarts the
    refresh interval (§5.2.3, §5.2.5)."""
    b = bytearray(40)
    wire.build_bubble(b, 0, ip4(SERVER) + bytes(12), n.c.address)
    n.c.on_datagram(b, 40, ip4(SERVER), proto.PORT, t)


def test_refresh_answered_keeps_the_address_and_restarts_the_interval():
    n = qualified("restricted", refresh_s=30)
    c = n.c
    addr0 = c.status()["address"]
    changes = c.changes
    c.rand = const_rand(0)
    _server_contact(n, n.now)
    t = n.now + 30000
    n.now = t
    c.on_timer(t)
    n.flush()  # the server answers the refresh RS with the same mapping
    st = c.status()
    assert st["address"] == addr0 and st["state"] == "qualified" and c.changes == changes
    assert c.next_deadline() == t + 30000


def test_qualification_across_the_tick_wrap():
    n = Net("restricted")
    n.now = TOP - 3
    n.start()
    c = n.c
    for _ in range(100):
        n.now = _add(n.now, 1)
        c.on_timer(n.now)
        n.flush()
    assert c.status()["state"] == "qualified" and n.now < 1000
    assert c.status()["uptime_s"] == 0


def test_uptime_counts_whole_seconds_across_the_wrap():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    c.start(TOP - 500)
    for dt, want in ((999, 0), (1000, 1), (1999, 1), (2000, 2), (61500, 61)):
        c.on_timer(_add(TOP - 500, dt))
        assert c.status()["uptime_s"] == want, dt


def test_stopped_client_never_restarts_by_itself():
    n = qualified()
    c = n.c
    sent(c)
    c.stop("WiFi down")
    t = n.now
    for _ in range(8):  # a shell that keeps its loop going for weeks
        t = _add(t, (TOP >> 1) - 1)
        c.on_timer(t)
        assert sent(c) == [] and c.status()["state"] == "offline"


def test_nat_test_waits_t_for_the_cone_ra_then_asks_the_secondary_to_the_millisecond():
    # usable at the first RA; the cone RA (dropped by the restricted NAT) is
    # waited for T = 4 s in the background, then the secondary is asked (§5.2.1)
    n = Net("restricted")
    n.start()
    c = n.c
    t = n.now
    assert c.status()["state"] == "qualified"
    assert c.next_deadline() == t + 4000
    c.on_timer(t + 3999)
    assert sent(c) == []
    c.on_timer(t + 4000)
    assert rs(sent(c)) == [(SERVER2, False)]


def _symmetric(n):
    """Drive n (a symmetric NAT) to the verdict: the first RA qualifies, T
    later the secondary's RA shows another mapping, the primary's again the
    first one: symmetric, all at start + 4 s."""
    n.start()
    assert n.c.status()["state"] == "qualified"
    n.now += 4000
    n.c.on_timer(n.now)
    n.flush()
    assert n.c.status()["state"] == "symmetric", n.c.status()


def test_symmetric_retry_to_the_millisecond():
    n = Net("symmetric")
    _symmetric(n)
    c = n.c
    t = n.now
    # on_timer is wanted at least every 60 s (stored times are aged there)
    assert c.next_deadline() == t + 60000
    c.on_timer(t + 60000)
    assert sent(c) == [] and c.next_deadline() == t + 120000
    c.on_timer(t + 119999)
    assert sent(c) == [] and c.status()["state"] == "symmetric"
    c.on_timer(t + 120000)
    # no cone RS: we wrote to the secondary 120 s ago, within a NAT's UDP
    # timeout, so a cone RA would prove nothing (RFC 4787 REQ-5)
    assert rs(sent(c)) == [(SERVER, False)] and c.status()["state"] == "qualifying"


def test_refresh_interval_ends_exactly_at_75_and_100_percent():
    # §5.2.5: 75..100 % of the interval, the jitter drawn as 10 random bits:
    # rand(10) = 1023 takes 1023/1024 of the 25 % off (7500 * 1023 >> 10 =
    # 7492 ms of 30 s, 2497 of 10 s), 512 half of it
    for refresh_s, rnd, due in ((30, 0, 30000), (30, 0x3FF, 22508), (30, 0xFFFF, 22508),
                                (10, 0x3FF, 7503), (30, 0x200, 26250), (3600, 0, 3600000)):
        for t0 in (5000, TOP - 10000):
            n = qualified(refresh_s=refresh_s)
            c = n.c
            sent(c)
            c.rand = const_rand(rnd)
            _server_contact(n, t0)
            assert sent(c) == [] and c.last_server == t0
            # never later than the 60 s wake-up
            assert c.next_deadline() == _add(t0, min(due, 60000)), (refresh_s, rnd, t0)
            c.on_timer(_add(t0, due - 1))
            assert sent(c) == []
            c.on_timer(_add(t0, due))
            assert rs(sent(c)) == [(SERVER, False)], (refresh_s, rnd)


def test_refresh_unanswered_every_4_s_then_offline():
    n = qualified("cone", refresh_s=30)
    c = n.c
    sent(c)
    assert c.status()["nat"] == "cone"
    c.rand = const_rand(0)
    _server_contact(n, 10000)
    n.server_up = False
    c.on_timer(40000)
    # no cone bit, even behind a cone NAT: our address has C = 0 (RFC 5991)
    assert rs(sent(c)) == [(SERVER, False)]
    assert _rs_rounds(c, 40000, (3999, 4000, 7999, 8000, 11999)) == [0, 1, 0, 1, 0]
    assert c.status()["state"] == "qualified"
    c.on_timer(52000)
    st = c.status()
    assert st["state"] == "offline" and "stopped answering" in st["error"] and st["address"] is None
    assert c.next_deadline() == 52000 + c.cfg["backoff_min_ms"]


def test_stop_stays_offline_until_started_again():
    # and a restart sends the cone RS along only once our last write to the
    # secondary (the NAT test's RS, at 5000) is 300 s old: before that the
    # NAT's filter may still be open for it (RFC 4787 REQ-5), and a restricted
    # NAT would pass for a cone one
    for later, want in ((299999, [(SERVER, False)]), (300000, [(SERVER, True), (SERVER, False)])):
        n = qualified()
        c = n.c
        sent(c)
        assert c.s2_t == 5000
        c.stop("WiFi down")
        st = c.status()
        assert st["state"] == "offline" and st["error"] == "WiFi down" and st["address"] is None
        t = n.now
        while _diff(_add(5000, later), t) > 60000:  # the shell wakes when next_deadline says
            assert c.next_deadline() == _add(t, 60000)
            t = _add(t, 60000)
            c.on_timer(t)
            assert sent(c) == [] and c.status()["state"] == "offline", t
        c.start(_add(5000, later))
        assert rs(sent(c)) == want, later
        assert c.status()["error"] is None and c.status()["state"] == "qualifying"
