"""Real-world servers (issue 13): host names and a comma-separated list,
against real miredo-servers in the lab.  Names resolve through the client
namespace's /etc/hosts (glibc's getaddrinfo, as the unix port's and CPython's
do); a dead server at the head of the list costs one round trip, not a
qualification timeout; when the server in use stops answering, the client
fails over to the other one and keeps relaying.  Host build and the virtual
board.  Root only; CI runs these."""

import pytest

import lab as L
from boardutil import Board, install_firmware
from ourclient import OurClient
from teredo import addr

pytestmark = pytest.mark.lab

HOSTS = {"dead.lab.example": L.DEAD_IP, "teredo.lab.example": L.SERVER_IP,
         "teredo-b.lab.example": L.SERVER_B_IP}


@pytest.fixture
def names(lab):
    lab.set_hosts("cli1", HOSTS)
    yield
    lab.stop_server_b()
    lab.start_server()


def server_of(address):
    return addr.format_ipv4(addr.decode_teredo(addr.parse_ipv6(address))[0])


def by_name(st):
    return dict((s["name"], s) for s in st["servers"])


def test_a_dead_name_first_costs_one_round_trip(lab, names):
    c = OurClient(lab, "cli1", "--server", "dead.lab.example, teredo.lab.example",
                  "--ping", L.V6HOST, "--count", "3")
    try:
        st = c.wait_state("qualified", 15)
        assert st["server"] == L.SERVER_IP and server_of(st["address"]) == L.SERVER_IP, st
        s = by_name(st)
        live = s["teredo.lab.example"]
        assert live["state"] == "in use" and live["address"] == L.SERVER_IP
        assert isinstance(live["rtt_ms"], int)
        # the dead one was asked in the same round and has not failed a whole
        # qualification yet: the client did not wait for it
        assert s["dead.lab.example"]["state"] == "asked" and s["dead.lab.example"]["address"] == L.DEAD_IP
        assert not [o for o in c.seen if o.get("state") == "offline" and o.get("error")], c.seen
        done = c.wait_for(lambda o: "ping_done" in o, 20, "the pings to the IPv6-only host")
        assert done["received"] >= 1, done
    finally:
        c.stop()


def test_the_server_in_use_dies_and_the_other_takes_over(lab, names):
    lab.start_server_b()
    c = OurClient(lab, "cli1", "--server", "teredo.lab.example,teredo-b.lab.example", "--refresh", "10")
    try:
        st = c.wait_for(lambda o: o.get("state") == "qualified"
                        and all(x["state"] in ("in use", "answered") for x in o["servers"]), 15,
                        "qualified, both servers answered")
        first = st["server"]
        assert first in (L.SERVER_IP, L.SERVER_B_IP)
        assert sorted(x["address"] for x in st["servers"]) == [L.SERVER_IP, L.SERVER_B_IP]
        other = L.SERVER_B_IP if first == L.SERVER_IP else L.SERVER_IP
        c.drain()
        (lab.stop_server if first == L.SERVER_IP else lab.stop_server_b)()
        # a refresh (10 s) that gets no answer (3 tries, 4 s apart), then the
        # other one at once, without the offline back-off
        st = c.wait_for(lambda o: o.get("state") == "qualified" and o.get("server") == other, 45,
                        "qualified through the other server")
        assert server_of(st["address"]) == other
        assert by_name(st)[[n for n, a in HOSTS.items() if a == first][0]]["state"] == "no answer"
        assert not [o for o in c.seen if o.get("state") == "offline"], "went offline on the way"
        # and it relays: the IPv6-only host pings the new address
        cp = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", st["address"]], timeout=15)
        assert " 0% packet loss" in cp.stdout, cp.stdout
    finally:
        c.stop()


def test_the_board_resolves_its_server_names(lab, names, tmp_path):
    flash = str(tmp_path / "flash")
    install_firmware(flash, {"server": "dead.lab.example,teredo.lab.example"})
    b = Board(lab, "cli1", flash)
    try:
        b.reboot()  # the console opened after power-on: reboot to see it all
        b.wait(lambda m: m.get("event") == "boot", 10, "boot event")
        st = b.wait_status(lambda s: s["state"] == "qualified", 25, "qualified")
        assert st["server"] == L.SERVER_IP and server_of(st["address"]) == L.SERVER_IP
        s = by_name(st)
        assert s["teredo.lab.example"]["state"] == "in use"
        assert s["dead.lab.example"]["address"] == L.DEAD_IP
        cp = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", st["address"]], timeout=15)
        assert " 0% packet loss" in cp.stdout, cp.stdout
        # teredoctl status shows the list
        cp = b.teredoctl("status")
        assert cp.returncode == 0, cp.stderr
        assert "dead.lab.example (%s)" % L.DEAD_IP in cp.stdout, cp.stdout
        assert "teredo.lab.example (%s)  in use" % L.SERVER_IP in cp.stdout, cp.stdout
    finally:
        b.close()
