# Where the firmware's heap goes, on the MicroPython unix port: heap bytes in
# use (after gc.collect()) added by each import and object, in boot order.
#
#   VBOARD_CTL=DIR micropython -X heapsize=256K bench/heapmap.py MPY_DIR ROM_DIR
#
# MPY_DIR is build/mpy-x64 (the .mpy files a board loads), ROM_DIR the
# virtual board's machine/network shims (absent on a real board: C modules).
# Prints one JSON line of [what, bytes] pairs; the TCP rows come after the
# firmware's and are not in its total (an app without TCP never loads it).
import gc
import json
import sys

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])
rows = []
gc.collect()
base = gc.mem_alloc()


def step(name):
    global base
    gc.collect()
    a = gc.mem_alloc()
    rows.append([name, a - base])
    base = a


import machine  # noqa: E402,F401
import network  # noqa: E402,F401

step("vboard shims (machine, network)")
from teredo import addr, peers, proto, wire  # noqa: E402,F401

step("core code: addr, proto, wire, peers")
from teredo import client  # noqa: E402,F401

step("core code: client")
from teredo import aio, iface  # noqa: E402,F401

step("library I/O: iface, aio, asyncio")
import teredo_config  # noqa: E402,F401

step("shell code: teredo_config")
import teredo_console  # noqa: E402

step("shell code: teredo_console")
i = iface.Interface("198.51.100.10", rand=lambda bits: 1)
step("Interface(): Client() state and buffers")
fw = teredo_console.Firmware()
step("Firmware() state (line buffer, WDT)")
total = gc.mem_alloc()
from teredo import stream, tcp  # noqa: E402,F401

step("TCP code: tcp, stream (loaded on first use)")
t1 = tcp.TCP(i.client, i.client.rand, slots=1)
step("TCP(slots=1): one connection slot and its rings (defaults)")
t1 = None
gc.collect()
base = gc.mem_alloc()
t2 = tcp.TCP(i.client, i.client.rand, slots=2)
gc.collect()
rows.append(["TCP: each further connection slot", gc.mem_alloc() - base - rows[-1][1]])
t2 = None
rows.append(["total", total])
print(json.dumps(rows))
