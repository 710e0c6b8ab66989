"""An interactive TCP session over real Linux sockets, run inside a lab
namespace: `serve` answers each line with the line upper-cased until "bye";
`chat` sends N lines one at a time, waiting for each answer before the
next, and prints one JSON line (lines answered, round trips).  `sink`
counts what it receives until EOF; `source` sends N bytes; both print one
JSON line with the byte count and seconds (the tunnel bench).  Every wait
is bounded (--timeout).

    python tcpchat.py serve ADDR PORT [--ready FILE]
    python tcpchat.py chat ADDR PORT [--lines N]
    python tcpchat.py sink ADDR PORT [--ready FILE]
    python tcpchat.py source ADDR PORT --bytes N
"""
import argparse
import json
import socket
import time


def listener(a):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.addr, a.port))
    s.listen(1)
    s.settimeout(a.timeout)
    if a.ready:
        open(a.ready, "w").close()
    c, peer = s.accept()
    c.settimeout(a.timeout)
    s.close()
    return c, peer


def serve(a):
    c, peer = listener(a)
    f = c.makefile("rwb")
    n = 0
    for line in f:
        if line.strip() == b"bye":
            break
        f.write(line.upper())
        f.flush()
        n += 1
    c.close()
    print(json.dumps({"served": n, "peer": peer[0]}), flush=True)


def chat(a):
    c = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    f = c.makefile("rwb")
    rtts = []
    ok = 0
    for i in range(a.lines):
        msg = b"line %d from %s\n" % (i, c.getsockname()[0].encode())
        t0 = time.monotonic()
        f.write(msg)
        f.flush()
        back = f.readline()
        rtts.append(round((time.monotonic() - t0) * 1000, 2))
        if back == msg.upper():
            ok += 1
        time.sleep(0.1)  # a person typing, not a stream
    f.write(b"bye\n")
    f.flush()
    c.close()
    print(json.dumps({"answered": ok, "lines": a.lines, "rtt_ms": rtts}), flush=True)


def sink(a):
    c, peer = listener(a)
    buf = bytearray(65536)
    n = 0
    t0 = None
    while True:
        k = c.recv_into(buf)
        if t0 is None:
            t0 = time.monotonic()
        if not k:
            break
        n += k
    dt = time.monotonic() - (t0 or time.monotonic())
    c.close()
    print(json.dumps({"bytes": n, "seconds": round(dt, 3)}), flush=True)


def source(a):
    c = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    block = bytes(65536)
    t0 = time.monotonic()
    left = a.bytes
    while left > 0:
        k = c.send(block[:min(left, len(block))])
        left -= k
    c.shutdown(socket.SHUT_WR)
    c.recv(1)  # the peer's close: everything was received
    dt = time.monotonic() - t0
    c.close()
    print(json.dumps({"bytes": a.bytes, "seconds": round(dt, 3)}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("serve", "chat", "sink", "source"))
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--lines", type=int, default=5)
    p.add_argument("--bytes", type=int, default=1000000)
    p.add_argument("--ready", help="file created once listening")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    {"serve": serve, "chat": chat, "sink": sink, "source": source}[a.mode](a)


if __name__ == "__main__":
    main()
