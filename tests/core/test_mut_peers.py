# The peer table's replacement rules that mutation testing found untested
# (teredo/peers.py, `make mutate`): a valid trusted entry is never evicted
# and a full table of them says -1 without touching anything; idle entries
# go before those running a connectivity test, whichever way the scan
# meets them; dropping the queue of a peer that holds none leaves the
# other peers' queue buffers alone.  On CPython and the MicroPython unix
# port from this file.
from teredo.peers import F_LAST_RX, F_PROBES, F_Q, F_TRUSTED, NF, PeerTable
from vectors import ip6

NOW = 100000
AGO = NOW - 30000  # what the client passes: now minus the 30 s of §5.2.4


def a6(i):
    return ip6("2001:db8::%x" % (i + 1))


def table(uses):
    """A full table, entry i last used at uses[i] (untrusted, idle)."""
    t = PeerTable(len(uses), 1, 1280)
    for i in range(len(uses)):
        assert t.new(a6(i), 0, uses[i], AGO - 50000) == i
    return t


def dump(t):
    return (list(t.v), bytes(t.ip6), bytes(t.ip4), bytes(t.nonce), list(t.addr), list(t.qowner),
            len(t.qbufs))


def test_a_valid_trusted_entry_is_not_evicted_even_when_least_recently_used():
    # entry 0: trusted, heard from 1 s ago, the least recently used;
    # entry 1: untrusted (its test pending), also heard from 1 s ago
    t = table([1000, 5000])
    t.v[0 * NF + F_TRUSTED] = 1
    t.v[0 * NF + F_LAST_RX] = NOW - 1000
    t.v[1 * NF + F_LAST_RX] = NOW - 1000
    assert t.new(a6(9), 0, NOW, AGO) == 1
    assert t.find(a6(0), 0) == 0 and t.find(a6(1), 0) == -1 and t.find(a6(9), 0) == 1
    assert t.v[0 * NF + F_TRUSTED] == 1


def test_a_trusted_entry_silent_for_30_s_is_evicted_as_any_other():
    for last_rx in (AGO, AGO - 1, AGO - 20000):
        t = table([1000, 5000])
        t.v[0 * NF + F_TRUSTED] = 1
        t.v[0 * NF + F_LAST_RX] = last_rx
        assert t.new(a6(9), 0, NOW, AGO) == 0, last_rx
        assert t.find(a6(0), 0) == -1 and t.find(a6(1), 0) == 1
    # one tick later it is still valid: the other entry goes
    t = table([1000, 5000])
    t.v[0 * NF + F_TRUSTED] = 1
    t.v[0 * NF + F_LAST_RX] = AGO + 1
    assert t.new(a6(9), 0, NOW, AGO) == 1


def test_a_table_full_of_valid_trusted_entries_gives_minus_1_and_stays_as_it_was():
    t = table([1000, 5000, 3000])
    for i in range(3):
        t.v[i * NF + F_TRUSTED] = 1
        t.v[i * NF + F_LAST_RX] = NOW - 1000 * (i + 1)
        t.addr[i] = ("198.51.100.%d" % (i + 1), 40000 + i)
    assert t.enqueue(2, b"\x60" + bytes(59), 0, 60)
    before = dump(t)
    r = t.new(a6(9), 0, NOW, AGO)
    assert r == -1 and type(r) is int  # not 0 (entry 0) or 1, not False
    assert dump(t) == before
    assert t.find(a6(9), 0) == -1 and t.count() == 3
    for i in range(3):
        assert t.find(a6(i), 0) == i


def test_an_idle_entry_goes_before_a_probing_one_met_later_in_the_scan():
    # entry 1 runs a test (one round left) and is the least recently used
    t = table([300, 100])
    t.v[1 * NF + F_PROBES] = 1
    assert t.new(a6(9), 0, NOW, AGO) == 0
    assert t.find(a6(1), 0) == 1 and t.find(a6(0), 0) == -1


def test_an_idle_entry_goes_before_a_probing_one_met_first_in_the_scan():
    # entry 0 runs a test (one round left) and is the least recently used;
    # of the idle ones, the least recently used goes
    t = table([100, 300, 200])
    t.v[0 * NF + F_PROBES] = 1
    assert t.new(a6(9), 0, NOW, AGO) == 2
    assert t.find(a6(0), 0) == 0 and t.find(a6(1), 0) == 1 and t.find(a6(2), 0) == -1


def test_between_probing_entries_the_least_recently_used_goes():
    t = table([300, 100, 200])
    for i in range(3):
        t.v[i * NF + F_PROBES] = 1 + i
    assert t.new(a6(9), 0, NOW, AGO) == 1
    t = table([100, 300, 200])
    for i in range(3):
        t.v[i * NF + F_PROBES] = 3 - i
    assert t.new(a6(9), 0, NOW, AGO) == 0


def test_dropping_the_queue_of_a_peer_without_one_keeps_the_others_queue():
    t = PeerTable(3, 1, 1280)
    a = t.new(a6(0), 0, 10, 0)
    b = t.new(a6(1), 0, 20, 0)
    assert t.enqueue(a, b"\x60" + bytes(47), 0, 48)
    assert t.qowner == [a] and t.v[a * NF + F_Q] == 0
    t.drop_queue(b)
    assert t.qowner == [a]
    t.free(b)
    assert t.qowner == [a]
    c = t.new(a6(2), 0, 30, 0)  # new() frees the entry it takes
    assert t.qowner == [a]
    # the one buffer is still a's: c cannot borrow it, a can add to it
    assert not t.enqueue(c, bytes(10), 0, 10)
    assert t.enqueue(a, bytes(10), 0, 10) and t.qowner == [a]
    assert t.v[a * NF + F_Q] == 0 and t.v[c * NF + F_Q] == -1
