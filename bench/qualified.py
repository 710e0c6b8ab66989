# A client core qualified in the simulated Internet of tests/core/harness.py
# (restricted NAT, miredo-like server and relay doubles), on both
# interpreters, then handed to a real socket on loopback: its clock carried
# over to the shell's ticks_ms, and the native host's relay entry trusted at
# the load generator's address (through the core's own _trust(), as a reply to
# the connectivity test would) so that load generator datagrams take the
# common path (RFC 4380 §5.2.3 case 1) and replies go back to it.
from harness import RELAY, SERVER, SERVER2, V6HOST, Net, ip6

LOOPBACK4 = b"\x7f\x00\x00\x01"


def qualified_client(start_ms, relay_port):
    net = Net("restricted", echo_rate=0)
    net.now = start_ms
    net.start()
    net.run(2000)
    net.c.ping(ip6(V6HOST), 1, net.now)  # connectivity test: the relay becomes trusted
    net.flush()
    c = net.c
    if c.status()["relay"] != RELAY + ":3544":
        raise RuntimeError("relay not trusted: %r" % (c.status(),))
    p = c.peers.find(ip6(V6HOST), 0)
    c._trust(p, LOOPBACK4, relay_port, net.now)
    return c, net.now


# Addresses the core may send to on its own (refresh RS, probes): kept on
# loopback so that nothing leaves the machine.
QUIET = ((SERVER, 3544), (SERVER2, 3544), (RELAY, 3544))
