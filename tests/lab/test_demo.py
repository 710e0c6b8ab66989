"""make demo (tools/demo.py) end to end: the lab, a virtual board, teredoctl
flash (with the UDP echo app)/config/status/ping, pings both ways, UDP to the
board's app from the IPv6-only host, the tshark summary, teardown.
Root only (network namespaces); CI runs it."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import lab as labmod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "tools", "demo.py")

pytestmark = pytest.mark.lab


def board_processes(workdir):
    """pids of the demo's virtual board (the vboard and its interpreter) still running."""
    pids = []
    key = workdir.encode()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if key in cmd or b"VBOARD_FLASH=" + key in env:
                pids.append(int(d))
    return pids


def test_demo_walkthrough():
    reason = labmod.require_root_and_tools()
    if reason:
        pytest.skip("demo needs the network lab: %s" % reason)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, DEMO], cwd=ROOT, capture_output=True, text=True,
                       timeout=150, stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert took < 120, took
    # every step, in order
    steps = [int(n) for n in re.findall(r"^== (\d+)\. ", out, re.M)]
    assert steps == list(range(1, 12)), steps
    assert re.search(r"all \d+ files verified by sha256", out)
    assert re.search(r"firmware \S+ started on", out)
    assert "user app: udp_echo.py installed as teredo_user_app" in out
    assert "state     qualified  (NAT restricted)" in out
    address = re.search(r"^   address   (2001:0:c633:640a:\S+)$", out, re.M).group(1)
    assert "mapped IPv4  198.51.100.31" in out  # teredoctl decode: the NAT's public address
    assert re.search(r"^   3 sent, 3 received$", out, re.M)
    assert "3 packets transmitted, 3 received" in out
    assert "relay found: 198.51.100.20:3544" in out
    assert "board -> 2001:db8:f::100: replies came back" in out
    assert "2001:db8:f::100 -> board: replies came back" in out
    # UDP to the board's app, byte for byte
    for msg in ("hello board", "UDP over Teredo", "from an IPv6-only host"):
        n = len(msg)
        assert "   sent b'%s' (%d bytes) -> received b'%s' (%d bytes)\n" % (msg, n, msg, n) in out
    assert "2001:db8:f::100 -> board's app, UDP port 7: every datagram echoed" in out
    assert re.search(r"board's app: teredo_user_app running; sockets UDP 7 rx [1-9]\d* tx [1-9]", out)
    # the tshark summary shows qualification at the server and the echo through the relay
    assert re.search(r"198\.51\.100\.31:\d+ > 198\.51\.100\.10:3544 \[auth\] .* Router Solicitation", out)
    assert "[orig=198.51.100.31:" in out and "Router Advertisement" in out
    assert re.search(r"198\.51\.100\.20:3544 > 198\.51\.100\.31:\d+ 2001:db8:f::100 > %s Echo \(ping\) reply"
                     % re.escape(address), out)
    assert out.rstrip().splitlines()[-1].startswith("demo: OK in ")
    # nothing left behind: namespaces, the board, its link (in the removed workdir)
    workdir = re.search(r"workdir (/tmp/teredo-lab-\S+)", out).group(1)
    prefix = re.search(r"lab prefix (t[0-9a-f]{4})", out).group(1)
    assert [n for n in labmod._list_netns() if n.startswith(prefix + "-")] == []
    assert board_processes(workdir) == []
    assert not os.path.exists(workdir)


def test_demo_says_it_needs_root():
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        pytest.skip("needs root (to drop to an unprivileged user) and setpriv")
    r = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                        DEMO], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "needs root" in r.stderr and "sudo make demo" in r.stderr and "Traceback" not in r.stderr
