"""The host build: the shared Teredo core on CPython with a real UDP socket.

A thin shell (STYLE.md): it owns the socket and the clock, feeds the core
datagrams and time, sends what the core hands back.  stdout carries JSON
lines (the status object at start and at every change, and ping results);
stderr carries log lines for a person.
"""
import json
import random
import select
import signal
import socket
import sys
import time

from teredo import addr
from teredo.client import EV_ECHO_REPLY, EV_UDP, Client

TICKS_MASK = (1 << 30) - 1


def ticks_ms():
    """Milliseconds wrapping at 2**30, as the ESP32's time.ticks_ms()."""
    return (time.monotonic_ns() // 1000000) & TICKS_MASK


def ticks_diff(a, b):
    d = (a - b) & TICKS_MASK
    return d - (1 << 30) if d >= (1 << 29) else d


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def local_address(server, port):
    """The local IPv4 the kernel would use toward the server (no packet sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((server, 3544))
        return s.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    finally:
        s.close()


def udp_socket():
    """The client's UDP socket.  RFC 4380 §5.1.2: a Teredo client SHOULD NOT
    set the Don't Fragment bit; Linux sets it by default (path MTU
    discovery, IP_PMTUDISC_WANT), so turn that off where the option exists."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if sys.platform.startswith("linux"):
        try:
            s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                         getattr(socket, "IP_PMTUDISC_DONT", 0))
        except OSError as e:
            log("cannot clear DF (IP_MTU_DISCOVER): %s" % e.strerror)
    return s


def log(msg):
    print("teredoctl client: %s" % msg, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def run(args):
    rng = random.SystemRandom()
    if args.echo_rate < 0:
        raise ValueError("--echo-rate must be 0 (no limit) or more")
    client = Client(args.server, args.server2, rand=rng.getrandbits, refresh_s=args.refresh,
                    echo_rate=args.echo_rate)
    ping_dst = addr.parse_ipv6(args.ping) if args.ping else None
    sock = udp_socket()
    try:
        sock.bind(("0.0.0.0", args.port))
    except OSError as e:
        sock.close()
        raise ValueError("cannot bind UDP port %d: %s; pick another with --port" % (args.port, e.strerror))
    sock.setblocking(False)
    local = "%s:%d" % (local_address(args.server, args.port), sock.getsockname()[1])
    client.set_local(local)
    old = (signal.signal(signal.SIGTERM, _on_signal), signal.signal(signal.SIGINT, _on_signal))
    log("local %s, server %s" % (local, client.server_addr[0]))
    rxbuf = bytearray(2048)  # recvfrom_into: no allocation per datagram
    seen = -1
    pings_sent = 0
    replies = 0
    next_ping = 0
    sent_at = {}
    now = ticks_ms()
    client.start(now)
    try:
        while True:
            n = client.pop_tx()
            while n:
                try:
                    sock.sendto(client.tx_mv[client.tx_off:client.tx_off + n], client.tx_addr)
                except OSError as e:
                    log("send to %s:%d failed: %s" % (client.tx_addr[0], client.tx_addr[1], e.strerror))
                n = client.pop_tx()
            if client.changes != seen:
                seen = client.changes
                st = client.status()
                emit(st)
                log("state %s%s%s" % (st["state"], (", address " + st["address"]) if st["address"] else "",
                                      (": " + st["error"]) if st["error"] else ""))
            now = ticks_ms()
            if ping_dst is not None and client.state == 2 and pings_sent < args.count \
                    and ticks_diff(now, next_ping) >= 0:
                pings_sent += 1
                sent_at[pings_sent] = now
                client.ping(ping_dst, pings_sent, now)
                next_ping = (now + 1000) & TICKS_MASK
                continue
            if ping_dst is not None and args.exit_after_ping and pings_sent >= args.count \
                    and ticks_diff(now, next_ping) >= 1000:
                emit({"ping_done": args.ping, "sent": pings_sent, "received": replies})
                return 0 if replies else 1
            wait = ticks_diff(client.next_deadline(), now)
            if ping_dst is not None and pings_sent < args.count and client.state == 2:
                wait = min(wait, ticks_diff(next_ping, now))
            wait = max(0, min(wait, 1000))
            r, _, _ = select.select([sock], [], [], wait / 1000.0)
            now = ticks_ms()
            if not r:
                client.on_timer(now)
                continue
            try:
                n, src = sock.recvfrom_into(rxbuf)
            except OSError:
                continue
            ev = client.on_datagram(rxbuf, n, socket.inet_aton(src[0]), src[1], now)
            if ev == EV_ECHO_REPLY:
                replies += 1
                seq = client.ev_seq
                rtt = ticks_diff(now, sent_at.get(seq, now))
                src6 = addr.format_ipv6(client.rx, client.ev_src)
                emit({"ping_reply": src6, "seq": seq, "rtt_ms": rtt})
                log("reply from %s: seq=%d time=%d ms" % (src6, seq, rtt))
            elif ev == EV_UDP:
                log("UDP from [%s]:%d to port %d, %d bytes" % (
                    addr.format_ipv6(client.rx, client.ev_src), client.ev_sport, client.ev_dport,
                    client.ev_len))
            if ticks_diff(now, client.next_deadline()) >= 0:
                client.on_timer(now)
    except _Stop:
        log("stopping")
        return 0
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
        sock.close()
