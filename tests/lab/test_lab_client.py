"""Our host build (`teredoctl client`) against real Teredo peers: Debian's
miredo-server (two consecutive addresses), a miredo relay, a miredo client
behind a second NAT, and an IPv6-only host, across iptables NATs in network
namespaces.  Root only; CI runs these."""

import os
import re
import time

import pytest

import lab as L
from ourclient import OurClient
from teredo import addr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.lab


def decode(a):
    server, flags, port, mapped = addr.decode_teredo(addr.parse_ipv6(a))
    return addr.format_ipv4(server), flags, port, addr.format_ipv4(mapped)


def conntrack_ports(lab, nat, server=L.SERVER_IP):
    """Public ports of the NAT's UDP mappings toward the server (conntrack)."""
    out = lab.run(nat, ["conntrack", "-L", "-p", "udp", "--orig-dst", server]).stdout
    return {int(m) for m in re.findall(r"dport=(\d+)\s*(?:\[|mark|use|$)", out, re.M)}


@pytest.fixture
def nat1(lab):
    """Puts nat1 back to a port-restricted NAT after a test changed it."""
    yield "nat1"
    lab.remap("nat1", None)
    lab.set_nat("nat1", "restricted")


def test_qualifies_behind_port_restricted_nat(lab, nat1):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP)
    try:
        st = c.wait_for(lambda o: o.get("state") == "qualified" and o.get("nat") != "unknown", 15,
                        "NAT type")  # usable at once; the NAT type follows in ~4 s
        assert st["nat"] == "restricted"
        server, flags, port, mapped = decode(st["address"])
        assert server == L.SERVER_IP and mapped == L.NAT1_WAN
        assert flags & 0x8000 == 0
        assert st["mapped"] == "%s:%d" % (L.NAT1_WAN, port)
        assert port in conntrack_ports(lab, "nat1")
        assert st["server2"] == L.SERVER_IP2
    finally:
        c.stop()


def test_qualifies_behind_full_cone_nat(lab, nat1):
    lab.set_nat("nat1", "cone")
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP)
    try:
        st = c.wait_for(lambda o: o.get("state") == "qualified" and o.get("nat") != "unknown", 15,
                        "NAT type")
        assert st["nat"] == "cone"
        server, flags, port, mapped = decode(st["address"])
        assert flags & 0x8000 == 0 and mapped == L.NAT1_WAN  # RFC 5991: C is always 0
    finally:
        c.stop()


def test_reports_symmetric_nat(lab, nat1):
    lab.set_nat("nat1", "symmetric")
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP)
    try:
        st = c.wait_state("symmetric")
        assert st["nat"] == "symmetric" and st["address"] is None
        assert "symmetric" in st["error"] and "port" in st["error"]
    finally:
        c.stop()


def test_ping_ipv6_host_and_pinged_back_with_the_seed_sequence(lab, tmp_path):
    cap = lab.capture("inet", "br0", str(tmp_path / "br0.pcap"))
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--ping", L.V6HOST, "--count", "3")
    try:
        st = c.wait_state("qualified")
        me = st["address"]
        replies = [c.wait_for(lambda o: "ping_reply" in o, 10, "ping reply %d" % i) for i in range(3)]
        assert all(r["ping_reply"] == L.V6HOST for r in replies)
        assert sorted(r["seq"] for r in replies) == [1, 2, 3]
        # and the IPv6-only host pings us, through the relay
        cp = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", me], timeout=15)
        assert " 0% packet loss" in cp.stdout, cp.stdout
        assert c.status["relay"] == "%s:3544" % L.RELAY_IP
        # the NAT-type test runs in the background (T = 4 s for a cone RA,
        # then the secondary address): let it end inside the capture
        c.wait_for(lambda o: o.get("nat") == "restricted", 10, "NAT type")
    finally:
        c.stop()
        path = cap.stop()
    lines = L.teredo_summary(path)
    mine = [ln for ln in lines if L.NAT1_WAN in ln]
    text = "\n".join(mine)

    def first(pattern):
        for i, ln in enumerate(mine):
            if re.search(pattern, ln):
                return i
        raise AssertionError("no %r in capture:\n%s" % (pattern, text))

    w = re.escape(L.NAT1_WAN)
    rs1 = first(w + r":\d+ > 198\.51\.100\.10:3544 .*Router Solicitation")
    rs2 = first(w + r":\d+ > 198\.51\.100\.11:3544 .*Router Solicitation")
    test = first(w + r":\d+ > 198\.51\.100\.10:3544 .* > 2001:db8:f::100 .*(Echo|Connectivity)")
    relayed = first(r"198\.51\.100\.10:3544 > " + w + r":\d+ \[orig=198\.51\.100\.20:3544\] .*no next header")
    direct = first(w + r":\d+ > 198\.51\.100\.20:3544 .*no next header")
    echo = first(w + r":\d+ > 198\.51\.100\.20:3544 .* > 2001:db8:f::100 .*id=0x7464")
    assert rs1 < test and rs1 < rs2, text  # usable after one round trip
    assert test < relayed < direct < echo, text


def test_ping_miredo_peer_and_pinged_by_it(lab):
    peer = lab.peer_teredo_address(timeout=30)
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--ping", peer, "--count", "3")
    try:
        st = c.wait_state("qualified")
        r = c.wait_for(lambda o: "ping_reply" in o, 12, "reply from the miredo peer")
        assert r["ping_reply"] == peer
        cp = lab.run("cli2", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "3", st["address"]], timeout=20)
        assert re.search(r"\b[1-3] received", cp.stdout), cp.stdout
    finally:
        c.stop()


def test_nat_reboot_and_new_mapping_noticed_at_refresh(lab, nat1):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--refresh", "10")
    try:
        st = c.wait_state("qualified")
        old = st["address"]
        # a NAT reboot that hands out a different public port
        lab.remap("nat1", "port")
        lo, hi = lab.nat_port_range("nat1")
        t0 = time.monotonic()
        new = c.wait_for(lambda o: o.get("state") == "qualified" and o.get("address")
                         and o["address"] != old, 20, "a new address after the remap")
        took = time.monotonic() - t0
        server, flags, port, mapped = decode(new["address"])
        assert lo <= port <= hi and mapped == L.NAT1_WAN
        assert new["mapped"] == "%s:%d" % (L.NAT1_WAN, port)
        assert "mapping changed" in (new.get("error") or "") or took <= 12
        # still works: ping the IPv6-only host through the relay
        cp = lab.run("v6h", ["ping", "-6", "-c", "2", "-i", "0.3", "-W", "3", new["address"]], timeout=15)
        assert "100% packet loss" not in cp.stdout, cp.stdout
    finally:
        c.stop()


def test_server_address_must_be_global(lab):
    cp = lab.run("cli1", [__import__("sys").executable, "-m", "teredoctl.cli", "client",
                          "--server", "10.1.2.3"], cwd=ROOT, timeout=10)
    assert cp.returncode == 1
    assert "not a global unicast" in cp.stderr and "Traceback" not in cp.stderr
