#!/bin/sh
# Puts a 32-bit MicroPython unix port at OUT (usage: mp32.sh OUT), the
# interpreter that stands for a board (ESP32, S3, C3: 4-byte pointers, small
# ints of 31 bits) in the heap_lock tests and heap figures.  From, in order:
#   MICROPY_32=FILE   a 32-bit micropython binary (used as it is)
#   MICROPY_32=DIR    a MicroPython checkout: its unix port built with -m32
#   ../shared/micropython-32/build.sh beside the checkout (the team's snapshot)
# The result is checked: sys.maxsize must be 2**31 - 1 and an int of 2**30
# must allocate under heap_lock, else it would prove nothing.  Exit 1 with
# what to do when there is no source; as root or under CI that fails make
# test, otherwise the caller says the 32-bit run was left out and why.
set -eu
out=${1:?usage: mp32.sh OUT}
top=$(cd "$(dirname "$0")/.." && pwd)
shared_build="$top/../shared/micropython-32/build.sh"
mkdir -p "$(dirname "$out")"
src=${MICROPY_32:-}
stamp="$out.from"
want="snapshot:$shared_build"
[ -n "$src" ] && want="given:$src"

if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "$src" -o -f "$src" ]; then
  : # built before from the same source
elif [ -n "$src" ] && [ -f "$src" ]; then
  cp "$src" "$out"
elif [ -n "$src" ] && [ -d "$src/ports/unix" ]; then
  echo "mp32: building $src/ports/unix for i386 (gcc -m32; Debian's gcc-multilib)"
  make -s -j2 -C "$src/mpy-cross" >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; exit 1; }
  make -s -j2 -C "$src/ports/unix" BUILD=build-32 CFLAGS_EXTRA=-m32 LDFLAGS_EXTRA=-m32 \
    MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 MICROPY_PY_SSL=0 MICROPY_SSL_AXTLS=0 MICROPY_SSL_MBEDTLS=0 \
    >>"$out.log" 2>&1 || { tail -20 "$out.log" >&2; exit 1; }
  cp "$src/ports/unix/build-32/micropython" "$out"
elif [ -n "$src" ]; then
  echo "mp32: MICROPY_32=$src is neither a micropython binary nor a MicroPython checkout (with ports/unix)" >&2
  exit 1
elif [ -f "$shared_build" ]; then
  echo "mp32: building the 32-bit unix port from ../shared/micropython-32 (about 30-50 s, once)"
  if ! printf 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - 2>/dev/null && [ "$(id -u)" = 0 ]; then
    echo "mp32: installing gcc-multilib (gcc -m32)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib >/dev/null 2>&1 || {
      echo "mp32: apt-get install gcc-multilib failed: run it by hand to see why" >&2; exit 1; }
  fi
  d=$(mktemp -d)
  sh "$shared_build" "$d" >/dev/null || { rm -rf "$d"; echo "mp32: $shared_build failed" >&2; exit 1; }
  cp "$d/micropython" "$out"
  rm -rf "$d"
else
  echo "mp32: no 32-bit MicroPython: set MICROPY_32= to a 32-bit micropython binary or a MicroPython checkout" >&2
  echo "      (the heap_lock tests and heap figures that stand for a board need it; ../shared/micropython-32 is absent)" >&2
  exit 1
fi
printf '%s' "$want" > "$stamp"
"$out" "$top/tools/check32.py" || { rm -f "$out"; exit 1; }
