"""The fuzzer's random generator (tests/core/fuzzcore.py Rng) on CPython:
it is the plain 32-bit xorshift, and no integer it makes reaches 2**30, so
that it draws without allocating on a 32-bit MicroPython too (small ints
end at 2**30 there; the 64-bit unix port would not notice)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))

import fuzzcore  # noqa: E402
from vectors import Rand  # noqa: E402

SMALL = 1 << 30
KS = (1, 2, 3, 7, 13, 20, 256, 1000, 1537, 1737, 65535, 65536, 1 << 22)


def xorshift32(seed):
    """The reference: Marsaglia's xorshift32 on one 32-bit word."""
    r = Rand(seed)
    x = ((r(16) << 16) | r(16)) or 1
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def test_rng_is_xorshift32():
    for seed in (1, 2, 3, 99):
        ref = xorshift32(seed)
        rng = fuzzcore.Rng(seed)
        for i in range(20000):
            k = KS[i % len(KS)]
            assert rng(k) == next(ref) % k, (seed, i, k)


def test_rng_never_makes_an_int_of_2_30_or_more():
    rng = fuzzcore.Rng(5)
    seen = [0]

    def check(frame, event, arg):
        if frame.f_code is fuzzcore.Rng.__call__.__code__:
            for name, v in frame.f_locals.items():
                if type(v) is int:
                    assert -SMALL <= v < SMALL, (name, v)
                    seen[0] += 1
            assert rng.h < 0x10000 and rng.l < 0x10000
        return check

    sys.settrace(check)
    try:
        for i in range(3000):
            rng(KS[i % len(KS)])
    finally:
        sys.settrace(None)
    assert seen[0] > 3000 * 5
    # the shifted words themselves (the locals above are the results)
    for h in (0xFFFF, 0x8000, 1):
        assert ((h << 13) | 0x1FFF) < SMALL and ((h << 5) | 0x1F) < SMALL
    k = 1 << 22
    assert (((k - 1) << 8) | 0xFF) < SMALL
