# Echo replies as the interface keeps them for pingers (Interface.pong_count,
# pong, last_pong, ping): every reply of the last eight, also when several
# come in one turn, as they do when a path opens and releases the echoes
# that waited for its bubbles.  A pinger that looked only at the last reply
# counted the others as lost although they were on the wire.
from teredo.iface import MASK, PONGS
from harness import V6HOST, interface


def test_replies_that_come_in_one_turn_are_each_kept_in_order():
    n, i = interface()
    c0 = i.pong_count()
    assert i.pong(c0) is None and i.last_pong() == (-1, 0)
    t = n.now
    for seq in (1, 2, 3):
        assert i.ping_send(V6HOST, seq, t) == 0
    n.flush()  # the relay answers all three at once
    assert i.pong_count() == c0 + 3
    assert [i.pong(c0 + k) for k in range(3)] == [(1, t), (2, t), (3, t)]
    assert i.pong(c0 + 3) is None  # not come yet
    assert i.last_pong() == (3, t)
    i.close()


def test_the_ring_holds_the_last_eight_and_its_count_wraps_at_2_30():
    n, i = interface()
    assert PONGS == 8
    i._pn = MASK - 1  # two replies before the count wraps
    for seq in range(1, 10):
        i.ping_send(V6HOST, seq, n.now)
        n.flush()
        n.now += 1
    assert i.pong_count() == 7  # MASK - 1 + 9, wrapped at 2**30
    assert i.pong(MASK - 1) is None  # the first of nine: nine replies ago
    assert i.pong(MASK) == (2, n.now - 8)  # exactly eight ago: still there
    assert i.pong(0) == (3, n.now - 7)
    assert i.pong(6) == (9, n.now - 1) and i.last_pong() == (9, n.now - 1)
    assert i.pong(7) is None
    i.close()


class Poller:
    """select.poll's double: each wait passes 10 ms and runs tick()."""

    def __init__(self, tick):
        self.tick = tick
        self.waits = 0

    def register(self, obj, flags):
        pass

    def unregister(self, obj):
        pass

    def poll(self, wait):
        self.waits += 1
        assert self.waits < 500, "the loop never ends"
        self.tick()
        return []


def test_ping_finds_its_reply_when_another_comes_after_it_in_the_same_turn():
    n, i = interface()

    def tick():
        n.now += 10
        i.ping_send(V6HOST, 999, n.now)  # a console ping's echo, after ours
        n.flush()

    i.poller = Poller(tick)
    t0 = n.now
    assert i.ping(V6HOST, 1000) == 10
    assert i.last_pong()[0] == 999 and n.now - t0 == 10
    i.close()
