"""A SYN flood from spoofed IPv6 sources against the host build serving
examples/http_status.py: 200 SYNs to port 80 of our Teredo address from the
IPv6-only host, through the miredo relay, each from a random 2001:db8:X::Y
(tests/lab/synflood.py: a raw IPv6 socket, headers built by hand; 100 per
second).  None of the sources answers, so every SYN leaves a half-open
connection whose SYN,ACK waits on a connectivity test that never succeeds.
Afterwards the client still serves, and its TCP held no more connections than
it has slots and no more half-open ones than the listener's backlog.  Root only.
"""
import json
import os
import sys
import time

import pytest

from tcputil import HTTP, ROOT, blob_sha, curl, file_sha, start_app, status_json
from teredo import tcp

pytestmark = pytest.mark.lab

SYNFLOOD = os.path.join(ROOT, "tests", "lab", "synflood.py")
COUNT = 200
BACKLOG = 2  # examples/http_status.py's listener
SLOTS = [d[1] for d in tcp.DEFAULTS if d[0] == "slots"][0]
MAX_PEERS = 8  # teredo.client's default peer list


def evictions(cnt):
    return cnt["evicted"] + cnt["syn_dropped"]


def test_spoofed_syn_flood_leaves_the_client_serving(lab, tmp_path):
    c, address = start_app(lab, HTTP, "http-synflood.log")
    try:
        before = status_json(lab, address, tmp_path, "before.json")  # also sets up the relay's path
        r = lab.run("v6h", [sys.executable, SYNFLOOD, address, "80", "--count", str(COUNT), "--rate", "100",
                            "--seed", "12", "--max-seconds", "20"], timeout=40)
        assert r.returncode == 0, r.stdout + r.stderr
        flood = json.loads(r.stdout.strip().splitlines()[-1])
        assert flood["sent"] == COUNT and flood["sources"] == COUNT, flood
        t0 = time.monotonic()
        after = status_json(lab, address, tmp_path, "after.json", timeout=60)
        dt = time.monotonic() - t0
        blob = str(tmp_path / "blob")
        r = curl(lab, "v6h", "http://[%s]/blob?bytes=100000" % address, blob, timeout=60)
        alive = c.proc.poll() is None
    finally:
        c.stop()
    t0c, t1c = before["tcp"]["counters"], after["tcp"]["counters"]
    conns = after["tcp"]["connections"]
    half = [x for x in conns if x["state"] == "SYN-RECEIVED"]
    print("after %d spoofed SYNs: /status.json in %.2f s; %d connections (%d half-open); +%d segments in, "
          "+%d evicted, +%d SYNs dropped; %d peers; drops %s"
          % (flood["sent"], dt, len(conns), len(half), t1c["rx"] - t0c["rx"], t1c["evicted"] - t0c["evicted"],
             t1c["syn_dropped"] - t0c["syn_dropped"], after["peers"], after["drops"]))
    assert alive and after["state"] == "qualified" and after["address"] == address
    # the SYNs reached our TCP (the relay forwarded them) ...
    assert t1c["rx"] - t0c["rx"] >= COUNT * 9 // 10, (t0c, t1c)
    # ... and each one took the oldest half-open slot or was refused one;
    # nothing else was evicted (the status request's own SYN may take one)
    assert COUNT * 9 // 10 - BACKLOG <= evictions(t1c) - evictions(t0c) <= COUNT + 1, (t0c, t1c)
    assert len(conns) <= SLOTS and len(half) <= BACKLOG, conns
    assert after["peers"] <= MAX_PEERS
    # still serving: a blob after the flood, byte for byte
    assert r.stdout == "200 100000", r.stdout + r.stderr
    assert file_sha(blob) == blob_sha(100000)
