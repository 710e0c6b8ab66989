"""The user's app on the board firmware (virtual board, in the lab): installed
with teredoctl flash --app, started once qualified, reached by real Linux UDP
sockets on the IPv6-only host (through the miredo relay) and on the miredo
peer client (Teredo to Teredo); several sockets at once; an unbound port
answers ICMPv6 port unreachable; a crashing app is shown in status while the
client and the console keep working; the sensor example reaches a listener
on the IPv6-only host.  Root only; CI runs these."""

import json
import os
import sys

import pytest

from boardutil import ROOT, Board, install_firmware, write_config
import lab as L

pytestmark = pytest.mark.lab

ECHO = os.path.join(ROOT, "examples", "udp_echo.py")
SENSOR = os.path.join(ROOT, "examples", "udp_sensor.py")
SIZES = (1, 100, 1000, 1232)  # 1232: the largest UDP payload in one Teredo packet

# A UDP client run inside a lab namespace: for each (port, size) it sends one
# datagram (at most 3 tries, 2 s each) on a socket connected to the board and
# reports what came back.  Bounded: at most 6 s per datagram.
UDP_CLIENT = r"""
import json, socket, sys
addr = sys.argv[1]
out = []
socks = {}
for item in sys.argv[2].split(","):
    port, size = (int(x) for x in item.split(":"))
    s = socks.get(port)
    if s is None:
        s = socks[port] = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((addr, port))
    data = bytes((size * 7 + k) & 0xFF for k in range(size))
    r = {"port": port, "size": size, "got": None, "error": None, "tries": 0}
    for r["tries"] in range(1, 4):
        try:
            s.send(data)
            got = s.recv(2048)
        except socket.timeout:
            continue
        except OSError as e:
            r["error"] = e.errno
            break
        r["got"] = "same" if got == data else got.hex()
        break
    out.append(r)
print(json.dumps(out))
"""

# Listens on UDP port argv[1] for argv[2] datagrams (at most argv[3] s).
UDP_LISTENER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", int(sys.argv[1])))
end = time.monotonic() + float(sys.argv[3])
got = []
while len(got) < int(sys.argv[2]) and time.monotonic() < end:
    s.settimeout(max(0.1, end - time.monotonic()))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    got.append([data.decode(errors="replace"), peer[0], peer[1]])
print(json.dumps(got), flush=True)
"""

# Two sockets at once: port 7 echoes, port 9 answers with every byte inverted.
TWO_PORTS = """
import asyncio


async def serve(s, turn):
    buf = bytearray(1232)
    while True:
        n = await s.arecv_into(buf)
        s.sendto(turn(bytes(buf[:n])), (s.src6, s.sport))


async def main(iface):
    asyncio.create_task(serve(iface.socket(9), lambda b: bytes(x ^ 0xFF for x in b)))
    await serve(iface.socket(7), lambda b: b)
"""

# Crashes on the first datagram it gets.
CRASHER = """
async def main(iface):
    s = iface.socket(7)
    data, peer = await s.arecvfrom()
    raise RuntimeError("app bug on purpose after %d bytes" % len(data))
"""


def udp_exchange(lab, ns, address, items, timeout=60):
    """items: [(port, size)] sent from namespace ns to address; returns the
    client's report (a dict per datagram)."""
    arg = ",".join("%d:%d" % it for it in items)
    cp = lab.run(ns, [sys.executable, "-c", UDP_CLIENT, address, arg], timeout=timeout)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return json.loads(cp.stdout)


def all_echoed(report):
    return [(r["port"], r["size"]) for r in report if r["got"] != "same"] == []


@pytest.fixture
def board(lab, tmp_path):
    boards = []

    def make(app=None, teredoctl=False):
        flash = str(tmp_path / "flash")
        if teredoctl:  # an empty board with its config, then the real teredoctl flash
            write_config(flash, {"server": L.SERVER_IP})
        else:
            install_firmware(flash, {"server": L.SERVER_IP}, app=app)
        b = Board(lab, "cli1", flash)
        boards.append(b)
        if teredoctl:
            r = b.teredoctl("flash", "--app", app)
            assert r.returncode == 0 and "started on" in r.stdout, r.stdout + r.stderr
            assert "user app: %s installed as teredo_user_app" % os.path.basename(app) in r.stdout, r.stdout
        else:
            b.reboot()  # the console opened after power-on: reboot to see it all
            b.wait(lambda m: m.get("event") == "boot", 10, "boot event")
        return b

    yield make
    for b in boards:
        b.close()


def running(st):
    return st["state"] == "qualified" and st["app"]["state"] == "running" and st["sockets"]


def test_flashed_echo_app_answers_the_v6_host_and_a_teredo_peer(lab, board):
    b = board(ECHO, teredoctl=True)
    st = b.wait_status(running, 30, "qualified with the app running")
    assert st["app"] == {"name": "teredo_user_app", "state": "running", "error": None}
    assert [s["port"] for s in st["sockets"]] == [7]
    # the IPv6-only host, through the miredo relay, byte for byte
    report = udp_exchange(lab, "v6h", st["address"], [(7, n) for n in SIZES])
    assert all_echoed(report), report
    # the miredo peer client, Teredo to Teredo
    peer = lab.peer_teredo_address()
    report = udp_exchange(lab, "cli2", st["address"], [(7, n) for n in SIZES])
    assert all_echoed(report), report
    after = b.status()
    sock = after["sockets"][0]
    tries = 2 * len(SIZES)
    assert sock["rx"] >= tries and sock["tx"] == sock["rx"] and sock["dropped"] == 0, sock
    assert peer in [p["address"] for p in b.command("peers")["data"]]
    assert after["loop_errors"] == 0 and after["app"]["state"] == "running"


def test_two_sockets_at_once_and_an_unbound_port_is_refused(lab, board, tmp_path):
    app = tmp_path / "two_ports.py"
    app.write_text(TWO_PORTS)
    b = board(str(app))
    st = b.wait_status(running, 30, "qualified with the app running")
    assert [s["port"] for s in st["sockets"]] == [7, 9]
    items = [(7, 10), (9, 11), (7, 500), (9, 1232), (7, 1232), (9, 1)]
    report = udp_exchange(lab, "v6h", st["address"], items)
    for r in report:
        data = bytes((r["size"] * 7 + k) & 0xFF for k in range(r["size"]))
        got = data if r["got"] == "same" else bytes.fromhex(r["got"] or "")
        assert got == (data if r["port"] == 7 else bytes(x ^ 0xFF for x in data)), (r, report)
    socks = {s["port"]: s for s in b.status()["sockets"]}
    assert socks[7]["rx"] >= 3 and socks[9]["rx"] >= 3 and socks[9]["tx"] == socks[9]["rx"]
    # nothing bound on port 5: dropped, counted, and answered with ICMPv6 port
    # unreachable (RFC 4443 §3.1), which Linux turns into ECONNREFUSED
    before = b.status()["drops"].get("no_port", 0)
    report = udp_exchange(lab, "v6h", st["address"], [(5, 20)])
    assert report[0]["error"] == 111 and report[0]["got"] is None, report  # ECONNREFUSED
    assert b.status()["drops"].get("no_port", 0) > before


def test_crashing_app_is_shown_and_the_client_and_console_go_on(lab, board, tmp_path):
    app = tmp_path / "crasher.py"
    app.write_text(CRASHER)
    b = board(str(app))
    st = b.wait_status(running, 30, "qualified with the app running")
    start = len(b.lines)
    report = udp_exchange(lab, "v6h", st["address"], [(7, 42)])
    assert report[0]["got"] is None  # no echo: the app raised instead
    # an app_error event, then a status event showing it
    b.wait(lambda m: m.get("event") == "status" and m["data"]["app"]["state"] == "crashed", 10,
           "a status event with the app crashed")
    events = [m for m in b.messages(start) if m.get("event") in ("app_error", "status")]
    ev = [m for m in events if m["event"] == "app_error"][0]
    assert ev["app"] == "teredo_user_app" and "RuntimeError: app bug on purpose after 42 bytes" in ev["error"]
    assert events[-1]["event"] == "status" and events[-1]["data"]["sockets"] == []
    assert any(b"teredo: app teredo_user_app crashed" in ln for ln in b.lines[start:])
    st = b.status()
    assert st["app"]["state"] == "crashed" and "app bug on purpose" in st["app"]["error"]
    assert st["state"] == "qualified" and st["loop_errors"] == 0
    assert st["sockets"] == []  # its socket went with it
    # the client still answers pings, and the board's own ping works
    cp = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", st["address"]], timeout=15)
    assert " 0% packet loss" in cp.stdout, cp.stdout
    assert b.command("ping %s 2" % L.V6HOST)["ok"]
    assert b.wait(lambda m: m.get("event") == "ping_done", 10, "ping_done")["received"] >= 1
    # port 7 is no longer bound: refused, as any unbound port
    report = udp_exchange(lab, "v6h", st["address"], [(7, 5)])
    assert report[0]["error"] == 111, report


def test_sensor_example_reaches_a_listener_on_the_v6_host(lab, board, tmp_path):
    with open(SENSOR) as f:
        text = f.read()
    line = 'COLLECTOR = ("2001:db8:f::100", 5005)'
    assert line in text and "EVERY_S = 5" in text
    app = tmp_path / "sensor.py"
    app.write_text(text.replace(line, 'COLLECTOR = ("%s", 5006)' % L.V6HOST).replace("EVERY_S = 5",
                                                                                    "EVERY_S = 1"))
    listener = lab.popen("v6h", [sys.executable, "-c", UDP_LISTENER, "5006", "2", "40"], log="listener.log")
    try:
        b = board(str(app))
        st = b.wait_status(running, 30, "qualified with the app running")
        listener.wait(45)
    finally:
        lab.stop_process(listener)
    with open(lab.path("listener.log")) as f:
        got = json.loads(f.read().strip().splitlines()[-1])
    assert len(got) == 2, got
    for text, src, sport in got:
        address, seq, reading = text.split(",")
        assert address == st["address"] and src == st["address"] and sport == 5005
        assert int(reading) > 0
    assert [int(g[0].split(",")[1]) for g in got] == sorted(int(g[0].split(",")[1]) for g in got)
