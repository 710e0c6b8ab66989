# Echo servers for the overhead-against-the-floor measure, the same file on
# the MicroPython unix port and on CPython:
#
#   micropython -X heapsize=256K bench/echoshell.py MODE CORE_DIR TESTS_DIR PORT PEER_PORT
#   python bench/echoshell.py MODE firmware tests/core PORT PEER_PORT
#
# MODE bare:   the floor: recvfrom + sendto of the same datagram, nothing else.
# MODE teredo: the firmware's interface loop reduced to socket + core: per
#   datagram what teredo.Interface.receive() and flush() do (recvfrom, the
#   source from the sockaddr, on_datagram, pop_tx, the sockaddr cache,
#   sendto of a memoryview slice) and the timer check.  The core is qualified
#   beforehand (bench/qualified.py) with the load generator on 127.0.0.1:PEER_PORT
#   standing in for the relay.
# Both bind 127.0.0.1:PORT, print "ready"; a 4-byte datagram b"STOP" ends them.
import sys

sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])

import socket  # noqa: E402

try:
    from time import ticks_diff, ticks_ms
    ON_MP = True
except ImportError:
    import time
    ON_MP = False

    def ticks_ms():
        return (time.monotonic_ns() // 1000000) & 0x3FFFFFFF

    def ticks_diff(a, b):
        d = (a - b) & 0x3FFFFFFF
        return d - 0x40000000 if d >= 0x20000000 else d


def sockaddr_of(ip, port):
    return socket.getaddrinfo(ip, port)[0][-1]


def bare(s):
    while True:
        data, src = s.recvfrom(1536)
        if len(data) == 4:
            return
        s.sendto(data, src)


def teredo(s, c, sockaddr):
    while True:
        data, src = s.recvfrom(1536)
        now = ticks_ms()
        if len(data) == 4:
            return
        if ON_MP:  # unix port: struct sockaddr_in, as teredo_console reads it
            ip4 = src[4:8]
            port = (src[2] << 8) | src[3]
        else:
            ip4 = socket.inet_aton(src[0])
            port = src[1]
        c.on_datagram(data, len(data), ip4, port, now)
        n = c.pop_tx()
        while n:
            a = c.tx_addr
            sa = sockaddr.get(a)
            if sa is None:
                sa = sockaddr_of(a[0], a[1])
                sockaddr[a] = sa
            s.sendto(c.tx_mv[c.tx_off:c.tx_off + n], sa)
            n = c.pop_tx()
        if ticks_diff(now, c.next_deadline()) >= 0:
            c.on_timer(now)


def main():
    mode = sys.argv[1]
    port = int(sys.argv[4])
    peer_port = int(sys.argv[5])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(sockaddr_of("127.0.0.1", port))
    if mode == "bare":
        print("ready")
        flush()
        bare(sock)
    else:
        from qualified import QUIET, qualified_client
        client, _ = qualified_client(ticks_ms(), peer_port)
        sockaddr = {}
        for a in QUIET:
            sockaddr[a] = sockaddr_of("127.0.0.1", 9)  # discard: nothing leaves loopback
        import gc
        gc.collect()
        print("ready")
        flush()
        teredo(sock, client, sockaddr)
        st = client.status()
        print("rx %d tx %d drops %s" % (st["rx"], st["tx"], st["drops"]))
    sock.close()


def flush():
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


main()
