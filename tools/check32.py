# Run by the interpreter that is to stand for a board (tools/mp32.sh): it
# must have 31-bit small ints, so that an int of 2**30 or more is a heap
# object as on an ESP32, and heap_lock must see that allocation.  Otherwise
# the heap_lock tests run on it would prove nothing about a board.
import sys

import micropython


def big(k):
    return k << 30  # a heap object when small ints hold 31 bits


def main():
    if sys.maxsize != 2147483647:
        print("check32: sys.maxsize is %d, not 2**31 - 1: this is not a 32-bit build" % sys.maxsize)
        sys.exit(1)
    micropython.heap_lock()
    try:
        big(1)
        caught = False
    except MemoryError:
        caught = True
    micropython.heap_unlock()
    if not caught:
        print("check32: an int of 2**30 did not allocate under heap_lock")
        sys.exit(1)
    print("check32: %s, 32-bit small ints (2**30 allocates under heap_lock)" % sys.implementation._machine)


main()
