# Local client discovery (RFC 4380 §5.2.8, §5.2.3 case 4), loaded by
# Client.set_lan only when it is on: two Teredo clients behind the same NAT
# find each other with bubbles to the Teredo IPv4 discovery address
# 224.0.0.253 (§2.17) and then talk over their LAN, not through the NAT
# (which would have to hairpin) nor the server.  The client keeps the rest:
# §5.2.3 case 5 (Client._local_from) and §5.2.4 case 3 (Client._probe).

import socket
import sys

from teredo import addr, proto, wire
from teredo.client import DISCOVERY, EV_NONE, QUALIFIED, RX_BYTES, _add, _diff
from teredo.peers import F_LAST_RX, F_LOCAL, F_LOCAL_RX, F_LPORT, F_USED, NF

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

_TO = (proto.DISCOVERY_ADDR, proto.PORT)
# A new local peer makes us announce ourselves at once (its discovery bubble
# says it just came up and does not know us), at most once per this time.
_DISC_EARLY_MS = const(10000)


def set_lan(c, ip, mask):
    """Client.set_lan, turning it on: the LAN's IPv4 and netmask (text or
    4 bytes)."""
    a = addr.parse_ipv4(ip) if isinstance(ip, str) else bytes(ip)
    m = addr.parse_ipv4(mask) if isinstance(mask, str) else bytes(mask)
    if len(a) != 4 or len(m) != 4:
        raise ValueError("LAN address and netmask must be IPv4")
    if a == bytes(4) or m == bytes(4):
        c.lan_why = "no LAN address"
        return False
    c.lan[0:4] = a
    c.lan[4:8] = m
    c.lan_on = True
    c.lan_why = None
    c.disc_at = c._now  # announce ourselves at once when qualified
    return True


def count(c):
    """Peers found by local discovery within the last 600 s."""
    v = c.peers.v
    k = 0
    for i in range(c.peers.n):
        if v[i * NF + F_USED] and c._is_local(i, c._now):
            k += 1
    return k


def on_discovery(c, buf, n, src4, sport, now):
    """One datagram that came to the Teredo IPv4 discovery address
    (224.0.0.253, §2.17): the shell's socket joined to that group, so
    nothing sent to a unicast address gets here (§5.2.8).  A local
    discovery bubble from a Teredo client behind our NAT (§5.2.3 case 4)
    makes or updates its entry, "not trusted", with its local address,
    and is answered with a unicast bubble there.  Returns EV_NONE."""
    c._now = now
    if c.state != QUALIFIED:
        c._drop(DISCOVERY)
        return EV_NONE
    c.rx = rx = buf
    hdr = c.hdr
    r = wire.TOO_BIG if n > RX_BYTES else wire.parse_encap(rx, n, hdr)
    if r:
        c._drop(r)
        return EV_NONE
    ip = hdr[wire.H_IP]
    src = ip + 8
    if wire.eq(rx, src, c.address, 0, 16):
        return EV_NONE  # our own, looped back by the IPv4 stack
    # §5.2.8 MUSTs: a bubble to ff02::1 from a well-formed Teredo address
    # and from our IPv4 subnet; and (its MAY, which we take) with our own
    # mapped IPv4: behind the same NAT.  Its mapped port must be one.
    lan = c.lan
    for i in range(4):
        if (src4[i] ^ lan[i]) & lan[4 + i]:
            c._drop(DISCOVERY)
            return EV_NONE
    # the UDP payload is a minimal IPv6 packet (§5.2.8): no authentication
    # or origin header (only a server adds those), no trailer
    if (ip != 0 or hdr[wire.H_END] != 40 or rx[6] != proto.NH_NONE or sport == 0
            or not wire.eq(rx, ip + 24, proto.ALL_NODES, 0, 16)
            or not addr.is_teredo(rx, src) or addr.teredo_port(rx, src) == 0
            or not addr.teredo_mapped_matches(rx, src, c.mapped4, 0)):
        c._drop(DISCOVERY)
        return EV_NONE
    c.rx_count += 1
    peers = c.peers
    v = peers.v
    p = peers.find(rx, src)
    if p < 0:
        p = c._new_peer(rx, src, now)
        if p < 0:
            return EV_NONE
        v[p * NF + F_LAST_RX] = now  # §5.2.8: a new entry's last reception is now
    b = p * NF
    if not c._is_local(p, now):
        c.changes += 1  # status: local_peers changed
        # a newcomer on the LAN does not know us yet: say who we are now,
        # not in up to 300 s (at most once per _DISC_EARLY_MS); before
        # the reply below, which it trusts only once it knows us
        if c.early_t < 0 or _diff(now, c.early_t) >= _DISC_EARLY_MS:
            c.early_t = now
            discover(c, now)
    v[b + F_LOCAL] = 1
    v[b + F_LOCAL_RX] = now
    v[b + F_LPORT] = sport
    peers.lip4[p * 4:p * 4 + 4] = src4
    # §5.2.3 case 4: a unicast bubble to where the discovery bubble came
    # from, under §5.2.6's gap and count
    if c._bubble_ok(p, now):
        local_bubble(c, p)
    return EV_NONE


def local_bubble(c, p):
    """A unicast bubble to the local address of local peer p."""
    o = c._arena(40)
    if o < 0:
        c._drop(wire.TX_FULL)
        return
    peers = c.peers
    wire.build_bubble(c.arena, o, c.address, peers.ip6[p * 16:p * 16 + 16])
    c._tx(c.arena_mv, o, 40, (addr.format_ipv4(peers.lip4, p * 4), peers.v[p * NF + F_LPORT]))


def discover(c, now):
    """§5.2.8: a local discovery bubble to the Teredo IPv4 discovery
    address (the shell's sockets leave its TTL at 1, the multicast
    default), from our Teredo service port; the next in 200 to 300 s."""
    c.disc_at = _add(now, proto.DISCOVERY_MIN_MS + ((proto.DISCOVERY_SPAN_MS * c.rand(10)) >> 10))
    o = c._arena(40)
    if o < 0:
        c._drop(wire.TX_FULL)
        return
    wire.build_ipv6(c.arena, o, 0, proto.NH_NONE, 1, c.address, proto.ALL_NODES)
    c._tx(c.arena_mv, o, 40, _TO)


def open_socket(iface):
    """Local discovery (RFC 4380 §5.2.8): a socket on the Teredo IPv4
    discovery address 224.0.0.253, port 3544, joined on the LAN
    interface.  Bound to the group address, it gets only what was sent
    to the group (§5.2.8: bubbles that came to a unicast address are
    not discovery bubbles).  Discovery stays off, and status says why,
    when there is no LAN address or the platform cannot join."""
    c = iface.client
    lan = iface.lan
    if lan is None and sys.implementation.name == "micropython":
        try:
            import network
            w = network.WLAN(network.STA_IF)
            if w.isconnected():
                lan = w.ifconfig()[:2]
        except (ImportError, AttributeError, OSError):
            pass
    if lan is None:
        c.set_lan(None, None, "no LAN address (Interface(lan=(ip, netmask)))")
        return
    m = None
    try:
        m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        m.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # other clients on this host
        m.bind(socket.getaddrinfo(proto.DISCOVERY_ADDR, proto.PORT)[0][-1])
        m.setsockopt(getattr(socket, "IPPROTO_IP", 0), socket.IP_ADD_MEMBERSHIP,
                     bytes(addr.parse_ipv4(proto.DISCOVERY_ADDR)) + bytes(addr.parse_ipv4(lan[0])))
        m.setblocking(False)
    except (OSError, AttributeError, ValueError) as e:
        if m is not None:
            m.close()
        c.set_lan(None, None, "cannot join %s:%d on %s (%s)" % (proto.DISCOVERY_ADDR, proto.PORT,
                                                              lan[0], e))
        return
    iface.poller.register(m, 1)  # POLLIN
    iface.msock = m
    iface._mfd = m.fileno() if hasattr(m, "fileno") else -2
    c.set_lan(lan[0], lan[1])
