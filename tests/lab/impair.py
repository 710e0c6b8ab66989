"""Link impairments for the lab without netem (this kernel has no sch_netem):
iptables-nft rules in a namespace plus a small NFQUEUE consumer that delays.

- loss:        ``-m statistic --mode random --probability P -j DROP``
- duplication: ``-m statistic ... -j TEE --gateway IP`` (the clone is routed to
               IP; toward the packet's own destination it is a second copy)
- delay:       ``-j NFQUEUE --queue-num N --queue-bypass`` and this script as
               the queue's consumer: every packet is held D ms +- J ms
               (uniform) before its NF_ACCEPT verdict.  Verdicts are given in
               order of due time, not of arrival, so jitter also reorders.
               --queue-bypass: with no consumer bound the packets pass
               undelayed, so the path never depends on this process living.

The consumer speaks nfnetlink_queue itself (no libnetfilter_queue): a
NETLINK_NETFILTER socket, NFQNL_MSG_CONFIG (bind the queue, copy mode META:
only the packet's id and headers come up, never its bytes), NFQNL_MSG_PACKET
in, NFQNL_MSG_VERDICT out.  It is bounded in time: it exits after
--max-seconds, on SIGTERM or SIGINT, and before exiting it accepts everything
still held (the kernel would drop what a closing queue holds).  It prints one
line "ready" once bound and one JSON line of counts at the end.

    python impair.py --queue 7 --delay-ms 100 --jitter-ms 20 --max-seconds 300

As a library (the tests): Impairment(lab, ns, ...) installs the rules in a
namespace and runs the consumer there; .stop() removes both and returns the
consumer's counts.
"""
import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1   # a full queue accepts rather than drops
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_ACCEPT = 1
QUEUE_MAXLEN = 4096


def _attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def _msg(msg, queue, attrs, flags=NLM_F_REQUEST, seq=0, family=socket.AF_UNSPEC):
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + b"".join(attrs)  # nfgenmsg
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def _messages(data):
    """(type, payload after nlmsghdr) for each netlink message in data."""
    o = 0
    while o + 16 <= len(data):
        n, kind = struct.unpack_from("=IH", data, o)
        if n < 16 or o + n > len(data):
            return
        yield kind, data[o + 16:o + n]
        o += (n + 3) & ~3


def _attrs(payload):
    """{type: bytes} of the attributes after the 4-byte nfgenmsg."""
    out = {}
    o = 4
    while o + 4 <= len(payload):
        n, kind = struct.unpack_from("=HH", payload, o)
        if n < 4:
            break
        out[kind & 0x7FFF] = payload[o + 4:o + n]
        o += (n + 3) & ~3
    return out


class Queue:
    """One bound nfnetlink queue."""

    def __init__(self, num):
        self.num = num
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.seq = 0
        self._config(_attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)),
                     _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", QUEUE_MAXLEN)),
                     _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)),
                     _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)))

    def _config(self, *attrs):
        """Send a config message and wait (bounded) for its ACK; OSError on error."""
        self.seq += 1
        self.sock.send(_msg(NFQNL_MSG_CONFIG, self.num, attrs, NLM_F_REQUEST | NLM_F_ACK, self.seq,
                            socket.AF_INET))
        end = time.monotonic() + 5
        while time.monotonic() < end:
            r, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            for kind, p in _messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    err = struct.unpack_from("=i", p, 0)[0]
                    if err:
                        raise OSError(-err, "nfqueue config: %s" % os.strerror(-err))
                    return
        raise OSError("nfqueue config: no answer from the kernel")

    def packets(self):
        """Packet ids now waiting in the socket (non-blocking)."""
        ids = []
        while True:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return ids
            except OSError:  # ENOBUFS: we fell behind; fail-open keeps the path up
                return ids
            for kind, p in _messages(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    h = _attrs(p).get(NFQA_PACKET_HDR)
                    if h is not None and len(h) >= 4:
                        ids.append(struct.unpack(">I", h[:4])[0])

    def accept(self, pid):
        self.sock.send(_msg(NFQNL_MSG_VERDICT, self.num,
                            [_attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, pid))]))

    def close(self):
        try:
            self._config(_attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)))
        except OSError:
            pass
        self.sock.close()


def serve(num, delay_ms, jitter_ms, max_seconds, seed=None):
    """Hold each packet of queue num for delay_ms +- jitter_ms, until
    max_seconds or a signal; returns the counts."""
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.append(1))
    rnd = random.Random(seed)
    q = Queue(num)
    print("ready", flush=True)
    held = []  # (due, arrival order, id)
    counts = {"packets": 0, "accepted": 0, "reordered": 0, "max_held": 0, "delay_ms": delay_ms,
              "jitter_ms": jitter_ms}
    order = 0
    last_released = -1
    end = time.monotonic() + max_seconds
    try:
        while not stop and time.monotonic() < end:
            now = time.monotonic()
            wait = min(end - now, 0.1)  # a signal does not end select (PEP 475): look again soon
            if held:
                wait = min(wait, held[0][0] - now)
            if wait > 0:
                select.select([q.sock], [], [], wait)
            now = time.monotonic()
            for pid in q.packets():
                d = delay_ms + (rnd.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0)
                heapq.heappush(held, (now + max(0.0, d) / 1000.0, order, pid))
                order += 1
                counts["packets"] += 1
            if len(held) > counts["max_held"]:
                counts["max_held"] = len(held)
            while held and held[0][0] <= now:
                _, k, pid = heapq.heappop(held)
                if k < last_released:
                    counts["reordered"] += 1  # released before one that came earlier
                last_released = max(last_released, k)
                q.accept(pid)
                counts["accepted"] += 1
    finally:
        for _, _, pid in held:  # nothing held is lost when we stop
            q.accept(pid)
            counts["accepted"] += 1
        q.close()
    return counts


# ---- the tests' side: rules + consumer in a lab namespace -------------------------

class Impairment:
    """Loss, duplication and delay on the UDP between a namespace's address
    and one remote IPv4 address (both directions), made with iptables in
    namespace ns and this script as the NFQUEUE consumer there.

        imp = Impairment(lab, "rly", iface="eth0", remote=NAT1_WAN, local=RELAY_IP,
                         loss=0.05, dup=0.02, delay_ms=100, jitter_ms=20)
        ... ; counts = imp.stop()

    loss and dup are probabilities per packet and per direction.  Outbound
    copies are made with TEE toward the remote address itself; inbound copies
    with TEE toward the namespace's own address (the clone comes back in
    over the loopback, addressed as the original).  Each copy then meets
    the loss and delay rules on its own.
    """

    def __init__(self, lab, ns, iface, remote, local, loss=0.0, dup=0.0, delay_ms=0, jitter_ms=0,
                 queue=7, max_seconds=600, log="impair.log"):
        self.lab, self.ns, self.log = lab, ns, log
        self.proc = None
        self.errf = None
        self.rules = []
        ipt = ["iptables", "-w", "5"]
        sel_in = ["-p", "udp", "-s", remote]  # no -i: the inbound TEE clone comes in over lo
        sel_out = ["-o", iface, "-p", "udp", "-d", remote]
        rnd = ["-m", "statistic", "--mode", "random", "--probability"]
        try:
            if delay_ms or jitter_ms:
                self.errf = open(lab.path(log), "w")
                self.proc = lab.popen(ns, [sys.executable, os.path.abspath(__file__), "--queue", str(queue),
                                           "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                                           "--max-seconds", str(max_seconds)],
                                      stdout=-1, stderr=self.errf, text=True)
                line = _readline(self.proc, 10)
                if line.strip() != "ready":
                    raise RuntimeError("impair.py did not start: %r; %s" % (line, lab.log_tail(log)))
            add = []
            if dup:
                tee = ["-j", "TEE", "--gateway"]
                add.append(["-t", "mangle", "-A", "PREROUTING", "-i", iface] + sel_in + rnd + [str(dup)] + tee
                           + [local])
                add.append(["-t", "mangle", "-A", "OUTPUT"] + sel_out + rnd + [str(dup)] + tee + [remote])
            if loss:
                add.append(["-A", "INPUT"] + sel_in + rnd + [str(loss), "-j", "DROP"])
                add.append(["-A", "OUTPUT"] + sel_out + rnd + [str(loss), "-j", "DROP"])
            if self.proc is not None:
                q = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
                add.append(["-A", "INPUT"] + sel_in + q)
                add.append(["-A", "OUTPUT"] + sel_out + q)
            for r in add:
                lab.run(ns, ipt + r, check=True)
                self.rules.append(r)
        except BaseException:
            self.stop()
            raise

    def counters(self):
        """iptables -L -v -x of the namespace (packet counts per rule), as text."""
        return "".join(self.lab.run(self.ns, ["iptables", "-w", "5", "-t", t, "-L", "-v", "-x", "-n"]).stdout
                       for t in ("mangle", "filter"))

    def packets(self, target):
        """Packets that met our rules with this target (DROP, TEE, NFQUEUE) so far."""
        n = 0
        for line in self.counters().splitlines():
            w = line.split()
            if len(w) > 2 and w[0].isdigit() and w[2] == target:
                n += int(w[0])
        return n

    def stop(self):
        """Remove the rules, stop the consumer; its counts (or {})."""
        for r in reversed(self.rules):
            d = list(r)
            d[d.index("-A")] = "-D"
            self.lab.run(self.ns, ["iptables", "-w", "5"] + d)
        self.rules = []
        out = {}
        if self.proc is not None:
            p, self.proc = self.proc, None
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                text, _ = p.communicate(timeout=10)
            except Exception:  # noqa: BLE001 (bounded: kill it)
                self.lab.stop_process(p)
                text = ""
            self.lab._forget(p)
            for line in (text or "").splitlines():
                if line.startswith("{"):
                    out = json.loads(line)
        if self.errf is not None:
            self.errf.close()
            self.errf = None
        return out

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def _readline(p, timeout):
    """One line of p's stdout within timeout seconds ("" if none)."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline() if r else ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queue", type=int, default=7)
    ap.add_argument("--delay-ms", type=float, default=100)
    ap.add_argument("--jitter-ms", type=float, default=0)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--seed", type=int)
    a = ap.parse_args(argv)
    if a.jitter_ms > a.delay_ms:
        ap.error("--jitter-ms must not exceed --delay-ms")
    counts = serve(a.queue, a.delay_ms, a.jitter_ms, min(a.max_seconds, 3600), a.seed)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
