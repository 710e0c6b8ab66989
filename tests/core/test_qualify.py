# Qualification and maintenance of the client state machine against test doubles (server, relay, NAT) with a
# fake clock: every timer, retry and rate limit.  Runs on CPython and on the
# MicroPython unix port from this same file.
from teredo import addr, proto
from harness import NAT_WAN, SERVER, SERVER2, Net, ip4, qualified


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


def test_qualifies_behind_cone_nat_with_cone_bit():
    n = qualified("cone")
    st = n.c.status()
    assert st["nat"] == "cone"
    flags = addr.decode_teredo(addr.parse_ipv6(st["address"]))[1]
    assert flags & proto.FLAG_CONE
    # a cone client never needs the secondary probe
    assert (SERVER2, False) not in rs_sent(n)


def test_symmetric_nat_reported_and_retried_slowly():
    n = Net("symmetric", symmetric_retry_ms=60000)
    n.start()
    n.run(3000)
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


def test_secondary_address_silent_means_offline():
    n = Net("restricted")
    n.server2_up = False
    n.start()
    n.run(15000)
    st = n.c.status()
    assert st["state"] == "offline"
    assert SERVER2 in st["error"]


def test_refresh_every_interval_randomised():
    n = qualified(refresh_s=30)
    base = len(rs_sent(n))
    n.run(22000)  # 75 % of 30 s is 22.5 s: no refresh yet
    assert len(rs_sent(n)) == base
    n.run(8500)
    assert len(rs_sent(n)) == base + 1
    assert n.c.status()["state"] == "qualified"


def test_server_lost_after_qualification_then_recovers():
    n = qualified(refresh_s=30, backoff_min_ms=8000)
    n.server_up = False
    n.server2_up = False
    n.run(31000 + 3 * 4000)
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


