# Runs the core test modules under the MicroPython unix port, the same files
# pytest runs on CPython: every function named test_* in each module.
# Usage: micropython -X heapsize=64K tests/mp_run.py BUILD_DIR test_addr test_wire ...
# BUILD_DIR holds the .mpy files of teredo/ and tests/core made by
# mpy-cross (as on the board, code is loaded precompiled: compiling the
# sources would need more heap than a board has).
import gc
import sys

sys.path.insert(0, sys.argv[1])

RESERVE = 12 * 1024
passed = 0
failed = 0
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
    for t in sorted(dir(mod)):
        if not t.startswith("test_"):
            continue
        f = getattr(mod, t)
        try:
            f()
            passed += 1
            gc.collect()
        except Exception as e:  # report and go on
            failed += 1
            print("FAIL", name, t, type(e).__name__, e)
            sys.print_exception(e)
    del sys.modules[name]
    mod = None
    gc.collect()
print("micropython: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed or not passed else 0)
