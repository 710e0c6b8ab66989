"""Network-namespace test lab for the Teredo (RFC 4380) client project.

Everything runs inside network namespaces created here (veth pairs only
between our own namespaces, nothing in the root namespace).  stdlib only.

Topology (namespace names are ``t<4 hex>-<role>``, e.g. ``t3f2a-srv``)::

    inet : "internet" namespace, Linux bridge br0 = public segment
           198.51.100.0/24 + 2001:db8:f::/64 (br0 itself: .1 / ::1)
    srv  : miredo-server, 198.51.100.10 + .11 (consecutive), 2001:db8:f::10
    rly  : miredo "RelayType relay", UDP 3544, 198.51.100.20, 2001:db8:f::20,
           IPv6 forwarding on, tun "teredo" carries 2001::/32
    v6h  : IPv6-only host 2001:db8:f::100, 2001::/32 via 2001:db8:f::20
    nat1 : NAT, WAN 198.51.100.31 (+ alt 198.51.100.41), LAN 198.18.1.1/24
    cli1 : 198.18.1.2/24, default via 198.18.1.1 (client under test runs here)
    nat2 : NAT, WAN 198.51.100.32 (+ alt 198.51.100.42), LAN 198.18.2.1/24
    cli2 : 198.18.2.2/24, Debian miredo as Teredo client peer (server .10)
    cli3 : only with ``lan_peer=True``: 198.18.1.3/24 on NAT1's LAN, which is
           then a bridge ``lan`` in nat1 (ports lan0 to cli1, lan1 to cli3,
           multicast flooded): two hosts behind one NAT (local discovery)

Interfaces: every host namespace uses ``eth0`` towards the bridge (NATs:
``wan`` and ``lan``; client namespaces ``eth0``).  Interface names are per
namespace, so two labs coexist.

API
---
``Lab(nat1="restricted", nat2="restricted", peer_client=True, workdir=None,
capture=True, keep_workdir=False, lan_peer=False)``
    ``capture=True`` records UDP on srv/eth0 and rly/eth0 from the start into
    ``<workdir>/srv.pcap`` / ``rly.pcap`` (see ``lab.pcap(name)``).
``lab.up()`` / ``lab.down(keep_workdir=None)`` / ``with Lab(...) as lab:``
    ``down`` kills only processes the lab started (by pid, then any pid still
    inside the lab's namespaces), deletes the namespaces.  The workdir (logs,
    configs, pcaps) is removed on clean exit and kept (path printed to
    stderr) on failure / exception / ``keep_workdir=True`` / explicit workdir.
``lab.ns(name)``                        -> full namespace name
``lab.run(name, argv, timeout=20, check=False, **kw)`` -> CompletedProcess
    (``ip netns exec``; text mode and captured output by default)
``lab.popen(name, argv, log=None, **kw)`` -> Popen, tracked for teardown
    (``log``: file name in workdir receiving stdout+stderr)
``lab.stop_process(p, timeout=3)``      -> terminate a tracked Popen
``lab.set_nat(nat, kind, flush=True)``  kind in NAT_KINDS (see below)
``lab.flush_conntrack(nat)``            ``conntrack -F`` in the NAT ("reboot")
``lab.remap(nat, how="port"|"address"|None)`` force a mapping change:
    "port": SNAT to the next port range (20000-29999, 30000-39999, ...),
    "address": SNAT to the NAT's alternate WAN address (NATx_WAN_ALT; toggles
    back on the next call), None: back to plain MASQUERADE on the primary
    address.  Always flushes conntrack.  Returns lab.nat_public_ip(nat).
    NOTE: with "cone" + how="port", unsolicited inbound is DNAT'ed port-
    preserving, so it does not reach remapped ports; use how="address".
``lab.nat_public_ip(nat)``              current external IPv4 of the NAT
``lab.capture(name, iface, path=None, bpf="udp")`` -> Capture (tcpdump);
    ``.stop()`` returns the pcap path; stopped automatically at teardown.
``lab.start_peer_client()`` / ``lab.stop_peer_client()`` / ``restart``
``lab.peer_teredo_address(timeout=30)`` -> str (waits for qualification)
``lab.teredo_address(name, ifname="teredo", timeout=30)`` generic version
``lab.log_tail(logname, n=40)``; ``lab.pids()``; ``lab.describe()``
``lab.probe_rs(name, servers=(SERVER_IP, SERVER_IP2), cone=False,
timeout=1.5, port=0)`` -> list of dicts: sends ONE Teredo RS per server
    from one UDP socket inside ``name`` and reports the RA (ok, ra_from,
    mapped=(ip, port) from the origin indication, prefix).  Debian's miredo
    1.2.6 client only solicits the primary server, so this is how the
    secondary address / NAT behaviour is exercised.

Module helpers: ``require_root_and_tools()`` -> None or reason string;
``teredo_summary(pcap, extra_ports=())`` -> list of lines;
``decode_teredo(addr)`` -> dict(server, flags, port, client_ip);
``teredo_rs_probe(...)`` / ``build_teredo_rs`` / ``parse_teredo_packet``;
``leftovers(prefix, pids)`` -> (namespaces, live pids);
``cleanup_stale(force=False)``.

Daemons: miredo / miredo-server refuse to keep root ("not supposed to keep
root privileges"), so they run with their default user ``miredo`` (no -u).
They are started in the foreground (-f) with private configs in the workdir
and ``-p <workdir>/*.pid`` (in -f mode no pid file is written at all).  Their
log goes to stderr (LOG_PERROR) -> ``<workdir>/miredo-*.log``.  The miredo
client runs /etc/miredo/client-hook (read only) through miredo-privproc
inside cli2's namespace.

NAT kinds (iptables-nft inside the NAT namespace, WAN iface ``wan``):
  restricted  port-restricted cone: ``-t nat POSTROUTING -o wan MASQUERADE``
              (port preserved when free) + ``-t mangle PREROUTING -i wan
              -m conntrack --ctstate NEW,INVALID -j DROP``.  Dropping in
              PREROUTING means unsolicited packets never confirm a conntrack
              entry, so they cannot steal/shift the mapped port.
  cone        full cone: MASQUERADE + ``-t nat PREROUTING -i wan -p udp -j DNAT
              --to-destination <client>`` (no port => port preserved); only
              non-UDP NEW and INVALID inbound are dropped.
  symmetric   ``MASQUERADE --random`` (+ the restricted inbound drop).

CLI: ``python tests/lab/lab.py up [--nat1 K] [--nat2 K] [--no-peer]``
(build, print names/addresses, wait for Ctrl-C, tear down) and
``python tests/lab/lab.py cleanup [--force]`` (remove leftover lab
namespaces whose creator pid is dead; the creator pid + start time is stored
as the ``lo`` ifalias inside each namespace; ``--force`` also removes
pattern-matching namespaces without a marker).
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref

# ---------------------------------------------------------------- constants
PUBLIC_NET4 = "198.51.100.0/24"
PUBLIC_NET6 = "2001:db8:f::/64"
INET_IP = "198.51.100.1"
INET_IP6 = "2001:db8:f::1"
SERVER_IP = "198.51.100.10"
SERVER_IP2 = "198.51.100.11"
SERVER_IP6 = "2001:db8:f::10"
RELAY_IP = "198.51.100.20"
RELAY_IP6 = "2001:db8:f::20"
RELAY_PORT = 3544
TEREDO_PORT = 3544
V6HOST = "2001:db8:f::100"
NAT1_WAN = "198.51.100.31"
NAT2_WAN = "198.51.100.32"
NAT1_WAN_ALT = "198.51.100.41"
NAT2_WAN_ALT = "198.51.100.42"
NAT1_LAN = "198.18.1.1"
NAT2_LAN = "198.18.2.1"
CLIENT1_IP = "198.18.1.2"
CLIENT2_IP = "198.18.2.2"
# Lab(lan_peer=True): a second host on NAT1's LAN (cli3), beside cli1
CLIENT3_IP = "198.18.1.3"
# a second Teredo server (Lab.start_server_b): its own two addresses
SERVER_B_IP = "198.51.100.12"
SERVER_B_IP2 = "198.51.100.13"
# an address where nothing answers (a dead server)
DEAD_IP = "198.51.100.99"
TEREDO_PREFIX = "2001::/32"
# 2001:0:c633:640a = Teredo prefix + SERVER_IP
TEREDO_SERVER_PREFIX = "2001:0:c633:640a"

NAT_KINDS = ("restricted", "cone", "symmetric")
ROLES = ("inet", "srv", "rly", "v6h", "nat1", "cli1", "nat2", "cli2", "cli3")
NS_RE = re.compile(r"^(t[0-9a-f]{4})-(%s)$" % "|".join(ROLES))
MARKER = "teredo-lab"
PORT_RANGES = ((20000, 29999), (30000, 39999), (40000, 49999))

_NATS = {
    "nat1": dict(wan=NAT1_WAN, alt=NAT1_WAN_ALT, lan=NAT1_LAN,
                 client=CLIENT1_IP, cli="cli1", net="198.18.1.0/24"),
    "nat2": dict(wan=NAT2_WAN, alt=NAT2_WAN_ALT, lan=NAT2_LAN,
                 client=CLIENT2_IP, cli="cli2", net="198.18.2.0/24"),
}

# What the lab needs, one list shared with the installer (tools/lab-deps.txt:
# a Debian package and the files it provides, per line).
DEPS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "tools", "lab-deps.txt")


def lab_deps(path: str = DEPS_FILE) -> list:
    """[(Debian package, [paths it provides that the lab uses])]."""
    out = []
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                out.append((words[0], words[1:]))
    return out


def missing_deps() -> list:
    """[(package, first missing path)] of lab-deps.txt not installed here."""
    miss = []
    for pkg, files in lab_deps():
        for p in files:
            if not os.path.exists(p):
                miss.append((pkg, p))
                break
    return miss


_live_labs: "weakref.WeakSet[Lab]" = weakref.WeakSet()


def _log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def require_root_and_tools() -> str | None:
    """Return None if the lab can run here, else a human readable reason."""
    if os.geteuid() != 0:
        return "network lab needs root (network namespaces, iptables)"
    miss = missing_deps()
    if miss:
        return ("missing Debian packages: %s (%s); run make lab-deps as root"
                % (" ".join(p for p, _ in miss), ", ".join(f for _, f in miss)))
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun missing"
    if not os.path.isdir("/run/netns") and not os.access("/run", os.W_OK):
        return "cannot create /run/netns"
    return None


def _tool_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    env.setdefault("LC_ALL", "C")
    return env


def _sh(argv, check=True, timeout=20, **kw) -> subprocess.CompletedProcess:
    """Run a command in the root namespace (only ``ip netns ...``/``ip -n``)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("env", _tool_env())
    cp = subprocess.run(argv, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise RuntimeError(f"command failed ({cp.returncode}): {' '.join(argv)}\n"
                           f"{cp.stdout}{cp.stderr}")
    return cp


def _proc_starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int, starttime: str | None = None) -> bool:
    """True if pid exists, is not a zombie and (if given) has that start time."""
    st = _proc_starttime(pid)
    if st is None or _is_zombie(pid):
        return False
    return starttime is None or st == starttime


def _kill_pid(pid: int, timeout: float = 3.0) -> None:
    """SIGTERM a single pid, SIGKILL after timeout (reaping is caller's job)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid) or _is_zombie(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _list_netns() -> list[str]:
    cp = _sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def _ns_pids(ns: str) -> list[int]:
    cp = _sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in cp.stdout.split() if x.isdigit()]


def _ns_marker(ns: str) -> dict | None:
    cp = _sh(["ip", "-n", ns, "link", "show", "lo"], check=False)
    m = re.search(r"alias (%s .*)$" % MARKER, cp.stdout, re.M)
    if not m:
        return None
    return dict(kv.split("=", 1) for kv in m.group(1).split()[1:] if "=" in kv)


def decode_teredo(addr: str) -> dict:
    """Decode a Teredo address: server IPv4, flags, mapped port, mapped IPv4."""
    b = ipaddress.IPv6Address(addr).packed
    if b[:4] != b"\x20\x01\x00\x00":
        raise ValueError(f"not a Teredo address: {addr}")
    return dict(
        server=str(ipaddress.IPv4Address(b[4:8])),
        flags=int.from_bytes(b[8:10], "big"),
        port=int.from_bytes(b[10:12], "big") ^ 0xFFFF,
        client_ip=str(ipaddress.IPv4Address(bytes(x ^ 0xFF for x in b[12:16]))),
    )


# ------------------------------------------------------- Teredo RS probe
def _icmp6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    data = src + dst + len(payload).to_bytes(4, "big") + b"\0\0\0\x3a" + payload
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def build_teredo_rs(nonce: bytes, cone: bool = False) -> bytes:
    """Teredo RS (RFC 4380 5.2.1): auth header (no id/au) + IPv6 RS."""
    src = ipaddress.IPv6Address("fe80::8000:ffff:ffff:fffe" if cone
                                else "fe80::ffff:ffff:ffff").packed
    dst = ipaddress.IPv6Address("ff02::2").packed
    icmp = bytearray(b"\x85\x00\x00\x00\x00\x00\x00\x00")
    icmp[2:4] = _icmp6_checksum(src, dst, bytes(icmp)).to_bytes(2, "big")
    ip6 = (b"\x60\x00\x00\x00" + len(icmp).to_bytes(2, "big") + b"\x3a\xff"
           + src + dst + bytes(icmp))
    return b"\x00\x01\x00\x00" + nonce + b"\x00" + ip6


def parse_teredo_packet(data: bytes) -> dict:
    """Split a Teredo UDP payload into auth / origin / IPv6 parts."""
    out: dict = {"nonce": None, "confirmation": None, "origin": None}
    i = 0
    if data[i:i + 2] == b"\x00\x01":
        idl, aul = data[i + 2], data[i + 3]
        j = i + 4 + idl + aul
        out["nonce"], out["confirmation"] = data[j:j + 8], data[j + 8]
        i = j + 9
    if data[i:i + 2] == b"\x00\x00":
        port = int.from_bytes(data[i + 2:i + 4], "big") ^ 0xFFFF
        ip = bytes(b ^ 0xFF for b in data[i + 4:i + 8])
        out["origin"] = (str(ipaddress.IPv4Address(ip)), port)
        i += 8
    ip6 = data[i:]
    out["ipv6"] = ip6
    if len(ip6) >= 40 and ip6[0] >> 4 == 6:
        out["src6"] = str(ipaddress.IPv6Address(ip6[8:24]))
        out["dst6"] = str(ipaddress.IPv6Address(ip6[24:40]))
        if ip6[6] == 58 and len(ip6) > 40:
            out["icmp6_type"] = ip6[40]
            if ip6[40] == 134:  # RA: look for the prefix information option
                k = 40 + 16
                while k + 2 <= len(ip6) and ip6[k + 1]:
                    if ip6[k] == 3 and k + 32 <= len(ip6):
                        out["prefix"] = "%s/%d" % (
                            ipaddress.IPv6Address(ip6[k + 16:k + 32]), ip6[k + 2])
                    k += ip6[k + 1] * 8
    return out


def teredo_rs_probe(servers=(SERVER_IP, SERVER_IP2), cone: bool = False,
                    timeout: float = 1.5, port: int = 0) -> list[dict]:
    """Send ONE Teredo RS to each server from one UDP socket (this netns).

    Returns one dict per server: server, ok, ra_from (ip, port) or None,
    mapped (ip, port) from the RA's origin indication, prefix.  One packet
    per server, bounded wait; no retries.
    """
    import socket
    res = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        for srv in servers:
            nonce = secrets.token_bytes(8)
            s.sendto(build_teredo_rs(nonce, cone), (srv, TEREDO_PORT))
            r = {"server": srv, "local_port": s.getsockname()[1], "ok": False,
                 "ra_from": None, "mapped": None, "prefix": None}
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, frm = s.recvfrom(2048)
                except (socket.timeout, TimeoutError):
                    break
                pk = parse_teredo_packet(data)
                if pk["nonce"] == nonce and pk.get("icmp6_type") == 134:
                    r.update(ok=True, ra_from=frm, mapped=pk["origin"],
                             prefix=pk.get("prefix"))
                    break
            res.append(r)
    return res


# ----------------------------------------------------------------- capture
class Capture:
    """A running tcpdump; ``stop()`` ends it and returns the pcap path."""

    def __init__(self, lab: "Lab", proc: subprocess.Popen, path: str, log: str):
        self.lab, self.proc, self.path, self.log = lab, proc, path, log

    def stop(self, settle: float = 0.3) -> str:
        if self.proc.poll() is None:
            time.sleep(settle)  # let in-flight packets reach tcpdump
            self.proc.send_signal(signal.SIGINT)  # tcpdump flushes on SIGINT
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.lab.stop_process(self.proc)
        self.lab._forget(self.proc)
        return self.path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def teredo_summary(pcap_path: str, extra_ports=(), display_filter: str | None = None,
                   timeout: float = 30) -> list[str]:
    """Summarise UDP/Teredo traffic in a pcap with tshark's Teredo dissector.

    tshark decodes Teredo on udp.port 3544 by default.  Teredo on other ports
    (client<->peer traffic, or relays using another port) is picked up by the
    ``teredo`` UDP heuristic dissector, which is *disabled* by default and is
    enabled here with ``--enable-heuristic teredo_udp``; ``extra_ports`` adds
    explicit ``-d udp.port==N,teredo`` decode-as entries.  (tshark 4.0 has no
    teredo.summary_in_tree preference.)

    Line format: ``<no> <t> <src>:<sport> > <dst>:<dport> [auth] [orig=ip:port]
    <ipv6.src> > <ipv6.dst> <Info>``
    """
    argv = ["tshark", "-n", "-r", pcap_path, "--enable-heuristic", "teredo_udp",
            "-d", "udp.port==3544,teredo"]
    for p in extra_ports:
        argv += ["-d", f"udp.port=={int(p)},teredo"]
    argv += ["-Y", display_filter or "udp", "-T", "fields", "-E", "separator=\t",
             "-E", "occurrence=f"]
    fields = ["frame.number", "frame.time_relative", "ip.src", "udp.srcport",
              "ip.dst", "udp.dstport", "teredo.auth", "teredo.orig.addr",
              "teredo.orig.port", "ipv6.src", "ipv6.dst", "_ws.col.Info"]
    for f in fields:
        argv += ["-e", f]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                        env=_tool_env())
    if cp.returncode != 0:
        raise RuntimeError(f"tshark failed: {cp.stderr.strip()}")
    out = []
    for line in cp.stdout.splitlines():
        v = (line.split("\t") + [""] * len(fields))[:len(fields)]
        no, t, s, sp, d, dp, auth, oa, op, s6, d6, info = v
        parts = [no, f"{float(t or 0):.3f}", f"{s}:{sp} > {d}:{dp}"]
        if auth:
            parts.append("[auth]")
        if oa:
            parts.append(f"[orig={oa}:{op}]")
        if s6 or d6:
            parts.append(f"{s6} > {d6}")
        parts.append(info)
        out.append(" ".join(parts))
    return out


# --------------------------------------------------------------------- Lab
class Lab:
    def __init__(self, nat1: str = "restricted", nat2: str = "restricted",
                 peer_client: bool = True, workdir: str | None = None,
                 capture: bool = True, keep_workdir: bool = False, lan_peer: bool = False):
        for k in (nat1, nat2):
            if k not in NAT_KINDS:
                raise ValueError(f"NAT kind {k!r} not in {NAT_KINDS}")
        self.nat_kind = {"nat1": nat1, "nat2": nat2}
        self._nat_snat = {"nat1": None, "nat2": None}  # None | ("port", i) | ("address",)
        self.peer_client = peer_client
        # NAT1's LAN a bridge ("lan" in nat1) with two hosts: cli1 and cli3
        self.lan_peer = lan_peer
        self.roles = [r for r in ROLES if r != "cli3" or lan_peer]
        self.capture_default = capture
        self._explicit_workdir = workdir is not None
        self.keep_workdir = keep_workdir
        self.workdir = workdir
        self.prefix: str | None = None
        self._namespaces: list[str] = []
        self._etc_dirs: list[str] = []  # /etc/netns/<ns> made by set_hosts
        self._procs: list[tuple[subprocess.Popen, object]] = []
        self._captures: dict[str, Capture] = {}
        self._peer: subprocess.Popen | None = None
        self._is_up = False
        self._failed = False

    # ------------------------------------------------------------ basics
    def ns(self, name: str) -> str:
        if name not in ROLES:
            raise KeyError(f"unknown lab node {name!r}; one of {ROLES}")
        return f"{self.prefix}-{name}"

    def path(self, fname: str) -> str:
        return os.path.join(self.workdir, fname)

    def run(self, name: str, argv, timeout: float = 20, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        """Run argv inside namespace ``name``; returns CompletedProcess."""
        if "stdout" not in kw and "stderr" not in kw:
            kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("env", _tool_env())
        kw.setdefault("stdin", subprocess.DEVNULL)
        cp = subprocess.run(["ip", "netns", "exec", self.ns(name), *argv],
                            timeout=timeout, **kw)
        if check and cp.returncode != 0:
            raise RuntimeError(f"[{name}] {' '.join(map(str, argv))} -> "
                               f"{cp.returncode}\n{cp.stdout or ''}{cp.stderr or ''}")
        return cp

    def popen(self, name: str, argv, log: str | None = None, **kw) -> subprocess.Popen:
        """Start argv inside namespace ``name``; tracked and killed at teardown.

        ``ip netns exec`` execs the command, so ``p.pid`` is the real pid.
        ``log``: file name (relative to workdir) for stdout+stderr.
        """
        logf = None
        if log is not None:
            logf = open(self.path(log) if not os.path.isabs(log) else log, "ab")
            kw.setdefault("stdout", logf)
            kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("env", _tool_env())
        try:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns(name), *argv], **kw)
        except BaseException:
            if logf:
                logf.close()
            raise
        self._procs.append((p, logf))
        return p

    def _forget(self, proc: subprocess.Popen) -> None:
        for i, (p, f) in enumerate(self._procs):
            if p is proc:
                if f:
                    f.close()
                del self._procs[i]
                return

    def stop_process(self, proc: subprocess.Popen, timeout: float = 3.0) -> int | None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        self._forget(proc)
        return proc.returncode

    def log_tail(self, logname: str, n: int = 40) -> str:
        try:
            with open(self.path(logname), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return f"<{e}>"

    # ------------------------------------------------------- life cycle
    def __enter__(self) -> "Lab":
        self.up()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.down(keep_workdir=True if exc_type is not None else None)
        return False

    def up(self) -> "Lab":
        if self._is_up:
            return self
        reason = require_root_and_tools()
        if reason:
            raise RuntimeError(f"lab cannot run: {reason}")
        existing = set(_list_netns())
        for _ in range(100):
            p = "t" + secrets.token_hex(2)
            if not any(n.startswith(p + "-") for n in existing):
                self.prefix = p
                break
        else:
            raise RuntimeError("no free lab prefix")
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix=f"teredo-lab-{self.prefix}-")
        os.makedirs(self.workdir, exist_ok=True)
        self._is_up = True
        _live_labs.add(self)
        try:
            self._build()
        except BaseException:
            self._failed = True
            _log(f"lab {self.prefix} setup failed; logs kept in {self.workdir}")
            self.down(keep_workdir=True)
            raise
        return self

    def _build(self) -> None:
        marker = (f"{MARKER} pid={os.getpid()} start={_proc_starttime(os.getpid())} "
                  f"workdir={self.workdir}")
        for role in self.roles:
            ns = self.ns(role)
            _sh(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
            _sh(["ip", "-n", ns, "link", "set", "lo", "alias", marker[:250]])
            _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            # no DAD delays for static addresses / new links
            self.run(role, ["sysctl", "-q", "-w",
                            "net.ipv6.conf.all.accept_dad=0",
                            "net.ipv6.conf.default.accept_dad=0",
                            "net.ipv6.conf.all.accept_ra=0",
                            "net.ipv6.conf.default.accept_ra=0"], check=True)

        inet = self.ns("inet")
        _sh(["ip", "-n", inet, "link", "add", "br0", "type", "bridge",
             "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])
        # keep bridged frames out of iptables in "inet" (if per-netns knob exists)
        self.run("inet", ["sysctl", "-q", "-w",
                          "net.bridge.bridge-nf-call-iptables=0",
                          "net.bridge.bridge-nf-call-ip6tables=0"])
        _sh(["ip", "-n", inet, "addr", "add", INET_IP + "/24", "dev", "br0"])
        _sh(["ip", "-n", inet, "addr", "add", INET_IP6 + "/64", "dev", "br0", "nodad"])
        _sh(["ip", "-n", inet, "link", "set", "br0", "up"])

        def public(role, ifname, v4=(), v6=()):
            ns, peer = self.ns(role), f"p-{role}"
            _sh(["ip", "-n", inet, "link", "add", peer, "type", "veth",
                 "peer", "name", ifname, "netns", ns])
            _sh(["ip", "-n", inet, "link", "set", peer, "master", "br0"])
            _sh(["ip", "-n", inet, "link", "set", peer, "up"])
            for a in v4:
                _sh(["ip", "-n", ns, "addr", "add", a + "/24", "dev", ifname])
            for a in v6:
                _sh(["ip", "-n", ns, "-6", "addr", "add", a + "/64", "dev", ifname, "nodad"])
            _sh(["ip", "-n", ns, "link", "set", ifname, "up"])

        public("srv", "eth0", [SERVER_IP, SERVER_IP2], [SERVER_IP6])
        public("rly", "eth0", [RELAY_IP], [RELAY_IP6])
        public("v6h", "eth0", [], [V6HOST])
        _sh(["ip", "-n", self.ns("v6h"), "-6", "route", "add", TEREDO_PREFIX,
             "via", RELAY_IP6])
        # server: Teredo destinations via the relay as well (replies / errors)
        _sh(["ip", "-n", self.ns("srv"), "-6", "route", "add", TEREDO_PREFIX,
             "via", RELAY_IP6])
        self.run("rly", ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"],
                 check=True)

        for nat, cfg in _NATS.items():
            public(nat, "wan", [cfg["wan"], cfg["alt"]])
            nns, cns = self.ns(nat), self.ns(cfg["cli"])
            hosts = [(cns, cfg["client"])]
            if nat == "nat1" and self.lan_peer:
                hosts.append((self.ns("cli3"), CLIENT3_IP))
            if len(hosts) == 1:
                _sh(["ip", "-n", nns, "link", "add", "lan", "type", "veth",
                     "peer", "name", "eth0", "netns", cns])
            else:
                # one link with two hosts: a bridge, flooding multicast
                # (no IGMP snooping), kept out of iptables
                _sh(["ip", "-n", nns, "link", "add", "lan", "type", "bridge",
                     "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])
                self.run(nat, ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"])
                for k, (hns, _) in enumerate(hosts):
                    port = "lan%d" % k
                    _sh(["ip", "-n", nns, "link", "add", port, "type", "veth",
                         "peer", "name", "eth0", "netns", hns])
                    _sh(["ip", "-n", nns, "link", "set", port, "master", "lan"])
                    _sh(["ip", "-n", nns, "link", "set", port, "up"])
            _sh(["ip", "-n", nns, "addr", "add", cfg["lan"] + "/24", "dev", "lan"])
            _sh(["ip", "-n", nns, "link", "set", "lan", "up"])
            for hns, ip in hosts:
                _sh(["ip", "-n", hns, "addr", "add", ip + "/24", "dev", "eth0"])
                _sh(["ip", "-n", hns, "link", "set", "eth0", "up"])
                _sh(["ip", "-n", hns, "route", "add", "default", "via", cfg["lan"]])
            self.run(nat, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                           "net.ipv6.conf.all.disable_ipv6=1"], check=True)
            self._apply_nat(nat)

        if self.capture_default:
            for role in ("srv", "rly"):
                self._captures[role] = self.capture(role, "eth0", self.path(f"{role}.pcap"))

        self._start_server()
        self._start_relay()
        if self.peer_client:
            self.start_peer_client()

    # -------------------------------------------------------------- daemons
    def _write(self, fname: str, text: str) -> str:
        p = self.path(fname)
        with open(p, "w") as f:
            f.write(text)
        return p

    def _wait(self, what: str, cond, timeout: float, proc=None, log=None, interval=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = cond()
            if r:
                return r
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: process exited ({proc.returncode})\n"
                                   + (self.log_tail(log) if log else ""))
            time.sleep(interval)
        raise TimeoutError(f"timeout ({timeout}s) waiting for {what}\n"
                           + (self.log_tail(log) if log else ""))

    def _udp_bound(self, name: str, addr: str, port: int) -> bool:
        out = self.run(name, ["ss", "-Huln"]).stdout
        return f"{addr}:{port} " in out or f"{addr}:{port}\t" in out

    def _start_server(self) -> None:
        self._server_proc = self._miredo_server("miredo-server", SERVER_IP, SERVER_IP2)

    def _miredo_server(self, name: str, a: str, b: str) -> subprocess.Popen:
        """miredo-server on addresses a and b of the srv namespace, ready."""
        conf = self._write(name + ".conf", f"ServerBindAddress {a}\nServerBindAddress2 {b}\n")
        p = self.popen("srv", ["miredo-server", "-f", "-c", conf, "-p", self.path(name + ".pid")],
                       log=name + ".log")
        self._wait(f"{name} on udp/3544",
                   lambda: self._udp_bound("srv", a, 3544) and self._udp_bound("srv", b, 3544),
                   10, p, name + ".log")
        return p

    def _start_relay(self) -> None:
        conf = self._write("miredo-relay.conf",
                           "RelayType relay\n"
                           "InterfaceName teredo\n"
                           f"BindAddress {RELAY_IP}\n"
                           f"BindPort {RELAY_PORT}\n")
        p = self.popen("rly", ["miredo", "-f", "-c", conf,
                               "-p", self.path("miredo-relay.pid")],
                       log="miredo-relay.log")
        self._relay_proc = p

        def ready():
            r = self.run("rly", ["ip", "-6", "route", "show", "dev", "teredo"])
            return r.returncode == 0 and "2001::/32" in r.stdout
        self._wait("relay tun with 2001::/32", ready, 10, p, "miredo-relay.log")

    def set_hosts(self, name: str, hosts: dict) -> str:
        """Host names for the processes of namespace ``name``: ``ip netns
        exec`` mounts /etc/netns/<ns>/hosts over /etc/hosts (a file, no
        route or address in the root namespace); removed at teardown."""
        d = os.path.join("/etc/netns", self.ns(name))
        os.makedirs(d, exist_ok=True)
        if d not in self._etc_dirs:
            self._etc_dirs.append(d)
        p = os.path.join(d, "hosts")
        with open(p, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for host, ip in hosts.items():
                for a in ([ip] if isinstance(ip, str) else ip):
                    f.write(f"{a} {host}\n")
        return p

    def start_server_b(self) -> None:
        """A second miredo-server on SERVER_B_IP and SERVER_B_IP2 (same
        namespace, own addresses), for server lists and failover."""
        if getattr(self, "_server_b_proc", None) is not None:
            return
        for a in (SERVER_B_IP, SERVER_B_IP2):
            _sh(["ip", "-n", self.ns("srv"), "addr", "replace", a + "/24", "dev", "eth0"])
        self._server_b_proc = self._miredo_server("miredo-server-b", SERVER_B_IP, SERVER_B_IP2)

    def stop_server_b(self) -> None:
        p = getattr(self, "_server_b_proc", None)
        if p is not None:
            self.stop_process(p)
            self._server_b_proc = None

    def stop_server(self) -> None:
        """Stop miredo-server (a server outage); start_server() brings it back."""
        p = getattr(self, "_server_proc", None)
        if p is not None:
            self.stop_process(p)
            self._server_proc = None

    def start_server(self) -> None:
        if getattr(self, "_server_proc", None) is None:
            self._start_server()

    def stop_relay(self) -> None:
        """Stop the miredo relay (its tun goes away); start_relay() restarts it."""
        p = getattr(self, "_relay_proc", None)
        if p is not None:
            self.stop_process(p)
            self._relay_proc = None

    def start_relay(self) -> None:
        if getattr(self, "_relay_proc", None) is None:
            self._start_relay()

    def start_peer_client(self) -> subprocess.Popen:
        if self._peer is not None and self._peer.poll() is None:
            return self._peer
        conf = self._write("miredo-peer.conf",
                           "RelayType client\n"
                           "InterfaceName teredo\n"
                           f"ServerAddress {SERVER_IP}\n")
        self._peer = self.popen("cli2", ["miredo", "-f", "-c", conf,
                                         "-p", self.path("miredo-peer.pid")],
                                log="miredo-peer.log")
        return self._peer

    def stop_peer_client(self) -> None:
        if self._peer is not None:
            self.stop_process(self._peer)
            self._peer = None
        # the tun goes away with the process; wait (bounded) for it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.run("cli2", ["ip", "link", "show", "teredo"]).returncode != 0:
                break
            time.sleep(0.1)

    def restart_peer_client(self) -> subprocess.Popen:
        self.stop_peer_client()
        return self.start_peer_client()

    def teredo_address(self, name: str, ifname: str = "teredo",
                       timeout: float = 30, proc=None, log=None) -> str:
        """Wait (bounded) for a global 2001::/32 address on ``ifname``."""
        def get():
            r = self.run(name, ["ip", "-6", "-o", "addr", "show", "dev", ifname,
                                "scope", "global"])
            for m in re.finditer(r"inet6 ([0-9a-f:]+)/(\d+)", r.stdout):
                a = ipaddress.IPv6Address(m.group(1))
                if a in ipaddress.IPv6Network(TEREDO_PREFIX):
                    return str(a)
            return None
        return self._wait(f"Teredo address on {name}/{ifname}", get, timeout,
                          proc, log, interval=0.2)

    def peer_teredo_address(self, timeout: float = 30) -> str:
        if self._peer is None:
            raise RuntimeError("peer client not started")
        return self.teredo_address("cli2", "teredo", timeout, self._peer,
                                   "miredo-peer.log")

    def probe_rs(self, name: str, servers=(SERVER_IP, SERVER_IP2), cone: bool = False,
                 timeout: float = 1.5, port: int = 0) -> list[dict]:
        """Run teredo_rs_probe() inside namespace ``name`` (see there)."""
        import json
        argv = [sys.executable, os.path.abspath(__file__), "probe-rs",
                "--timeout", str(timeout), "--port", str(port)]
        argv += ["--cone"] if cone else []
        argv += list(servers)
        env = _tool_env()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        cp = self.run(name, argv, env=env, check=True,
                      timeout=10 + timeout * len(servers))
        return json.loads(cp.stdout)

    # ------------------------------------------------------------------ NAT
    def _apply_nat(self, nat: str) -> None:
        cfg, kind = _NATS[nat], self.nat_kind[nat]
        snat = self._nat_snat[nat]
        ipt = ["iptables", "-w", "5"]
        cmds = [ipt + ["-t", t, "-F"] for t in ("nat", "mangle", "filter")]
        rnd = ["--random"] if kind == "symmetric" else []
        if snat is None:
            cmds.append(ipt + ["-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                               "-s", cfg["net"], "-j", "MASQUERADE"] + rnd)
        else:
            if snat[0] == "port":
                lo, hi = PORT_RANGES[snat[1] % len(PORT_RANGES)]
                to = f"{cfg['wan']}:{lo}-{hi}"
                # port ranges only apply per protocol
                for proto in ("udp", "tcp"):
                    cmds.append(ipt + ["-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                                       "-s", cfg["net"], "-p", proto, "-j", "SNAT",
                                       "--to-source", to] + rnd)
                cmds.append(ipt + ["-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                                   "-s", cfg["net"], "-j", "SNAT",
                                   "--to-source", cfg["wan"]] + rnd)
            else:
                cmds.append(ipt + ["-t", "nat", "-A", "POSTROUTING", "-o", "wan",
                                   "-s", cfg["net"], "-j", "SNAT",
                                   "--to-source", cfg["alt"]] + rnd)
        ct = ["-m", "conntrack", "--ctstate"]
        if kind == "cone":
            cmds.append(ipt + ["-t", "mangle", "-A", "PREROUTING", "-i", "wan"]
                        + ct + ["INVALID", "-j", "DROP"])
            cmds.append(ipt + ["-t", "mangle", "-A", "PREROUTING", "-i", "wan",
                               "!", "-p", "udp"] + ct + ["NEW", "-j", "DROP"])
            cmds.append(ipt + ["-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p",
                               "udp", "-j", "DNAT", "--to-destination", cfg["client"]])
        else:
            cmds.append(ipt + ["-t", "mangle", "-A", "PREROUTING", "-i", "wan"]
                        + ct + ["NEW,INVALID", "-j", "DROP"])
        for c in cmds:
            self.run(nat, c, check=True)

    def set_nat(self, nat: str, kind: str, flush: bool = True) -> None:
        if nat not in _NATS:
            raise KeyError(nat)
        if kind not in NAT_KINDS:
            raise ValueError(f"NAT kind {kind!r} not in {NAT_KINDS}")
        self.nat_kind[nat] = kind
        self._apply_nat(nat)
        if flush:
            self.flush_conntrack(nat)

    def flush_conntrack(self, nat: str) -> None:
        """Simulate a NAT reboot: forget all mappings (``conntrack -F``)."""
        if nat not in _NATS:
            raise KeyError(nat)
        self.run(nat, ["conntrack", "-F"])  # rc 1 if table already empty

    def remap(self, nat: str, how: str | None = "port") -> str:
        """Force a NAT mapping change; see module docstring. Returns public IP."""
        cur = self._nat_snat[nat]
        if how is None:
            self._nat_snat[nat] = None
        elif how == "port":
            i = cur[1] + 1 if cur and cur[0] == "port" else 0
            self._nat_snat[nat] = ("port", i)
        elif how == "address":
            self._nat_snat[nat] = None if cur and cur[0] == "address" else ("address",)
        else:
            raise ValueError("how must be 'port', 'address' or None")
        self._apply_nat(nat)
        self.flush_conntrack(nat)
        return self.nat_public_ip(nat)

    def nat_public_ip(self, nat: str) -> str:
        s = self._nat_snat[nat]
        return _NATS[nat]["alt"] if s and s[0] == "address" else _NATS[nat]["wan"]

    def nat_port_range(self, nat: str) -> tuple[int, int] | None:
        s = self._nat_snat[nat]
        return PORT_RANGES[s[1] % len(PORT_RANGES)] if s and s[0] == "port" else None

    # -------------------------------------------------------------- capture
    def capture(self, name: str, iface: str, path: str | None = None,
                bpf: str = "udp", timeout: float = 5) -> Capture:
        """Start tcpdump (pcap, packet-buffered) in a namespace; returns Capture."""
        path = path or self.path(f"{name}-{iface}-{int(time.time() * 1000)}.pcap")
        log = os.path.basename(path) + ".log"
        argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0",
                "-Z", "root",
                "-w", path] + bpf.split()
        p = self.popen(name, argv, log=log)
        cap = Capture(self, p, path, log)
        self._wait(f"tcpdump on {name}/{iface}",
                   lambda: "listening on" in self.log_tail(log), timeout, p, log,
                   interval=0.05)
        return cap

    def pcap(self, name: str) -> str:
        """Path of the always-on capture (capture=True) of srv or rly."""
        return self._captures[name].path

    # ------------------------------------------------------------- teardown
    def down(self, keep_workdir: bool | None = None) -> None:
        if not self._is_up:
            return
        self._is_up = False
        # 1. processes we started, by pid (reverse order; captures first)
        for cap in list(self._captures.values()):
            try:
                cap.stop()
            except Exception as e:  # noqa: BLE001
                _log(f"capture stop: {e}")
        for p, _f in reversed(list(self._procs)):
            try:
                self.stop_process(p)
            except Exception as e:  # noqa: BLE001
                _log(f"stop pid {p.pid}: {e}")
        # 2. anything still living inside our namespaces (children of ours)
        for ns in self._namespaces:
            for pid in _ns_pids(ns):
                if pid != os.getpid():
                    _kill_pid(pid)
        # 3. namespaces (veths / tuns / bridge go with them)
        for ns in reversed(self._namespaces):
            cp = _sh(["ip", "netns", "del", ns], check=False)
            if cp.returncode != 0:
                _log(f"ip netns del {ns}: {cp.stderr.strip()}")
        self._namespaces = []
        for d in self._etc_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._etc_dirs = []
        _live_labs.discard(self)
        keep = self.keep_workdir if keep_workdir is None else keep_workdir
        keep = keep or self._failed or self._explicit_workdir
        if self.workdir and os.path.isdir(self.workdir):
            if keep:
                _log(f"lab {self.prefix} workdir kept: {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> set[int]:
        """Pids the lab started plus every pid inside its namespaces."""
        pids = {p.pid for p, _ in self._procs}
        for ns in self._namespaces:
            pids.update(_ns_pids(ns))
        return pids

    def describe(self) -> str:
        rows = [f"lab prefix {self.prefix}   workdir {self.workdir}"]
        info = {
            "inet": f"bridge br0 {INET_IP}/24 {INET_IP6}/64",
            "srv": f"miredo-server {SERVER_IP},{SERVER_IP2} {SERVER_IP6}",
            "rly": f"miredo relay {RELAY_IP}:{RELAY_PORT} {RELAY_IP6}",
            "v6h": f"IPv6 host {V6HOST}",
            "nat1": f"NAT {self.nat_kind['nat1']} WAN {self.nat_public_ip('nat1')} LAN {NAT1_LAN}",
            "cli1": f"client {CLIENT1_IP} (client under test)",
            "nat2": f"NAT {self.nat_kind['nat2']} WAN {self.nat_public_ip('nat2')} LAN {NAT2_LAN}",
            "cli2": f"client {CLIENT2_IP}" + (" miredo peer" if self.peer_client else ""),
            "cli3": f"client {CLIENT3_IP} (on cli1's LAN)",
        }
        for r in self.roles:
            rows.append(f"  {self.ns(r):12s} {info[r]}")
        return "\n".join(rows)


@atexit.register
def _atexit_down() -> None:
    for lab in list(_live_labs):
        try:
            lab.down(keep_workdir=True)
        except Exception:  # noqa: BLE001
            pass


def leftovers(prefix: str, pids=()) -> tuple[list[str], list[int]]:
    """(namespaces with this lab prefix, still-running pids among ``pids``)."""
    ns = [n for n in _list_netns() if n.startswith(prefix + "-")]
    alive = sorted(p for p in pids if _pid_alive(p) and not _is_zombie(p))
    return ns, alive


# ------------------------------------------------------------------ cleanup
def cleanup_stale(force: bool = False, verbose: bool = True) -> list[str]:
    """Delete leftover lab namespaces whose creator pid is dead.

    Only namespaces matching ``t<4hex>-<role>`` whose ``lo`` alias carries the
    lab marker are touched (plus unmarked matching ones if ``force``).
    """
    removed = []
    for ns in _list_netns():
        if not NS_RE.match(ns):
            continue
        mk = _ns_marker(ns)
        if mk is None:
            if not force:
                if verbose:
                    _log(f"skip {ns}: no lab marker (use --force)")
                continue
        else:
            try:
                pid = int(mk.get("pid", "0"))
            except ValueError:
                pid = 0
            if pid and _pid_alive(pid, mk.get("start")):
                if verbose:
                    _log(f"skip {ns}: creator pid {pid} alive")
                continue
        for pid in _ns_pids(ns):
            if pid != os.getpid():
                _kill_pid(pid)
        cp = _sh(["ip", "netns", "del", ns], check=False)
        if cp.returncode == 0:
            removed.append(ns)
            shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)  # set_hosts
            if verbose:
                _log(f"deleted {ns}")
    return removed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/lab/lab.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the lab, wait for Ctrl-C, tear down")
    up.add_argument("--nat1", default="restricted", choices=NAT_KINDS)
    up.add_argument("--nat2", default="restricted", choices=NAT_KINDS)
    up.add_argument("--no-peer", action="store_true")
    up.add_argument("--max-time", type=float, default=4 * 3600,
                    help="tear down after this many seconds anyway")
    cl = sub.add_parser("cleanup", help="remove leftover lab namespaces")
    cl.add_argument("--force", action="store_true")
    pr = sub.add_parser("probe-rs", help="send one Teredo RS per server from this "
                        "netns, print JSON (used by Lab.probe_rs)")
    pr.add_argument("servers", nargs="*", default=[SERVER_IP, SERVER_IP2])
    pr.add_argument("--cone", action="store_true")
    pr.add_argument("--timeout", type=float, default=1.5)
    pr.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "probe-rs":
        import json
        print(json.dumps(teredo_rs_probe(a.servers, a.cone, min(a.timeout, 10), a.port)))
        return 0
    reason = require_root_and_tools()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if a.cmd == "cleanup":
        removed = cleanup_stale(force=a.force)
        print(f"removed {len(removed)} namespace(s)")
        return 0

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        with Lab(a.nat1, a.nat2, peer_client=not a.no_peer, keep_workdir=True) as lab:
            print(lab.describe(), flush=True)
            if lab.peer_client:
                try:
                    addr = lab.peer_teredo_address(timeout=30)
                    print(f"peer Teredo address: {addr} {decode_teredo(addr)}", flush=True)
                except Exception as e:  # noqa: BLE001
                    print(f"peer did not qualify: {e}", flush=True)
            print(f"run commands with: ip netns exec {lab.ns('cli1')} ...", flush=True)
            print("Ctrl-C to tear down", flush=True)
            deadline = time.monotonic() + a.max_time
            while time.monotonic() < deadline:
                time.sleep(1)
    except KeyboardInterrupt:
        print("\ntorn down", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
