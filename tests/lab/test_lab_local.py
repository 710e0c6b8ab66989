"""Local client discovery (RFC 4380 §5.2.8) between two of our clients on one
LAN behind the same NAT (a port-restricted Linux NAT, which does not hairpin):
cli1 and cli3 on NAT1's LAN (a bridge), qualified through the real
miredo-server, each finds the other with discovery bubbles to 224.0.0.253 and
the echo goes over the LAN, neither through the NAT nor the server.  With
discovery off the same ping gets no answer (no hairpinning: the ping's bubbles
go to the NAT's public address and die there), so what passes is the
discovery.  Host build on both ends, then the virtual board (firmware .mpy)
and the host build.  Root only; CI runs these."""

import pytest

import lab as L
from boardutil import Board, install_firmware
from conftest import lab_for
from ourclient import OurClient

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(request):
    yield from lab_for(request, nat1="restricted", nat2="restricted", peer_client=False, lan_peer=True)


def lines(pcap, what):
    return L.teredo_summary(pcap, display_filter=what)


def test_two_host_clients_on_one_lan_ping_each_other_directly(lab):
    cap = lab.capture("nat1", "lan", bpf="udp")
    srv = lab.capture("srv", "eth0", bpf="udp")
    one = OurClient(lab, "cli1", "--server", L.SERVER_IP, log="local-one.log")
    three = None
    try:
        st1 = one.wait_for(lambda o: o.get("state") == "qualified", 15, "cli1 qualified")
        assert st1["local_discovery"] == "on", st1
        a1 = st1["address"]
        # cli3 pings at once, before it has heard of cli1: its first echo
        # waits (about 2 s) for the local path and comes back with the
        # second; the pinger counts both (all four go over the LAN, below)
        three = OurClient(lab, "cli3", "--server", L.SERVER_IP, "--ping", a1, "--count", "4",
                          log="local-three.log")
        done = three.wait_for(lambda o: "ping_done" in o, 30, "cli3's pings to cli1")
        assert done["received"] == 4, done
        st3 = three.status
        a3 = st3["address"]
        assert st3["local_peers"] == 1 and st3["mapped"].split(":")[0] == st1["mapped"].split(":")[0], st3
        one.wait_for(lambda o: o.get("local_peers") == 1, 10, "cli1 found cli3")
    finally:
        if three is not None:
            three.stop()
        one.stop()
        lan_pcap = cap.stop()
        srv_pcap = srv.stop()
    # on the LAN: discovery bubbles to the group from both, with TTL 1 and to
    # ff02::1, and the echo between the two local addresses
    disc = lines(lan_pcap, "ip.dst == 224.0.0.253 && udp.dstport == 3544 && ip.ttl == 1 "
                           "&& ipv6.dst == ff02::1")
    assert any(L.CLIENT1_IP + ":" in x and a1 in x for x in disc), disc
    assert any(L.CLIENT3_IP + ":" in x and a3 in x for x in disc), disc
    echo = lines(lan_pcap, "icmpv6.type == 128 && ip.src == %s && ip.dst == %s"
                 % (L.CLIENT3_IP, L.CLIENT1_IP))
    assert len(echo) == 4 and all("%s > %s" % (a3, a1) in x for x in echo), echo
    back = lines(lan_pcap, "icmpv6.type == 129 && ip.src == %s && ip.dst == %s"
                 % (L.CLIENT1_IP, L.CLIENT3_IP))
    assert len(back) == 4, back
    # no echo went to the NAT's public side or through the server (the
    # bubbles of cli3's first try, before it heard of cli1, did)
    assert lines(lan_pcap, "icmpv6 && ip.dst == %s" % L.NAT1_WAN) == []
    both = "icmpv6 && ((ipv6.src == %s && ipv6.dst == %s) || (ipv6.src == %s && ipv6.dst == %s))" % (
        a1, a3, a3, a1)
    assert lines(srv_pcap, both) == [], lines(srv_pcap, both)


def test_without_discovery_the_same_ping_fails(lab):
    # the control: the lab's NAT does not hairpin, so without local
    # discovery the two clients cannot reach each other at all
    one = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--no-local-discovery", log="nold-one.log")
    three = None
    try:
        st1 = one.wait_for(lambda o: o.get("state") == "qualified", 15, "cli1 qualified")
        assert st1["local_discovery"] == "off: turned off", st1
        three = OurClient(lab, "cli3", "--server", L.SERVER_IP, "--no-local-discovery",
                          "--ping", st1["address"], "--count", "2", log="nold-three.log")
        done = three.wait_for(lambda o: "ping_done" in o, 30, "cli3's pings to cli1")
        assert done["received"] == 0, done
        assert three.status["local_peers"] == 0
    finally:
        if three is not None:
            three.stop()
        one.stop()


def test_the_board_and_a_host_client_on_one_lan(lab, tmp_path):
    flash = str(tmp_path / "flash")
    install_firmware(flash, {"server": L.SERVER_IP, "wifi_ssid": "lab", "wifi_password": "secret"})
    b = Board(lab, "cli1", flash)
    host = None
    cap = lab.capture("nat1", "lan", bpf="udp")
    try:
        b.reboot()
        b.wait(lambda m: m.get("event") == "boot", 10, "boot event")
        st = b.wait_status(lambda s: s["state"] == "qualified", 25, "board qualified")
        assert st["local_discovery"] == "on", st
        ab = st["address"]
        host = OurClient(lab, "cli3", "--server", L.SERVER_IP, "--ping", ab, "--count", "4",
                         log="local-host.log")
        done = host.wait_for(lambda o: "ping_done" in o, 30, "host's pings to the board")
        assert done["received"] == 4, done
        ah = host.status["address"]
        st = b.wait_status(lambda s: s.get("local_peers") == 1, 10, "the board found the host")
        # and the board pings the host back (console ping command)
        b.command("ping %s 3" % ah)
        r = b.wait(lambda m: m.get("event") == "ping_done", 20, "the board's pings")
        assert r["received"] == 3, r
        cp = b.teredoctl("status")
        assert cp.returncode == 0 and "local discovery on, 1 Teredo client found on this LAN" in cp.stdout, \
            cp.stdout + cp.stderr
    finally:
        if host is not None:
            host.stop()
        b.close()
        pcap = cap.stop()
    echo = lines(pcap, "icmpv6.type == 128 && ip.src == %s && ip.dst == %s" % (L.CLIENT1_IP, L.CLIENT3_IP))
    assert len(echo) == 3 and all("%s > %s" % (ab, ah) in x for x in echo), echo
    assert lines(pcap, "icmpv6 && ip.dst == %s" % L.NAT1_WAN) == []
