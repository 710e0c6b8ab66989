"""Runs the MicroPython unix port (the pip build, which lives inside CPython)
with a ROMFS image mapped into memory outside the MicroPython heap, standing
for a board's memory-mapped ROMFS flash partition (MicroPython >= 1.25 built
with MICROPY_VFS_ROM).  The vboard's _boot.py mounts it at /rom from the
address and size in VBOARD_ROMFS; .mpy files there execute in place.

    python -m host_tools.vboard_romfs IMAGE -- micropython [ARGS...]
"""
import ctypes
import mmap
import os
import sys


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m host_tools.vboard_romfs IMAGE -- micropython [ARGS...]\n")
        return 2
    with open(argv[0], "rb") as f:
        # a private copy-on-write mapping: "flash" the port may read in place
        image = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    base = ctypes.c_char.from_buffer(image)
    os.environ["VBOARD_ROMFS"] = "%d:%d" % (ctypes.addressof(base), len(image))
    from micropython_run import run_main  # the pip unix port's entry point
    rc = run_main(argv[2:])
    del base
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
