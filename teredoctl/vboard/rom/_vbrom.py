"""_vbrom -- the vboard's ROMFS partition: ``vfs`` with ``rom_ioctl``.

A MicroPython >= 1.25 board built with a ROMFS partition has
``vfs.rom_ioctl`` in C; mpremote's ``romfs deploy`` (and ``teredoctl flash
--romfs``) write the partition through it.  The vboard's partition is the
file romfs0.img in its control directory, mapped outside the heap at boot
(VBOARD_ROMFS = address:size) and mounted at /rom when it holds a ROMFS
image.  _boot.py puts ``VFS`` in sys.modules["vfs"] when the vboard has a
partition (``--romfs-partition SIZE``); every other name is the real vfs.

rom_ioctl(op, ...): 1 -> number of partitions; 2, id -> the partition's
bytes (memory-mapped, no copy); 3, id, [offset,] length -> erase (0xFF),
returns the smallest write; 4, id, offset, buf -> write; 5, id -> done;
6, id -> erase block size.  Writes go to the file; like a board's flash the
mapping shows them (the next boot mounts them).  Errors: negative errno.
"""
import os

import _vboard
import vfs as _vfs

BLOCK = 4096
_PART = "/romfs0.img"


class _Vfs:
    def __getattr__(self, name):
        return getattr(_vfs, name)

    def rom_ioctl(self, op, *a):
        m = os.getenv("VBOARD_ROMFS")
        if op == 1:
            return 1
        if not m or not a or a[0] != 0:
            return -19  # ENODEV
        addr, size = m.split(":")
        size = int(size)
        if op == 2:
            import uctypes
            return memoryview(uctypes.bytearray_at(int(addr), size))
        if op == 6:
            return BLOCK
        if op == 5:
            return 0
        if op == 3:
            off, n = (0, a[1]) if len(a) == 2 else (a[1], a[2])
            if off < 0 or n < 0 or off + n > size or off % BLOCK:
                return -22  # EINVAL
            f = _vboard.ctl.open(_PART, "r+b")
            try:
                f.seek(off)
                ff = b"\xff" * 512
                while n > 0:
                    k = 512 if n > 512 else n
                    f.write(ff[:k])
                    n -= k
            finally:
                f.close()
            return 4
        if op == 4:
            off, buf = a[1], a[2]
            if off < 0 or off + len(buf) > size:
                return -22
            f = _vboard.ctl.open(_PART, "r+b")
            try:
                f.seek(off)
                f.write(buf)
            finally:
                f.close()
            return 0
        return -22


VFS = _Vfs()
