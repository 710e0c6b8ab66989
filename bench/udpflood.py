"""A windowed UDP echo load from a real Linux socket, run inside a lab
namespace: keeps WINDOW datagrams in flight to [ADDR]:PORT until COUNT were
sent or DEADLINE seconds passed, and prints one JSON line: sent, echoed,
echoes per second.  Bounded in count and in time.

    python udpflood.py ADDR PORT [--count N] [--window W] [--size B] [--deadline S]
"""
import argparse
import json
import select
import socket
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--deadline", type=float, default=30.0)
    p.add_argument("--stall", type=float, default=0.2, help="resend a window after this long without an echo")
    a = p.parse_args()
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.connect((a.addr, a.port))
    s.setblocking(False)
    po = select.poll()
    po.register(s, select.POLLIN)
    payload = bytes(a.size)
    sent = echoed = 0
    inflight = 0
    t0 = time.monotonic()
    end = t0 + a.deadline
    last = t0
    while time.monotonic() < end and (sent < a.count or inflight > 0):
        while inflight < a.window and sent < a.count:
            try:
                s.send(payload)
            except (BlockingIOError, ConnectionRefusedError):
                break
            sent += 1
            inflight += 1
        if po.poll(int(a.stall * 1000)):
            while True:
                try:
                    s.recv(2048)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                echoed += 1
                inflight = max(0, inflight - 1)
                last = time.monotonic()
        elif time.monotonic() - last > a.stall:
            if sent >= a.count:
                break
            inflight = 0  # the window's datagrams were lost: send a new window
            last = time.monotonic()
    dt = max(last - t0, 1e-6)
    print(json.dumps({"sent": sent, "echoed": echoed, "seconds": round(dt, 3),
                      "echoes_per_s": round(echoed / dt, 1)}))


if __name__ == "__main__":
    main()
