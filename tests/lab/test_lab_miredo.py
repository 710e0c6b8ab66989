"""Proof that the namespace lab works, using Debian's miredo as reference.

Run as root:  /tmp/venvtest/bin/python -m pytest -v tests/lab
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

import lab as L

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_lab_gone(prefix, pids):
    left_ns, left_pids = L.leftovers(prefix, pids)
    assert not left_ns, f"namespaces left after teardown: {left_ns}"
    assert not left_pids, f"processes left after teardown: {left_pids}"


def test_peer_client_qualifies(lab):
    addr = lab.peer_teredo_address(timeout=30)
    assert addr.startswith(L.TEREDO_SERVER_PREFIX + ":"), addr
    d = L.decode_teredo(addr)
    assert d["server"] == L.SERVER_IP
    assert d["client_ip"] == L.NAT2_WAN
    # the mapped port must be the one the NAT really uses towards the server
    ct = lab.run("nat2", ["conntrack", "-L", "-p", "udp", "--orig-dst", L.SERVER_IP,
                          "--orig-port-dst", "3544"]).stdout
    ports = re.findall(r"src=%s dst=%s sport=3544 dport=(\d+)"
                       % (re.escape(L.SERVER_IP), re.escape(L.NAT2_WAN)), ct)
    assert str(d["port"]) in ports, (d, ct)


def _ping(lab, node, dst):
    cp = lab.run(node, ["ping", "-6", "-n", "-c", "3", "-W", "2", dst], timeout=15)
    return cp.returncode, cp.stdout + cp.stderr


def test_v6host_pings_peer_through_relay(lab):
    addr = lab.peer_teredo_address(timeout=30)
    rc, out = _ping(lab, "v6h", addr)
    assert rc == 0, out + "\n" + lab.log_tail("miredo-relay.log")
    assert re.search(r"[1-3] received", out), out


def test_peer_pings_v6host(lab):
    lab.peer_teredo_address(timeout=30)
    rc, out = _ping(lab, "cli2", L.V6HOST)
    assert rc == 0, out + "\n" + lab.log_tail("miredo-peer.log")


def test_relay_capture_shows_teredo_ping(lab):
    addr = lab.peer_teredo_address(timeout=30)
    with lab.capture("rly", "eth0") as cap:
        lab.run("v6h", ["ping", "-6", "-n", "-c", "1", "-W", "2", addr], timeout=10)
    lines = L.teredo_summary(cap.path)
    text = "\n".join(lines)
    assert any("Echo (ping) request" in ln and f"> {L.NAT2_WAN}:" in ln
               for ln in lines), text
    assert any("Echo (ping) reply" in ln and f"> {L.RELAY_IP}:3544" in ln
               for ln in lines), text


def test_server_answers_rs_on_both_addresses(lab):
    # Debian's miredo 1.2.6 client only solicits the primary address, so a
    # tiny stdlib RS probe (one packet per server) exercises the secondary.
    cap = lab.capture("srv", "eth0")
    try:
        res = lab.probe_rs("cli1", servers=(L.SERVER_IP, L.SERVER_IP2))
    finally:
        path = cap.stop()
    for r, srv in zip(res, (L.SERVER_IP, L.SERVER_IP2)):
        assert r["ok"], res
        assert tuple(r["ra_from"]) == (srv, 3544)
        assert tuple(r["mapped"]) == (L.NAT1_WAN, r["local_port"])  # port preserved
        assert r["prefix"] == "2001:0:c633:640a::/64"
    lines = L.teredo_summary(path)
    text = "\n".join(lines)
    for srv in (L.SERVER_IP, L.SERVER_IP2):
        assert any("Router Solicitation" in ln and f"> {srv}:3544" in ln
                   for ln in lines), text
        assert any("Router Advertisement" in ln and f"{srv}:3544 >" in ln
                   and f"[orig={L.NAT1_WAN}:" in ln for ln in lines), text
    # the always-on server capture also holds the miredo peer's qualification
    peer = L.teredo_summary(lab.pcap("srv"))
    assert any("Router Solicitation" in ln and f"{L.NAT2_WAN}:" in ln
               and f"> {L.SERVER_IP}:3544" in ln for ln in peer), "\n".join(peer)


def test_nat_kinds_and_remap(lab):
    try:
        # port-restricted: same mapping for both servers; a cone-flag RS to
        # the primary is answered from the secondary address -> filtered
        lab.set_nat("nat1", "restricted")
        a, b = lab.probe_rs("cli1")
        assert a["ok"] and b["ok"] and a["mapped"] == b["mapped"]
        c, = lab.probe_rs("cli1", servers=(L.SERVER_IP,), cone=True, timeout=1)
        assert not c["ok"], c

        lab.set_nat("nat1", "cone")
        c, = lab.probe_rs("cli1", servers=(L.SERVER_IP,), cone=True)
        assert c["ok"] and tuple(c["ra_from"]) == (L.SERVER_IP2, 3544), c
        assert tuple(c["mapped"]) == (L.NAT1_WAN, c["local_port"])

        lab.set_nat("nat1", "symmetric")
        a, b = lab.probe_rs("cli1")
        assert a["ok"] and b["ok"] and a["mapped"] != b["mapped"], (a, b)

        lab.set_nat("nat1", "restricted")
        assert lab.remap("nat1", "port") == L.NAT1_WAN
        a, b = lab.probe_rs("cli1")
        assert 20000 <= a["mapped"][1] <= 29999 and a["mapped"] == b["mapped"], a
        assert lab.remap("nat1", "address") == L.NAT1_WAN_ALT
        a, = lab.probe_rs("cli1", servers=(L.SERVER_IP,))
        assert a["mapped"][0] == L.NAT1_WAN_ALT, a
        # NAT "reboot": conntrack table empty afterwards
        lab.flush_conntrack("nat1")
        ct = lab.run("nat1", ["conntrack", "-L"]).stdout
        assert "dport=3544" not in ct, ct
    finally:
        lab.remap("nat1", None)
        lab.set_nat("nat1", "restricted")


def test_second_lab_coexists_and_tears_down(lab):
    other = L.Lab(nat1="cone", nat2="symmetric", peer_client=False, capture=False)
    other.up()
    try:
        assert other.prefix != lab.prefix
        assert other.ns("srv") != lab.ns("srv")
        r, = other.probe_rs("cli1", servers=(L.SERVER_IP,))
        assert r["ok"], r
        pids = other.pids()
        assert pids
    finally:
        workdir = other.workdir
        other.down()
    assert_lab_gone(other.prefix, pids)
    assert not os.path.exists(workdir)
    # the module lab is untouched
    assert lab.run("srv", ["true"]).returncode == 0


def test_cleanup_only_removes_dead_creator_namespaces(lab):
    dead = subprocess.Popen(["true"])
    dead.wait()
    existing = set(L._list_netns())
    prefix = next(p for p in (f"t{i:04x}" for i in range(0xfff0, 0xffff))
                  if not any(n.startswith(p + "-") for n in existing))
    ns = f"{prefix}-inet"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "alias",
                        f"{L.MARKER} pid={dead.pid} start=0"], check=True)
        removed = L.cleanup_stale(verbose=False)
        assert ns in removed
        assert not any(n.startswith(lab.prefix + "-") for n in removed)
        assert lab.ns("srv") in L._list_netns()
    finally:
        if ns in L._list_netns():
            subprocess.run(["ip", "netns", "del", ns])


def test_cli_up_tears_down_on_ctrl_c(lab):  # lab: skip unless root/tools
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "lab", "lab.py"), "up", "--no-peer",
                          "--max-time", "60"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    out, prefix = [], None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            m = re.match(r"lab prefix (t[0-9a-f]{4})", line)
            prefix = prefix or (m and m.group(1))
            if "Ctrl-C" in line:
                break
        assert prefix and any(f"{prefix}-srv" in ln for ln in out), "".join(out)
        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, "".join(out) + rest
    assert_lab_gone(prefix, set())
    m = re.search(r"workdir kept: (\S+)", rest)
    if m:
        import shutil
        shutil.rmtree(m.group(1), ignore_errors=True)
