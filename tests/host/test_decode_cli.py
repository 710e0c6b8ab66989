"""`teredoctl decode` as a user runs it (the installed console script), and
the core's address code against CPython's ipaddress as an oracle."""
import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from teredo import addr

TEREDOCTL = shutil.which("teredoctl", path=os.path.dirname(sys.executable))


def run(*args):
    assert TEREDOCTL, "teredoctl is not installed in the venv (make venv)"
    return subprocess.run([TEREDOCTL, *args], capture_output=True, text=True, timeout=30)


def test_decode_text_known_vector():
    cp = run("decode", "2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert cp.returncode == 0, cp.stderr
    assert "65.54.227.120" in cp.stdout
    assert "cone yes" in cp.stdout
    assert "40000" in cp.stdout and "192.0.2.45" in cp.stdout


def test_decode_json_known_vector():
    cp = run("decode", "--json", "2001:0:1117:34fa:1027:374b:e1fc:f635")
    assert cp.returncode == 0, cp.stderr
    d = json.loads(cp.stdout)
    assert d["server"] == "17.23.52.250"
    assert d["flags"] == 0x1027 and d["cone"] is False
    assert d["mapped_port"] == 51380 and d["mapped_ipv4"] == "30.3.9.202"


@pytest.mark.parametrize("bad,words", [
    ("2001:db8::1", "not a Teredo address"),
    ("2001:0:1:2:3", "not an IPv6 address"),
    ("hello", "not an IPv6 address"),
])
def test_decode_errors_are_one_line_exit_1(bad, words):
    cp = run("decode", bad)
    assert cp.returncode == 1
    assert cp.stdout == ""
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teredoctl: ") and words in lines[0]


def test_matches_ipaddress_teredo_oracle():
    rng = random.Random(4380)
    for _ in range(2000):
        a = bytes([0x20, 0x01, 0, 0] + [rng.randrange(256) for _ in range(12)])
        ip = ipaddress.IPv6Address(a)
        server, client = ip.teredo
        s, flags, port, mapped = addr.decode_teredo(a)
        assert addr.format_ipv4(s) == str(server)
        assert addr.format_ipv4(mapped) == str(client)
        assert port == (~int.from_bytes(a[10:12], "big")) & 0xFFFF


def test_text_forms_match_ipaddress_oracle():
    rng = random.Random(5952)
    for _ in range(5000):
        groups = [rng.choice([0, 0, 0, 1, 0xFFFF, rng.randrange(65536)]) for _ in range(8)]
        b = b"".join(g.to_bytes(2, "big") for g in groups)
        ip = ipaddress.IPv6Address(b)
        if ip.ipv4_mapped:
            continue  # RFC 5952 §5 dotted tail: ipaddress differs by version
        assert addr.format_ipv6(b) == str(ip)
        assert addr.parse_ipv6(ip.exploded) == b
        assert addr.parse_ipv6(str(ip).upper()) == b
    for _ in range(2000):
        b = bytes(rng.randrange(256) for _ in range(4))
        assert addr.format_ipv4(b) == str(ipaddress.IPv4Address(b))
        assert addr.parse_ipv4(str(ipaddress.IPv4Address(b))) == b


def test_global_check_agrees_with_ipaddress_where_rfc4380_does():
    # ipaddress's is_global also excludes documentation/benchmark ranges,
    # which we count as global (as miredo does): compare outside those.
    skip = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                              "198.18.0.0/15", "192.0.0.0/24", "192.88.99.0/24")]
    rng = random.Random(1)
    for _ in range(20000):
        b = bytes(rng.randrange(256) for _ in range(4))
        ip = ipaddress.IPv4Address(b)
        if any(ip in n for n in skip) or ip.is_reserved:
            continue
        assert addr.is_global_ipv4(b) == (ip.is_global and not ip.is_multicast), str(ip)


def test_host_commands_start_without_the_board_commands_loaded():
    # `decode` and `client` are built alone: flashing and the virtual board
    # are not imported (their ~40 ms count in the client's start-up); the
    # full command list still comes with no command or a board command
    code = ("import sys, io, contextlib\n"
            "from teredoctl import cli\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    rc = cli.main(sys.argv[1:])\n"
            "print(rc, 'teredoctl.boardcmds' in sys.modules, 'teredoctl.flashing' in sys.modules)\n"
            "print(out.getvalue())\n")
    cp = subprocess.run([sys.executable, "-c", code, "decode", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    first = cp.stdout.splitlines()[0]
    assert first in ("0 False False", "None False False"), cp.stdout
    assert "65.54.227.120" in cp.stdout
    cp = run("client", "--help")
    assert cp.returncode == 0 and "--server" in cp.stdout and "--ping" in cp.stdout, cp.stdout + cp.stderr
    cp = run("--help")
    assert cp.returncode == 0 and "flash" in cp.stdout and "client" in cp.stdout, cp.stdout
    cp = run("status", "--help")
    assert cp.returncode == 0 and "--port" in cp.stdout, cp.stdout + cp.stderr
