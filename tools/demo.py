"""make demo: the walkthrough, end to end, with teredoctl only.

    sudo .venv/bin/python tools/demo.py [--heap 192K] [--nat restricted]   (make demo)

Builds the network lab (a NAT, miredo-server on two addresses, a miredo
relay, an IPv6-only host), powers on a virtual board inside the client's
namespace (its sockets live behind the NAT; its pty is reachable from every
namespace), then drives it with teredoctl as a person would: flash (with the
UDP echo example as the board's app), config, status until qualified, ping
from the board, ping the board from the IPv6-only host, UDP to the board's
app from the IPv6-only host, and shows the Teredo packets the server and
relay saw.
Everything is torn down at the end, on failure and on Ctrl-C.  Needs root.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the network lab lives beside the tests that use it
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
sys.path.insert(0, ROOT)
import lab as labmod  # noqa: E402
V6HOST = labmod.V6HOST
DEADLINE_S = 110  # the whole walkthrough, set-up and teardown included, stays under 2 min
APP = os.path.join("examples", "udp_echo.py")  # the board's app: UDP echo on port 7
ECHO_MESSAGES = ("hello board", "UDP over Teredo", "from an IPv6-only host")

# Run in the IPv6-only host's namespace: each message to the board's port 7
# (at most 3 tries, 2 s each), what was sent and what came back.
UDP_ECHO_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], 7))
ok = 0
for msg in sys.argv[2:]:
    data = msg.encode()
    got = None
    for _ in range(3):
        s.send(data)
        try:
            got = s.recv(2048)
            break
        except socket.timeout:
            pass
    print("sent %r (%d bytes) -> %s" % (data, len(data), "no reply" if got is None else
          "received %r (%d bytes)%s" % (got, len(got), "" if got == data else ", NOT the same")))
    ok += got == data
sys.exit(0 if ok == len(sys.argv) - 2 else 1)
"""


class DemoError(Exception):
    pass


def teredoctl_argv():
    exe = shutil.which("teredoctl", path=os.path.dirname(sys.executable))
    if exe:
        return [exe]
    return [sys.executable, "-c", "import sys; from teredoctl.cli import main; sys.exit(main())"]


def step(n, text):
    print("\n== %d. %s" % (n, text), flush=True)


def show(text, indent="   "):
    for line in text.rstrip("\n").splitlines():
        print(indent + line, flush=True)


class Demo:
    def __init__(self, heap, nat, deadline):
        self.heap = heap
        self.nat = nat
        self.deadline = deadline
        self.lab = None
        self.board = None
        self.link = None

    def left(self):
        return self.deadline - time.monotonic()

    def teredoctl(self, *args, timeout=40, echo=True, check=True):
        """Run teredoctl (root namespace; the board is reached by its pty)."""
        timeout = max(1.0, min(timeout, self.left()))
        argv = teredoctl_argv() + [str(a) for a in args]
        if echo:
            print("$ teredoctl %s" % " ".join(str(a) for a in args), flush=True)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DemoError("teredoctl %s did not finish within %d s" % (args[0], timeout))
        if echo:
            show(r.stdout)
            show(r.stderr)
        if check and r.returncode != 0:
            raise DemoError("teredoctl %s failed (exit %d): %s" % (args[0], r.returncode,
                                                                    r.stderr.strip().splitlines()[-1:]))
        return r

    def run(self):
        step(1, "Network lab: %s NAT, miredo-server, miredo relay, IPv6-only host" % self.nat)
        self.lab = labmod.Lab(nat1=self.nat, peer_client=False)
        self.lab.up()
        show(self.lab.describe())
        lab = self.lab

        step(2, "Virtual ESP32 board (MicroPython unix port, heap %s) powered on in %s"
             % (self.heap or "default", lab.ns("cli1")))
        bdir = os.path.join(lab.workdir, "board")
        os.makedirs(bdir)
        self.link = os.path.join(bdir, "tty")
        print("$ teredoctl vboard --dir %s --link %s" % (os.path.join(bdir, "flash"), self.link), flush=True)
        self.board = lab.popen("cli1", teredoctl_argv() + ["vboard", "--dir", os.path.join(bdir, "flash"),
                                                           "--link", self.link,
                                                           "--log", os.path.join(bdir, "serial.log")]
                               + (["--heap", self.heap] if self.heap else []),
                               log="vboard.log", cwd=ROOT)
        end = time.monotonic() + 10
        while not os.path.islink(self.link):
            if self.board.poll() is not None or time.monotonic() > end:
                raise DemoError("the virtual board did not start: %s" % lab.log_tail("vboard.log", 5))
            time.sleep(0.05)
        show("serial port: %s -> %s" % (self.link, os.readlink(self.link)))

        step(3, "Flash the Teredo firmware and the UDP echo app %s (mpy-cross for the board's .mpy "
             "version, mpremote, sha256)" % APP)
        self.teredoctl("flash", "--port", self.link, "--app", APP, timeout=60)

        step(4, "Configure the Teredo server")
        self.teredoctl("config", "--port", self.link, "--server", labmod.SERVER_IP)

        step(5, "Status until qualified")
        st = self.wait_qualified(30)
        self.teredoctl("status", "--port", self.link)
        address = st["address"]

        step(6, "Decode the board's Teredo address")
        d = json.loads(self.teredoctl("decode", "--json", address, echo=False).stdout)
        self.teredoctl("decode", address)

        step(7, "The board pings the IPv6-only host %s through the relay" % V6HOST)
        r = self.teredoctl("ping", "--port", self.link, V6HOST, "--count", "3", "--wait", "10", check=False,
                           timeout=30)
        board_ping_ok = r.returncode == 0

        step(8, "The IPv6-only host pings the board")
        print("$ ip netns exec %s ping -6 -c 3 -i 0.5 %s" % (lab.ns("v6h"), address), flush=True)
        r = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.5", "-W", "2", address],
                    timeout=min(20, self.left()))
        show(r.stdout + r.stderr)
        host_ping_ok = r.returncode == 0

        step(9, "The IPv6-only host sends UDP to the board's app (port 7) and gets it back")
        print("$ ip netns exec %s python3 -c '<UDP client>' %s ... (to port 7)" % (lab.ns("v6h"), address),
              flush=True)
        r = lab.run("v6h", [sys.executable, "-c", UDP_ECHO_CLIENT, address] + list(ECHO_MESSAGES),
                    timeout=min(25, self.left()))
        show(r.stdout + r.stderr)
        udp_ok = r.returncode == 0

        st = json.loads(self.teredoctl("status", "--port", self.link, "--json", echo=False).stdout)

        step(10, "Teredo packets seen by the server and the relay (tshark)")
        time.sleep(0.3)  # tcpdump writes each packet as it comes (-U)
        for name in ("srv", "rly"):
            lines = labmod.teredo_summary(lab.pcap(name), timeout=min(30, self.left()))
            print("-- %s (%s), %d packets%s" % (name, labmod.SERVER_IP if name == "srv" else labmod.RELAY_IP,
                                                len(lines), ", first 25" if len(lines) > 25 else ""))
            show("\n".join(lines[:25]) or "(none)")

        step(11, "What happened")
        mapped_ip = d["mapped_ipv4"]
        app = st.get("app") or {}
        socks = ", ".join("UDP %(port)d rx %(rx)d tx %(tx)d" % k for k in st.get("sockets") or [])
        rows = [
            "board qualified behind a %s NAT: Teredo address %s" % (st["nat"], address),
            "  its server %s is in the address; mapped address %s:%d (the NAT's public side is %s)"
            % (d["server"], mapped_ip, d["mapped_port"], lab.nat_public_ip("nat1")),
            "  cone flag %s: the server saw %s NAT behaviour"
            % ("set" if d["cone"] else "clear", st["nat"]),
            "relay found: %s" % (st.get("relay") or "none"),
            "board -> %s: %s" % (V6HOST, "replies came back" if board_ping_ok else "NO replies"),
            "%s -> board: %s" % (V6HOST, "replies came back" if host_ping_ok else "NO replies"),
            "%s -> board's app, UDP port 7: %s" % (V6HOST, "every datagram echoed" if udp_ok
                                                   else "NOT every datagram echoed"),
            "board's app: %s %s; sockets %s" % (app.get("name"), app.get("state"), socks or "none"),
            "board counters: rx %s, tx %s, peers %s, drops %s"
            % (st["rx"], st["tx"], st["peers"], st["drops"] or "none"),
        ]
        show("\n".join(rows))
        public = lab.nat_public_ip("nat1")
        if mapped_ip != public:
            raise DemoError("the mapped address %s is not the NAT's %s" % (mapped_ip, public))
        if not (board_ping_ok and host_ping_ok):
            raise DemoError("a ping got no replies (see above)")
        if not udp_ok:
            raise DemoError("the board's app did not echo every datagram (see above)")
        return 0

    def wait_qualified(self, timeout):
        end = time.monotonic() + min(timeout, self.left())
        last = None
        while time.monotonic() < end:
            r = self.teredoctl("status", "--port", self.link, "--json", echo=False, check=False)
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["state"] != last:
                    last = st["state"]
                    show("state %s%s" % (last, (": " + st["error"]) if st.get("error") else ""))
                if st["state"] == "qualified":
                    return st
            time.sleep(0.5)
        raise DemoError("the board did not qualify within %d s (last state %s); board log: %s"
                        % (timeout, last, self.lab.log_tail("board/serial.log", 8)))

    def teardown(self, failed):
        if self.lab is None:
            return
        print("\n== teardown: stopping the board, removing the lab", flush=True)
        if self.board is not None:
            self.lab.stop_process(self.board, timeout=5)
        self.lab.down(keep_workdir=True if failed else None)  # logs stay for a failed run


def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/demo.py", description=__doc__.split("\n")[0])
    p.add_argument("--heap", default=None, help="the virtual board's MicroPython heap (default: teredoctl "
                   "vboard's)")
    p.add_argument("--nat", default="restricted", choices=labmod.NAT_KINDS, help="the board's NAT")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: the walkthrough builds network namespaces and NATs, so it needs root: "
              "run sudo make demo", file=sys.stderr)
        return 1
    reason = labmod.require_root_and_tools()
    if reason:
        print("demo: the network lab cannot run here (%s): run make lab-deps as root, then make demo"
              % reason, file=sys.stderr)
        return 1

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    old = [signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)]
    t0 = time.monotonic()
    demo = Demo(a.heap, a.nat, t0 + DEADLINE_S - 15)  # leave time to tear down
    rc = 1
    try:
        rc = demo.run()
    except DemoError as e:
        print("\ndemo: FAILED: %s" % e, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr, flush=True)
        rc = 130
    finally:
        try:
            demo.teardown(rc != 0)
        finally:
            for s, h in zip((signal.SIGTERM, signal.SIGHUP), old):
                signal.signal(s, h)
    if rc == 0:
        print("\ndemo: OK in %.0f s" % (time.monotonic() - t0), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
