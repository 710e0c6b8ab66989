# Runs the core test modules under the MicroPython unix port, the same files
# pytest runs on CPython: every function named test_* in each module.
# Usage: micropython -X heapsize=64K tests/mp_run.py BUILD_DIR test_addr test_wire ...
# BUILD_DIR holds the .mpy files of teredo/ and tests/core made by
# mpy-cross (as on the board, code is loaded precompiled: compiling the
# sources would need more heap than a board has).
# A module's XFAIL = {"test_name": "the bug"} names tests that show a known
# bug: they must fail (counted as xfailed); one that passes fails the run, as
# pytest's strict xfail does (tests/core/conftest.py).
import gc
import sys

sys.path.insert(0, sys.argv[1])

RESERVE = 12 * 1024
passed = 0
failed = 0
xfailed = 0
for path in sys.argv[2:]:
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".py"):
        name = name[:-3]
    gc.collect()
    # Load the code with a block held back, then free it: the modules pack
    # together and the client's buffers find one contiguous free region (on
    # a board, main.py makes its Client right after the import for the same
    # reason).
    reserve = bytearray(RESERVE)
    mod = __import__(name)
    reserve = None
    gc.collect()
    xfail = getattr(mod, "XFAIL", {})
    for t in sorted(dir(mod)):
        if not t.startswith("test_"):
            continue
        f = getattr(mod, t)
        try:
            f()
            gc.collect()
        except Exception as e:  # report and go on
            if t in xfail:
                xfailed += 1
                print("xfail", name, t, "(%s)" % xfail[t])
                continue
            failed += 1
            print("FAIL", name, t, type(e).__name__, e)
            sys.print_exception(e)
            continue
        if t in xfail:
            failed += 1
            print("XPASS", name, t, "passes: the bug is fixed, remove it from XFAIL:", xfail[t])
        else:
            passed += 1
    del sys.modules[name]
    mod = None
    gc.collect()
print("micropython: %d passed, %d failed" % (passed, failed) + (", %d xfailed" % xfailed if xfailed else ""))
sys.exit(1 if failed or not passed else 0)
