"""Runs the MicroPython unix port (the pip build, which lives inside CPython)
with ROMFS images mapped into memory outside the MicroPython heap, standing
for a board's memory-mapped flash: the board's ROMFS partition (MicroPython
>= 1.25 built with MICROPY_VFS_ROM) and the vboard's shims, which stand for
C modules in a board's firmware.  The vboard's _boot.py mounts each image
from the address and size in the environment variable VBOARD_<NAME>; .mpy
files there execute in place, as from flash.

    python -m teredoctl.vboard.romfs NAME=IMAGE [NAME=IMAGE ...] -- micropython [ARGS...]
"""
import ctypes
import mmap
import os
import sys


def main(argv):
    if "--" not in argv:
        sys.stderr.write("usage: python -m teredoctl.vboard.romfs NAME=IMAGE ... -- micropython ARGS\n")
        return 2
    cut = argv.index("--")
    keep = []
    for spec in argv[:cut]:
        name, _, path = spec.partition("=")
        with open(path, "rb") as f:
            # a private copy-on-write mapping: "flash" the port reads in place
            image = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        base = ctypes.c_char.from_buffer(image)
        keep.append((image, base))
        os.environ["VBOARD_" + name.upper()] = "%d:%d" % (ctypes.addressof(base), len(image))
    from micropython_run import run_main  # the pip unix port's entry point
    rc = run_main(argv[cut + 1:])
    keep.clear()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
