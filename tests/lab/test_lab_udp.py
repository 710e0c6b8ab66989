"""UDP apps over Teredo with the host build (`teredoctl client --app`): the
library's sockets against real Linux UDP sockets on the IPv6-only host
(through the miredo relay) and on the miredo peer client behind the second
NAT (Teredo to Teredo).  Root only; CI runs these."""
import json
import os
import sys

import pytest

import lab as L
from ourclient import OurClient

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(ROOT, "tests", "lab", "udpprobe.py")
ECHO = os.path.join(ROOT, "examples", "udp_echo.py")


def probe(lab, ns, address, port, count=5, size=64, timeout=2.0):
    r = lab.run(ns, [sys.executable, PROBE, address, str(port), "--count", str(count), "--size", str(size),
                     "--timeout", str(timeout)], timeout=10 + count * 3 * timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def app_state(o):
    a = o.get("app") if "state" in o else None  # status lines; events carry the app's name
    return a.get("state") if isinstance(a, dict) else None


def write_app(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.fixture
def echo_client(lab):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--app", ECHO, log="udp-echo.log")
    try:
        st = c.wait_for(lambda o: app_state(o) == "running", 20, "the app running")
        yield c, st["address"]
    finally:
        c.stop()


def test_udp_echo_answers_the_ipv6_only_host_through_the_relay(lab, echo_client):
    c, address = echo_client
    r = probe(lab, "v6h", address, 7, count=20, size=100)
    assert r["echoed"] == 20 and r["mismatch"] == 0 and not r["errors"], r
    big = probe(lab, "v6h", address, 7, count=3, size=1232)  # the largest that fits one packet
    assert big["echoed"] == 3, big


def test_udp_echo_answers_the_miredo_peer_client(lab, echo_client):
    c, address = echo_client
    lab.peer_teredo_address(timeout=30)
    r = probe(lab, "cli2", address, 7, count=10, size=200)
    assert r["echoed"] == 10 and r["mismatch"] == 0, r


def test_unbound_port_is_refused_and_counted(lab, echo_client):
    c, address = echo_client
    r = probe(lab, "v6h", address, 7, count=1)  # opens the path through the relay
    assert r["echoed"] == 1, r
    r = probe(lab, "v6h", address, 9, count=1, timeout=2.0)
    # ICMPv6 port unreachable makes the connected Linux socket fail with ECONNREFUSED
    assert r["echoed"] == 0 and r["errors"] and "refused" in r["errors"][0].lower(), r


def test_several_sockets_and_a_crashing_app(lab, tmp_path):
    app = write_app(tmp_path, "two_ports.py", '''
async def main(iface):
    import asyncio
    a = iface.socket(7)
    b = iface.socket(8)

    async def serve(s, tag):
        async for data, peer in s:
            if data == b"crash":
                raise RuntimeError("asked to crash")
            s.sendto(tag + data, peer)

    await asyncio.gather(serve(a, b"A:"), serve(b, b"B:"))
''')
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--app", app, log="two-ports.log")
    try:
        st = c.wait_for(lambda o: app_state(o) == "running", 20, "the app running")
        address = st["address"]
        script = ("import socket,sys\n"
                  "out=[]\n"
                  "for port in (7, 8, 7):\n"
                  "    s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(2)\n"
                  "    s.connect((sys.argv[1], port))\n"
                  "    for _ in range(3):\n"
                  "        s.send(b'x%d' % port)\n"
                  "        try:\n"
                  "            out.append(s.recv(100).decode()); break\n"
                  "        except socket.timeout:\n"
                  "            pass\n"
                  "print(','.join(out))\n")
        r = lab.run("v6h", [sys.executable, "-c", script, address], timeout=30)
        assert r.stdout.strip() == "A:x7,B:x8,A:x7", r.stdout + r.stderr
        r = lab.run("v6h", [sys.executable, "-c", "import socket,sys; s=socket.socket(socket.AF_INET6, "
                            "socket.SOCK_DGRAM); s.sendto(b'crash', (sys.argv[1], 7))", address], timeout=10)
        st = c.wait_for(lambda o: app_state(o) == "crashed", 10, "the app crashed")
        assert "asked to crash" in st["app"]["error"] and st["state"] == "qualified"
        # the client goes on: it still answers pings after the app died
        r = lab.run("v6h", ["ping", "-6", "-c", "2", "-i", "0.3", "-W", "2", address], timeout=15)
        assert r.returncode == 0, r.stdout
    finally:
        c.stop()


def test_sensor_example_reaches_a_listener_on_the_ipv6_only_host(lab, tmp_path):
    text = open(os.path.join(ROOT, "examples", "udp_sensor.py")).read()
    assert 'COLLECTOR = ("2001:db8:f::100", 5005)' in text
    app = write_app(tmp_path, "sensor.py", text.replace("EVERY_S = 5", "EVERY_S = 0.5"))
    listener = lab.popen("v6h", [sys.executable, "-c",
                                 "import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                                 "s.bind(('::', 5005)); s.settimeout(20)\n"
                                 "for _ in range(3): print(s.recvfrom(200)[0].decode(), flush=True)"],
                         stdout=-1, text=True)
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--app", app, log="sensor.log")
    try:
        out, _ = listener.communicate(timeout=30)
    finally:
        c.stop()
    lines = out.split()
    assert len(lines) == 3, out
    seqs = [int(x.split(",")[1]) for x in lines]
    assert lines[0].split(",")[0].startswith("2001:0:") and seqs == sorted(seqs) and seqs[0] >= 1, lines
