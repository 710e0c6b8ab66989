# The client as the Teredo link of a local IPv6 stack (the host's tun,
# `teredoctl client --tun`), sans-I/O like the Client it extends:
#
#   c = RawClient("198.51.100.10", rand=getrandbits)
#   ev = c.on_datagram(buf, n, src4, sport, now)
#   if ev == EV_IP: write c.rx[c.ev_off:c.ev_off+c.ev_len] to the tun
#   for each packet the stack sends: c.send_ip(pkt, n, now), then drain pop_tx()
#
# Every packet the client accepts for our address (RFC 4380 §5.2.3) goes to
# the stack whole, unanswered: the stack answers echo requests, runs its TCP
# and UDP and sends its own ICMPv6 errors.  Bubbles and what the client
# handles itself (RAs, the replies to its connectivity tests) never reach it.
#
# A module of its own, not options of Client: the board's firmware imports
# client.py into a heap with little to spare and never needs this.

from teredo import wire
from teredo.client import QUALIFIED, Client

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

EV_IP = const(4)      # the whole IPv6 packet rx[ev_off:ev_off+ev_len], for the local stack
NOT_OURS = const(64)  # send_ip: the source is not our Teredo address (counted in not_ours)


class RawClient(Client):
    def __init__(self, server, server2=None, rand=None, **options):
        Client.__init__(self, server, server2, rand, **options)
        self.not_ours = 0

    def _deliver(self, ip, n, now):
        """Hand an accepted packet whole to the local IPv6 stack (EV_IP);
        the stack checks it (lengths, checksums) as it does any packet."""
        self.ev_src = ip + 8
        self.ev_off = ip
        self.ev_len = n - ip
        return EV_IP

    def send_ip(self, buf, n, now):
        """Send the IPv6 packet buf[0:n] the local stack built: copied once
        into the arena, then sent as the client's own packets are (§5.2.4).
        Its source must be our Teredo address and its destination unicast;
        else it is dropped and counted.  0 = sent or queued, else the drop
        reason.  Allocates nothing."""
        if self.state != QUALIFIED:
            return self._drop(wire.NOT_QUALIFIED)
        if n < 40 or n > len(buf) or buf[0] >> 4 != 6 or ((buf[4] << 8) | buf[5]) + 40 != n:
            return self._drop(wire.LENGTH)
        if not wire.eq(buf, 8, self.address, 0, 16):
            # link-local chatter (MLD, RS), or a session left on an address
            # we no longer have (a NAT remap)
            self.not_ours += 1
            return NOT_OURS
        if buf[24] >= 0xFE:
            return self._drop(wire.UNSUPPORTED)  # multicast or link-local: not for Teredo
        o = self._arena(n)
        if o < 0:
            return self._drop(wire.TX_FULL)
        wire.copy(self.arena, o, buf, 0, n)
        return self._output(self.arena, self.arena_mv, o, n, now)

    def status(self):
        st = Client.status(self)
        if self.not_ours:
            st["drops"]["not_ours"] = self.not_ours
        return st
