# The library's I/O shell (teredo.iface): app UDP sockets over the client,
# demultiplexed by port, bounded queues, socket errnos, the zero-allocation
# receive path and the send path up to the transmit ring (heap_lock).  Runs on
# CPython and on the MicroPython unix port from this file.
from teredo import addr, iface, proto, wire
from harness import RELAY, V6HOST, heap_lock, heap_unlock, interface, ip4, ip6


def udp_from(n, i, sport, dport, data, src=V6HOST):
    b = bytearray(48 + len(data))
    wire.build_udp6(b, 0, ip6(src), i.client.address, sport, dport, data, len(data))
    n.from_relay(bytes(b), i.client.address)
    n.flush()


def echo_ready():
    n, i = interface()
    assert i.ping(ip6(V6HOST), timeout_ms=0) is None  # sent; the reply comes with flush
    n.flush()
    assert i.last_pong()[0] == 1
    return n, i


def test_up_address_and_status():
    n, i = interface()
    st = i.status()
    assert st["state"] == "qualified" and i.address == st["address"]
    assert addr.is_teredo(addr.parse_ipv6(i.address), 0)
    assert st["sockets"] == []


def test_socket_receives_only_its_port_and_answers():
    n, i = echo_ready()
    s7 = i.socket(7)
    s9 = i.socket(9)
    s7.setblocking(False)
    udp_from(n, i, 5353, 7, b"seven")
    udp_from(n, i, 5354, 9, b"nine")
    udp_from(n, i, 5355, 8, b"nobody")
    data, peer = s7.recvfrom(1280)
    assert data == b"seven" and peer == (V6HOST, 5353)
    assert s9.recvfrom(100) == (b"nine", (V6HOST, 5354))
    assert i.status()["drops"]["no_port"] == 1
    try:
        s7.recvfrom(100)
    except OSError as e:
        assert e.args[0] == iface.EAGAIN
    else:
        raise AssertionError("a non-blocking socket with nothing queued must raise EAGAIN")
    # the reply goes through the relay the test found, from port 7
    before = len(n.sent("out"))
    assert s7.sendto(b"back", peer) == 4
    out = n.sent("out")[before:]
    assert len(out) == 1 and out[0][1] == RELAY
    pkt = out[0][3]
    assert pkt[6] == proto.NH_UDP and (pkt[40] << 8 | pkt[41]) == 7 and (pkt[42] << 8 | pkt[43]) == 5353
    assert pkt[48:] == b"back"
    assert wire.l4_sum(pkt, 0, proto.NH_UDP, len(pkt) - 40) == 0xFFFF
    st = i.status()["sockets"]
    assert st[0]["port"] == 7 and st[0]["rx"] == 1 and st[0]["tx"] == 1 and st[1]["port"] == 9


def test_receive_queue_is_bounded_and_counts_overflow():
    n, i = echo_ready()
    s = i.socket(7, rxq=3)
    for k in range(5):
        udp_from(n, i, 1000 + k, 7, bytes([k]) * 10)
    assert s.count == 3 and s.dropped == 2
    got = [s.recvfrom(64) for _ in range(3)]
    assert [g[1][1] for g in got] == [1000, 1001, 1002] and got[2][0] == bytes([2]) * 10
    assert i.status()["sockets"][0]["dropped"] == 2


def test_recv_into_cuts_to_the_buffer_and_keeps_the_source():
    n, i = echo_ready()
    s = i.socket(7)
    udp_from(n, i, 4242, 7, bytes(range(100)))
    buf = bytearray(10)
    assert s.recv_into(buf) == 10 and bytes(buf) == bytes(range(10))
    assert bytes(s.src6) == ip6(V6HOST) and s.sport == 4242


def test_socket_errnos():
    n, i = echo_ready()
    s = i.socket(7, rxq=1)  # nothing is received here: one slot keeps the heap small
    for data, addr6, want in ((bytes(1233), V6HOST, iface.EMSGSIZE),):
        try:
            s.sendto(data, (addr6, 9))
        except OSError as e:
            assert e.args[0] == want
        else:
            raise AssertionError("no error")
    assert s.sendto(bytes(1232), (V6HOST, 9)) == 1232  # the largest that fits 1280
    try:
        i.socket(7)
    except OSError as e:
        assert e.args[0] == iface.EADDRINUSE
    else:
        raise AssertionError("port 7 bound twice")
    s.close()
    i.socket(7, rxq=1).close()  # free again after close
    i.down("test")
    s2 = i.socket(8, rxq=1)
    try:
        s2.sendto(b"x", (V6HOST, 9))
    except OSError as e:
        assert e.args[0] == iface.ENOTCONN
    else:
        raise AssertionError("sent while not qualified")


def test_transmit_ring_full_is_eagain():
    n, i = echo_ready()
    s = i.socket(7)
    dst = (ip6(V6HOST), 9)
    sent = 0
    try:
        for _ in range(20):
            s.send_later(b"x", dst, n.now)  # nothing drains the ring
            sent += 1
    except OSError as e:
        assert e.args[0] == iface.EAGAIN
    else:
        raise AssertionError("the ring never filled")
    assert 1 <= sent <= 8
    i.flush()
    assert s.sendto(b"y", dst) == 1  # room again


def test_poll_ioctl_reports_readable_and_writable():
    n, i = echo_ready()
    s = i.socket(7)
    assert s.ioctl(iface.MP_STREAM_POLL, iface.POLLIN | iface.POLLOUT) == iface.POLLOUT
    udp_from(n, i, 1, 7, b"x")
    assert s.ioctl(iface.MP_STREAM_POLL, iface.POLLIN) == iface.POLLIN
    i.down("test")
    assert s.ioctl(iface.MP_STREAM_POLL, iface.POLLOUT) == 0


def _rx_path(i, s, data, n, src4, now, buf):
    i.feed(data, n, src4, proto.PORT, now)
    return s.recv_into(buf)


def test_receive_path_allocates_nothing():
    """From the datagram to the app's buffer: core, demultiplex, queue,
    recv_into (MicroPython unix port: heap_lock)."""
    n, i = echo_ready()
    s = i.socket(7)
    b = bytearray(48 + 64)
    wire.build_udp6(b, 0, ip6(V6HOST), i.client.address, 5353, 7, bytes(64), 64)
    data = bytes(b)
    src4 = ip4(RELAY)
    buf = bytearray(1280)
    got = []
    for _ in range(3):  # warm up: caches, first-time attribute lookups
        got.append(_rx_path(i, s, data, len(data), src4, n.now, buf))
    heap_lock()
    try:
        for _ in range(20):
            k = _rx_path(i, s, data, len(data), src4, n.now, buf)
    finally:
        heap_unlock()
    assert got == [64, 64, 64] and k == 64 and s.rx == 23


def _tx_path(s, payload, dst, now):
    s.send_later(payload, dst, now)
    return s.iface.client.pop_tx()


def test_send_path_allocates_nothing_up_to_the_ring():
    """sendto's work up to the transmit ring (the platform's sendto is the
    shell's one allocation), with a 16-byte destination."""
    n, i = echo_ready()
    s = i.socket(7)
    dst = (ip6(V6HOST), 9)
    payload = bytes(64)
    big = bytes(1232)
    lens = []
    for p in (payload, big):
        lens.append(_tx_path(s, p, dst, n.now))
        i.client.pop_tx()
    heap_lock()
    try:
        for _ in range(20):
            k1 = _tx_path(s, payload, dst, n.now)
            i.client.pop_tx()
            k2 = _tx_path(s, big, dst, n.now)
            i.client.pop_tx()
    finally:
        heap_unlock()
    assert lens == [48 + 64, 48 + 1232] and k1 == 48 + 64 and k2 == 48 + 1232


def test_a_bad_receive_queue_size_leaves_the_port_free():
    # Interface.socket(port, rxq=0) used to take the port in the core before
    # UDPSocket refused rxq: the port then stayed taken for good
    n, i = echo_ready()
    try:
        i.socket(7, rxq=0)
    except ValueError:
        pass
    else:
        raise AssertionError("rxq=0 accepted")
    assert 7 not in i.client.ports
    s = i.socket(7, rxq=1)
    assert i.client.ports == [7] and s.port == 7
    s.close()


def test_sendto_drains_a_full_arena_first():
    # two datagrams of 1232 bytes do not fit the transmit arena at once: the
    # second sendto must send the first before it builds its own (it used to
    # flush only when all TX_SLOTS slots were taken, and said EAGAIN)
    n, i = echo_ready()
    s = i.socket(7, rxq=1)
    dst = (ip6(V6HOST), 9)
    s.send_later(bytes(1232), dst, n.now)
    assert i.client.tq_count == 1
    assert s.sendto(bytes(1232), dst) == 1232 and s.tx == 2
    assert i.client.tq_count == 0
    s.close()
