# Parked (not collected): the tests of tests/core/test_output.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto, wire
from teredo.peers import F_TRUSTED, NF
from harness import RELAY, SERVER, V6HOST, ip4, ip6, qualified, with_relay
from test_output import *
from harness import Seq
from test_output import _reply_to_test, _trusted_teredo_peer


def test_a_new_destination_is_tested_even_when_the_last_entry_is_a_trusted_relay():
    n = with_relay(max_peers=1)
    c = n.c
    sent(c)
    assert c.send_udp(ip6("2001:db8::99"), 7, 7, b"x", n.now) == 0
    out = sent(c)
    assert len(conn_tests(out)) == 1 and len(out) == 1
    assert conn_tests(out)[0][24:40] == ip6("2001:db8::99")


def test_peers_in_use_stay_in_the_table():
    for touch in ("send", "receive"):
        n = qualified(max_peers=2)
        c = n.c
        sent(c)
        t = n.now
        a = _trusted_teredo_peer(c, 40001, t)
        b = _trusted_teredo_peer(c, 40002, t + 10)
        # a is the older one; using it makes b the least recently used
        if touch == "send":
            assert c.send_udp(a, 9, 9, b"x", t + 20) == 0
        else:
            _trusted_teredo_peer(c, 40001, t + 20)
        assert sent(c) == [] or touch == "send"
        sent(c)
        _trusted_teredo_peer(c, 40003, t + 30)
        assert c.peers.find(a, 0) >= 0 and c.peers.find(b, 0) == -1, touch


def test_connectivity_test_nonce_is_the_random_draws_in_order_for_any_entry():
    for entries_before in (0, 1, 2):
        n = qualified()
        c = n.c
        sent(c)
        n.relay_up = False
        for i in range(entries_before):
            _trusted_teredo_peer(c, 41000 + i, n.now)
        c.rand = Seq([0x11A3, 0x33C5, 0x55E7, 0x7709])
        c.ping(ip6(V6HOST), 1, n.now)
        (t,) = conn_tests(sent(c))
        assert t[48:56] == bytes([0x11, 0xA3, 0x33, 0xC5, 0x55, 0xE7, 0x77, 0x09]), entries_before
        # the next round draws a fresh nonce
        c.rand = Seq([0x0102, 0x0304, 0x0506, 0x0708])
        c.on_timer(n.now + 2000)
        (t2,) = conn_tests(sent(c))
        assert t2[48:56] == bytes(range(1, 9))
        _reply_to_test(c, t, n.now + 2001)   # the old round's nonce is stale
        assert c.status()["relay"] is None
        _reply_to_test(c, t2, n.now + 2002)
        assert c.status()["relay"] == RELAY + ":3544"


def test_random_source_giving_all_its_bits():
    # rand(n) may return any n-bit number: every use must ask for what it
    # can store (16 bits into two bytes)
    n = qualified()
    c = n.c
    sent(c)
    c.rand = lambda bits: (1 << bits) - 1
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6("2001:db8::1"), c.address)
    c.on_datagram(b, 40, ip4(SERVER), proto.PORT, n.now + 1)  # server contact: refresh rescheduled
    due = n.now + 1 + 30000 - (0xFFFF * 7500 >> 16)
    assert c.next_deadline() == due
    c.on_timer(due)
    rs = [d for _, _, d in sent(c) if len(d) == 61]
    assert len(rs) == 1 and rs[0][4:12] == b"\xff" * 8
    assert c.ping(ip6(V6HOST), 1, due) == 0
    (t,) = conn_tests(sent(c))
    assert t[48:56] == b"\xff" * 8
