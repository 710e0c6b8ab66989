# Core cost per packet, the same file on the MicroPython unix port and on
# CPython (bench/run.py starts both):
#
#   micropython -X heapsize=256K bench/corebench.py CORE_DIR TESTS_DIR N REPEATS
#   python bench/corebench.py firmware tests/core N REPEATS
#
# CORE_DIR holds the teredo package (build/mpy-x64 for MicroPython: the .mpy
# files a board runs), TESTS_DIR the simulated Internet (tests/core/harness.py)
# that qualifies the client and makes the relay a trusted peer, as
# tests/core/test_alloc.py does.  Then, per case, N packets through the core:
#   echo_64 / echo_1280   on_datagram() of an encapsulated ICMPv6 echo request
#                         from the relay (64 / 1280 bytes of IPv6), validated
#                         (checksum over the whole packet), reply built in place,
#                         pop_tx() drained
#   udp_64 / udp_1280     send_udp() to the native host through the trusted
#                         relay (checksum computed), pop_tx() drained
# Prints one JSON line: us per packet (median of REPEATS runs of N), heap bytes
# allocated per packet (MicroPython: gc.mem_alloc() delta over N packets with
# the collector disabled), whether N packets run under heap_lock() without
# MemoryError, and CPython's net allocated-block delta (CPython allocates an
# object for nearly every int, so only the net figure means anything there).
import gc
import json
import sys

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

from teredo import proto, wire  # noqa: E402
from harness import ON_MP, RELAY, V6HOST, heap_lock, heap_unlock, ip4, ip6, with_relay  # noqa: E402

try:
    from time import ticks_diff, ticks_us

    def clock_us():
        return ticks_us()

    def elapsed_us(t0, t1):
        return ticks_diff(t1, t0)
except ImportError:
    from time import perf_counter_ns

    def clock_us():
        return perf_counter_ns()

    def elapsed_us(t0, t1):
        return (t1 - t0) / 1000.0


def ready():
    return with_relay("restricted", echo_rate=0)  # echo replies unlimited


def request(c, ip_len):
    size = ip_len - 48
    b = bytearray(ip_len)
    for i in range(size):
        b[48 + i] = i & 0xFF
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), c.address, 0x4242, 1, None, size)
    return bytes(b)


def echo_loop(c, data, n, src4, now, count):
    # the loop allocates nothing itself (no range object): under heap_lock
    # any allocation is the core's
    k = 0
    i = 0
    while i < count:
        c.on_datagram(data, n, src4, proto.PORT, now)
        m = c.pop_tx()
        while m:
            k += m
            m = c.pop_tx()
        i += 1
    return k


def udp_loop(c, dst, payload, now, count):
    k = 0
    i = 0
    while i < count:
        c.send_udp(dst, 7, 7, payload, now)
        m = c.pop_tx()
        while m:
            k += m
            m = c.pop_tx()
        i += 1
    return k


def call(fn, a, count):
    # no star-call: on MicroPython f(*args) allocates an argument array
    if len(a) == 5:
        return fn(a[0], a[1], a[2], a[3], a[4], count)
    return fn(a[0], a[1], a[2], a[3], count)


def locked(fn, a, count):
    """True when count packets go through with the heap locked."""
    heap_lock()
    try:
        call(fn, a, count)
    except MemoryError:
        return False
    finally:
        heap_unlock()
    return True


def run_case(fn, args, count, repeats):
    call(fn, args, 8)  # warm up
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = clock_us()
        total = call(fn, args, count)
        t1 = clock_us()
        times.append(elapsed_us(t0, t1) / count)
    times.sort()
    out = {"us": times[len(times) // 2], "us_min": times[0], "bytes_out": total // count}
    # heap bytes per packet with the collector off
    gc.collect()
    if ON_MP:
        gc.disable()
        a = gc.mem_alloc()
        call(fn, args, count)
        b = gc.mem_alloc()
        gc.enable()
        out["alloc_bytes"] = (b - a) / count
    else:
        a = sys.getallocatedblocks()
        call(fn, args, count)
        b = sys.getallocatedblocks()
        out["net_blocks"] = (b - a) / count
    # and the proof: heap_lock() raises MemoryError on any allocation
    ok = locked(fn, args, count)
    out["heap_lock_ok"] = ok if ON_MP else None
    return out


def check_reply(c, ip_len):
    """The reply is right (type, addresses, checksum) before we time it."""
    reply = c.tx_mv[c.tx_off:c.tx_off + ip_len]
    if reply[40] != proto.ICMP_ECHO_REPLY or bytes(reply[24:40]) != ip6(V6HOST) or \
            wire.l4_sum(reply, 0, proto.NH_ICMPV6, ip_len - 40) != 0xFFFF or \
            c.tx_addr != (RELAY, proto.PORT):
        raise RuntimeError("bad echo reply for %d bytes" % ip_len)


def main():
    count = int(sys.argv[3])
    repeats = int(sys.argv[4])
    n = ready()
    c = n.c
    src4 = ip4(RELAY)
    dst = ip6(V6HOST)
    res = {"interpreter": "micropython" if ON_MP else "cpython", "count": count,
           "repeats": repeats, "cases": {}}
    for ip_len in (64, 1280):
        data = request(c, ip_len)
        c.on_datagram(data, len(data), src4, proto.PORT, n.now)
        if c.pop_tx() != ip_len:
            raise RuntimeError("no echo reply for %d bytes: %r" % (ip_len, c.status()))
        check_reply(c, ip_len)
        while c.pop_tx():
            pass
        r = run_case(echo_loop, (c, data, len(data), src4, n.now), count, repeats)
        if r["bytes_out"] != ip_len:
            raise RuntimeError("echo replies stopped: %r" % (c.status(),))
        res["cases"]["echo_%d" % ip_len] = r
        payload = bytes(ip_len - 48)
        r = run_case(udp_loop, (c, dst, payload, n.now), count, repeats)
        if r["bytes_out"] != ip_len:
            raise RuntimeError("send_udp stopped: %r" % (c.status(),))
        res["cases"]["udp_%d" % ip_len] = r
    res["drops"] = c.status()["drops"]
    print(json.dumps(res))


main()
