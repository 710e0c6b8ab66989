# The real board shell (firmware/teredo_console.py, Shell.loop) on the MicroPython unix
# port with the virtual board's machine/network shims, answering encapsulated
# pings on loopback: the firmware's own per-datagram path (poll, WDT feed,
# receive, send_all, timers, housekeeping), not a reduction of it.
#
#   VBOARD_CTL=DIR micropython -X heapsize=256K bench/fwshell.py MPY_DIR ROM_DIR TESTS_DIR PORT PEER_PORT
#
# Run with the current directory holding config.json ({"server": ...}); stdin a
# pipe that stays open.  The core is qualified beforehand (bench/qualified.py)
# and put in place of the one Shell.load() makes; Shell.start() (which would
# open a socket and requalify) is replaced by the socket made here.  Every
# address the core may send to is cached to loopback, so nothing leaves the
# machine.  Runs until killed.
import sys

sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])

import select  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import teredo_console  # noqa: E402
from qualified import QUIET, qualified_client  # noqa: E402


def main():
    port = int(sys.argv[4])
    peer_port = int(sys.argv[5])
    sh = teredo_console.Shell()
    sh.load()
    if sh.client is None:
        raise SystemExit("config.json: %s" % sh.error)
    c, _ = qualified_client(time.ticks_ms(), peer_port)
    if c.server_addr[0] != sh.client.server_addr[0]:
        raise SystemExit("config.json must name the harness server %s" % c.server_addr[0])
    sh.client = c
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    sh.sock = s
    sh.poll.register(s, select.POLLIN)
    for a in QUIET:
        sh.sockaddr[a] = socket.getaddrinfo("127.0.0.1", 9)[0][-1]
    sh.start = lambda now: None  # the socket is ours; no requalification
    print("ready")
    sh.loop()


main()
