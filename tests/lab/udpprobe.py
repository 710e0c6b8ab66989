"""A real Linux UDP socket, run inside a lab namespace: sends datagrams to
[ADDR]:PORT on a connected socket and reports what came back, as one JSON
line.  Every wait is bounded (--timeout per datagram).

    python udpprobe.py ADDR PORT [--count N] [--size B] [--timeout S]
"""
import argparse
import json
import socket
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--tries", type=int, default=3, help="sends of each datagram before giving up")
    a = p.parse_args()
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.addr, a.port))
    out = {"sent": 0, "echoed": 0, "mismatch": 0, "errors": [], "rtt_ms": []}
    for i in range(a.count):
        payload = bytes((i * 7 + k) & 0xFF for k in range(a.size))
        for _ in range(a.tries):  # the first datagram may wait for the path (bubbles)
            out["sent"] += 1
            t0 = time.monotonic()
            try:
                s.send(payload)
                data = s.recv(2048)
            except socket.timeout:
                continue
            except OSError as e:
                out["errors"].append(e.strerror or str(e))
                break
            out["rtt_ms"].append(round((time.monotonic() - t0) * 1000, 2))
            if data == payload:
                out["echoed"] += 1
            else:
                out["mismatch"] += 1
            break
    print(json.dumps(out))


if __name__ == "__main__":
    main()
