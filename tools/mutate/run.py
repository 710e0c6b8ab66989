"""Mutation testing of the sans-I/O core with cosmic-ray (`make mutate`).

    python tools/mutate/run.py [--core teredo] [--modules addr,wire,...]
        [--seconds 1800] [--jobs 2] [--out build/mutate] [--fresh] [--report-only]

For each core module, cosmic-ray makes its mutants (the operators in KEEP:
plausible slips such as < for <=, + for -, a number off by one, a dropped
`not`, << for >>) and runs the fast core test selection
(tools/mutate/runtests.py, CPython) against each one.  A module's mutants are
split into --jobs shards, each a cosmic-ray session with its own copy of the
core, run side by side.  When --seconds run out the sessions are stopped; the
next run resumes them as long as the core and the tests are unchanged
(--fresh starts over).  Then it writes OUT/report.md and OUT/report.json: the
score per module (killed / (killed + survived), leaving out the mutants listed
as equivalent in tools/mutate/equivalent.txt, with their reasons) and every
surviving mutant.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# The mutation operators used, out of cosmic-ray's 213 (`cosmic-ray
# operators`).  Every comparison and unary operator, number, boolean,
# and/or, not, break/continue, exception and loop mutation; of the binary
# operator replacements only the near slips (the other ones, such as + for
# **, die at once and only cost time; | for ^ and | for + are equivalent
# wherever bytes are joined, `(hi << 8) | lo`, which is everywhere).
BINARY_KEEP = ("Add_Sub", "Sub_Add", "Mul_Add", "Mul_FloorDiv", "FloorDiv_Mul", "FloorDiv_Mod",
               "Mod_FloorDiv", "RShift_LShift", "LShift_RShift", "BitOr_BitAnd", "BitAnd_BitOr",
               "BitXor_BitOr", "BitXor_BitAnd")
COMPARISON_KEEP = ("Eq_NotEq", "NotEq_Eq", "Lt_LtE", "LtE_Lt", "Gt_GtE", "GtE_Gt", "Lt_Gt",
                   "Gt_Lt", "LtE_GtE", "GtE_LtE", "Is_IsNot", "IsNot_Is")
OTHER_KEEP = ("AddNot", "ReplaceTrueWithFalse", "ReplaceFalseWithTrue", "ReplaceAndWithOr",
              "ReplaceOrWithAnd", "ReplaceBreakWithContinue", "ReplaceContinueWithBreak",
              "ExceptionReplacer", "NumberReplacer", "RemoveDecorator", "ZeroIterationForLoop")


def kept(op):
    name = op.split("/", 1)[1]
    if name.startswith("ReplaceBinaryOperator_"):
        return name[len("ReplaceBinaryOperator_"):] in BINARY_KEEP
    if name.startswith("ReplaceComparisonOperator_"):
        return name[len("ReplaceComparisonOperator_"):] in COMPARISON_KEEP
    if name.startswith("ReplaceUnaryOperator_"):
        return True
    return name in OTHER_KEEP


def excluded_operators():
    import cosmic_ray.plugins
    return sorted(op for op in cosmic_ray.plugins.operator_names() if not kept(op))


# ---- sessions -----------------------------------------------------------------

def fingerprint(core, modules):
    """What the results depend on: the core, the tests, the runner, the operators."""
    h = hashlib.sha256()
    files = sorted(Path(core).glob("*.py")) + sorted((ROOT / "tests" / "core").glob("*.py"))
    files += [HERE / "runtests.py", Path(__file__).resolve()]
    for f in files:
        h.update(str(f.name).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(",".join(modules).encode())
    return h.hexdigest()


def copy_core(core, dst):
    pkg = Path(dst) / "teredo"
    if pkg.exists():
        shutil.rmtree(pkg)
    shutil.copytree(core, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


TESTS = None  # the snapshot of tests/core the mutants are tested with (main() sets it)


def snapshot_tests(out):
    """Copy tests/core (and the runner) aside, so that editing the tests
    during a run does not change what the run measures."""
    global TESTS
    TESTS = Path(out) / "tests-core"
    if TESTS.exists():
        shutil.rmtree(TESTS)
    shutil.copytree(ROOT / "tests" / "core", TESTS, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(HERE / "runtests.py", TESTS / "_runtests.py")


def snapshot_core(core, out):
    """Copy the core aside too: every shard starts from this copy, so that
    editing the core during a run does not mutate a core that the snapshot
    of the tests does not match (every mutant would be "killed")."""
    d = Path(out) / "core-snapshot"
    copy_core(core, d)
    return d / "teredo"


def test_command(module=None):
    py = sys.executable
    args = (py, "-S", "-B", TESTS / "_runtests.py", ".", TESTS) + ((module,) if module else ())
    return " ".join(shlex.quote(str(x)) for x in args)


def write_config(d, module, timeout):
    excl = excluded_operators()
    lines = [
        "[cosmic-ray]",
        'module-path = "teredo/%s.py"' % module,
        "timeout = %.1f" % timeout,
        "excluded-modules = []",
        "test-command = %s" % json.dumps(test_command(module)),
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        "exclude-operators = [",
    ]
    lines += ["    %s," % json.dumps(re.escape(op) + "$") for op in excl]
    lines += ["]", ""]
    (Path(d) / "config.toml").write_text("\n".join(lines))


def cosmic(*args, cwd):
    exe = Path(sys.executable).parent / args[0]
    subprocess.run([str(exe)] + list(args[1:]), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def init_module(core, out, module, jobs, timeout):
    """cosmic-ray init + operator filter once, then one copy per shard with
    the other shards' mutants marked skipped."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    base = Path(out) / "work" / module
    if base.exists():
        shutil.rmtree(base)
    master = base / "master"
    master.mkdir(parents=True)
    copy_core(core, master)
    write_config(master, module, timeout)
    cosmic("cosmic-ray", "init", "config.toml", "session.sqlite", cwd=master)
    cosmic("cr-filter-operators", "session.sqlite", "config.toml", cwd=master)
    with use_db(str(master / "session.sqlite"), WorkDB.Mode.open) as db:
        todo = sorted(((m.start_pos, m.operator_name, m.occurrence), w.job_id)
                      for w in db.pending_work_items for m in w.mutations[:1])
    owner = {}
    for i, (_, job) in enumerate(todo):
        owner[job] = i % jobs
    shards = []
    for j in range(jobs):
        d = base / ("shard%d" % j)
        shutil.copytree(master, d)
        with use_db(str(d / "session.sqlite"), WorkDB.Mode.open) as db:
            other = [job for job, k in owner.items() if k != j]
            if other:
                db.set_multiple_results(other, WorkResult(output="other shard",
                                                          worker_outcome=WorkerOutcome.SKIPPED))
        shards.append(d)
    return len(todo)


def pending(d):
    from cosmic_ray.work_db import WorkDB, use_db
    with use_db(str(Path(d) / "session.sqlite"), WorkDB.Mode.open) as db:
        return db.num_work_items - db.num_results


def baseline(core, out):
    d = Path(out) / "work" / "baseline"
    d.mkdir(parents=True, exist_ok=True)
    copy_core(core, d)
    t0 = time.monotonic()
    p = subprocess.run(shlex.split(test_command()), cwd=d, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("mutate: the test selection fails on the unmutated core; fix that first:\n"
                 + p.stdout + p.stderr)
    return dt


def kill_strays(d):
    """cosmic-ray starts each test run in a session of its own, so stopping
    cosmic-ray leaves the test run going (an endless-loop mutant never
    ends): stop every process working in the shard's directory (Linux /proc;
    elsewhere nothing to do)."""
    d = str(Path(d).resolve())
    try:
        pids = [int(x) for x in os.listdir("/proc") if x.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            continue
        if cwd == d or cwd.startswith(d + "/"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def execute(core, out, shards, jobs, deadline):
    """Run `cosmic-ray exec` on the shards, `jobs` at a time, until done or
    the deadline.  Returns True when every shard finished."""
    queue = [d for d in shards if pending(d)]
    running = []
    cut = False
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def stop_all():
        for p, _d, _log in running:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for p, d, log in running:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            log.close()
            kill_strays(d)
            copy_core(core, d)
        running[:] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                d = queue.pop(0)
                copy_core(core, d)  # undo a mutation left by a run cut short
                log = open(logs / ("%s-%s.log" % (d.parent.name, d.name)), "a")
                p = subprocess.Popen([str(Path(sys.executable).parent / "cosmic-ray"), "exec",
                                      "config.toml", "session.sqlite"], cwd=d, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
                running.append((p, d, log))
                print("mutate: %s %s: %d mutants to run" % (d.parent.name, d.name, pending(d)), flush=True)
            time.sleep(0.5)
            for item in list(running):
                p, d, log = item
                if p.poll() is not None:
                    running.remove(item)
                    log.close()
                    copy_core(core, d)
                    if p.returncode != 0:
                        print("mutate: cosmic-ray exec failed in %s (see %s)" % (d, log.name))
            if time.monotonic() > deadline and (queue or running):
                cut = True
                stop_all()
                break
    except KeyboardInterrupt:
        print("mutate: interrupted; stopping the sessions (make mutate again resumes)")
        cut = True
        stop_all()
    # the test command may outlive its cosmic-ray: give it a moment
    if cut:
        time.sleep(1)
    return not cut


# ---- equivalent mutants ------------------------------------------------------

def load_equivalents(path):
    """tools/mutate/equivalent.txt: blocks of

        wire.py:123
        - the source line as it is
        + the line as the mutant has it
        why: the reason (may go on over indented lines)

    and `code wire.py FUNCTION` blocks (with a why:) for code CPython never
    runs (the viper twins), whose mutants are set aside too."""
    entries = []
    cur = None
    for raw in Path(path).read_text().splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^(\w+\.py):(\d+)\s*$", line)
        c = re.match(r"^code\s+(\w+\.py)\s+(\w+)\s*$", line)
        if m or c:
            cur = {"module": (m or c).group(1), "line": int(m.group(2)) if m else 0,
                   "old": None, "new": None, "why": "", "function": c.group(2) if c else None,
                   "used": 0}
            entries.append(cur)
        elif cur is None:
            raise SystemExit("%s: %r before any 'module.py:LINE' header" % (path, line))
        elif line.startswith("- "):
            cur["old"] = line[2:].strip()
        elif line.startswith("+ "):
            cur["new"] = line[2:].strip()
        elif line.startswith("why:"):
            cur["why"] = line[4:].strip()
        elif line.startswith((" ", "\t")) and cur["why"]:
            cur["why"] += " " + line.strip()
        else:
            raise SystemExit("%s: cannot read %r" % (path, line))
    for e in entries:
        if not e["why"] or (e["function"] is None and (e["old"] is None or e["new"] is None)):
            raise SystemExit("%s: entry %s:%d needs '- old', '+ new' and 'why:'"
                             % (path, e["module"], e["line"]))
    return entries


def diff_lines(diff):
    old, new = [], []
    for line in (diff or "").splitlines():
        if line.startswith("---") or line.startswith("+++"):
            continue
        if line.startswith("-"):
            old.append(line[1:].strip())
        elif line.startswith("+"):
            new.append(line[1:].strip())
    return " / ".join(old), " / ".join(new)


def match_equivalent(entries, mutant, twins):
    """The entry saying this surviving mutant is equivalent, or None.  A
    (module, old, new) text match, by line when the same text mutates the
    same way in several places (twins)."""
    for e in entries:
        if e["module"] != mutant["module"]:
            continue
        if e["function"]:
            if e["function"] == mutant["function"]:
                return e
            continue
        if e["old"] == mutant["old"] and e["new"] == mutant["new"]:
            if twins > 1 and e["line"] != mutant["line"]:
                continue
            return e
    return None


# ---- report -------------------------------------------------------------------

def collect(out, module):
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    base = Path(out) / "work" / module
    res = {"module": module + ".py", "total": 0, "excluded_operators": 0, "not_run": 0,
           "no_test": 0, "incompetent": 0, "killed": 0, "timeouts": 0, "mutants": []}
    seen = set()
    src = (base / "master" / "teredo" / (module + ".py")).read_text().splitlines()

    def function_of(m):
        """The def a mutant is in; for a decorator, the def it decorates."""
        if m.definition_name:
            return m.definition_name
        k = m.start_pos[0] - 1
        if 0 <= k < len(src) and src[k].lstrip().startswith("@"):
            while k < len(src) and not src[k].lstrip().startswith("def "):
                k += 1
            if k < len(src):
                return src[k].split("def ", 1)[1].split("(", 1)[0]
        return None

    for d in sorted(base.glob("shard*")):
        with use_db(str(d / "session.sqlite"), WorkDB.Mode.open) as db:
            results = dict(db.results)
            for w in db.work_items:
                m = w.mutations[0]
                key = (m.start_pos, m.operator_name, m.occurrence)
                r = results.get(w.job_id)
                if r is not None and r.worker_outcome == WorkerOutcome.SKIPPED and r.output == "other shard":
                    continue
                if key in seen:
                    continue
                seen.add(key)
                res["total"] += 1
                if r is None:
                    res["not_run"] += 1
                elif r.worker_outcome == WorkerOutcome.SKIPPED:
                    res["excluded_operators"] += 1
                elif r.worker_outcome == WorkerOutcome.NO_TEST:
                    res["no_test"] += 1
                elif r.test_outcome == TestOutcome.INCOMPETENT or r.worker_outcome != WorkerOutcome.NORMAL:
                    res["incompetent"] += 1
                elif r.test_outcome == TestOutcome.KILLED:
                    res["killed"] += 1
                    if (r.output or "").strip() == "timeout":
                        res["timeouts"] += 1
                else:
                    old, new = diff_lines(r.diff)
                    res["mutants"].append({
                        "module": module + ".py", "line": m.start_pos[0], "col": m.start_pos[1],
                        "function": function_of(m), "operator": m.operator_name.split("/", 1)[1],
                        "occurrence": m.occurrence, "old": old, "new": new})
    res["mutants"].sort(key=lambda x: (x["line"], x["col"], x["operator"], x["occurrence"]))
    return res


def report(out, modules, entries, complete, seconds, jobs, baseline_s):
    results = [collect(out, m) for m in modules]
    total = {"killed": 0, "survived": 0, "equivalent": 0, "not_cpython": 0, "not_run": 0}
    rows = []
    for res in results:
        twins = {}
        for mu in res["mutants"]:
            twins[(mu["old"], mu["new"])] = twins.get((mu["old"], mu["new"]), 0) + 1
        survivors, equivalent, not_cpython = [], [], []
        for mu in res["mutants"]:
            e = match_equivalent(entries, mu, twins[(mu["old"], mu["new"])])
            if e is None:
                survivors.append(mu)
            else:
                e["used"] += 1
                mu["why"] = e["why"]
                (not_cpython if e["function"] else equivalent).append(mu)
        res["survivors"] = survivors
        res["equivalent"] = equivalent
        res["not_cpython"] = not_cpython
        del res["mutants"]
        judged = res["killed"] + len(survivors)
        res["score"] = round(100.0 * res["killed"] / judged, 1) if judged else None
        for k in ("killed", "not_run"):
            total[k] += res[k]
        total["survived"] += len(survivors)
        total["equivalent"] += len(equivalent)
        total["not_cpython"] += len(not_cpython)
        rows.append(res)
    judged = total["killed"] + total["survived"]
    total["score"] = round(100.0 * total["killed"] / judged, 1) if judged else None
    stale = [e for e in entries if not e["used"] and e["module"] in [r["module"] for r in rows]
             and not [r for r in rows if r["module"] == e["module"] and r["not_run"]]]
    data = {"complete": complete, "seconds": seconds, "jobs": jobs, "baseline_s": round(baseline_s, 2),
            "modules": rows, "total": total,
            "stale_equivalents": [{"module": e["module"], "line": e["line"], "old": e["old"], "new": e["new"],
                                   "function": e["function"], "why": e["why"]} for e in stale]}
    Path(out, "report.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    Path(out, "report.md").write_text(markdown(data))
    return data


def pct(x):
    return "-" if x is None else "%.1f %%" % x


def markdown(data):
    o = ["# Mutation testing of the core", ""]
    if not data["complete"]:
        o += ["**Cut short by the time budget (%d s): the 'not run' mutants are still to do; "
              "`make mutate` again resumes.**" % data["seconds"], ""]
    o += ["Score = killed / (killed + survived); equivalent mutants and code CPython never runs "
          "are left out (tools/mutate/equivalent.txt says why for each). Tests: "
          "tools/mutate/runtests.py (tests/core on CPython, %.1f s when nothing fails)." % data["baseline_s"],
          "",
          "| Module | Mutants made | Killed (timeouts) | Survived | Score | Equivalent | Not on CPython "
          "| Not run | Incompetent | Operators left out |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["modules"] + [dict(data["total"], module="**all**")]:
        o.append("| %s | %s | %s | %d | %s | %d | %d | %d | %s | %s |" % (
            r["module"], r.get("total", ""),
            "%d (%d)" % (r["killed"], r["timeouts"]) if "timeouts" in r else r["killed"],
            len(r["survivors"]) if "survivors" in r else r["survived"], pct(r["score"]),
            len(r["equivalent"]) if isinstance(r["equivalent"], list) else r["equivalent"],
            len(r["not_cpython"]) if isinstance(r.get("not_cpython"), list) else r["not_cpython"],
            r["not_run"], r.get("incompetent", ""), r.get("excluded_operators", "")))
    o.append("")
    for r in data["modules"]:
        if not r["survivors"]:
            continue
        o += ["## Surviving mutants in %s (%d)" % (r["module"], len(r["survivors"])), ""]
        for mu in r["survivors"]:
            where = "`%s()`" % mu["function"] if mu["function"] else "module level"
            o += ["- `%s:%d` in %s, %s:" % (mu["module"], mu["line"], where, mu["operator"]),
                  "  `- %s`  " % mu["old"], "  `+ %s`" % mu["new"]]
        o.append("")
    eq = [mu for r in data["modules"] for mu in r["equivalent"]]
    if eq:
        o += ["## Equivalent mutants (%d)" % len(eq), ""]
        for mu in eq:
            o += ["- `%s:%d` `%s` -> `%s`: %s" % (mu["module"], mu["line"], mu["old"], mu["new"], mu["why"])]
        o.append("")
    nc = [mu for r in data["modules"] for mu in r["not_cpython"]]
    if nc:
        o += ["## Code CPython never runs (%d mutants)" % len(nc), ""]
        seen = set()
        for mu in nc:
            if (mu["module"], mu["function"]) not in seen:
                seen.add((mu["module"], mu["function"]))
                o.append("- `%s` `%s()`: %s" % (mu["module"], mu["function"], mu["why"]))
        o.append("")
    if data["stale_equivalents"]:
        o += ["## Entries of equivalent.txt that matched no survivor (killed now, or the code moved)", ""]
        for e in data["stale_equivalents"]:
            o.append("- `%s:%d` `%s` -> `%s`" % (e["module"], e["line"], e["old"], e["new"]))
        o.append("")
    return "\n".join(o)


# ---- main -------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--core", default="teredo")
    ap.add_argument("--modules", default="", help="comma-separated (default: every module of --core)")
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="build/mutate")
    ap.add_argument("--equivalent", default=str(HERE / "equivalent.txt"))
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # execute() handles it itself
    core = Path(a.core).resolve()
    out = Path(a.out).resolve()
    modules = [m for m in a.modules.replace(",", " ").split() if m] or \
        sorted(p.stem for p in core.glob("*.py") if p.stem != "__init__")
    for m in modules:
        if not (core / (m + ".py")).exists():
            sys.exit("mutate: no module %s.py in %s" % (m, core))
    entries = load_equivalents(a.equivalent)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    fp = fingerprint(core, modules)
    if a.report_only:
        data = report(out, modules, entries, state.get("complete", False), a.seconds, a.jobs,
                      state.get("baseline_s", 0))
        print_summary(out, data)
        return 0
    snapshot_tests(out)
    core = snapshot_core(core, out)
    base_s = baseline(core, out)
    # generous for a survivor on a busy machine, short for an endless loop
    timeout = max(6.0, round(base_s * 3, 1))
    fresh = a.fresh or state.get("fingerprint") != fp or state.get("jobs") != a.jobs
    if fresh:
        print("mutate: new sessions (%s)" % ("--fresh" if a.fresh else "core, tests or settings changed"))
        counts = {}
        for m in modules:
            counts[m] = init_module(core, out, m, a.jobs, timeout)
            print("mutate: %s.py: %d mutants" % (m, counts[m]), flush=True)
        state = {"fingerprint": fp, "jobs": a.jobs, "counts": counts, "complete": False}
    else:
        print("mutate: resuming the sessions of an earlier run")
    state["baseline_s"] = base_s
    state_path.write_text(json.dumps(state))
    order = sorted(modules, key=lambda m: state["counts"].get(m, 0))
    shards = [d for m in order for d in sorted((out / "work" / m).glob("shard*"))]
    deadline = t0 + a.seconds
    complete = execute(core, out, shards, a.jobs, deadline)
    state["complete"] = complete
    state_path.write_text(json.dumps(state))
    data = report(out, modules, entries, complete, a.seconds, a.jobs, base_s)
    print_summary(out, data)
    print("mutate: %.0f s" % (time.monotonic() - t0))
    return 0


def print_summary(out, data):
    for r in data["modules"]:
        print("mutate: %-10s %5s  killed %4d  survived %3d  equivalent %3d  not run %4d"
              % (r["module"], pct(r["score"]), r["killed"], len(r["survivors"]), len(r["equivalent"]),
                 r["not_run"]))
    t = data["total"]
    print("mutate: %-10s %5s  killed %4d  survived %3d  equivalent %3d  not run %4d"
          % ("all", pct(t["score"]), t["killed"], t["survived"], t["equivalent"], t["not_run"]))
    print("mutate: report in %s/report.md and report.json%s"
          % (out, "" if data["complete"] else " (cut short: run again to resume)"))


if __name__ == "__main__":
    sys.exit(main())
