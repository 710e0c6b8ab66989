# Re-test the mutants a `make mutate` run left alive against some test
# modules only, without a new run: for writing the tests that kill them.
#
#   python tools/mutate/check.py REPORT.json MODULE.py TEST [TEST ...]
#          [--func NAME[,NAME...]] [--jobs N] [--list]
#
# REPORT.json is what tools/mutate/run.py wrote (build/mutate/report.json);
# each surviving mutant of MODULE.py (of the functions named, or all) is
# applied to a copy of teredo/ (the line as the report has it), and the test
# modules (tests/core/test_x.py or test_x) are imported and their test_*
# functions called, as tools/mutate/runtests.py does, in a fresh CPython
# with -S (the real core off the path), 20 s at most.  Prints each mutant
# still alive, then "killed K of N"; exit 1 when any survives.  --list only
# prints the mutants.  A mutant whose line no longer matches the source
# (the code moved since the run) is reported as "stale".
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])
for name in sys.argv[3:]:
    mod = __import__(name)
    xfail = getattr(mod, "XFAIL", {})
    for t in sorted(dir(mod)):
        if t.startswith("test_") and t not in xfail:
            try:
                getattr(mod, t)()
            except BaseException as e:
                print("killed by %s.%s: %s: %s" % (name, t, type(e).__name__, str(e)[:160]))
                sys.exit(1)
"""


def survivors(report, module, funcs):
    data = json.load(open(report))
    for m in data["modules"]:
        if m["module"] == module:
            return [s for s in m["survivors"] if not funcs or (s["function"] or "module level") in funcs]
    raise SystemExit("%s: no module %s in the report" % (report, module))


def apply(core, module, s):
    path = Path(core) / "teredo" / module
    lines = path.read_text().split("\n")
    i = s["line"] - 1
    if i >= len(lines) or lines[i].strip() != s["old"].strip():
        return False
    indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = indent + s["new"].strip()
    path.write_text("\n".join(lines))
    return True


def one(s, module, tests):
    d = tempfile.mkdtemp(prefix="mutcheck-")
    try:
        shutil.copytree(ROOT / "teredo", Path(d) / "teredo",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if not apply(d, module, s):
            return s, "stale", ""
        try:
            cmd = [sys.executable, "-S", "-B", "-c", RUNNER, d, str(ROOT / "tests" / "core")] + tests
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            return s, "killed", "timeout"
        return s, ("killed" if r.returncode else "alive"), (r.stdout + r.stderr).strip()[-200:]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def describe(s):
    return "%s:%d %s %s\n  - %s\n  + %s" % (s["module"], s["line"], s["function"] or "module level",
                                          s["operator"], s["old"].strip(), s["new"].strip())


def main(argv):
    funcs, jobs, listing, args = None, 2, False, []
    it = iter(argv)
    for a in it:
        if a == "--func":
            funcs = set(next(it).split(","))
        elif a == "--jobs":
            jobs = int(next(it))
        elif a == "--list":
            listing = True
        else:
            args.append(a)
    if len(args) < 2 or (len(args) < 3 and not listing):
        raise SystemExit(__doc__ if __doc__ else "usage: check.py REPORT.json MODULE.py TEST [TEST ...]")
    report, module = args[0], args[1]
    tests = [os.path.basename(t)[:-3] if t.endswith(".py") else t for t in args[2:]]
    ss = survivors(report, module, funcs)
    if listing:
        for s in ss:
            print(describe(s))
        print("%d mutants" % len(ss))
        return 0
    killed = stale = 0
    with ThreadPoolExecutor(jobs) as ex:
        for s, verdict, out in ex.map(lambda s: one(s, module, tests), ss):
            if verdict == "killed":
                killed += 1
            elif verdict == "stale":
                stale += 1
                print("stale (the line moved):", describe(s))
            else:
                print("ALIVE", describe(s), "\n  ", out[-120:] if out else "")
    print("killed %d of %d (%d stale)" % (killed, len(ss), stale))
    return 0 if killed + stale == len(ss) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
