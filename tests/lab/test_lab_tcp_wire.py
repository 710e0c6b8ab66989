"""What our TCP puts on the wire, seen by tshark in a capture on the relay's
link (the Teredo UDP between the miredo relay and our client's NAT, decoded
as Teredo -> IPv6 -> TCP): the MSS option of our SYN,ACK and our SYN (1220,
RFC 4380 §5.1.2's 1280-byte MTU), the RST,ACK to a SYN for a closed port
(RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>), and the TCP
checksum of every segment we sent, as Wireshark verifies it.  Root only.
"""
import subprocess
import sys

import pytest

import lab as L
from tcputil import HTTP, app_state, peer_results, start_app, start_peer, status_json, write_app

pytestmark = pytest.mark.lab

FIELDS = ("ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack",
          "tcp.flags.reset", "tcp.flags.fin", "tcp.seq_raw", "tcp.ack_raw", "tcp.options.mss_val",
          "tcp.window_size_value", "tcp.checksum.status", "tcp.len")


def segments(pcap):
    """The TCP segments in a capture of Teredo UDP, as dicts of FIELDS."""
    argv = ["tshark", "-n", "-r", pcap, "-o", "tcp.check_checksum:TRUE", "-Y", "tcp", "-T", "fields",
            "-E", "separator=|"]
    for f in FIELDS:
        argv += ["-e", f]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=L._tool_env())
    assert cp.returncode == 0, cp.stderr
    return [dict(zip(FIELDS, line.split("|"))) for line in cp.stdout.splitlines()]


def flags(s):
    return "".join(c for c, f in (("S", "tcp.flags.syn"), ("A", "tcp.flags.ack"), ("R", "tcp.flags.reset"),
                                  ("F", "tcp.flags.fin")) if s[f] in ("1", "True"))


def refused(lab, address, port):
    r = lab.run("v6h", [sys.executable, "-c",
                        "import socket,sys\n"
                        "s=socket.socket(socket.AF_INET6); s.settimeout(8)\n"
                        "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
                        "except ConnectionRefusedError: print('refused')\n"
                        "except socket.timeout: print('timeout')\n", address, str(port)], timeout=20)
    return r.stdout.strip()


def test_passive_open_and_rst_as_the_wire_shows_them(lab, tmp_path):
    c, address = start_app(lab, HTTP, "http-wire.log")
    try:
        status_json(lab, address, tmp_path, "warm.json")  # the relay's path is set up before the capture
        cap = lab.capture("rly", "eth0", bpf="udp and host %s" % L.NAT1_WAN)
        try:
            status_json(lab, address, tmp_path)
            answer = refused(lab, address, 81)
        finally:
            pcap = cap.stop()
    finally:
        c.stop()
    assert answer == "refused"
    segs = segments(pcap)
    print("capture on the relay's link: %d TCP segments" % len(segs))
    ours = [s for s in segs if s["ipv6.src"] == address]
    theirs = [s for s in segs if s["ipv6.dst"] == address]
    syn80 = [s for s in theirs if flags(s) == "S" and s["tcp.dstport"] == "80"]
    synack = [s for s in ours if flags(s) == "SA"]
    syn81 = [s for s in theirs if flags(s) == "S" and s["tcp.dstport"] == "81"]
    rst = [s for s in ours if "R" in flags(s)]
    assert syn80 and synack, segs  # (a retransmitted SYN would show twice)
    sa = synack[0]
    assert sa["tcp.options.mss_val"] == "1220" and sa["tcp.window_size_value"] == "2048", sa
    assert int(sa["tcp.ack_raw"]) == (int(syn80[0]["tcp.seq_raw"]) + 1) % 2 ** 32
    assert syn80[0]["tcp.options.mss_val"] == "1440"  # Linux's, for its 1500-byte link
    # the closed port: one RST,ACK, SEQ 0, ACK = the SYN's sequence number + 1
    assert len(syn81) >= 1 and len(rst) == len(syn81), segs
    r = rst[0]
    assert flags(r) == "AR" and r["tcp.seq_raw"] == "0" and r["tcp.srcport"] == "81", r
    assert int(r["tcp.ack_raw"]) == (int(syn81[0]["tcp.seq_raw"]) + 1) % 2 ** 32
    assert r["tcp.dstport"] == syn81[0]["tcp.srcport"]
    # every segment we sent has a good checksum (1 = good in tshark)
    assert ours and all(s["tcp.checksum.status"] == "1" for s in ours), ours
    # and the page went out: data segments, a FIN
    assert any(int(s["tcp.len"] or 0) > 0 for s in ours) and any("F" in flags(s) for s in ours)


ACTIVE = '''
import json


async def main(iface):
    s = await iface.atcp_connect(PEER)
    s.write(b"x" * 3000)
    await s.drain()
    got = await s.readexactly(3000)
    await s.wait_closed()
    print(json.dumps({"tcp_result": {"received": len(got)}}), flush=True)
'''


def test_active_open_syn_as_the_wire_shows_it(lab, tmp_path):
    peer = start_peer(lab, 5004, 3000, 3000, timeout=60)
    cap = lab.capture("rly", "eth0", bpf="udp and host %s" % L.NAT1_WAN)
    try:
        app = write_app(tmp_path, "syn.py", "PEER = (%r, 5004)\n" % L.V6HOST + ACTIVE)
        c, address = start_app(lab, app, "wire-active.log")
        try:
            o = c.wait_for(lambda o: "tcp_result" in o or app_state(o) == "crashed", 60, "the app's result")
        finally:
            c.stop()
    finally:
        pcap = cap.stop()
        prs = peer_results(lab, peer, 20)
    assert o.get("tcp_result") == {"received": 3000}, o
    assert len(prs) == 1 and prs[0]["received"] == 3000, prs
    segs = segments(pcap)
    print("capture on the relay's link: %d TCP segments" % len(segs))
    ours = [s for s in segs if s["ipv6.src"] == address]
    syn = [s for s in ours if flags(s) == "S"]
    synack = [s for s in segs if s["ipv6.dst"] == address and flags(s) == "SA"]
    assert syn and synack and all(s["tcp.dstport"] == "5004" for s in syn), segs
    assert all(s["tcp.options.mss_val"] == "1220" and s["tcp.window_size_value"] == "2048" for s in syn), syn
    assert 49152 <= int(syn[0]["tcp.srcport"]) <= 65535  # an ephemeral port (RFC 6335 §6)
    assert int(synack[0]["tcp.ack_raw"]) == (int(syn[0]["tcp.seq_raw"]) + 1) % 2 ** 32
    # Linux's data came in segments of at most our MSS
    assert max(int(s["tcp.len"] or 0) for s in segs if s["ipv6.dst"] == address) <= 1220
    assert all(s["tcp.checksum.status"] == "1" for s in ours), ours
