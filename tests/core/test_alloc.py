# The hot path allocates nothing (STYLE.md): under micropython.heap_lock() any
# heap allocation raises MemoryError.  On CPython the lock is a no-op shim and
# these tests still check that the replies are right.
from teredo import proto, wire
from harness import RELAY, V6HOST, ip4, ip6, heap_lock, heap_unlock, with_relay

def _request(n, size):
    b = bytearray(48 + size)
    for i in range(size):
        b[48 + i] = i & 0xFF
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), n.c.address, 0x4242, 1, None, size)
    return bytes(b)


def _answer(c, data, n, src4, now, out):
    # the code under test, called with the heap locked
    ev = c.on_datagram(data, n, src4, proto.PORT, now)
    k = c.pop_tx()
    out[0] = ev
    out[1] = k
    out[2] = c.tx_off
    while c.pop_tx():
        out[3] += 1


def _send(c, dst, payload, now, out):
    out[0] = c.send_udp(dst, 7, 7, payload, now)
    out[1] = c.pop_tx()
    while c.pop_tx():
        pass


def test_echo_reply_path_allocates_nothing():
    n = with_relay()
    c = n.c
    src4 = ip4(RELAY)
    for ip_len in (64, 1280):
        data = _request(n, ip_len - 48)
        out = [0, 0, 0, 0]
        c.on_datagram(data, len(data), src4, proto.PORT, n.now)  # warm up
        while c.pop_tx():
            pass
        for _ in range(3):
            heap_lock()
            try:
                _answer(c, data, len(data), src4, n.now, out)
            finally:
                heap_unlock()
        assert out[1] == ip_len, (ip_len, out)
        assert c.tx_addr == (RELAY, proto.PORT)
        reply = c.tx_mv[out[2]:out[2] + out[1]]
        assert reply[40] == proto.ICMP_ECHO_REPLY
        assert bytes(reply[24:40]) == ip6(V6HOST)
        assert wire.l4_sum(reply, 0, proto.NH_ICMPV6, ip_len - 40) == 0xFFFF


def test_udp_send_path_allocates_nothing():
    n = with_relay()
    c = n.c
    dst = ip6(V6HOST)
    for ip_len in (64, 1280):
        payload = bytes(ip_len - 48)
        out = [0, 0]
        _send(c, dst, payload, n.now, out)
        heap_lock()
        try:
            _send(c, dst, payload, n.now, out)
        finally:
            heap_unlock()
        assert out[0] == 0 and out[1] == ip_len
        assert c.tx_addr == (RELAY, proto.PORT)
