# Parked (not collected): the tests of tests/core/test_timers.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import proto, wire
from teredo.client import _add, _diff, _sub
from harness import SERVER, SERVER2, Net, ip4, qualified
from test_timers import *
from test_timers import _add, _diff, _rs_rounds, _server_contact


def test_cone_grace_then_secondary_to_the_millisecond():
    n = Net("restricted")
    n.start()  # the non-cone RA from the primary is in; the cone RA was dropped by the NAT
    c = n.c
    t = n.now
    assert c.next_deadline() == t + 5
    c.on_timer(t + 4)
    assert sent(c) == []
    c.on_timer(t + 5)
    assert rs(sent(c)) == [(SERVER2, False)]


def test_symmetric_retry_to_the_millisecond():
    n = Net("symmetric")
    n.start()
    n.run(100, step=5)
    c = n.c
    assert c.status()["state"] == "symmetric"
    d = c.next_deadline()
    assert _diff(d, n.now) > 119000 and _diff(d, n.now) <= 120000
    c.on_timer(d - 1)
    assert sent(c) == []
    c.on_timer(d)
    assert len(rs(sent(c))) == 2 and c.status()["state"] == "qualifying"


def test_refresh_interval_ends_exactly_at_75_and_100_percent():
    for refresh_s, rnd, due in ((30, 0, 30000), (30, 0xFFFF, 22501), (10, 0xFFFF, 7501),
                                (30, 0x8000, 26250), (3600, 0, 3600000)):
        for t0 in (5000, TOP - 10000):
            n = qualified(refresh_s=refresh_s)
            c = n.c
            sent(c)
            c.rand = const_rand(rnd)
            _server_contact(n, t0)
            assert sent(c) == [] and c.last_server == t0
            assert c.next_deadline() == _add(t0, due), (refresh_s, rnd, t0)
            c.on_timer(_add(t0, due - 1))
            assert sent(c) == []
            c.on_timer(_add(t0, due))
            assert rs(sent(c)) == [(SERVER, False)], (refresh_s, rnd)


def test_refresh_unanswered_every_4_s_then_offline():
    n = qualified("cone", refresh_s=30)
    c = n.c
    sent(c)
    c.rand = const_rand(0)
    _server_contact(n, 10000)
    n.server_up = False
    c.on_timer(40000)
    assert rs(sent(c)) == [(SERVER, True)]  # the cone bit that qualified us
    assert _rs_rounds(c, 40000, (3999, 4000, 7999, 8000, 11999)) == [0, 1, 0, 1, 0]
    assert c.status()["state"] == "qualified"
    c.on_timer(52000)
    st = c.status()
    assert st["state"] == "offline" and "stopped answering" in st["error"] and st["address"] is None
    assert c.next_deadline() == 52000 + c.cfg["backoff_min_ms"]


def test_stop_stays_offline_until_started_again():
    n = qualified()
    c = n.c
    sent(c)
    c.stop("WiFi down")
    st = c.status()
    assert st["state"] == "offline" and st["error"] == "WiFi down" and st["address"] is None
    for dt in (1000, 200000, TOP // 2 - 2):
        c.on_timer(_add(n.now, dt))
        assert sent(c) == [], dt
    c.start(_add(n.now, 5000))
    assert len(rs(sent(c))) == 2 and c.status()["error"] is None
