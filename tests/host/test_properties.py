"""Property-based tests of the core (CPython only: hypothesis).  Where the
mutation fuzzer (tests/core/fuzzcore.py) starts from valid packets, these
generate datagrams from their structure and hold the parsers to models
written from the RFCs: RFC 4380 §5.1.1 encapsulation, the strict RA rules
(RFC 4380 §5.2.1, a subset of RFC 4861 §6.1.2), RFC 1071/1624 checksums;
the client to the same accounting invariant as the fuzzer; the peer table
to an LRU model; the text parsers to ipaddress.  Derandomized: the same
examples on every run."""
import ipaddress
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))

import fuzzcore  # noqa: E402
from harness import SERVER, SERVER_LL, V6HOST, Net, ip4, ip6  # noqa: E402
from teredo import addr, proto, wire  # noqa: E402
from teredo.client import RX_BYTES  # noqa: E402
from teredo.peers import F_LAST_USE, F_Q, F_QLEN, F_USED, NF, PeerTable  # noqa: E402


def conf(n):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


SERVER4 = ip4(SERVER)
NONCE = bytes(range(1, 9))
ANY16 = st.binary(min_size=16, max_size=16)
# non-global and global IPv4 for origin indications and Teredo mappings
IP4S = st.sampled_from(["198.51.100.99", "203.0.113.7", "8.8.8.8", "10.1.2.3", "127.0.0.1",
                        "192.168.0.1", "224.0.0.1", "255.255.255.255", "0.0.0.0", "100.64.0.1"])


# ---- RFC 4380 §5.1.1 encapsulation ---------------------------------------

def auth_header(il, al, nonce=NONCE, conf_byte=0):
    return bytes([0, proto.AUTH_TYPE, il, al]) + bytes([0x41] * il) + bytes([0x61] * al) + nonce \
        + bytes([conf_byte])


def origin_header(port, ip):
    b = bytearray(8)
    wire.build_origin(b, 0, port, ip4(ip))
    return bytes(b)


def ipv6(nh, src, dst, payload, version=6, plen_delta=0, hop=64):
    b = bytearray(40)
    b[0] = version << 4
    plen = (len(payload) + plen_delta) & 0xFFFF
    b[4] = plen >> 8
    b[5] = plen & 0xFF
    b[6] = nh
    b[7] = hop
    b[8:24] = src
    b[24:40] = dst
    return bytes(b) + payload


headers = st.lists(st.one_of(
    st.tuples(st.just("auth"), st.integers(0, 255), st.integers(0, 255)),
    st.tuples(st.just("origin"), st.integers(0, 65535), IP4S)), max_size=3)


def lay_out(hs):
    out = b""
    for h in hs:
        out += auth_header(h[1], h[2]) if h[0] == "auth" else origin_header(h[1], h[2])
    return out


@conf(1500)
@given(hs=headers, payload=st.binary(max_size=64), version=st.sampled_from([6, 6, 6, 4, 0]),
       plen_delta=st.sampled_from([0, 0, 0, 1, -1, 8, 0x8000]))
def test_encapsulation_layouts(hs, payload, version, plen_delta):
    """Auth first, origin after it, each at most once (§5.1.1): any other
    order or a repeat is 'encap'; then version 6 and a payload length that
    fills the datagram; offsets of what was accepted are where we put it."""
    kinds = [h[0] for h in hs]
    pre = lay_out(hs)
    d = pre + ipv6(59, bytes(16), bytes(16), payload, version, plen_delta)
    hdr = [0, 0, 0, 0]
    r = wire.parse_encap(d, len(d), hdr)
    if kinds not in ([], ["auth"], ["origin"], ["auth", "origin"]):
        assert r == wire.ENCAP
    elif version != 6:
        assert r == (wire.ENCAP if version == 0 else wire.NOT_IPV6)
    elif plen_delta > 0:
        assert r == wire.LENGTH
    elif plen_delta < 0:
        # one byte after the packet: a cut RFC 6081 trailer (no payload: plen 65535)
        assert r == (wire.DROP_NAMES.index("trailer") if payload else wire.LENGTH)
    else:
        assert r == wire.OK
        assert hdr[wire.H_IP] == len(pre) and hdr[wire.H_END] == len(d)
        if "auth" in kinds:
            il, al = hs[0][1], hs[0][2]
            assert hdr[wire.H_NONCE] == 4 + il + al and d[hdr[wire.H_NONCE]:][:8] == NONCE
        else:
            assert hdr[wire.H_NONCE] == -1
        assert hdr[wire.H_ORIGIN] == (len(pre) - 8 if "origin" in kinds else -1)
    # every truncation is refused, none raises
    for cut in (0, 1, 3, 12, len(pre), len(d) - 1):
        if 0 <= cut < len(d):
            assert wire.parse_encap(d, cut, hdr) != wire.OK or (plen_delta and cut == len(d) + plen_delta)


@conf(2000)
@given(d=st.one_of(st.binary(max_size=120),
                   st.builds(lambda hs, tail: lay_out(hs) + tail, headers, st.binary(max_size=80))))
def test_parse_encap_accepts_only_what_it_can_describe(d):
    hdr = [0, 0, 0, 0]
    r = wire.parse_encap(d, len(d), hdr)
    assert 0 <= r < len(wire.DROP_NAMES)
    if r == wire.OK:
        ip, nn, og = hdr[wire.H_IP], hdr[wire.H_NONCE], hdr[wire.H_ORIGIN]
        expect = 0
        if nn >= 0:
            assert d[0:2] == b"\x00\x01" and nn == 4 + d[2] + d[3]
            expect = nn + 9
        if og >= 0:
            assert og == expect and d[og:og + 2] == b"\x00\x00"
            expect += 8
        assert ip == expect and d[ip] >> 4 == 6
        end = hdr[wire.H_END]
        assert int.from_bytes(d[ip + 4:ip + 6], "big") + 40 == end - ip and end <= len(d)


# ---- Router Advertisement, strict (RFC 4380 §5.2.1, RFC 4861 §4.2 §4.6 §6.1.2) ----

def pio(plen=64, prefix=None, units=4):
    b = bytearray(max(units, 1) * 8)
    b[0] = proto.OPT_PREFIX_INFO
    b[1] = units
    if len(b) >= 32:
        b[2] = plen
        b[3] = 0xC0
        b[16:24] = prefix if prefix is not None else proto.PREFIX + SERVER4
    return bytes(b[:units * 8]) if units else bytes(b[:8])


def mtu_opt(mtu, units=1):
    b = bytearray(max(units, 1) * 8)
    b[0] = proto.OPT_MTU
    b[1] = units
    if len(b) >= 8:
        b[4:8] = (mtu & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(b)


options = st.lists(st.one_of(
    st.builds(lambda p, pre, u: ("pio", p, pre, u), st.sampled_from([64, 64, 48, 128]),
              st.sampled_from([None, None, proto.PREFIX + ip4("198.51.100.11"), bytes(8)]),
              st.sampled_from([4, 4, 4, 0, 3, 5])),
    st.builds(lambda m, u: ("mtu", m, u), st.sampled_from([1280, 1400, 65535, 1279, 65536, 0, 2 ** 32 - 1]),
              st.sampled_from([1, 1, 1, 0, 2])),
    st.builds(lambda t, u, fill: ("other", t, u, fill), st.sampled_from([1, 25, 31, 200]),
              st.sampled_from([1, 2, 3, 0]), st.integers(0, 255))), max_size=5)


def option_bytes(o):
    if o[0] == "pio":
        return pio(o[1], o[2], o[3])
    if o[0] == "mtu":
        return mtu_opt(o[1], o[2])
    b = bytearray([o[1], o[2]]) + bytes([o[3]] * (max(o[2], 1) * 8 - 2))
    return bytes(b)


def options_model(opts):
    """(valid, mtu): the rules of parse_ra's docstring, from the options as
    built rather than as bytes."""
    prefixes = 0
    mtu = proto.MTU_DEFAULT
    for o in opts:
        if o[0] == "pio":
            if o[3] != 4 or o[1] != 64 or (o[2] is not None and o[2] != proto.PREFIX + SERVER4):
                return False, 0
            prefixes += 1
        elif o[0] == "mtu":
            if o[2] != 1:
                return False, 0
            if o[1] >= proto.MTU_MIN:  # RFC 4861 §6.3.4: smaller is not used
                mtu = min(o[1], proto.MTU_MAX)
        elif o[2] == 0:
            return False, 0
    return prefixes == 1, mtu


@conf(1500)
@given(opts=options, auth=st.sampled_from([True] * 6 + [False]), origin=st.sampled_from([True] * 6 + [False]),
       il=st.sampled_from([0, 0, 5, 255]), nonce_ok=st.sampled_from([True] * 6 + [False]),
       hop=st.sampled_from([255] * 6 + [64]), src=st.sampled_from(["ll"] * 6 + ["global"]),
       dst_ok=st.sampled_from([True] * 6 + [False]),
       icmp=st.sampled_from([(134, 0)] * 6 + [(134, 1), (133, 0)]),
       fix_sum=st.sampled_from([True] * 6 + [False]),
       tail=st.sampled_from([b""] * 8 + [b"\x01", b"\x03\x00"]),
       port=st.integers(0, 65535), mapped=IP4S)
def test_ra_strict_rules_model(opts, auth, origin, il, nonce_ok, hop, src, dst_ok, icmp, fix_sum, tail,
                               port, mapped):
    body = bytearray(16)
    body[0], body[1] = icmp
    body += b"".join(option_bytes(o) for o in opts) + tail
    src6 = SERVER_LL if src == "ll" else ip6("2001:db8::1")
    dst6 = proto.LL_NONCONE if dst_ok else proto.LL_CONE
    pkt = bytearray(ipv6(proto.NH_ICMPV6, src6, dst6, bytes(body), hop=hop))
    wire.set_l4_checksum(pkt, 0, proto.NH_ICMPV6, len(body), 42)
    if not fix_sum:
        pkt[43] ^= 0x5A
    pre = (auth_header(il, 0, NONCE if nonce_ok else bytes(8)) if auth else b"") \
        + (origin_header(port, mapped) if origin else b"")
    d = pre + bytes(pkt)
    hdr = [0, 0, 0, 0]
    assert wire.parse_encap(d, len(d), hdr) == wire.OK
    res = [0, 0]
    m4 = bytearray(4)
    r = wire.parse_ra(d, hdr, NONCE, proto.LL_NONCONE, SERVER4, res, m4)
    valid_opts, mtu = options_model(opts)
    if not (auth and origin):
        assert r == wire.RA_INVALID
    elif not nonce_ok:
        assert r == wire.RA_NONCE
    elif hop != 255 or src != "ll" or not dst_ok or icmp != (134, 0):
        assert r == wire.RA_INVALID
    elif not fix_sum:
        assert r == wire.CHECKSUM
    elif not valid_opts or tail:
        assert r == wire.RA_INVALID
    else:
        assert r == wire.OK
        assert res == [port, mtu] and bytes(m4) == ip4(mapped)


# ---- checksums (RFC 1071, RFC 1624) ------------------------------------------

def ones_sum(data):
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | (data[i + 1] if i + 1 < len(data) else 0)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@conf(1000)
@given(data=st.binary(max_size=300), a=st.integers(0, 300), b=st.integers(0, 300),
       acc=st.integers(0, 0xFFFFF))
def test_checksum_is_the_ones_complement_sum(data, a, b, acc):
    a, b = min(a, b, len(data)), min(max(a, b), len(data))
    assert wire.csum_fold(wire.csum_add(data, a, b, acc)) == wire.csum_fold(ones_sum(data[a:b]) + acc)


@conf(1000)
@given(src=ANY16, dst=ANY16, ident=st.integers(0, 0xFFFF), seq=st.integers(0, 0xFFFF),
       code=st.integers(0, 255), data=st.binary(max_size=200))
def test_echo_reply_in_place_keeps_a_valid_checksum(src, dst, ident, seq, code, data):
    """RFC 1624 eqn. 3 on any request, with any code: the reply verifies."""
    b = bytearray(48 + len(data))
    wire.build_echo(b, 0, proto.ICMP_ECHO_REQUEST, src, dst, ident, seq, data, len(data))
    b[41] = code
    wire.set_l4_checksum(b, 0, proto.NH_ICMPV6, 8 + len(data), 42)
    wire.echo_to_reply(b, 0)
    assert b[40] == proto.ICMP_ECHO_REPLY and b[41] == code
    assert bytes(b[8:24]) == dst and bytes(b[24:40]) == src
    assert wire.l4_sum(b, 0, proto.NH_ICMPV6, 8 + len(data)) == 0xFFFF


@conf(1000)
@given(src=ANY16, dst=ANY16, sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
       data=st.binary(max_size=100))
def test_udp_checksum_never_zero(src, dst, sport, dport, data):
    b = bytearray(48 + len(data))
    wire.build_udp6(b, 0, src, dst, sport, dport, data, len(data))
    assert (b[46], b[47]) != (0, 0)  # RFC 768 / RFC 8200 §8.1
    assert wire.l4_sum(b, 0, proto.NH_UDP, 8 + len(data)) == 0xFFFF


# ---- the client: datagrams built from their structure -----------------------

PEER6 = addr.build_teredo(SERVER4, 0, fuzzcore.PEER_PORT, ip4(fuzzcore.PEER4))


def fuzzer():
    """A qualified client in a Net; rebuilt for every example (1 ms)."""
    return fuzzcore.Fuzzer(Net("cone", seed=1), seed=1)


ME = bytes(fuzzer().c.address)


@st.composite
def datagrams(draw):
    hs = draw(headers)
    nh = draw(st.sampled_from([58, 58, 58, 17, 17, 59, 0, 6, 255]))
    src = draw(st.one_of(st.sampled_from([ip6(V6HOST), PEER6, SERVER_LL, ip6("2001:db8::77")]),
                         st.builds(lambda p, m, f: bytes(addr.build_teredo(SERVER4, f, p, ip4(m))),
                                   st.integers(0, 65535), IP4S, st.sampled_from([0, 0x8000])),
                         ANY16))
    dst = draw(st.sampled_from([ME] * 5 + [proto.LL_CONE, ip6("2001:db8::1")]))
    if nh == 58:
        typ = draw(st.sampled_from([128, 128, 129, 129, 134, 133, 1, 255]))
        ident = draw(st.sampled_from([0x7464, 0x1234, 0]))
        payload = bytes([typ, draw(st.sampled_from([0, 0, 1]))]) + bytes(2) + ident.to_bytes(2, "big") \
            + draw(st.binary(min_size=2, max_size=2)) + draw(st.binary(max_size=64))
    elif nh == 17:
        data = draw(st.binary(max_size=64))
        ulen = (8 + len(data) + draw(st.sampled_from([0, 0, 0, 1, -1, 100]))) & 0xFFFF
        payload = bytes(4) + ulen.to_bytes(2, "big") + bytes(2) + data
    else:
        payload = draw(st.binary(max_size=16))
    pkt = bytearray(ipv6(nh, src, dst, payload, draw(st.sampled_from([6] * 9 + [4])),
                         draw(st.sampled_from([0] * 9 + [1, -3]))))
    if nh in (58, 17) and len(payload) >= 8 and draw(st.sampled_from([True] * 5 + [False])):
        wire.set_l4_checksum(pkt, 0, nh, len(payload), 42 if nh == 58 else 46)
    d = lay_out(hs) + bytes(pkt)
    if draw(st.sampled_from([False] * 9 + [True])):
        d = d[:draw(st.integers(0, len(d)))]
    return d, draw(st.integers(0, len(fuzzcore.SOURCES) - 1))


@conf(250)
@given(batch=st.lists(datagrams(), min_size=1, max_size=8), oversize=st.sampled_from([0] * 9 + [1]))
def test_client_accounts_for_every_datagram(batch, oversize):
    """Every datagram: rejected by the parser with exactly one drop, or
    counted in rx and then an event, a reply, a peer, a state change, or
    at most three drop counters (see fuzzcore.Fuzzer.client_case)."""
    f = fuzzer()
    for d, si in batch:
        f.buf[0:len(d)] = d
        f.n = len(d) if not oversize else RX_BYTES + 1 + len(d)
        f.si = si
        e = f.client_case()
        assert e == 0, (fuzzcore.ERRORS[e], d.hex(), fuzzcore.SOURCES[si])
    assert f.fed == len(batch) and f.early + f.rx == f.fed


# ---- the peer table against an LRU model ------------------------------------

def before(a, b):
    d = (a - b) & 0x3FFFFFFF
    return d >= 0x20000000


@conf(600)
@given(ops=st.lists(st.tuples(st.sampled_from(["new", "new", "touch", "free", "enqueue"]),
                              st.integers(0, 11), st.integers(0, 40000), st.integers(1, 700)),
                    max_size=60),
       max_peers=st.integers(1, 5), slots=st.integers(1, 3))
def test_peer_table_is_a_bounded_lru(ops, max_peers, slots):
    t = PeerTable(max_peers, slots, 1280)
    keys = [bytes(addr.build_teredo(SERVER4, 0, 1000 + i * 4099, ip4("198.51.100.99"))) for i in range(12)]
    model = [None] * max_peers   # slot -> [key index, last use]
    now = 0x3FFFFFFF - 50000     # the clock wraps within the run
    for op, k, dt, size in ops:
        now = (now + dt) & 0x3FFFFFFF
        where = [i for i in range(max_peers) if model[i] and model[i][0] == k]
        assert t.find(keys[k], 0) == (where[0] if where else -1)
        if op == "new" and not where:
            free = [i for i in range(max_peers) if model[i] is None]
            if free:
                v = free[0]
            else:
                v = 0
                for i in range(1, max_peers):
                    if before(model[i][1], model[v][1]):
                        v = i
            assert t.new(keys[k], 0, now, now) == v
            model[v] = [k, now]
        elif op == "touch" and where:
            t.v[where[0] * NF + F_LAST_USE] = now
            model[where[0]][1] = now
        elif op == "free" and where:
            t.free(where[0])
            model[where[0]] = None
        elif op == "enqueue" and where:
            i = where[0]
            had = t.v[i * NF + F_QLEN]
            ok = t.enqueue(i, bytes(size), 0, size)
            if ok:
                assert t.v[i * NF + F_QLEN] == had + 2 + size <= t.queue_bytes
        assert t.count() == sum(1 for m in model if m) <= max_peers
        owners = [i for i in range(max_peers) if t.v[i * NF + F_Q] >= 0]
        assert len(owners) <= slots
        for i in owners:
            assert t.v[i * NF + F_USED] and t.qowner[t.v[i * NF + F_Q]] == i


# ---- text (local input: ValueError or the right bytes) -----------------------

TEXT = st.one_of(st.text(alphabet="0123456789abcdefABCDEF:.%g ", max_size=45), st.text(max_size=20),
                 st.builds(lambda b: str(ipaddress.IPv6Address(b)), ANY16),
                 st.builds(lambda b: ipaddress.IPv6Address(b).exploded, ANY16))


@conf(1500)
@given(text=TEXT)
def test_text_parsers_raise_only_valueerror_and_agree_with_ipaddress(text):
    try:
        ours = addr.parse_ipv6(text)
    except ValueError:
        ours = None
    try:
        theirs = ipaddress.IPv6Address(text).packed
    except ValueError:
        theirs = None
    if "%" not in text:
        assert ours == theirs, text
    if ours is not None:
        assert addr.parse_ipv6(addr.format_ipv6(ours)) == ours
    try:
        v4 = addr.parse_ipv4(text)
    except ValueError:
        v4 = None
    if v4 is not None:
        assert addr.format_ipv4(v4) == text and ipaddress.IPv4Address(text).packed == v4
