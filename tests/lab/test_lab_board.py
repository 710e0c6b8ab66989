"""The board firmware on the virtual board, in the lab: it boots from its
flash folder, qualifies with miredo-server behind the NAT, answers pings from
the IPv6-only host and `status` over the pty; and a corrupt config, a WiFi
drop and a server that is down at boot each give a clear status and recover
without a reset loop.  Root only; CI runs these."""

import json
import os
import re

import pytest

from boardutil import ROMFS_HEAP, ROMFS_IMAGE, Board, install_firmware
import lab as L
from teredo import addr

pytestmark = pytest.mark.lab


@pytest.fixture
def board(lab, tmp_path):
    boards = []

    def make(config, romfs=False):
        flash = str(tmp_path / "flash")
        install_firmware(flash, config, romfs=romfs)
        if romfs:
            b = Board(lab, "cli1", flash, heap=ROMFS_HEAP, romfs=ROMFS_IMAGE)
        else:
            b = Board(lab, "cli1", flash)
        boards.append(b)
        b.reboot()  # the console opened after power-on: reboot to see it all
        b.wait(lambda m: m.get("event") == "boot", 10, "boot event")
        return b

    yield make
    for b in boards:
        b.close()


def test_boots_qualifies_answers_pings_and_status(lab, board):
    b = board({"server": L.SERVER_IP})
    st = b.wait_status(lambda s: s["state"] == "qualified" and s["nat"] != "unknown", 20, "qualified")
    server, flags, port, mapped = addr.decode_teredo(addr.parse_ipv6(st["address"]))
    assert addr.format_ipv4(server) == L.SERVER_IP
    assert addr.format_ipv4(mapped) == L.NAT1_WAN
    assert st["mapped"] == "%s:%d" % (L.NAT1_WAN, port)
    assert st["nat"] == "restricted"
    assert st["firmware"] and st["heap_used"] > 0 and st["heap_free"] > 0
    cp = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", st["address"]], timeout=15)
    assert " 0% packet loss" in cp.stdout, cp.stdout
    # the board pings the IPv6-only host through the relay
    r = b.command("ping %s 2" % L.V6HOST)
    assert r["ok"], r
    done = b.wait(lambda m: m.get("event") == "ping_done", 10, "ping_done")
    assert done["received"] >= 1
    st = b.status()
    assert st["relay"] == "%s:3544" % L.RELAY_IP and st["peers"] >= 1


def test_runs_in_a_small_heap_from_romfs_and_answers_1000_pings(lab, board):
    """Code in a ROMFS image (as a MicroPython >= 1.25 board with a ROMFS
    partition runs it: in place, from flash), state in a ROMFS_HEAP heap."""
    b = board({"server": L.SERVER_IP}, romfs=True)
    st = b.wait_status(lambda s: s["state"] == "qualified" and s["nat"] != "unknown", 20, "qualified")
    assert st["heap_used"] + st["heap_free"] <= int(ROMFS_HEAP[:-1]) * 1024
    server, flags, port, mapped = addr.decode_teredo(addr.parse_ipv6(st["address"]))
    assert addr.format_ipv4(mapped) == L.NAT1_WAN and st["nat"] == "restricted"
    assert st["mapped"] == "%s:%d" % (L.NAT1_WAN, port)
    # 125 per second: under the echo reply limit (200/s, RFC 4443 §2.4)
    cp = lab.run("v6h", ["ping", "-6", "-c", "1000", "-i", "0.008", "-q", "-W", "2", st["address"]],
                 timeout=60)
    m = re.search(r"(\d+) received", cp.stdout)
    assert m and int(m.group(1)) >= 990, cp.stdout
    after = b.status()
    assert after["state"] == "qualified" and after["loop_errors"] == 0
    # no growth under load (the echo path allocates nothing in the core)
    assert after["heap_used"] - st["heap_used"] < 2048, (st["heap_used"], after["heap_used"])


def test_console_errors_are_one_line_replies(lab, board):
    b = board({"server": L.SERVER_IP})
    r = b.command("frobnicate")
    assert r["ok"] is False and "unknown command" in r["error"]
    r = b.command("ping not-an-address")
    assert r["ok"] is False and "not an IPv6 address" in r["error"]
    r = b.command("config set {broken")
    assert r["ok"] is False and "JSON" in r["error"]
    r = b.command('config set {"server": "10.0.0.1"}')
    assert r["ok"] is False and "global" in r["error"]
    assert b.command("help")["ok"]
    # the bad config was not written: the good one is still there
    assert b.command("config")["data"]["server"] == L.SERVER_IP


def test_corrupt_config_clear_message_then_recovers(lab, board):
    b = board('{"server": "198.51.100.10", "refresh_s": ')  # cut short
    st = b.wait_status(lambda s: s["error"], 10, "an error in status")
    assert st["state"] == "offline" and "config.json is invalid" in st["error"]
    boots = b.boots()
    r = b.command('config set {"server": "%s"}' % L.SERVER_IP)
    assert r["ok"], r
    st = b.wait_status(lambda s: s["state"] == "qualified", 20, "qualified after config set")
    assert st["error"] is None
    assert b.boots() == boots  # fixed without a reset
    with open(os.path.join(b.flash, "config.json")) as f:
        assert json.load(f)["server"] == L.SERVER_IP


def test_wifi_drop_rejoins_and_requalifies_without_reset(lab, board):
    b = board({"server": L.SERVER_IP, "wifi_ssid": "lab", "wifi_password": "secret"})
    b.wait_status(lambda s: s["state"] == "qualified", 20, "qualified over WiFi")
    assert b.command("config")["data"]["wifi_password"] == "********"
    boots = b.boots()
    with open(os.path.join(b.ctl, "wifi"), "w") as f:
        f.write("down")
    st = b.wait_status(lambda s: s["state"] == "offline", 10, "offline after the WiFi drop")
    assert "WiFi" in st["error"]
    os.remove(os.path.join(b.ctl, "wifi"))
    st = b.wait_status(lambda s: s["state"] == "qualified", 30, "qualified after the WiFi is back")
    assert b.boots() == boots


def test_server_down_at_boot_then_up(lab, board):
    block = ["iptables", "-w", "5", "-I", "FORWARD", "-p", "udp", "--dport", "3544", "-j", "DROP"]
    lab.run("nat1", block, check=True)
    try:
        b = board({"server": L.SERVER_IP})
        st = b.wait_status(lambda s: s["state"] == "offline" and s["error"], 25, "offline")
        assert "no answer from Teredo server %s" % L.SERVER_IP in st["error"]
        boots = b.boots()
    finally:
        lab.run("nat1", ["iptables", "-w", "5", "-D"] + block[4:], check=True)
    st = b.wait_status(lambda s: s["state"] == "qualified", 30, "qualified once the server is reachable")
    assert st["error"] is None and b.boots() == boots
