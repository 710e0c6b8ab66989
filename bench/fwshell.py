# The real board firmware (app/teredo_console.py, Firmware.main: its asyncio
# tasks around teredo.Interface) on the MicroPython unix port with the virtual
# board's machine/network shims, answering encapsulated pings on loopback: the
# firmware's own per-datagram path (the interface task, receive, flush,
# timers, the other tasks), not a reduction of it.
#
#   VBOARD_CTL=DIR micropython -X heapsize=256K bench/fwshell.py MPY_DIR ROM_DIR TESTS_DIR PORT PEER_PORT
#
# Run with the current directory holding config.json ({"server": ...}); stdin a
# pipe that stays open.  A core qualified in the simulated Internet (bench/qualified.py)
# is put in place of the one Firmware.load() makes; Firmware.open() (which
# would open a socket and requalify) is replaced by the socket made here.  Every
# address the core may send to is cached to loopback, so nothing leaves the
# machine.  Runs until killed.
import sys

sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])

import select  # noqa: E402
import socket  # noqa: E402

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import teredo_console  # noqa: E402
from qualified import QUIET, qualified_client  # noqa: E402


def main():
    port = int(sys.argv[4])
    peer_port = int(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.setblocking(False)
    fw = teredo_console.Firmware()

    def open_bench():
        i = fw.iface
        c, _ = qualified_client(i.ticks(), peer_port)
        if c.server_addr[0] != i.client.server_addr[0]:
            raise SystemExit("config.json must name the harness server %s" % c.server_addr[0])
        i.client = c
        i.sock = s
        i.poller.register(s, select.POLLIN)
        for a in QUIET:
            i._sockaddr[a] = socket.getaddrinfo("127.0.0.1", 9)[0][-1]
    fw.open = open_bench  # the socket is ours; no requalification
    print("ready")
    asyncio.run(fw.main(None))


main()
