# The documented defaults of the client, and the timing rules that only show
# with them or across two kinds of traffic: the default back-off, the 2 s
# bubble gap counted from any datagram sent (RFC 4380 §5.2.6), the identifier
# and sequence of our own pings.  On CPython and the MicroPython unix port.
from teredo import addr, proto, wire
from teredo.client import DEFAULTS, Client
from harness import RELAY, SERVER, V6HOST, Net, Rand, ip4, ip6, qualified, with_relay
from harness import drops, sent

PEER4 = "198.51.100.77"


def _bubbles(out, wan=PEER4):
    direct = [1 for ip, port, d in out if ip == wan and d[6] == proto.NH_NONE]
    indirect = [1 for ip, port, d in out if port == proto.PORT and d[6] == proto.NH_NONE and ip != wan]
    return len(direct), len(indirect)


def test_bubble_gap_counts_from_the_last_datagram_sent_to_the_peer():
    # §5.2.6: no bubble within 2 s of the last transmission to the peer,
    # data included.  The peer was trusted; 1999 ms after our last datagram
    # its mapping expires (30 s without reception) and a bubble is due.
    n = qualified()
    c = n.c
    sent(c)
    peer = addr.build_teredo(ip4(SERVER), 0, 40001, ip4(PEER4))
    b = bytearray(40)
    wire.build_bubble(b, 0, peer, c.address)
    t = n.now
    c.on_datagram(b, 40, ip4(PEER4), 40001, t)   # trusted (§5.2.3 case 3), last reception t
    assert c.send_udp(peer, 9, 9, b"a", t + 28001) == 0
    assert [(ip, port) for ip, port, _ in sent(c)] == [(PEER4, 40001)]
    assert c.send_udp(peer, 9, 9, b"b", t + 30000) == 0   # expired: test the path again
    assert _bubbles(sent(c)) == (0, 0) and drops(c, "rate_limited") == 1
    c.on_timer(t + 32000)  # the next round, 2 s later: 3999 ms after the data
    assert _bubbles(sent(c)) == (1, 1)


def test_own_pings_carry_the_identifier_and_sequence():
    n = with_relay()
    c = n.c
    sent(c)
    assert c.ping(ip6(V6HOST), 0x12345, n.now, size=20) == 0
    (ip, port, d), = sent(c)
    assert (ip, port) == (RELAY, proto.PORT) and len(d) == 68
    assert d[40] == proto.ICMP_ECHO_REQUEST and (d[44] << 8) | d[45] == 0x7464
    assert (d[46] << 8) | d[47] == 0x2345 and d[48:68] == bytes(range(20))
    assert wire.l4_sum(d, 0, proto.NH_ICMPV6, 28) == 0xFFFF
    assert c.ping(ip6(V6HOST), 1, n.now) == 0 and len(sent(c)[0][2]) == 64  # 16 bytes by default
    # the reply to it is reported with its sequence number and source
    r = bytearray(56)
    wire.build_echo(r, 0, proto.ICMP_ECHO_REPLY, ip6(V6HOST), c.address, 0x7464, 0xBEEF, bytes(8), 8)
    assert c.on_datagram(r, 56, ip4(RELAY), proto.PORT, n.now) == 1  # EV_ECHO_REPLY
    assert c.ev_seq == 0xBEEF and bytes(c.rx[c.ev_src:c.ev_src + 16]) == ip6(V6HOST)


def test_documented_defaults():
    # README "What the client does": 8 peers, queues of 1280 bytes for up to
    # two peers, echo replies 200/s (burst 50), unsolicited bubbles 20/s,
    # ICMPv6 errors 10/s, 8 bound ports, refresh 30 s, back-off 8 s doubling
    # to 128 s, symmetric retry 120 s, local discovery on; and no tunable
    # besides these
    c = Client(SERVER, rand=Rand(1))
    cfg = c.cfg
    want = (("refresh_s", 30), ("qual_timeout_ms", 4000), ("qual_tries", 3), ("cone_probe", True),
            ("backoff_min_ms", 8000), ("backoff_max_ms", 128000),
            ("symmetric_retry_ms", 120000), ("max_peers", 8), ("queue_slots", 2), ("queue_bytes", 1280),
            ("echo_rate", 200), ("echo_burst", 50), ("bubble_rate", 20), ("ping_ident", 0x7464),
            ("unreach_rate", 10), ("max_ports", 8), ("local_discovery", True))
    for k, v in want:
        assert cfg[k] == v, k
    assert sorted(k for k, _ in DEFAULTS) == sorted(k for k, _ in want) and len(cfg) == len(want)
    assert c.peers.n == 8 and len(c.peers.qbufs) == 2 and c.peers.queue_bytes == 1282
    assert c.status()["refresh_s"] == 30


def test_default_backoff_doubles_from_8_s_to_128_s():
    n = Net("restricted")
    n.server_up = False
    c = n.c
    t = 1000
    c.start(t)
    sent(c)
    waits = []
    for _ in range(6):
        for k in (4000, 8000):
            c.on_timer(t + k)
            assert len(sent(c)) == 2
        c.on_timer(t + 12000)
        t += 12000
        assert c.status()["state"] == "offline" and sent(c) == []
        # the shell wakes when next_deadline says, at least every 60 s,
        # until the next try sends its RSs
        w = t
        while True:
            d = c.next_deadline()
            assert 0 < d - w <= 60000, (w, d)
            c.on_timer(d)
            w = d
            out = sent(c)
            if out:
                break
            assert c.status()["state"] == "offline"
        assert len(out) == 2 and c.status()["state"] == "qualifying"
        waits.append(w - t)
        t = w
    assert waits == [8000, 16000, 32000, 64000, 128000, 128000]


def test_hot_path_constants_equal_protocol_ones():
    # client.py folds copies of these into its receive path (const); each
    # must be the protocol's value.  MicroPython folds them away, so the
    # names exist only on CPython (STYLE.md: `_` consts are no attributes).
    from teredo import client
    pairs = (("_PORT", proto.PORT), ("_NH_TCP", proto.NH_TCP), ("_NH_UDP", proto.NH_UDP),
             ("_NH_ICMPV6", proto.NH_ICMPV6), ("_NH_NONE", proto.NH_NONE),
             ("_ICMP_ECHO_REQUEST", proto.ICMP_ECHO_REQUEST), ("_ICMP_ECHO_REPLY", proto.ICMP_ECHO_REPLY),
             ("_ICMP_RA", proto.ICMP_RA), ("_PEER_VALID_MS", proto.PEER_VALID_MS),
             ("_H_IP", wire.H_IP), ("_H_NONCE", wire.H_NONCE), ("_H_ORIGIN", wire.H_ORIGIN),
             ("_H_END", wire.H_END))
    import sys
    for name, want in pairs:
        if sys.implementation.name == "micropython":
            assert not hasattr(client, name), name  # folded
        else:
            assert getattr(client, name) == want, name
