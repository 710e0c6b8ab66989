# The peer table on its own (teredo/peers.py): the lookup key, every byte of
# the address, LRU replacement (also across the 2**30 tick wrap), entries
# that touch only their own fields, tables that never grow, queues at their
# exact size.  On CPython and the MicroPython unix port from this file.
from teredo import peers as peers_mod
from teredo.peers import (F_BUBBLES, F_KEY, F_LAST_RX, F_LAST_TX, F_LAST_USE, F_NEXT, F_PORT, F_PROBES,
                          F_Q, F_QLEN, F_TEREDO, F_TRUSTED, F_USED, F_WINDOW, NF, PeerTable, key_of)
from vectors import ip6

HALF = 0x20000000  # 2**29: half the tick range


def addr_n(i, base="2001:db8::"):
    a = bytearray(ip6(base))
    a[13] = (i >> 16) & 0xFF
    a[14] = (i >> 8) & 0xFF
    a[15] = i & 0xFF
    return bytes(a)


def entry(t, i):
    return (list(t.v[i * NF:(i + 1) * NF]), bytes(t.ip6[i * 16:i * 16 + 16]), bytes(t.ip4[i * 4:i * 4 + 4]),
            bytes(t.nonce[i * 8:i * 8 + 8]), t.addr[i])


def others(t, i):
    return [entry(t, k) for k in range(t.n) if k != i]


def sizes(t):
    return (len(t.v), len(t.ip6), len(t.ip4), len(t.nonce), len(t.addr), len(t.qbufs),
            [len(b) for b in t.qbufs], len(t.qowner), len(t.qrelease))


def test_field_indexes_are_distinct_and_inside_an_entry():
    fields = (F_USED, F_KEY, F_TEREDO, F_TRUSTED, F_PORT, F_LAST_RX, F_LAST_TX, F_LAST_USE, F_BUBBLES,
              F_WINDOW, F_PROBES, F_NEXT, F_Q, F_QLEN)
    assert len(set(fields)) == len(fields)
    assert min(fields) == 0 and max(fields) < NF


def test_key_is_the_low_24_bits_of_the_address():
    a = bytearray(range(1, 17))
    assert key_of(a, 0) == (14 << 16) | (15 << 8) | 16
    assert key_of(b"\xee" + bytes(a), 1) == key_of(a, 0)
    assert key_of(addr_n(0xABCDEF), 0) == 0xABCDEF


def test_find_compares_every_byte():
    t = PeerTable(4, 1, 1280)
    a = addr_n(7)
    i = t.new(a, 0, 100, 0)
    assert t.find(a, 0) == i and t.find(b"\xee\xee" + a, 2) == i
    for k in range(16):
        b = bytearray(a)
        b[k] ^= 0x01
        assert t.find(b, 0) == -1, k
        # an entry for the other address is a different one
        j = t.new(b, 0, 101 + k, 0)
        assert j != i and t.find(b, 0) == j and t.find(a, 0) == i
        t.free(j)


def test_new_copies_16_bytes_from_inside_a_datagram():
    # as the client calls it: the address sits inside a longer datagram
    t = PeerTable(3, 1, 1280)
    first = sizes(t)
    for i in range(3):
        d = b"\xee" * 24 + addr_n(i) + b"\xdd" * 40
        j = t.new(d, 24, i, 0)
        assert bytes(t.ip6[j * 16:j * 16 + 16]) == addr_n(i)
    assert sizes(t) == first
    for i in range(3):
        assert t.find(addr_n(i), 0) == i


def test_new_sets_every_field():
    t = PeerTable(2, 1, 1280)
    a = ip6("2001:0:c633:640a::1")
    i = t.new(a, 0, 5000, 1234)
    v = t.v
    b = i * NF
    assert v[b + F_USED] == 1 and v[b + F_KEY] == key_of(a, 0) and v[b + F_TEREDO]
    assert v[b + F_TRUSTED] == 0 and v[b + F_PORT] == 0 and v[b + F_BUBBLES] == 0 and v[b + F_PROBES] == 0
    assert v[b + F_LAST_RX] == 1234 and v[b + F_LAST_TX] == 1234
    assert v[b + F_LAST_USE] == 5000 and v[b + F_WINDOW] == 5000 and v[b + F_NEXT] == 5000
    assert v[b + F_Q] == -1 and v[b + F_QLEN] == 0 and t.addr[i] is None
    assert bytes(t.ip6[i * 16:i * 16 + 16]) == a
    # Teredo means 2001:0000::/32, every byte of the prefix
    for k in range(4):
        n = bytearray(a)
        n[k] ^= 0x01
        j = t.new(n, 0, 6000 + k, 0)
        assert not v[j * NF + F_TEREDO], k
        t.free(j)


def test_each_operation_touches_only_its_own_entry():
    t = PeerTable(4, 2, 1280)
    for i in range(4):
        t.new(addr_n(i), 0, 100 + i, 50 + i)
    for i in range(4):
        b = i * NF
        for f in range(NF):
            if f not in (F_Q, F_QLEN, F_USED):
                t.v[b + f] = 1000 * i + f + 7
        t.ip4[i * 4:i * 4 + 4] = bytes([i + 1] * 4)
        t.nonce[i * 8:i * 8 + 8] = bytes([i + 9] * 8)
        t.addr[i] = ("198.51.100.%d" % i, 4000 + i)
    for i in (0, 1, 3):
        before = others(t, i)
        assert t.enqueue(i, b"\x60" + bytes(47), 0, 48) or i == 3
        t.drop_queue(i)
        t.free(i)
        t.new(addr_n(100 + i), 0, 500, 400)
        assert others(t, i) == before, i


def test_tables_are_sized_at_start_and_never_grow():
    t = PeerTable(3, 2, 1280)
    first = sizes(t)
    assert first[:5] == (3 * NF, 48, 12, 24, 3)
    pkt = bytes(1280)
    for i in range(40):
        j = t.new(addr_n(i), 0, i, 0)
        t.enqueue(j, pkt, 0, 200 + (i * 37) % 1000)
        t.enqueue(j, pkt, 0, 100)
        if i % 3 == 0:
            t.drop_queue(j)
        if i % 5 == 0:
            t.release_pending()
    assert sizes(t) == first


def test_lru_replaces_the_least_recently_used():
    t = PeerTable(3, 1, 1280)
    for i, now in ((0, 300), (1, 100), (2, 200)):
        assert t.new(addr_n(i), 0, now, 0) == i
    assert t.count() == 3
    assert t.new(addr_n(9), 0, 400, 0) == 1  # last used at 100
    assert t.find(addr_n(1), 0) == -1 and t.find(addr_n(9), 0) == 1
    t.v[0 * NF + F_LAST_USE] = 50
    assert t.new(addr_n(10), 0, 500, 0) == 0
    assert t.count() == 3


def test_lru_with_one_entry():
    t = PeerTable(1, 1, 1280)
    assert t.new(addr_n(1), 0, 10, 0) == 0
    assert t.new(addr_n(2), 0, 20, 0) == 0
    assert t.find(addr_n(2), 0) == 0 and t.find(addr_n(1), 0) == -1 and t.count() == 1


def test_a_free_entry_is_taken_before_any_used_one():
    t = PeerTable(3, 1, 1280)
    t.new(addr_n(0), 0, 500, 0)   # entry 0, used recently
    t.new(addr_n(1), 0, 100, 0)   # entry 1, least recently used
    t.new(addr_n(2), 0, 600, 0)
    t.free(0)                     # a free entry whose old last-use is newer than entry 1's
    assert t.count() == 2
    assert t.new(addr_n(3), 0, 700, 0) == 0
    assert t.find(addr_n(1), 0) == 1 and t.count() == 3
    t.free(2)
    assert t.new(addr_n(4), 0, 800, 0) == 2


def test_count_sees_every_entry():
    t = PeerTable(4, 1, 1280)
    for i in range(4):
        t.new(addr_n(i), 0, i, 0)
    for i in range(4):
        t.free(i)
        assert t.count() == 3 - i


def test_before_at_the_wrap_and_at_half_range():
    before = peers_mod._before
    top = 2 * HALF  # ticks wrap here
    assert not before(5, 5)
    assert before(4, 5) and not before(5, 4)
    assert before(top - 10, 5) and not before(5, top - 10)  # 5 came after the wrap
    # the two differences at exactly half the range
    assert before(HALF, 0)            # a - b = 2**29: taken as -2**29
    assert before(0, HALF)            # a - b = -2**29
    assert not before(HALF - 1, 0)    # 2**29 - 1 ahead
    assert not before(0, HALF + 1)    # -2**29 - 1: ahead once wrapped
    assert before(1, 0 + HALF + 1) is before(0, HALF)  # consistent one tick later
    assert before(top - 1, 0) and not before(0, top - 1)


def test_lru_across_the_tick_wrap():
    t = PeerTable(2, 1, 1280)
    top = 2 * HALF
    t.new(addr_n(0), 0, 20, 0)          # used just after the wrap
    t.new(addr_n(1), 0, top - 20, 0)    # used just before it: the older one
    assert t.new(addr_n(2), 0, 40, 0) == 1


def test_queue_holds_exactly_its_size():
    t = PeerTable(2, 1, 1280)
    pkt = bytes(range(256)) * 6
    i = t.new(addr_n(1), 0, 0, 0)
    assert not t.enqueue(i, pkt, 0, 1281)
    assert t.enqueue(i, pkt, 0, 1280)
    assert not t.enqueue(i, pkt, 0, 1)
    q = t.v[i * NF + F_Q]
    assert t.v[i * NF + F_QLEN] == 1282
    assert t.qbufs[q][0] == 1280 >> 8 and t.qbufs[q][1] == 1280 & 0xFF
    assert bytes(t.qbufs[q][2:1282]) == pkt[:1280]


def test_queue_of_several_packets_back_to_back():
    t = PeerTable(2, 1, 1280)
    i = t.new(addr_n(1), 0, 0, 0)
    a = bytes([0xA5]) * 300
    b = bytes([0x5A]) * 639
    assert t.enqueue(i, a, 0, 300)
    assert t.enqueue(i, b, 0, 639)
    assert t.v[i * NF + F_QLEN] == 302 + 641
    q = t.qbufs[t.v[i * NF + F_Q]]
    assert q[0] == 1 and q[1] == 300 - 256 and bytes(q[2:302]) == a
    assert q[302] == 2 and q[303] == 639 - 512 and bytes(q[304:943]) == b
    # room for one 1280-byte packet with its length: 1282 - 943 - 2 = 337 bytes left
    assert not t.enqueue(i, bytes(338), 0, 338)
    assert t.enqueue(i, bytes(337), 0, 337) and t.v[i * NF + F_QLEN] == 1282
    # a queued packet is copied from the offset given
    j = t.new(addr_n(2), 0, 0, 0)
    t.drop_queue(i)
    assert t.enqueue(j, b"xxabcd", 2, 4) and bytes(t.qbufs[0][2:6]) == b"abcd"


def test_one_queue_slot_per_peer_and_slots_come_back():
    t = PeerTable(4, 2, 1280)
    a = t.new(addr_n(1), 0, 0, 0)
    b = t.new(addr_n(2), 0, 0, 0)
    c = t.new(addr_n(3), 0, 0, 0)
    assert t.enqueue(a, bytes(10), 0, 10) and t.enqueue(a, bytes(10), 0, 10)
    assert t.qowner.count(a) == 1  # one slot, even after two packets
    assert t.enqueue(b, bytes(10), 0, 10)
    assert t.v[a * NF + F_Q] != t.v[b * NF + F_Q]
    assert not t.enqueue(c, bytes(10), 0, 10)  # both slots taken
    # a slot freed after a flush is reused only once the transmit ring drained
    qa = t.v[a * NF + F_Q]
    t.qrelease[qa] = True
    t.drop_queue(a)
    assert t.v[a * NF + F_Q] == -1 and t.qowner[qa] == -1
    assert not t.enqueue(c, bytes(10), 0, 10)
    t.release_pending()
    assert t.qrelease == [False, False]
    assert t.enqueue(c, bytes(10), 0, 10) and t.v[c * NF + F_Q] == qa
    # freeing a peer gives its slot back
    t.free(b)
    assert t.enqueue(a, bytes(10), 0, 10)


def test_free_and_drop_queue_reset_the_entry():
    t = PeerTable(2, 1, 1280)
    i = t.new(addr_n(1), 0, 0, 0)
    t.v[i * NF + F_TRUSTED] = 1
    t.v[i * NF + F_PROBES] = 3
    t.addr[i] = ("198.51.100.1", 1)
    assert t.enqueue(i, bytes(10), 0, 10)
    t.drop_queue(i)
    assert t.v[i * NF + F_Q] == -1 and t.v[i * NF + F_QLEN] == 0 and t.qowner == [-1]
    t.drop_queue(i)  # twice is harmless
    assert t.qowner == [-1]
    assert t.enqueue(i, bytes(10), 0, 10)
    t.free(i)
    assert t.v[i * NF + F_USED] == 0 and t.v[i * NF + F_Q] == -1 and t.qowner == [-1]
    assert t.addr[i] is None and t.find(addr_n(1), 0) == -1 and t.count() == 0


def test_find_with_its_last_hit_first_never_returns_a_wrong_or_free_entry():
    # find() tries the entry it found last before the walk: after that entry
    # is freed, reused for another address or differs in one byte, the walk
    # must still give the right answer (or -1)
    t = PeerTable(4, 1, 1280)
    a = [addr_n(i + 1) for i in range(4)]
    for i in range(4):
        assert t.new(a[i], 0, 1000 + i, 0) == i
    for i in (2, 0, 3, 1, 3):
        assert t.find(a[i], 0) == i
    assert t.find(a[3], 0) == 3 and t.hint == 3
    t.free(3)
    assert t.find(a[3], 0) == -1          # the hinted entry is free now
    k = t.new(addr_n(99), 0, 2000, 0)      # reused for another address
    assert k == 3
    assert t.find(a[3], 0) == -1 and t.find(addr_n(99), 0) == 3
    near = bytearray(addr_n(99))
    near[0] ^= 1                           # same key (last 3 bytes), other address
    assert t.find(near, 0) == -1
    assert t.find(a[1], 0) == 1 and t.hint == 1
    buf = bytearray(5) + bytes(a[2])
    assert t.find(buf, 5) == 2             # at an offset


def test_find_hint_compares_the_hinted_entrys_own_address():
    # the hint check must read the 16 bytes of the hinted entry itself: an
    # address that is not in the table, made of the bytes that straddle the
    # hinted entry and a neighbour, with the hinted entry's key, is a miss
    t = PeerTable(3, 1, 1280)
    e0 = bytes(range(0x40, 0x50))
    e1 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0x55] * 8 + [0x20] * 4)   # key 20 20 20
    e2 = bytes([0x20] + list(range(0x60, 0x6f)))
    for i, e in enumerate((e0, e1, e2)):
        assert t.new(e, 0, 1000 + i, 0) == i
    assert t.find(e1, 0) == 1 and t.hint == 1
    after = e1[1:] + e2[:1]       # what ip6[17:33] holds; its key is e1's
    before = e0[15:] + e1[:15]    # what ip6[15:31] holds; its key is e1's too
    assert key_of(after, 0) == key_of(e1, 0) == key_of(before, 0)
    assert t.find(after, 0) == -1 and t.find(before, 0) == -1
    assert t.find(e1, 0) == 1 and t.find(e2, 0) == 2 and t.find(e0, 0) == 0
