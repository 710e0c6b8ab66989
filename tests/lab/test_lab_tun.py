"""The host build as a real IPv6 tunnel (`teredoctl client --tun`): in cli1,
behind a NAT, the kernel's own ping, curl and TCP sockets reach the
IPv6-only host through the miredo relay, the IPv6-only host and the miredo
peer (Teredo to Teredo) reach servers on our Teredo address, a NAT remap
moves the address, Ctrl-C leaves nothing behind, no root gets one line, a
stale interface of ours is cleaned, and the RFC 4380 §5.5 sunset puts the
tunnel to sleep while native IPv6 works.  Root only."""
import hashlib
import json
import os
import signal
import sys
import time

import pytest

import lab as L
from ourclient import OurClient

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHAT = os.path.join(HERE, "tcpchat.py")
IFNAME = "teredo"
NAT1_WAN6 = "2001:db8:f::31"
NAT1_LAN6 = "2001:db8:1::1"
CLI1_NATIVE6 = "2001:db8:1::2"


def tun_state(o):
    t = o.get("tun") if "state" in o else None
    return t.get("state") if isinstance(t, dict) else None


def start(lab, *extra, log="tun.log"):
    """Our tunnel in cli1, active (address and routes on the interface)."""
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--tun", "--refresh", "10", *extra, log=log)
    try:
        st = c.wait_for(lambda o: tun_state(o) == "active", 20, "the tunnel active")
    except BaseException:
        c.stop()
        raise
    return c, st["tun"]["address"]


@pytest.fixture
def tun(lab):
    c, address = start(lab, "--default-route")
    try:
        yield c, address
    finally:
        c.stop()


def status_now(c, pred=lambda st: True, tries=5):
    """A fresh status line (SIGUSR1 asks for one) that satisfies pred."""
    st = None
    for _ in range(tries):
        c.drain()  # lines already printed are older than this question
        os.kill(c.proc.pid, signal.SIGUSR1)
        st = c.wait_for(lambda o: "tun" in o, 5, "a status line")
        if pred(st):
            return st
        time.sleep(0.3)
    raise AssertionError("no status line satisfied the condition; last %s" % st)


def ip_json(lab, ns, *args):
    r = lab.run(ns, ["ip", "-j"] + list(args))
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def routes6(lab, ns="cli1"):
    return ip_json(lab, ns, "-6", "route", "show")


def addrs6(lab, ifname=IFNAME, ns="cli1"):
    info = ip_json(lab, ns, "-6", "addr", "show", "dev", ifname)
    return ["%s/%d" % (a["local"], a["prefixlen"]) for i in info for a in i.get("addr_info", [])]


def listening(lab, ns, port):
    r = lab.run(ns, ["ss", "-Hltn", "sport = :%d" % port])
    return bool(r.stdout.strip())


def wait_until(what, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def web_server(lab, ns, bind, port, directory, log):
    p = lab.popen(ns, [sys.executable, "-m", "http.server", "--bind", bind, str(port),
                       "--directory", str(directory)], log=log)
    wait_until("http.server on %s port %d" % (ns, port), lambda: listening(lab, ns, port), 10)
    return p


def blob(directory, name, size):
    data = bytes((i * 7) & 0xFF for i in range(size))
    (directory / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def curl(lab, ns, url, out, timeout=60, *extra):
    return lab.run(ns, ["curl", "-6", "-sS", "--max-time", str(timeout), "-o", str(out),
                        "-w", "%{http_code} %{size_download}"] + list(extra) + [url],
                   timeout=timeout + 10)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ---- the interface ------------------------------------------------------------

def test_interface_carries_the_teredo_address_and_routes(lab, tun):
    c, address = tun
    assert address.startswith("2001:0:c633:640a:")
    assert sorted(addrs6(lab)) == sorted([address + "/32", "fe80::ffff:ffff:ffff/64"])
    link = ip_json(lab, "cli1", "-d", "link", "show", "dev", IFNAME)[0]
    assert link["mtu"] == 1280 and link["linkinfo"]["info_kind"] == "tun"
    assert link["ifalias"] == "teredoctl pid=%d" % c.proc.pid
    rs = {(r["dst"], r.get("dev"), r.get("metric")) for r in routes6(lab)}
    assert ("2001::/32", IFNAME, 1024) in rs
    assert ("default", IFNAME, 2048) in rs
    st = c.status
    assert st["state"] == "qualified" and st["tun"]["ifname"] == IFNAME
    assert st["tun"]["default_route"] is True


def test_ping_the_ipv6_only_host_with_the_systems_ping(lab, tun):
    c, address = tun
    r = lab.run("cli1", ["ping", "-6", "-c", "5", "-i", "0.2", "-W", "3", L.V6HOST], timeout=20)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    assert "from %s" % L.V6HOST in r.stdout
    st = status_now(c, lambda s: s["tun"]["rx_packets"] >= 5 and s["tun"]["tx_packets"] >= 5)
    assert st["relay"] == "%s:3544" % L.RELAY_IP
    # and the IPv6-only host pings us: the kernel answers, not the core
    r = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "3", address], timeout=20)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr


def test_curl_a_web_server_on_the_ipv6_only_host(lab, tun, tmp_path):
    c, address = tun
    want = blob(tmp_path, "blob", 2000000)
    web_server(lab, "v6h", "::", 8080, tmp_path, "v6h-web.log")
    out = tmp_path / "got"
    r = curl(lab, "cli1", "http://[%s]:8080/blob" % L.V6HOST, out, 120)
    assert r.stdout == "200 2000000", r.stdout + r.stderr
    assert sha(out) == want
    log = open(lab.path("v6h-web.log")).read()
    assert address in log  # the server saw our Teredo address as the client


def test_interactive_tcp_sessions_both_ways(lab, tun, tmp_path):
    c, address = tun
    # cli1 -> a server on the IPv6-only host
    ready = tmp_path / "ready1"
    srv = lab.popen("v6h", [sys.executable, CHAT, "serve", "::", "7001", "--ready", str(ready)],
                    stdout=-1, stderr=-1, text=True)
    wait_until("the chat server on v6h", ready.exists, 10)
    r = lab.run("cli1", [sys.executable, CHAT, "chat", L.V6HOST, "7001", "--lines", "6"], timeout=40)
    got = json.loads(r.stdout)
    assert got["answered"] == 6, r.stdout + r.stderr
    out, _ = srv.communicate(timeout=10)
    assert json.loads(out) == {"served": 6, "peer": address}
    # the IPv6-only host -> a server bound on our Teredo address
    ready = tmp_path / "ready2"
    srv = lab.popen("cli1", [sys.executable, CHAT, "serve", address, "7002", "--ready", str(ready)],
                    stdout=-1, stderr=-1, text=True)
    wait_until("the chat server on cli1", ready.exists, 10)
    r = lab.run("v6h", [sys.executable, CHAT, "chat", address, "7002", "--lines", "6"], timeout=40)
    assert json.loads(r.stdout)["answered"] == 6, r.stdout + r.stderr
    out, _ = srv.communicate(timeout=10)
    assert json.loads(out) == {"served": 6, "peer": L.V6HOST}


def test_the_miredo_peer_reaches_a_server_on_our_address(lab, tun, tmp_path):
    c, address = tun
    peer = lab.peer_teredo_address(timeout=30)
    want = blob(tmp_path, "blob", 500000)
    web_server(lab, "cli1", address, 8081, tmp_path, "cli1-web.log")
    out = tmp_path / "got"
    r = curl(lab, "cli2", "http://[%s]:8081/blob" % address, out, 120)
    assert r.stdout == "200 500000", r.stdout + r.stderr
    assert sha(out) == want
    assert peer in open(lab.path("cli1-web.log")).read()
    # and we reach it: a chat with a server on the peer's Teredo address
    ready = tmp_path / "ready"
    srv = lab.popen("cli2", [sys.executable, CHAT, "serve", peer, "7003", "--ready", str(ready)],
                    stdout=-1, stderr=-1, text=True)
    wait_until("the chat server on cli2", ready.exists, 10)
    r = lab.run("cli1", [sys.executable, CHAT, "chat", peer, "7003", "--lines", "3"], timeout=40)
    assert json.loads(r.stdout)["answered"] == 3, r.stdout + r.stderr
    srv.communicate(timeout=10)


# ---- changes ------------------------------------------------------------------------

def test_nat_remap_during_a_download_moves_the_address(lab, tun, tmp_path):
    """The NAT starts using another public address in the middle of a TCP
    download: the next refresh sees the new mapping, the client requalifies,
    the interface gets the new address and routes.  The TCP session was
    bound to the old address, which no longer exists anywhere: its packets
    are dropped (the kernel's as not_ours in the client, the server's at
    the NAT), so it stalls and curl gives up; a new one works."""
    c, old = tun
    want = blob(tmp_path, "big", 20000000)
    web_server(lab, "v6h", "::", 8082, tmp_path, "v6h-big.log")
    out = tmp_path / "got"
    dl = lab.popen("cli1", ["curl", "-6", "-sS", "--limit-rate", "500k", "--max-time", "90",
                            "--speed-limit", "1000", "--speed-time", "10", "-o", str(out),
                            "-w", "%{http_code} %{size_download}",
                            "http://[%s]:8082/big" % L.V6HOST], stdout=-1, stderr=-1, text=True)
    try:
        wait_until("the download under way", lambda: out.exists() and out.stat().st_size > 300000, 20)
        lab.remap("nat1", "address")
        st = c.wait_for(lambda o: tun_state(o) == "active" and o["tun"]["address"] != old, 40,
                        "the new address on the interface")
        new = st["address"]
        assert st["tun"]["address"] == new and new != old
        assert st["mapped"].startswith(L.NAT1_WAN_ALT + ":")
        assert sorted(addrs6(lab)) == sorted([new + "/32", "fe80::ffff:ffff:ffff/64"])
        so, se = dl.communicate(timeout=100)
        print("download across the remap: curl exit %d, %s %s" % (dl.returncode, so, se.strip()))
        assert dl.returncode != 0 and out.stat().st_size < 20000000
        # the old session's last packets (curl's close: FIN and its retransmissions)
        # come from an address we no longer have: dropped as not_ours
        st = status_now(c, lambda s: s["drops"].get("not_ours", 0) > 0)
        print("drops after the remap:", st["drops"], st["tun"])
        assert st["tun"]["dropped"] >= st["drops"]["not_ours"] > 0
        # a new session works on the new address
        r = curl(lab, "cli1", "http://[%s]:8082/big" % L.V6HOST, tmp_path / "again", 120)
        assert r.stdout == "200 20000000", r.stdout + r.stderr
        assert sha(tmp_path / "again") == want
        assert new in open(lab.path("v6h-big.log")).read()
    finally:
        if dl.poll() is None:
            dl.kill()
        lab.remap("nat1", None)


def test_offline_the_interface_stays_and_carries_nothing(lab):
    c, address = start(lab, "--default-route")
    try:
        lab.stop_server()
        try:
            # one refresh interval (<= 10 s) plus 3 RS 4 s apart (RFC 4380 §5.2.1)
            st = c.wait_for(lambda o: o.get("state") == "offline", 10 + 12 + 4, "offline")
            assert st["tun"]["state"] == "inactive" and st["tun"]["address"] is None
            assert st["tun"]["default_route"] is False and "stopped answering" in st["error"]
            assert addrs6(lab) == ["fe80::ffff:ffff:ffff/64"]
            assert not [r for r in routes6(lab) if r.get("dev") == IFNAME and r["dst"] != "fe80::/64"]
            r = lab.run("cli1", ["ping", "-6", "-c", "1", "-W", "1", L.V6HOST], timeout=10)
            assert r.returncode != 0 and "unreachable" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
        finally:
            lab.start_server()
        st = c.wait_for(lambda o: tun_state(o) == "active", 8 + 4 + 6, "active again")
        assert st["tun"]["default_route"] is True
        r = lab.run("cli1", ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "3", L.V6HOST], timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        c.stop()


def test_ctrl_c_and_sigterm_leave_no_interface_or_route(lab):
    for sig in (signal.SIGINT, signal.SIGTERM):
        c, address = start(lab, "--default-route")
        try:
            assert address + "/32" in addrs6(lab)
            os.kill(c.proc.pid, sig)
            assert c.proc.wait(timeout=10) == 0
            final = c.wait_for(lambda o: "tun" in o and o["tun"]["address"] is None, 5, "the last status")
            assert final["tun"]["default_route"] is False
        finally:
            c.stop()
        assert lab.run("cli1", ["ip", "link", "show", IFNAME]).returncode != 0
        left = [r for r in routes6(lab) if r.get("dev") == IFNAME or r["dst"] in ("default", "2001::/32")]
        assert left == [], left


def test_interface_deleted_under_us_stops_with_one_line(lab):
    c, address = start(lab, "--default-route")
    try:
        lab.run("cli1", ["ip", "link", "del", IFNAME], check=True)
        assert c.proc.wait(timeout=10) == 1
    finally:
        c.stop()
    assert "teredoctl: interface teredo went away" in lab.log_tail("tun.log", 3)
    assert not [r for r in routes6(lab) if r["dst"] in ("default", "2001::/32")]


def test_without_root_one_line_says_what_is_needed(lab):
    r = lab.run("cli1", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         sys.executable, "-m", "teredoctl.cli", "client", "--server", L.SERVER_IP,
                         "--tun"], cwd=ROOT, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("teredoctl: --tun needs root or CAP_NET_ADMIN"), lines
    assert lab.run("cli1", ["ip", "link", "show", IFNAME]).returncode != 0


def test_a_stale_interface_of_ours_is_cleaned_and_a_foreign_one_refused(lab):
    stale = "2001:0:c633:640a:8000:ffff:ffff:fffe"
    for cmd in (["ip", "tuntap", "add", "dev", IFNAME, "mode", "tun"],
                ["ip", "link", "set", "dev", IFNAME, "alias", "teredoctl pid=999999", "up"],
                ["ip", "-6", "addr", "add", stale + "/32", "dev", IFNAME, "nodad"]):
        lab.run("cli1", cmd, check=True)
    try:
        c, address = start(lab)
        try:
            assert stale + "/32" not in addrs6(lab) and address + "/32" in addrs6(lab)
            assert "removed a stale interface teredo" in lab.log_tail("tun.log")
        finally:
            c.stop()
        assert lab.run("cli1", ["ip", "link", "show", IFNAME]).returncode != 0
        # an interface of that name that is not ours (a miredo's tun, say) is left alone
        lab.run("cli1", ["ip", "tuntap", "add", "dev", IFNAME, "mode", "tun"], check=True)
        r = lab.run("cli1", [sys.executable, "-m", "teredoctl.cli", "client", "--server", L.SERVER_IP,
                             "--tun"], cwd=ROOT, timeout=30)
        assert r.returncode == 1
        assert r.stderr.strip().startswith("teredoctl: interface teredo exists and is not a teredoctl "
                                           "tunnel"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert lab.run("cli1", ["ip", "link", "show", IFNAME]).returncode == 0
    finally:
        lab.run("cli1", ["ip", "link", "del", IFNAME])


# ---- sunset (RFC 4380 §5.5) ----------------------------------------------------------

def native_ipv6(lab, on):
    """nat1 becomes an IPv6 router for cli1 (RFC 4380 §3.2.4: the NAT
    upgraded), or stops being one."""
    if on:
        lab.run("nat1", ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0",
                         "net.ipv6.conf.wan.disable_ipv6=0", "net.ipv6.conf.lan.disable_ipv6=0",
                         "net.ipv6.conf.all.forwarding=1"], check=True)
        lab.run("nat1", ["ip", "-6", "addr", "add", NAT1_WAN6 + "/64", "dev", "wan", "nodad"], check=True)
        lab.run("nat1", ["ip", "-6", "addr", "add", NAT1_LAN6 + "/64", "dev", "lan", "nodad"], check=True)
        lab.run("cli1", ["ip", "-6", "addr", "add", CLI1_NATIVE6 + "/64", "dev", "eth0", "nodad"], check=True)
        lab.run("cli1", ["ip", "-6", "route", "add", "default", "via", NAT1_LAN6, "metric", "1024"],
                check=True)
        lab.run("v6h", ["ip", "-6", "route", "add", "2001:db8:1::/64", "via", NAT1_WAN6], check=True)
    else:
        lab.run("cli1", ["ip", "-6", "route", "del", "default", "via", NAT1_LAN6])
        lab.run("cli1", ["ip", "-6", "addr", "del", CLI1_NATIVE6 + "/64", "dev", "eth0"])
        lab.run("v6h", ["ip", "-6", "route", "del", "2001:db8:1::/64"])
        lab.run("nat1", ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])


def test_sunset_dormant_while_native_ipv6_answers_and_awake_without_it(lab):
    native_ipv6(lab, True)
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--tun", "--default-route",
                  "--sunset-probe", L.V6HOST, "--sunset-interval", "5", log="sunset.log")
    try:
        st = c.wait_for(lambda o: tun_state(o) == "dormant", 20, "dormant")
        assert st["state"] == "dormant" and st["address"] is None
        assert st["sunset"]["native"] is True and "answered via eth0" in st["sunset"]["detail"]
        assert addrs6(lab) == ["fe80::ffff:ffff:ffff/64"]  # the interface stays, carrying nothing
        assert not [r for r in routes6(lab) if r.get("dev") == IFNAME and r["dst"] != "fe80::/64"]
        # the never-qualified client sent nothing to the server
        assert not any(o.get("state") == "qualified" for o in c.seen)
        r = lab.run("cli1", ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "3", L.V6HOST], timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        # native IPv6 goes away: the tunnel wakes within a check interval
        native_ipv6(lab, False)
        st = c.wait_for(lambda o: tun_state(o) == "active", 30, "awake and active")
        assert st["state"] == "qualified" and st["sunset"]["native"] is False
        assert st["tun"]["default_route"] is True
        r = lab.run("cli1", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "3", L.V6HOST], timeout=20)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
        # and back: native again, dormant again
        native_ipv6(lab, True)
        st = c.wait_for(lambda o: tun_state(o) == "dormant", 30, "dormant again")
        assert st["sunset"]["checks"] >= 3
        assert not [r for r in routes6(lab) if r.get("dev") == IFNAME and r["dst"] == "default"]
    finally:
        c.stop()
        native_ipv6(lab, False)
