"""The host build as an IPv6 tunnel (`teredoctl client --tun`, cli1) against
miredo's client (cli2) in one lab run, each behind its own NAT, on the same
path to the IPv6-only host through the same miredo relay: qualification
time, ping flood rate, TCP goodput both ways (a fixed-size transfer: curl
from a web server on the IPv6-only host, and a Python socket to a sink
there), and client CPU per MB.  Root only; every wait is bounded and the
lab tears itself down on any failure.

    python bench/tunbench.py [--mb 20] [--rounds 3] [--json FILE]
"""
import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
sys.path.insert(0, ROOT)
import lab as L  # noqa: E402
from ourclient import OurClient  # noqa: E402

CHAT = os.path.join(ROOT, "tests", "lab", "tcpchat.py")
HZ = os.sysconf("SC_CLK_TCK")
WEB_PORT = 8090
SINK_PORT = 8091


def progress(msg):
    print("tunbench: " + msg, file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2.0


def cpu_s(pids):
    """User + system CPU seconds of these processes so far."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / HZ


def ns_pids(lab, name, comm):
    r = L._sh(["ip", "netns", "pids", lab.ns(name)], check=False)
    out = []
    for p in r.stdout.split():
        try:
            with open("/proc/%s/comm" % p) as f:
                if f.read().strip() == comm:
                    out.append(int(p))
        except OSError:
            pass
    return out


def teredo_addr(lab, ns):
    r = lab.run(ns, ["ip", "-j", "-6", "addr", "show", "dev", "teredo", "scope", "global"])
    try:
        for i in json.loads(r.stdout or "[]"):
            for a in i.get("addr_info", []):
                if a["local"].startswith("2001:0:"):
                    return a["local"]
    except ValueError:
        pass
    return None


def wait_addr(lab, ns, t0, timeout=30):
    while time.monotonic() - t0 < timeout:
        a = teredo_addr(lab, ns)
        if a:
            return a, time.monotonic() - t0
        time.sleep(0.02)
    raise RuntimeError("no Teredo address on %s/teredo within %d s" % (ns, timeout))


def kernel_counters(lab, ns):
    """What the kernel saw in a namespace so far: TCP retransmissions, UDP
    datagrams lost to a full receive buffer, packets the tun dropped."""
    out = {}
    r = lab.run(ns, ["nstat", "-az", "TcpRetransSegs", "UdpRcvbufErrors"])
    for line in r.stdout.splitlines():
        w = line.split()
        if len(w) >= 2 and w[1].isdigit():
            out[w[0]] = int(w[1])
    try:
        st = json.loads(lab.run(ns, ["ip", "-j", "-s", "link", "show", "dev", "teredo"]).stdout)[0]["stats64"]
        out["tun_rx_dropped"] = st["rx"]["dropped"]
        out["tun_tx_dropped"] = st["tx"]["dropped"]
    except (ValueError, IndexError, KeyError):
        pass
    return out


class Ours:
    name = "ours"
    ns = "cli1"

    def __init__(self, lab):
        self.lab = lab
        self.c = None
        self.protocol_s = []  # first RS out -> address and routes on the interface

    def start(self):
        t0 = time.monotonic()
        self.c = OurClient(self.lab, self.ns, "--server", L.SERVER_IP, "--tun", "--default-route",
                           log="tunbench-ours.log")
        # the first status line comes once the tun is up and the first RS is out
        self.c.wait_for(lambda o: "state" in o, 20, "the first status line")
        t1 = time.monotonic()
        self.c.wait_for(lambda o: (o.get("tun") or {}).get("state") == "active", 20, "active")
        self.protocol_s.append(time.monotonic() - t1)
        return wait_addr(self.lab, self.ns, t0)

    def stop(self):
        if self.c is not None:
            self.c.stop()
            self.c = None
        end = time.monotonic() + 5
        while time.monotonic() < end and teredo_addr(self.lab, self.ns):
            time.sleep(0.05)

    def pids(self):
        return [self.c.proc.pid]


class Miredo:
    name = "miredo"
    ns = "cli2"

    def __init__(self, lab):
        self.lab = lab

    def start(self):
        t0 = time.monotonic()
        self.lab.start_peer_client()
        return wait_addr(self.lab, self.ns, t0)

    def stop(self):
        self.lab.stop_peer_client()

    def pids(self):
        return ns_pids(self.lab, self.ns, "miredo")


def ping_flood(lab, cl, size, count):
    pids = cl.pids()
    c0 = cpu_s(pids)
    r = lab.run(cl.ns, ["ping", "-6", "-f", "-q", "-c", str(count), "-s", str(size), "-W", "1", L.V6HOST],
                timeout=120)
    cpu = cpu_s(pids) - c0
    m = re.search(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms", r.stdout)
    if not m:
        raise RuntimeError("ping -f: %s %s" % (r.stdout, r.stderr))
    sent, got, ms = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return {"size": size, "sent": sent, "received": got, "ms": ms,
            "pps": round(got * 1000.0 / ms) if ms else None,
            "cpu_us_per_echo": round(cpu * 1e6 / got, 1) if got else None}


def download(lab, cl, nbytes):
    pids = cl.pids()
    c0 = cpu_s(pids)
    r = lab.run(cl.ns, ["curl", "-6", "-sS", "--max-time", "120", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download} %{time_total}",
                        "http://[%s]:%d/blob" % (L.V6HOST, WEB_PORT)], timeout=130)
    cpu = cpu_s(pids) - c0
    code, size, t = r.stdout.split()
    if code != "200" or int(size) != nbytes:
        raise RuntimeError("download: %s %s" % (r.stdout, r.stderr))
    return {"MBps": round(nbytes / float(t) / 1e6, 2), "s": float(t),
            "cpu_s_per_MB": round(cpu / (nbytes / 1e6), 4)}


def upload(lab, cl, nbytes):
    ready = lab.path("sink.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    sink = lab.popen("v6h", [sys.executable, CHAT, "sink", "::", str(SINK_PORT), "--ready", ready],
                     stdout=-1, stderr=-1, text=True)
    end = time.monotonic() + 10
    while not os.path.exists(ready):
        if time.monotonic() > end:
            raise RuntimeError("the sink did not start")
        time.sleep(0.05)
    pids = cl.pids()
    c0 = cpu_s(pids)
    r = lab.run(cl.ns, [sys.executable, CHAT, "source", L.V6HOST, str(SINK_PORT), "--bytes", str(nbytes),
                        "--timeout", "60"], timeout=130)
    cpu = cpu_s(pids) - c0
    out, _ = sink.communicate(timeout=30)
    got = json.loads(out)
    sent = json.loads(r.stdout)
    if got["bytes"] != nbytes:
        raise RuntimeError("upload: sink got %s" % got)
    return {"MBps": round(nbytes / sent["seconds"] / 1e6, 2), "s": sent["seconds"],
            "cpu_s_per_MB": round(cpu / (nbytes / 1e6), 4)}


def run(mb, rounds):
    nbytes = mb * 1000000
    res = {"mb": mb, "rounds": rounds, "clients": {}}
    with L.Lab(nat1="restricted", nat2="restricted", peer_client=False, capture=False) as lab:
        webdir = lab.path("web")
        os.makedirs(webdir, exist_ok=True)
        with open(os.path.join(webdir, "blob"), "wb") as f:
            f.write(bytes(nbytes))
        lab.popen("v6h", [sys.executable, "-m", "http.server", "--bind", "::", str(WEB_PORT),
                          "--directory", webdir], log="tunbench-web.log")
        for cl in (Ours(lab), Miredo(lab)):
            rly0 = kernel_counters(lab, "rly")
            progress("%s: qualification x%d" % (cl.name, rounds))
            quals = []
            for _ in range(rounds):
                a, t = cl.start()
                quals.append(t)
                cl.stop()
            a, t = cl.start()
            quals.append(t)
            r = {"address": a, "qualify_s": round(median(quals), 3),
                 "qualify_runs": [round(q, 3) for q in quals]}
            if isinstance(cl, Ours):
                r["qualify_protocol_s"] = round(median(cl.protocol_s), 3)
            # warm up: the relay's connectivity test, the peer entry
            lab.run(cl.ns, ["ping", "-6", "-c", "2", "-i", "0.2", L.V6HOST], timeout=10)
            progress("%s: ping flood" % cl.name)
            r["ping_flood_56"] = ping_flood(lab, cl, 56, 5000)
            r["ping_flood_1232"] = ping_flood(lab, cl, 1232, 2000)
            progress("%s: %d MB down x%d" % (cl.name, mb, rounds))
            downs = [download(lab, cl, nbytes) for _ in range(rounds)]
            progress("%s: %d MB up x%d" % (cl.name, mb, rounds))
            ups = [upload(lab, cl, nbytes) for _ in range(rounds)]
            for k, runs in (("download", downs), ("upload", ups)):
                r[k] = {"MBps": median([x["MBps"] for x in runs]),
                        "cpu_s_per_MB": median([x["cpu_s_per_MB"] for x in runs]),
                        "runs": runs}
            r["kernel"] = kernel_counters(lab, cl.ns)
            rly = kernel_counters(lab, "rly")
            r["relay_UdpRcvbufErrors"] = rly.get("UdpRcvbufErrors", 0) - rly0.get("UdpRcvbufErrors", 0)
            cl.stop()
            res["clients"][cl.name] = r
            progress("%s: %s" % (cl.name, json.dumps({k: v for k, v in r.items() if k != "qualify_runs"})))
    o, m = res["clients"]["ours"], res["clients"]["miredo"]

    def ratio(a, b):
        return round(a / b, 2) if a and b else None
    res["ratios_ours_over_miredo"] = {
        "qualify_s": ratio(o["qualify_s"], m["qualify_s"]),
        "ping_flood_56_pps": ratio(o["ping_flood_56"]["pps"], m["ping_flood_56"]["pps"]),
        "ping_flood_1232_pps": ratio(o["ping_flood_1232"]["pps"], m["ping_flood_1232"]["pps"]),
        "download_MBps": ratio(o["download"]["MBps"], m["download"]["MBps"]),
        "upload_MBps": ratio(o["upload"]["MBps"], m["upload"]["MBps"]),
        "download_cpu_s_per_MB": ratio(o["download"]["cpu_s_per_MB"], m["download"]["cpu_s_per_MB"]),
        "upload_cpu_s_per_MB": ratio(o["upload"]["cpu_s_per_MB"], m["upload"]["cpu_s_per_MB"]),
    }
    return res


def table(res):
    o, m, q = res["clients"]["ours"], res["clients"]["miredo"], res["ratios_ours_over_miredo"]
    rows = [
        ("qualification (s, median)", o["qualify_s"], m["qualify_s"], q["qualify_s"]),
        ("ping -f, 56 B (replies/s)", o["ping_flood_56"]["pps"], m["ping_flood_56"]["pps"],
         q["ping_flood_56_pps"]),
        ("ping -f, 1232 B (replies/s)", o["ping_flood_1232"]["pps"], m["ping_flood_1232"]["pps"],
         q["ping_flood_1232_pps"]),
        ("TCP download %d MB (MB/s)" % res["mb"], o["download"]["MBps"], m["download"]["MBps"],
         q["download_MBps"]),
        ("TCP upload %d MB (MB/s)" % res["mb"], o["upload"]["MBps"], m["upload"]["MBps"], q["upload_MBps"]),
        ("client CPU per MB down (s)", o["download"]["cpu_s_per_MB"], m["download"]["cpu_s_per_MB"],
         q["download_cpu_s_per_MB"]),
        ("client CPU per MB up (s)", o["upload"]["cpu_s_per_MB"], m["upload"]["cpu_s_per_MB"],
         q["upload_cpu_s_per_MB"]),
    ]
    out = ["| | ours (--tun) | miredo | ours / miredo |", "|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %s | %s | %s |" % r)
    out.append("")
    out.append("ours: first RS out -> address and routes on the interface: %s s (median); the rest "
               "of the qualification time above is Python starting and the tun being made"
               % o["qualify_protocol_s"])
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    why = L.require_root_and_tools()
    if why:
        print("tunbench: %s" % why, file=sys.stderr)
        return 2
    res = run(a.mb, a.rounds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
    print(json.dumps(res["ratios_ours_over_miredo"], sort_keys=True))
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
