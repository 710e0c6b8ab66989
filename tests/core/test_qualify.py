# Qualification and maintenance of the client state machine against test doubles (server, relay, NAT) with a
# fake clock: every timer, retry and rate limit.  Runs on CPython and on the
# MicroPython unix port from this same file.
from teredo import addr, proto
from harness import NAT_WAN, SERVER, SERVER2, SERVER_LL, Net, build_ra, ip4, qualified


def rs_sent(n):
    out = []
    for e in n.log:
        if e[0] == "out" and e[2] == proto.PORT and e[1] in (SERVER, SERVER2):
            d = e[3]
            if d[1] == 1 and d[13 + 40] == proto.ICMP_RS:
                out.append((e[1], d[13 + 16] & 0x80 != 0))
    return out


def test_qualifies_behind_restricted_nat_through_both_addresses():
    n = qualified("restricted")
    st = n.c.status()
    assert st["nat"] == "restricted"
    assert st["mapped"] == NAT_WAN + ":50000"
    assert st["error"] is None
    # RS to the primary (with and without cone bit) and to the secondary
    sent = rs_sent(n)
    assert (SERVER, True) in sent and (SERVER, False) in sent and (SERVER2, False) in sent
    server, flags, port, mapped = addr.decode_teredo(addr.parse_ipv6(st["address"]))
    assert server == ip4(SERVER) and port == 50000 and mapped == ip4(NAT_WAN)
    assert flags & proto.FLAG_CONE == 0 and flags & ~0x3CFF == 0


def test_cone_nat_detected_but_cone_bit_never_set():
    n = qualified("cone")
    st = n.c.status()
    assert st["nat"] == "cone"
    flags = addr.decode_teredo(addr.parse_ipv6(st["address"]))[1]
    assert flags & proto.FLAG_CONE == 0  # RFC 5991: C is always 0
    # a cone client never needs the secondary probe
    assert (SERVER2, False) not in rs_sent(n)


def test_symmetric_nat_reported_and_retried_slowly():
    n = Net("symmetric", symmetric_retry_ms=60000)
    n.start()
    n.run(5000)
    st = n.c.status()
    assert st["state"] == "symmetric" and st["nat"] == "symmetric"
    assert st["address"] is None
    assert "symmetric" in st["error"] and "port" in st["error"]
    before = len(rs_sent(n))
    n.run(50000)
    assert len(rs_sent(n)) == before  # quiet until the slow retry
    n.run(11000)
    assert len(rs_sent(n)) > before


def test_random_flags_differ_between_clients():
    a = qualified(seed=1).c.status()["address"]
    b = qualified(seed=2).c.status()["address"]
    assert a != b and a.startswith("2001:0:c633:640a:") and b.startswith("2001:0:c633:640a:")


def test_server_down_at_boot_offline_then_backoff_then_recovery():
    n = Net("restricted", backoff_min_ms=8000, backoff_max_ms=32000)
    n.server_up = False
    n.start()
    n.run(4000 * 3 + 500)  # T=4 s, N=3 (§5.2.1)
    st = n.c.status()
    assert st["state"] == "offline"
    assert SERVER in st["error"] and "no answer" in st["error"]
    assert len(rs_sent(n)) == 6  # three rounds of cone + non-cone RS
    # back-off: nothing for 8 s, then a new round
    n.run(7000)
    assert len(rs_sent(n)) == 6
    n.run(1500)
    assert len(rs_sent(n)) == 8
    n.server_up = True
    n.run(5000)
    st = n.c.status()
    assert st["state"] == "qualified" and st["error"] is None


def test_rs_timer_and_retries_are_t4_n3():
    n = Net("restricted")
    n.server_up = False
    n.start()
    assert len(rs_sent(n)) == 2
    n.run(3900)
    assert len(rs_sent(n)) == 2
    n.run(200)
    assert len(rs_sent(n)) == 4
    n.run(4000)
    assert len(rs_sent(n)) == 6
    assert n.c.status()["state"] == "qualifying"


def test_secondary_address_silent_still_serves_with_nat_unknown():
    n = Net("restricted")
    n.server2_up = False
    n.start()
    assert n.c.status()["state"] == "qualified"  # usable at the primary's RA
    n.run(4000 + 3 * 4000 + 500)  # cone wait T, then N tries of T
    st = n.c.status()
    assert st["state"] == "qualified" and st["nat"] == "unknown" and st["error"] is None
    assert SERVER2 in st["warning"]
    assert rs_sent(n).count((SERVER2, False)) == 3
    n.run(60000)  # and it keeps serving: refreshes through the primary
    assert n.c.status()["state"] == "qualified"


def test_refresh_every_interval_randomised():
    n = qualified(refresh_s=30)
    base = len(rs_sent(n))
    n.run(17000)  # qualified 5 s ago; 75 % of 30 s is 22.5 s: no refresh yet
    assert len(rs_sent(n)) == base
    n.run(8500)
    assert len(rs_sent(n)) == base + 1
    assert n.c.status()["state"] == "qualified"


def test_server_lost_after_qualification_then_recovers():
    n = qualified(refresh_s=30, backoff_min_ms=8000)
    n.server_up = False
    n.server2_up = False
    for _ in range(500):  # a refresh within 30 s, then N tries T apart
        n.run(100)
        if n.c.status()["state"] != "qualified":
            break
    st = n.c.status()
    assert st["state"] == "offline" and "stopped answering" in st["error"]
    assert st["address"] is None
    n.server_up = True
    n.server2_up = True
    n.run(10000)
    assert n.c.status()["state"] == "qualified"


def test_mapping_change_at_refresh_gives_new_address():
    n = qualified(refresh_s=30)
    old = n.c.status()["address"]
    n.base_port = 51000  # the NAT rebooted: new mapping
    n.opened = []
    n.run(35000)
    st = n.c.status()
    assert st["state"] == "qualified"
    assert st["mapped"] == NAT_WAN + ":51000"
    assert st["address"] != old
    assert addr.decode_teredo(addr.parse_ipv6(st["address"]))[2] == 51000


def test_ra_with_stale_nonce_is_dropped():
    n = qualified()
    # replay the first RA the client accepted: its nonce is no longer current
    from harness import build_ra, SERVER_LL
    ra = build_ra(SERVER_LL, proto.LL_NONCONE, b"\x00" * 8, ip4("203.0.113.99"), 4444, ip4(SERVER))
    n.c.on_datagram(ra, len(ra), ip4(SERVER), proto.PORT, n.now)
    st = n.c.status()
    assert st["drops"].get("ra_nonce") == 1
    assert st["mapped"] == NAT_WAN + ":50000"




# ---- review issue 13, A1 and A6 ----------------------------------------------

def test_restricted_nat_requalifying_soon_is_not_taken_for_cone():
    # Our own RS to the secondary address still holds the restricted NAT's
    # filter open, so a cone RA would get in: the client must neither call
    # the NAT cone nor set C = 1 (RFC 5991: C is always 0).
    n = qualified("restricted")
    c = n.c
    assert c.status()["nat"] == "restricted"
    c.stop("test")
    n.run(100)
    c.start(n.now)
    n.flush()
    n.run(5000)
    st = c.status()
    assert st["state"] == "qualified" and st["nat"] == "restricted", st
    assert c.address[8] & 0x80 == 0
    # no cone RS went out this time: its answer would prove nothing
    assert sum(1 for x in rs_sent(n) if x[1]) == 1


def _rs_nonces(n):
    """{(destination, cone bit): nonce of the last such RS}"""
    out = {}
    for e in n.log:
        if e[0] == "out" and e[2] == proto.PORT and e[3][1] == proto.AUTH_TYPE and e[3][53] == proto.ICMP_RS:
            out[(e[1], e[3][13 + 16] & 0x80 != 0)] = e[3][4:12]
    return out


def _ra(n, nonce, cone, src):
    ra = build_ra(SERVER_LL, proto.LL_CONE if cone else proto.LL_NONCONE, nonce, ip4(NAT_WAN), 50000,
                  ip4(SERVER))
    return n.c.on_datagram(ra, len(ra), ip4(src), proto.PORT, n.now)


def test_usable_at_the_first_ra_and_a_late_cone_ra_still_counts():
    # RFC 4380 §5.2.1 waits T for the cone RA; the two RAs come from two
    # server addresses and may arrive tens of ms apart.
    for gap in (3, 50, 2000):
        n = Net("cone")
        n.server_up = False
        n.start()
        c = n.c
        nonces = _rs_nonces(n)
        n.now += 30
        _ra(n, nonces[(SERVER, False)], False, SERVER)
        st = c.status()
        assert st["state"] == "qualified" and st["nat"] == "unknown", st  # one round trip
        n.now += gap
        c.on_timer(n.now)
        _ra(n, nonces[(SERVER, True)], True, SERVER2)
        st = c.status()
        assert st["nat"] == "cone" and st["drops"] == {}, (gap, st)
        assert c.address[8] & 0x80 == 0
        n.run(10000)
        assert (SERVER2, False) not in rs_sent(n)  # a cone NAT needs no secondary test


def test_cone_ra_after_the_wait_is_stale_and_restricted_is_reported():
    n = Net("restricted")
    n.server_up = False
    n.start()
    c = n.c
    nonces = _rs_nonces(n)
    _ra(n, nonces[(SERVER, False)], False, SERVER)
    n.server_up = True
    n.run(4500)  # T without a cone RA: the secondary address is asked
    assert (SERVER2, False) in rs_sent(n)
    assert c.status()["nat"] == "restricted"
    _ra(n, nonces[(SERVER, True)], True, SERVER2)  # now the filter is open
    st = c.status()
    assert st["nat"] == "restricted" and st["drops"].get("ra_nonce") == 1


def test_requalifying_with_the_same_mapping_keeps_the_address():
    # review A11: a blip or restart with an unchanged server and mapping
    # keeps the RFC 5991 flag bits (as miredo), so the address is the same
    n = qualified("restricted")
    c = n.c
    old = c.status()["address"]
    sent = len(rs_sent(n))
    c.stop("blip")
    n.run(1000)
    c.start(n.now)
    n.flush()
    st = c.status()
    assert st["state"] == "qualified" and st["address"] == old and st["nat"] == "restricted"
    n.run(10000)
    assert len(rs_sent(n)) == sent + 1  # one RS: the NAT type stands, no new test
    # a changed mapping still gives new flag bits (and a new test)
    c.stop("blip")
    n.base_port = 51000
    c.start(n.now)
    n.flush()
    a = addr.parse_ipv6(c.status()["address"])
    assert addr.teredo_port(a) == 51000 and a[8:10] != addr.parse_ipv6(old)[8:10]


def test_nat_reboot_during_the_background_nat_test_is_not_symmetric():
    # the secondary's mapping differs because the NAT rebooted after the
    # primary's answer: the primary is asked again before "symmetric"
    n = Net("restricted")
    n.start()
    c = n.c
    assert c.status()["state"] == "qualified" and c.status()["nat"] == "unknown"
    old = c.status()["address"]
    n.base_port = 51000  # new mappings from now on
    n.opened = []
    n.run(15000)
    st = c.status()
    assert st["state"] == "qualified" and st["nat"] == "restricted", st
    assert st["mapped"] == NAT_WAN + ":51000" and st["address"] != old


def test_set_refresh_keeps_the_address_and_moves_the_next_refresh():
    """teredoctl config --refresh on a running board: no new qualification."""
    n = Net("restricted")
    n.start()
    n.run(2000)
    c = n.c
    a = bytes(c.address)
    rs_before = len([e for e in n.sent("out") if e[2] == proto.PORT])
    c.set_refresh(60, n.now)
    assert c.cfg["refresh_s"] == 60 and c.status()["state"] == "qualified" and bytes(c.address) == a
    d = c.refresh_at - n.now
    assert 45000 <= d <= 60000, d  # 75..100 % of the new interval (§5.2)
    assert len([e for e in n.sent("out") if e[2] == proto.PORT]) == rs_before  # nothing sent
    for bad in (9, 3601, "30"):
        try:
            c.set_refresh(bad, n.now)
        except ValueError:
            pass
        else:
            raise AssertionError("refresh_s %r taken" % (bad,))
    assert c.cfg["refresh_s"] == 60
