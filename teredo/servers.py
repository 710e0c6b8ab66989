# Server lists and host names (the config's "server" and --server): parsed
# here, resolved by the shell with getaddrinfo, handed to Client.set_servers
# as [primary, secondary] pairs.  Loaded only by those who give a list or a
# name: a single IPv4 server never imports it (its code stays off the heap).

from teredo import addr
from teredo import wire
from teredo.client import MAX_SERVERS, OFFLINE, _ip4, _next4

_SV_NEW = 0  # client._SV_NEW (a const: not an attribute on MicroPython)


def parse(text):
    """A server setting: comma-separated IPv4 addresses and host names ->
    a list of items, 4 bytes for an address, the text for a name.  Raises
    ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("the Teredo server must be text: IPv4 addresses or host names, comma-separated")
    out = []
    for t in text.split(","):
        t = t.strip()
        if not t:
            raise ValueError("%r: an empty entry in the server list" % text)
        dotted = True
        for c in t:
            if c != "." and not ("0" <= c <= "9"):
                dotted = False
        if dotted:
            out.append(_ip4(t, "server"))
            continue
        # RFC 1123 §2.1 host names: labels of letters, digits and '-', not
        # beginning or ending with '-', 63 bytes each, 253 in all
        if len(t) > 253:
            raise ValueError("%r is too long for a host name" % t)
        for lb in t.rstrip(".").split("."):
            ok = 0 < len(lb) <= 63 and lb[0] != "-" and lb[-1] != "-"
            for c in lb:
                if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c == "-"):
                    ok = False
            if not ok:
                raise ValueError("%r is neither an IPv4 address nor a host name" % t)
        out.append(t)
    if len(out) > MAX_SERVERS:
        raise ValueError("at most %d Teredo servers in the list" % MAX_SERVERS)
    return out


def pairs(server, server2=None):
    """IPv4 servers -> [[primary, secondary], ...] in the order given:
    server is a comma-separated text of addresses or a list (text or 4
    bytes each).  Each server's secondary is server2 (a single server only)
    or the next address (RFC 4380 §5.2), and an address that is a listed
    server's secondary, n and n + 1, is that same server: one entry."""
    if isinstance(server, str):
        items = [x.strip() for x in server.split(",") if x.strip()]
    else:
        items = list(server)
    if not items:
        raise ValueError("no Teredo server given: its IPv4 address")
    if server2 is not None and len(items) != 1:
        raise ValueError("server2 goes with a single server; in a list each server's second "
                         "address is the next one (n + 1)")
    out = []  # type: list
    for x in items:
        b = _ip4(x, "server")
        dup = False
        for e in out:
            if e[0] == b or e[1] == b:
                dup = True
            elif _next4(b) == e[0] and e[1] == _next4(e[0]):
                e[1] = e[0]  # n + 1 came first: n is the primary
                e[0] = b
                dup = True
        if not dup:
            out.append([b, _ip4(server2, "server2") if server2 is not None else _next4(b)])
    if len(out) > MAX_SERVERS:
        raise ValueError("at most %d Teredo servers" % MAX_SERVERS)
    for e in out:
        if e[0] == e[1]:
            raise ValueError("server2 must differ from server")
    return out


def resolve(items, resolver=None):
    """parse()'s items -> (pairs, labels, unresolved): the addresses of each
    name in its place in the list (n and n + 1 one server, non-global ones
    left out), at most MAX_SERVERS; labels the name each came from (None for
    an address given as such); unresolved [(name, why)].  resolver(name) ->
    [4 bytes, ...] or OSError; default getaddrinfo (blocks while it works)."""
    out = []  # type: list
    labels = []  # type: list
    bad = []  # type: list
    for it in items:
        if isinstance(it, str):
            try:
                got = (resolver or getaddrinfo4)(it)
                if not got:
                    raise OSError("no IPv4 address")
            except OSError as e:
                bad.append((it, "cannot resolve %s (%s)" % (it, e)))
                continue
            label = it
        else:
            got = [it]
            label = None
        ok = [b for b in got if addr.is_global_ipv4(b)]
        if not ok:
            bad.append((it, "%s has no global IPv4 address" % it))
            continue
        for pr in pairs(ok[:MAX_SERVERS]):
            dup = False
            for q in out:
                if q[0] == pr[0] or q[1] == pr[0]:
                    dup = True
            if not dup and len(out) < MAX_SERVERS:
                out.append(pr)
                labels.append(label)
    return out, labels, bad


def getaddrinfo4(name):
    """The IPv4 addresses of a host name, as 4 bytes each (getaddrinfo gives
    ("1.2.3.4", port) on CPython and the ESP32, a struct sockaddr in bytes on
    the unix port)."""
    import socket
    out = []
    for ai in socket.getaddrinfo(name, 3544):
        sa = ai[-1]
        if isinstance(sa, tuple):
            if ai[0] != socket.AF_INET:
                continue
            b = addr.parse_ipv4(sa[0])
        else:
            sa = bytes(sa)
            # sa_family AF_INET (2) in host order: little- or big-endian
            if len(sa) < 8 or (sa[0] | sa[1]) != 2 or sa[0] == sa[1]:
                continue
            b = sa[4:8]
        if b not in out:
            out.append(b)
    return out


def set_servers(c, pairs, labels=None):
    """Client.set_servers: what each server listed before did stands."""
    if not pairs or len(pairs) > MAX_SERVERS:
        raise ValueError("1..%d Teredo servers" % MAX_SERVERS)
    old = c.server4
    if not c.servers:
        # the first addresses (names resolved at last): qualify at the next timer
        c.deadline = c._now
        c.backoff = c.cfg["backoff_min_ms"]
    rtt = [-1] * len(pairs)
    st = [_SV_NEW] * len(pairs)
    nonces = [bytearray(8) for _ in pairs]
    for i in range(len(pairs)):
        for j in range(len(c.servers)):
            if wire.eq(pairs[i][0], 0, c.servers[j][0], 0, 4):
                rtt[i] = c.srv_rtt[j]
                st[i] = c.srv_st[j]
                nonces[i] = c.srv_nonce[j]
    c.servers = pairs
    c.srv_rtt = rtt
    c.srv_st = st
    c.srv_nonce = nonces
    c.labels = labels or [None] * len(pairs)
    k = 0
    for i in range(len(pairs)):
        if wire.eq(pairs[i][0], 0, old, 0, 4):
            k = i
    c._use(k)
    if not wire.eq(c.server4, 0, old, 0, 4) and c.state != OFFLINE:
        c._forget_address()
        c._qualify(c._now)


def text(c):
    """Client.server_text for a list: addresses, with the names they came from."""
    t = []
    for k in range(len(c.servers)):
        a = addr.format_ipv4(c.servers[k][0])
        lb = c.labels[k]
        t.append(a if lb is None or lb == a else "%s (%s)" % (lb, a))
    return ", ".join(t)
