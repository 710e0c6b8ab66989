"""Carry the line numbers of tools/mutate/equivalent.txt across an edit.

    .venv/bin/python tools/mutate/reline.py REV [--core teredo] [--write]

An entry `module.py:LINE` names a line of the core as it was when the entry
was written; twins (the same line mutated the same way in several places)
are told apart by that number only, so an edit above them would leave the
entries pointing at the wrong twin, and `make mutate` would list them as
stale and their mutants as survivors.  This maps each entry's line from the
core at git revision REV (where the entries were right) to the core in the
working tree, through the unchanged lines between the two (difflib).  An
entry whose line at REV is not its `-` text is left alone; one whose line
was changed or deleted by the edit is left alone too and listed, to be
judged again.  An entry already stale at REV (written for an older core) is
carried from the newest earlier revision of its module where its line has
its `-` text.  Without --write it only prints what it would do.
"""
import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIV = ROOT / "tools" / "mutate" / "equivalent.txt"


def line_map(old, new):
    """{old line number: new line number} for the lines the edit kept (1-based)."""
    m = {}
    sm = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for a, b, size in sm.get_matching_blocks():
        for k in range(size):
            m[a + k + 1] = b + k + 1
    return m


_SHOWN = {}


def show(rev, path):
    if (rev, path) not in _SHOWN:
        _SHOWN[(rev, path)] = subprocess.run(["git", "show", "%s:%s" % (rev, path)], cwd=ROOT, check=True,
                                             capture_output=True, text=True).stdout.splitlines()
    return _SHOWN[(rev, path)]


def history(core, mod, limit=80):
    r = subprocess.run(["git", "log", "--format=%H", "-n", str(limit), "--", "%s/%s" % (core, mod)],
                       cwd=ROOT, check=True, capture_output=True, text=True)
    return r.stdout.split()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="git revision the entries' line numbers are right for")
    ap.add_argument("--core", default="teredo")
    ap.add_argument("--write", action="store_true", help="rewrite equivalent.txt")
    a = ap.parse_args(argv)
    text = EQUIV.read_text().splitlines(True)
    maps, olds, news = {}, {}, {}
    moved = kept = unchecked = 0
    changed = []
    out = []
    i = 0
    while i < len(text):
        raw = text[i]
        m = re.match(r"^(\w+\.py):(\d+)\s*$", raw)
        if not m:
            out.append(raw)
            i += 1
            continue
        mod, line = m.group(1), int(m.group(2))
        old_text = text[i + 1][2:].strip() if i + 1 < len(text) and text[i + 1].startswith("- ") else None
        if mod not in maps:
            path = "%s/%s" % (a.core, mod)
            try:
                o = show(a.rev, path)
            except subprocess.CalledProcessError:
                sys.exit("reline: %s is not in revision %s" % (path, a.rev))
            n = (ROOT / path).read_text().splitlines()
            maps[mod], olds[mod], news[mod] = line_map(o, n), o, n
        o = olds[mod]
        lmap = maps[mod]
        if old_text is not None and (line > len(o) or o[line - 1].strip() != old_text):
            # already stale at REV: the entry was written for an older core;
            # the newest revision of the module where its line has its text
            lmap = None
            for r in history(a.core, mod):
                ro = show(r, "%s/%s" % (a.core, mod))
                if line <= len(ro) and ro[line - 1].strip() == old_text:
                    lmap = line_map(ro, news[mod])
                    break
        if old_text is None or lmap is None:
            unchecked += 1
            out.append(raw)
        elif line in lmap:
            nl = lmap[line]
            if nl != line:
                moved += 1
            else:
                kept += 1
            out.append("%s:%d\n" % (mod, nl))
        else:
            changed.append("%s:%d  %s" % (mod, line, old_text))
            out.append(raw)
        i += 1
    print("reline: %d entries moved, %d in place, %d found in no revision (left alone), "
          "%d on lines changed since" % (moved, kept, unchecked, len(changed)))
    for c in changed:
        print("  changed: " + c)
    if a.write:
        tmp = EQUIV.with_suffix(".txt.new")
        tmp.write_text("".join(out))
        tmp.replace(EQUIV)
        print("reline: %s rewritten" % EQUIV.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
