# The fast core test selection that `make mutate` runs against every mutant
# (tools/mutate/run.py; cosmic-ray runs this as its test command).
#
#   python -S -B tools/mutate/runtests.py CORE_PARENT TESTS_DIR [MODULE]
#
# CORE_PARENT holds the (mutated) teredo package, TESTS_DIR is tests/core,
# MODULE the module being mutated: the test modules named after it
# (test_tcp* for tcp) go first, where a mutant of it most likely dies.
# Like tests/mp_run.py it imports each test module and calls its test_*
# functions, but stops at the first failure (exit 1, naming the test), so a
# killed mutant costs little; cheap modules go first.  -S keeps the editable
# install of the real core off the path.  Tests a module lists in XFAIL
# (known bugs) are left out: they fail on the unmutated core.  To keep a
# surviving mutant cheap, test_flood floods from 2000 sources instead of
# 10000 (its assertions scale with FLOOD) and test_fuzz's million cases are
# replaced by a short run of the same fuzzer.
import sys
import time

FIRST = ("test_wire", "test_addr", "test_edge_csum", "test_peertable",
         "test_rules", "test_qualify", "test_native", "test_peers", "test_wrap")
LAST = ("test_alloc", "test_flood")
SKIP = ("test_fuzz",)
FLOOD = 2000
FUZZ_CLIENT_CASES = 4000
FUZZ_PARSER_CASES = 2000


def modules(tests_dir, first=None):
    import os
    names = sorted(f[:-3] for f in os.listdir(tests_dir) if f.startswith("test_") and f.endswith(".py"))
    order = [m for m in names if first and first in m and m not in SKIP and m not in LAST]
    order += [m for m in FIRST if m in names and m not in order]
    order += [m for m in names if m not in order and m not in LAST and m not in SKIP]
    order += [m for m in LAST if m in names]
    return order


def run(core_parent, tests_dir, verbose=False, first=None):
    sys.path.insert(0, tests_dir)
    sys.path.insert(0, core_parent)
    t0 = time.monotonic()
    count = 0
    for name in modules(tests_dir, first):
        mod = __import__(name)
        if hasattr(mod, "FLOOD"):
            mod.FLOOD = FLOOD
        xfail = getattr(mod, "XFAIL", {})
        for t in sorted(dir(mod)):
            if not t.startswith("test_") or t in xfail:
                continue
            t1 = time.monotonic()
            try:
                getattr(mod, t)()
            except BaseException as e:  # noqa: B036 (a mutant may raise anything)
                if isinstance(e, KeyboardInterrupt):
                    raise
                print("killed by %s.%s: %s: %s" % (name, t, type(e).__name__, str(e)[:200]))
                return 1
            count += 1
            if verbose:
                print("%6.3f s %s.%s" % (time.monotonic() - t1, name, t))
    t1 = time.monotonic()
    import fuzzcore
    from harness import Net
    try:
        f = fuzzcore.Fuzzer(Net("cone", seed=1), seed=1)
        ran, _ = f.run_client(FUZZ_CLIENT_CASES, 60000)
        if not f.err:
            f.run_parsers(FUZZ_PARSER_CASES)
    except BaseException as e:  # noqa: B036
        if isinstance(e, KeyboardInterrupt):
            raise
        print("killed by the fuzzer: %s: %s" % (type(e).__name__, str(e)[:200]))
        return 1
    if f.err:
        print("killed by the fuzzer: %s" % f.report()[:300])
        return 1
    if verbose:
        print("%6.3f s fuzz" % (time.monotonic() - t1))
    print("survived: %d tests and %d fuzz cases passed in %.2f s"
          % (count, FUZZ_CLIENT_CASES + FUZZ_PARSER_CASES, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "-v"]
    sys.exit(run(args[0], args[1], "-v" in sys.argv, args[2] if len(args) > 2 else None))
