# Hostile input for the core, mutated from valid packets (fuzzcore.py): the
# parsers and a qualified client take a million datagrams on CPython and a
# hundred thousand on the MicroPython unix port per `make test`, each run cut
# off by a time budget.  Nothing may escape the core, every datagram is
# accounted for by the drop counters and rx, the parsers allocate nothing
# and the heap stays flat.  Deterministic: fixed seeds, no random module.
import gc
import sys

import fuzzcore
from harness import Net

try:
    import micropython
    heap_lock = micropython.heap_lock
    heap_unlock = micropython.heap_unlock
except (ImportError, AttributeError):  # CPython: the lock is a no-op
    def heap_lock():
        pass

    def heap_unlock():
        return 0

ON_MP = fuzzcore.ON_MP
# Per `make test` run (`make fuzz` runs fuzzcore.py with bigger numbers).
CLIENT_CASES = 100000 if ON_MP else 1000000
PARSER_CASES = 20000
HEAP_CASES = 20000
# a safety bound, not a speed target (speed is make bench's): each run
# stops here so a hung run ends; 1M cases take ~35 s on an idle 2-core VM
BUDGET_MS = 300000
HEAP_SLACK = 1024    # bytes the heap may differ by around a batch (MicroPython)


def _say(what, ran, ms):
    print("fuzz %s (%s): %d cases in %d ms" % (what, sys.implementation.name, ran, ms))


def test_mutated_datagrams_into_a_qualified_client_are_all_accounted_for():
    f = fuzzcore.Fuzzer(Net("cone", seed=1), seed=1)
    ran, ms = f.run_client(CLIENT_CASES, BUDGET_MS)
    _say("client", ran, ms)
    print(f.summary())
    assert not f.err, f.report()
    assert ran == CLIENT_CASES, "only %d of %d cases within %d ms" % (ran, CLIENT_CASES, BUDGET_MS)
    assert f.fed == ran and f.early + f.rx == f.fed
    # The mutations reach every layer: each parser verdict, RAs the strict
    # parser accepts, datagrams the client delivers, drops past the parser.
    for name in ("ok", "short", "encap", "not_ipv6", "length", "too_big"):
        assert f.verdicts[fuzzcore.DROP_NAMES.index(name)], name
    assert f.ra_verdicts[0] and sum(f.ra_verdicts) > f.ra_verdicts[0]
    assert f.multi[0] and f.multi[1] and f.silent and f.tx


def test_parsers_allocate_nothing_on_mutated_input():
    f = fuzzcore.Fuzzer(Net("cone", seed=2), seed=2)
    f.run_parsers(100)  # warm up
    t0 = fuzzcore.ticks_ms()
    heap_lock()
    try:
        ran = f.run_parsers(PARSER_CASES)
    finally:
        heap_unlock()
    _say("parsers, heap locked", ran, fuzzcore.ticks_diff(fuzzcore.ticks_ms(), t0))
    assert not f.err, f.report()
    assert ran == PARSER_CASES
    assert f.verdicts[0] and f.ra_verdicts[0]


def test_heap_stays_flat_under_fuzzing():
    f = fuzzcore.Fuzzer(Net("cone", seed=3), seed=3)
    f.run_client(2000, BUDGET_MS)  # peers, strings, seeds settle
    gc.collect()
    before = gc.mem_alloc() if ON_MP else 0
    ran, ms = f.run_client(HEAP_CASES, BUDGET_MS)
    gc.collect()
    grown = (gc.mem_alloc() - before) if ON_MP else 0
    _say("heap", ran, ms)
    assert not f.err, f.report()
    assert ran == HEAP_CASES
    assert grown < HEAP_SLACK, "heap grew by %d bytes over %d datagrams" % (grown, ran)
