"""Helpers of the TCP lab tests (host build, `teredoctl client --app`): the
web app's client, curl in a namespace, the blob's checksum, /status.json."""
import hashlib
import json
import os
import re
import statistics
import sys

import lab as L
from ourclient import OurClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTP = os.path.join(ROOT, "examples", "http_status.py")


def app_state(o):
    a = o.get("app") if "state" in o else None  # status lines; events carry the app's name
    return a.get("state") if isinstance(a, dict) else None


def start_app(lab, app, log, timeout=20):
    """(OurClient, our Teredo address) once the app runs; the caller stops it."""
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--app", app, log=log)
    try:
        st = c.wait_for(lambda o: app_state(o) == "running", timeout, "the app running")
    except BaseException:
        c.stop()
        raise
    return c, st["address"]


def write_app(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def blob_sha(n):
    """sha256 of examples/http_status.py's /blob?bytes=n (byte i is i % 256)."""
    return hashlib.sha256(bytes(i & 0xFF for i in range(n))).hexdigest()


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def curl(lab, ns, url, out, timeout=120):
    """curl -6 url into out; stdout is "<code> <bytes>"."""
    return lab.run(ns, ["curl", "-6", "-sS", "--max-time", str(timeout), "-o", out,
                        "-w", "%{http_code} %{size_download}", url], timeout=timeout + 10)


def status_json(lab, address, tmp_path, name="status.json", timeout=60):
    """GET /status.json from the IPv6-only host: the client's status()."""
    out = str(tmp_path / name)
    r = curl(lab, "v6h", "http://[%s]/status.json" % address, out, timeout)
    assert r.stdout.startswith("200 "), r.stdout + r.stderr
    with open(out) as f:
        return json.load(f)


def ping_rtts(lab, address, count=10, ns="v6h"):
    """RTTs (ms) of `ping -6` from ns to address (lost ones left out)."""
    r = lab.run(ns, ["ping", "-6", "-n", "-c", str(count), "-i", "0.2", "-W", "3", address],
                timeout=20 + count)
    return [float(x) for x in re.findall(r"time=([0-9.]+) ms", r.stdout)]


def median(xs):
    return statistics.median(xs) if xs else float("inf")


TCPPEER = os.path.join(ROOT, "tests", "lab", "tcppeer.py")


def start_peer(lab, port, send, recv, timeout=120, conns=1, ns="v6h"):
    """tests/lab/tcppeer.py listening in ns (a Popen, once it listens)."""
    import select
    p = lab.popen(ns, [sys.executable, TCPPEER, str(port), "--send", str(send), "--recv", str(recv),
                       "--timeout", str(timeout), "--conns", str(conns)], stdout=-1, text=True)
    r, _, _ = select.select([p.stdout], [], [], 10)
    line = p.stdout.readline() if r else ""
    if '"listening"' not in line:
        lab.stop_process(p)
        raise AssertionError("tcppeer.py did not start listening: %r" % line)
    return p


def peer_results(lab, p, timeout):
    """The peer's JSON lines, one per connection (bounded wait; the peer is
    stopped after it)."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except Exception:  # noqa: BLE001 (a timeout: stop it, report nothing)
        out = ""
    lab.stop_process(p)
    return [json.loads(x) for x in (out or "").splitlines() if x.startswith("{") and '"listening"' not in x]
