# The client as the Teredo link of a local IPv6 stack (teredo.raw.RawClient,
# the host's tun): every accepted packet for our address goes whole to the stack as
# EV_IP, unanswered by the core; what the stack sends comes back through
# send_ip, checked (our source, a unicast destination) and copied once into
# the arena; neither path allocates (heap_lock).  The default client still
# answers echoes itself.  Runs on CPython and the MicroPython unix port.
from teredo import proto, wire
from teredo.client import EV_NONE, EV_UDP
from teredo.raw import EV_IP, NOT_OURS, RawClient
from harness import RELAY, V6HOST, heap_lock, heap_unlock, interface, ip4, ip6, with_relay
from vectors import SERVER, Rand


def _echo_request(c, size, seq=1):
    b = bytearray(48 + size)
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 0x4242, seq, None, size)
    return bytes(b)


def _udp(src, dst, dport, data):
    b = bytearray(48 + len(data))
    wire.build_udp6(b, 0, src, dst, 5000, dport, data, len(data))
    return b


def _drain(c):
    out = []
    k = c.pop_tx()
    while k:
        out.append((bytes(c.tx_mv[c.tx_off:c.tx_off + k]), c.tx_addr))
        k = c.pop_tx()
    return out


def test_raw_client_hands_an_echo_request_to_the_stack_and_does_not_answer_it():
    n = with_relay(client_class=RawClient)
    c = n.c
    data = _echo_request(c, 56)
    ev = c.on_datagram(data, len(data), ip4(RELAY), proto.PORT, n.now)
    assert ev == EV_IP
    assert c.ev_off == 0 and c.ev_len == len(data) and c.ev_src == 8
    assert bytes(c.rx[c.ev_off:c.ev_off + c.ev_len]) == data
    assert _drain(c) == []  # the kernel answers it, not the core
    # the same request into a default client is answered by the core
    d = with_relay()
    req = _echo_request(d.c, 56)
    assert d.c.on_datagram(req, len(req), ip4(RELAY), proto.PORT, d.now) == EV_NONE
    out = _drain(d.c)
    assert len(out) == 1 and out[0][0][40] == proto.ICMP_ECHO_REPLY and out[0][1] == (RELAY, proto.PORT)


def test_raw_client_hands_udp_for_any_port_to_the_stack():
    n = with_relay(client_class=RawClient)
    c = n.c
    pkt = bytes(_udp(ip6(V6HOST), c.address, 4444, b"nobody bound me"))
    assert c.on_datagram(pkt, len(pkt), ip4(RELAY), proto.PORT, n.now) == EV_IP
    assert _drain(c) == []  # no port unreachable from the core
    st = c.status()["drops"]
    assert "no_port" not in st and "unsupported" not in st
    # a default client binds ports: this one drops it and answers unreachable
    d = with_relay()
    pkt = bytes(_udp(ip6(V6HOST), d.c.address, 4444, b"nobody bound me"))
    assert d.c.on_datagram(pkt, len(pkt), ip4(RELAY), proto.PORT, d.now) == EV_NONE
    assert d.c.status()["drops"]["no_port"] == 1
    d.c.bind(4444)
    assert d.c.on_datagram(pkt, len(pkt), ip4(RELAY), proto.PORT, d.now) == EV_UDP


def test_raw_client_keeps_bubbles_and_foreign_packets_from_the_stack():
    n = with_relay(client_class=RawClient)
    c = n.c
    b = bytearray(40)
    wire.build_bubble(b, 0, ip6(V6HOST), c.address)
    assert c.on_datagram(bytes(b), 40, ip4(RELAY), proto.PORT, n.now) == EV_NONE
    other = bytes(_udp(ip6(V6HOST), ip6("2001:0:c633:640a:8000:1:2:3"), 7, b"x"))
    assert c.on_datagram(other, len(other), ip4(RELAY), proto.PORT, n.now) == EV_NONE
    assert c.status()["drops"]["not_for_us"] == 1


def test_send_ip_sends_the_stacks_packet_unchanged_through_the_relay():
    n = with_relay(client_class=RawClient)
    c = n.c
    pkt = _udp(c.address, ip6(V6HOST), 53, b"query")
    tx = c.tx_count
    assert c.send_ip(pkt, len(pkt), n.now) == 0
    out = _drain(c)
    assert out == [(bytes(pkt), (RELAY, proto.PORT))]
    assert c.tx_count == tx + 1


def test_send_ip_drops_and_counts_what_is_not_ours_to_send():
    n = with_relay(client_class=RawClient)
    c = n.c
    ll = ip6("fe80::ffff:ffff:ffff")
    mld = _udp(ll, ip6("ff02::16"), 9, b"")  # link-local chatter of the kernel
    assert c.send_ip(mld, len(mld), n.now) == NOT_OURS
    mcast = _udp(c.address, ip6("ff0e::1"), 9, b"")
    assert c.send_ip(mcast, len(mcast), n.now) == wire.UNSUPPORTED
    short = _udp(c.address, ip6(V6HOST), 9, b"abc")
    assert c.send_ip(short, len(short) - 1, n.now) == wire.LENGTH
    assert c.send_ip(short, 30, n.now) == wire.LENGTH
    assert _drain(c) == []
    st = c.status()["drops"]
    assert st["not_ours"] == 1 and st["unsupported"] == 1 and st["length"] == 2
    # and nothing at all before qualification
    q = RawClient(SERVER, rand=Rand(1))
    assert q.send_ip(short, len(short), 0) == wire.NOT_QUALIFIED


def test_send_ip_to_an_unknown_native_host_queues_behind_the_connectivity_test():
    n = with_relay(client_class=RawClient)
    c = n.c
    other = ip6("2001:db8:f::200")  # a native host without a trusted relay entry
    pkt = _udp(c.address, other, 53, b"first")
    assert c.send_ip(pkt, len(pkt), n.now) == 0
    out = _drain(c)
    # §5.2.9: an echo test goes to the server; the packet waits in the queue
    assert len(out) == 1 and out[0][1][1] == proto.PORT and out[0][0][40] == proto.ICMP_ECHO_REQUEST
    assert c.status()["peers"] >= 2


def _in_and_out(c, data, n, src4, pkt, k, now, out):
    # the code under test, called with the heap locked
    out[0] = c.on_datagram(data, n, src4, proto.PORT, now)
    out[1] = c.ev_len
    while c.pop_tx():
        out[3] += 1
    out[2] = c.send_ip(pkt, k, now)
    m = c.pop_tx()
    out[4] = m
    while m:
        m = c.pop_tx()


def test_raw_paths_allocate_nothing():
    n = with_relay(client_class=RawClient)
    c = n.c
    src4 = ip4(RELAY)
    for size in (64, 1280):
        data = _echo_request(c, size - 48)
        pkt = _udp(c.address, ip6(V6HOST), 53, bytes(size - 48))
        out = [0, 0, 0, 0, 0]
        _in_and_out(c, data, len(data), src4, pkt, len(pkt), n.now, out)  # warm up
        for _ in range(3):
            out[3] = 0
            heap_lock()
            try:
                _in_and_out(c, data, len(data), src4, pkt, len(pkt), n.now, out)
            finally:
                heap_unlock()
        assert out == [EV_IP, size, 0, 0, size], (size, out)
        assert bytes(c.tx_mv[c.tx_off:c.tx_off + size]) == bytes(pkt)


def test_interface_with_a_raw_client_returns_ev_ip_from_feed():
    n, i = interface(client_class=RawClient)
    c = i.client
    got = []

    def feed(data, k, src4, sport, now):
        ev = i.feed(data, k, src4, sport, now)
        got.append((ev, bytes(c.rx[c.ev_off:c.ev_off + c.ev_len])))
    n.feed = feed
    pkt = bytes(_udp(ip6(V6HOST), c.address, 7, b"to the kernel"))
    n.from_relay(pkt, c.address)
    n.flush()
    assert (EV_IP, pkt) in got
    assert i.status()["drops"].get("no_port") is None  # not the UDP socket path
