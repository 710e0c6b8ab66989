"""A Linux TCP peer for the active-open tests, run in a lab namespace: listens
on [::]:PORT, takes --conns connections one after the other, and on each
both at once sends --send bytes of the pattern byte i = (7*i + 3) % 256 and
reads --recv bytes; then closes it and prints one JSON line: bytes received,
their sha256, bytes sent, seconds, the peer's address.  Every wait is bounded
(--timeout for each accept and each exchange).

    python tcppeer.py PORT --send N --recv N [--conns K] [--timeout S]
"""
import argparse
import hashlib
import json
import socket
import threading
import time


def pattern(off, n):
    return bytes((7 * i + 3) & 0xFF for i in range(off, off + n))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--send", type=int, default=0)
    ap.add_argument("--recv", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--conns", type=int, default=1)
    a = ap.parse_args(argv)
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("::", a.port))
    ls.listen(1)
    print(json.dumps({"listening": a.port}), flush=True)
    ls.settimeout(a.timeout)
    for _ in range(max(1, min(a.conns, 100))):
        out = serve_one(ls, a)
        print(json.dumps(out), flush=True)
        if out["error"] == "no connection":
            return 1
    return 0


def serve_one(ls, a):
    out = {"received": 0, "sha256": None, "sent": 0, "peer": None, "error": None}
    try:
        c, peer = ls.accept()
    except socket.timeout:
        out["error"] = "no connection"
        return out
    out["peer"] = peer[0]
    t0 = time.monotonic()
    end = t0 + a.timeout
    c.settimeout(a.timeout)
    h = hashlib.sha256()
    sent = [0]
    failed = []

    def sender():
        try:
            n = a.send
            while sent[0] < n and time.monotonic() < end:
                k = min(16384, n - sent[0])
                c.sendall(pattern(sent[0], k))
                sent[0] += k
        except OSError as e:
            failed.append("send: %s" % e)

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    try:
        while out["received"] < a.recv and time.monotonic() < end:
            d = c.recv(min(65536, a.recv - out["received"]))
            if not d:
                break
            h.update(d)
            out["received"] += len(d)
    except OSError as e:
        failed.append("recv: %s" % e)
    th.join(max(0.0, end - time.monotonic()))
    out["sha256"] = h.hexdigest()
    out["sent"] = sent[0]
    out["seconds"] = round(time.monotonic() - t0, 2)
    out["error"] = "; ".join(failed) or None
    c.close()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
