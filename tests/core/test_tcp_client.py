# The TCP on the Teredo client (client.Client is its `net`): a SYN from the
# IPv6-only host arrives through the relay as EV_TCP, and the SYN,ACK the
# TCP builds in the client's arena goes back through the relay; on both
# interpreters, through the simulated Internet of harness.py.

from harness import RELAY, V6HOST, ip6, with_relay
from tcpkit import ACK, SYN, Seg, seg
from teredo import proto, wire
from teredo.client import EV_TCP, Client
from teredo.tcp import TCP
from vectors import SERVER, Rand


def _deliver(n, t):
    """Hand what waits in the NAT's inbox to the client, and TCP segments
    on to the TCP; returns the IPv6 packets the client sent to the relay."""
    c = n.c
    out = []
    for data, src4, sport in n.inbox:
        ev = c.on_datagram(data, len(data), src4, sport, n.now)
        if ev == EV_TCP:
            assert c.ev_off == 0 and c.ev_len == len(data)  # a bare IPv6 packet from the relay
            t.on_segment(data, c.ev_off, c.ev_off + c.ev_len, n.now)
        k = c.pop_tx()
        while k:
            if c.tx_addr == (RELAY, proto.PORT):
                out.append(bytes(c.tx_mv[c.tx_off:c.tx_off + k]))
            k = c.pop_tx()
    n.inbox = []
    return out


def test_segments_cross_the_client_both_ways():
    n = with_relay()
    c = n.c
    t = TCP(c, rand=Rand(9), slots=1, rx_bytes=1024, tx_bytes=1024)
    lh = t.listen(80, 1)
    host = ip6(V6HOST)
    n.from_relay(bytes(seg(40000, 80, 1000, 0, SYN, mss=1220, src=host, dst=c.address)), c.address)
    out = _deliver(n, t)
    assert len(out) == 1
    sa = Seg(out[0])
    assert sa.flags == SYN | ACK and sa.ack == 1001 and sa.dst == host and sa.src == bytes(c.address)
    n.from_relay(bytes(seg(40000, 80, 1001, sa.seq + 1, ACK, data=b"GET /", src=host,
                           dst=c.address)), c.address)
    _deliver(n, t)
    cid = t.accept(lh)
    buf = bytearray(8)
    assert cid >= 0 and t.recv_into(cid, buf, 0, 8, n.now) == 5 and bytes(buf[:5]) == b"GET /"
    assert t.send(cid, b"200", 0, 3, n.now) == 3
    k = c.pop_tx()
    assert k and c.tx_addr == (RELAY, proto.PORT)
    s = Seg(bytes(c.tx_mv[c.tx_off:c.tx_off + k]))
    assert s.data == b"200" and s.ack == 1006
    assert t.status()["counters"]["tx_refused"] == 0


def test_tx_send_refuses_while_not_qualified():
    c = Client(SERVER, rand=Rand(1))
    o = c.tx_alloc(60)
    assert o == 0 and c.tx_alloc(2000) == -1
    assert c.tx_send(o, 60, 0) == wire.NOT_QUALIFIED
