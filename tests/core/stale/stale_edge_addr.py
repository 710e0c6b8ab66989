# Parked (not collected): the tests of tests/core/test_edge_addr.py that pinned the core's
# behaviour before the protocol fixes of issue 13 and fail against it; see README.md.
# Their helpers live in the active module.
from teredo import addr, proto
from vectors import ip4
from test_edge_addr import *


def test_random_flags_draw_enough_bits_and_mask_them():
    def ones(n):  # n random bits, all of them set
        return (1 << n) - 1

    assert addr.random_flags(ones) == 0x3CFF
    assert addr.random_flags(ones, True) == 0xBCFF
    assert addr.random_flags(ones, cone=False) == 0x3CFF
    assert addr.random_flags(lambda n: 0) == 0 and addr.random_flags(lambda n: 0, True) == 0x8000
