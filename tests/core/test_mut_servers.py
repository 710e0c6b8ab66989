# The server-list code that mutation testing found untested (teredo/servers.py,
# `make mutate`): the exact edges of a host name (253 in all, 63 a label, one
# character a label, each end of each character class), at most MAX_SERVERS
# entries, a server2 equal to its server, names that resolve to the same
# server (n or n + 1 of one already listed), getaddrinfo's two shapes (tuples
# on CPython and the ESP32, sockaddr bytes on the unix port), what
# set_servers carries over, and the server text with its names.  On CPython and
# the MicroPython unix port from this file (the net heap: servers loads the client).
import sys

from teredo import proto, servers
from teredo.client import MAX_SERVERS, Client
from harness import sent
from vectors import Rand, ip4

A = "198.51.100.10"
A2 = "198.51.100.11"
B = "203.0.113.50"
B2 = "203.0.113.51"
B3 = "203.0.113.52"  # B's first three bytes, not B's secondary: another server


def refused(text, word):
    try:
        servers.parse(text)
    except ValueError as e:
        assert word in str(e), (text, str(e))
        return
    raise AssertionError("accepted: %r" % text)


def test_a_host_name_is_at_most_253_characters():
    # RFC 1123 §2.1 (servers.py: "63 bytes each, 253 in all"): labels of 63, 63, 63, 61
    name = ".".join(("a" * 63, "b" * 63, "c" * 63, "d" * 61))
    assert len(name) == 253
    assert servers.parse(name) == [name]
    assert len(name + "d") == 254
    refused(name + "d", "too long")


def test_a_label_is_1_to_63_characters():
    assert servers.parse("x.y.example") == ["x.y.example"]
    assert servers.parse("q") == ["q"]
    assert servers.parse("k" * 63 + ".example") == ["k" * 63 + ".example"]
    refused("k" * 64 + ".example", "neither")
    refused("a..example", "neither")


def test_each_end_of_each_character_class_is_a_name_character():
    # letters, digits and '-' (RFC 1123 §2.1, servers.py's parse())
    for c in "azAZ09-":
        name = "x%sx.example" % c
        assert servers.parse(name) == [name], c
    # one character a label: each class edge alone
    for c in "azAZ09":
        assert servers.parse("%s.example" % c) == ["%s.example" % c], c
    # '-' is not a label's first or last character
    refused("-x.example", "neither")
    refused("x-.example", "neither")


def test_the_characters_next_to_each_class_are_not():
    # '`' and '{' around a..z, '@' and '[' around A..Z, '/' and ':' around 0..9
    for c in "`{@[/:":
        refused("x%sx.example" % c, "neither")
        refused("%s.example" % c, "neither")


def test_a_list_holds_at_most_max_servers_entries():
    names = ["s%d.example" % k for k in range(MAX_SERVERS + 1)]
    assert MAX_SERVERS == 4
    assert servers.parse(",".join(names[:MAX_SERVERS])) == names[:MAX_SERVERS]
    refused(",".join(names), "at most 4 Teredo servers")
    # addresses count the same
    assert servers.parse("%s,%s,%s,x.example" % (A, B, B3)) == [ip4(A), ip4(B), ip4(B3), "x.example"]


def test_server2_equal_to_the_server_is_refused():
    try:
        servers.pairs(A, A)
        raise AssertionError("server2 == server accepted")
    except ValueError as e:
        assert "server2 must differ" in str(e), str(e)
    assert servers.pairs(A, B) == [[ip4(A), ip4(B)]]


class Resolver:
    def __init__(self, table):
        self.table = table

    def __call__(self, name):
        return [ip4(x) for x in self.table[name]]


def test_names_of_other_servers_are_kept_in_their_order():
    r = Resolver({"a.example": [A], "b.example": [B]})
    out, labels, bad = servers.resolve(["b.example", ip4(B3), "a.example"], r)
    assert out == [[ip4(B), ip4(B2)], [ip4(B3), ip4("203.0.113.53")], [ip4(A), ip4(A2)]], out
    assert labels == ["b.example", None, "a.example"] and bad == []


def test_a_name_for_a_server_already_listed_adds_nothing():
    # the same primary, and the listed server's secondary (n + 1: the same server, RFC 4380 §5.2)
    for second in (A, A2):
        r = Resolver({"a.example": [A], "other.example": [second]})
        out, labels, bad = servers.resolve(["a.example", "other.example"], r)
        assert out == [[ip4(A), ip4(A2)]], (second, out)
        assert labels == ["a.example"] and bad == [], (second, labels)
    # an address given as such, then a name for it
    r = Resolver({"a.example": [A]})
    assert servers.resolve([ip4(A), "a.example"], r) == ([[ip4(A), ip4(A2)]], [None], [])


def test_resolve_stops_at_max_servers():
    # resolve()'s docstring: "at most MAX_SERVERS"; four from the first name, the fifth dropped
    r = Resolver({"four.example": ["198.51.100.10", "198.51.100.20", "198.51.100.30", "198.51.100.40"],
                  "b.example": [B]})
    out, labels, bad = servers.resolve(["four.example", "b.example"], r)
    assert [p[0] for p in out] == [ip4("198.51.100.%d" % (10 * k)) for k in (1, 2, 3, 4)], out
    assert labels == ["four.example"] * 4 and bad == []


class FakeSocket:
    """Stands for the socket module getaddrinfo4 imports."""
    AF_INET = 2
    AF_INET6 = 10

    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def getaddrinfo(self, name, port):
        self.asked.append((name, port))
        return self.answer


def via(fake, name):
    old = sys.modules.get("socket")
    sys.modules["socket"] = fake
    try:
        return servers.getaddrinfo4(name)
    finally:
        if old is None:
            del sys.modules["socket"]
        else:
            sys.modules["socket"] = old


def test_getaddrinfo4_takes_the_ipv4_tuples_once_each():
    # CPython and the ESP32: (family, type, proto, canonname, (host, port)); the IPv6
    # answers first, as getaddrinfo may order them (RFC 6724 §6)
    v6 = ("2001:db8::1", proto.PORT, 0, 0)
    fake = FakeSocket([(10, 1, 6, "", v6), (10, 2, 17, "", v6),
                       (2, 1, 6, "", (A, proto.PORT)), (2, 2, 17, "", (A, proto.PORT)),
                       (2, 3, 0, "", (A, proto.PORT)), (2, 1, 6, "", (B, proto.PORT))])
    assert via(fake, "teredo.example") == [ip4(A), ip4(B)]
    # asked for the Teredo port (RFC 4380 §2.7, proto.PORT)
    assert fake.asked == [("teredo.example", 3544)]


def sockaddr(family, port, a4, size):
    """A struct sockaddr as the unix port gives it: family in host order
    (little-endian here), port in network order, then the address."""
    b = bytearray(16)
    b[0] = family & 0xFF
    b[1] = family >> 8
    b[2] = port >> 8
    b[3] = port & 0xFF
    b[4:8] = ip4(a4)
    return bytes(b[:size])


def test_getaddrinfo4_reads_sockaddr_in_bytes():
    v6 = bytearray(28)  # sockaddr_in6: family 10, port, flowinfo, address, scope
    v6[0] = 10
    v6[2] = 0x0D
    v6[3] = 0xD8
    v6[4:8] = ip4("203.0.113.99")  # a flowinfo that would read as an address
    v6[8] = 0x20
    ans = [(10, 2, 17, "", bytes(v6)),
           (2, 1, 6, "", sockaddr(2, proto.PORT, A, 16)),
           (2, 2, 17, "", sockaddr(2, proto.PORT, A, 16)),
           (2, 2, 17, "", sockaddr(2, proto.PORT, "198.51.100.77", 7)),   # too short for an address
           (2, 2, 17, "", sockaddr(0x202, proto.PORT, "198.51.100.88", 16)),  # 2 in the low byte only
           (2, 2, 17, "", sockaddr(2, proto.PORT, B, 8)),  # family, port, address: just enough
           (2, 2, 17, "", sockaddr(0x200, proto.PORT, B3, 16)),  # a big-endian unix port's AF_INET
           (2, 2, 17, "", sockaddr(0x300, proto.PORT, "198.51.100.66", 16)),  # 3 (either order)
           (2, 2, 17, "", sockaddr(0x100, proto.PORT, "198.51.100.55", 16))]  # 1 (either order)
    assert via(FakeSocket(ans), "teredo.example") == [ip4(A), ip4(B), ip4(B3)]


def test_set_servers_carries_over_only_the_same_address():
    c = Client("%s,%s" % (A, B), rand=Rand(1))
    c.start(1000)
    # both asked at once, A (the first) the one in use
    assert sorted(set((i, p) for i, p, _ in sent(c))) == [(A, proto.PORT), (B, proto.PORT)]
    assert c.server4 == ip4(A)
    # B3 shares B's first three bytes: a new server all the same
    c.set_servers(servers.pairs([B, B3, A]))
    st = c.status()
    s = dict((x["address"], x["state"]) for x in st["servers"])
    assert s == {B: "asked", B3: "not asked", A: "asked"}, s
    # the one in use found at its place, not at the one after it that shares three bytes
    assert c.si == 2 and st["server"] == A and st["state"] == "qualifying", st
    c.set_servers(servers.pairs([A, "198.51.100.12"]))
    assert c.si == 0 and c.status()["server"] == A


def test_server_text_names_the_name_each_address_came_from():
    c = Client("%s,%s" % (A, B), rand=Rand(2))
    c.set_servers(servers.pairs([A, B]), ["teredo.example", None])
    assert c.server_text() == "teredo.example (%s), %s" % (A, B)
    c.set_servers(servers.pairs([A, B]), [None, "b.example"])
    assert c.server_text() == "%s, b.example (%s)" % (A, B)
    # a label that is the address itself is not said twice
    c.set_servers(servers.pairs([A, B]), [A, None])
    assert c.server_text() == "%s, %s" % (A, B)
