# vboard bootstrap, the board's "_boot.py" (ROM).  The vboard runs
#  micropython -X heapsize=... -i <rom>/_boot.py      (cwd = flash dir)
# It mounts the flash directory at "/" through _VbFS, which also serves the
# ROM directory of shims (read-only, not listed) at "/.rom"; sys.path = ['',
# '/.rom', '.frozen', '/lib'].  With a ROMFS image (VBOARD_ROMFS =
# address:size of the image mapped outside the heap by
# teredoctl/vboard/romfs.py) it mounts it at "/rom" and puts '/rom' and
# '/rom/lib' on sys.path, as a MicroPython >= 1.25 board with a ROMFS
# partition does.  With VBOARD_SHIMS (the shims compiled into a ROMFS image by
# the vboard) those are mounted at "/.rom" instead, so they run in place like
# a board's C modules.  With VBOARD_ROMPART (--romfs-partition) the image is
# the board's writable ROMFS partition and vfs gains rom_ioctl (_vbrom.py),
# so mpremote romfs deploy and teredoctl flash --romfs write it.  It then
# tells the vboard it is ready (Ctrl-C now raises KeyboardInterrupt), runs
# boot.py and -- unless the board is coming back into the raw REPL -- main.py,
# in the __main__ globals like a board's pyexec does; "-i" then gives the
# REPL.  The escape sequences written to stdout are markers consumed by the
# vboard (never forwarded to the host).
import os
import sys


class _VbFS:
    # The flash (a VfsPosix) plus the ROM of shims at /.rom.  As on FAT/littlefs, "/"
    # cannot be removed (EINVAL) -- VfsPosix would rmdir the host directory.
    def __init__(self, flash, rom):
        self.f = flash
        self.r = rom
        rom.mount(True, False)  # read-only

    def _p(self, p):
        if p == "/.rom" or p[:6] == "/.rom/":
            return self.r, p[5:] or "/"
        return self.f, p

    def _w(self, p):
        v, q = self._p(p)
        if v is self.r:
            raise OSError(30)  # EROFS
        if q.strip("/") == "":
            raise OSError(22)  # EINVAL
        return v, q

    def __repr__(self):
        return "<VfsPosix>"

    def mount(self, readonly, mkfs):
        self.f.mount(readonly, mkfs)

    def umount(self):
        pass

    def ilistdir(self, p):
        v, q = self._p(p)
        return v.ilistdir(q)

    def stat(self, p):
        v, q = self._p(p)
        return v.stat(q)

    def statvfs(self, p):
        return self.f.statvfs(p)

    def open(self, p, mode):
        v, q = self._p(p)
        return v.open(q, mode)

    def chdir(self, p):
        self.f.chdir(p)

    def getcwd(self):
        return self.f.getcwd()

    def mkdir(self, p):
        v, q = self._w(p)
        v.mkdir(q)

    def rmdir(self, p):
        v, q = self._w(p)
        v.rmdir(q)

    def remove(self, p):
        v, q = self._w(p)
        v.remove(q)

    def rename(self, a, b):
        v, q = self._w(a)
        v.rename(q, self._w(b)[1])


def _vb_rom(var):
    # a ROMFS image the launcher mapped outside the heap, or None
    r = os.getenv(var)
    if not r:
        return None
    import uctypes
    import vfs
    a, n = r.split(":")
    return vfs.VfsRom(uctypes.bytearray_at(int(a), int(n)))


def _vb_setup():
    g = os.getenv
    os.umount("/")
    shims = _vb_rom("VBOARD_SHIMS") or os.VfsPosix(g("VBOARD_ROM"))
    os.mount(_VbFS(os.VfsPosix(g("VBOARD_FLASH")), shims), "/")
    os.chdir("/")
    sys.path.clear()
    sys.path.extend(("", "/.rom", ".frozen", "/lib"))
    if g("VBOARD_ROMPART"):
        import _vbrom  # the partition's rom_ioctl (a board has it in C)
        sys.modules["vfs"] = _vbrom.VFS
    try:
        romfs = _vb_rom("VBOARD_ROMFS")
    except OSError:
        romfs = None  # a partition that holds no ROMFS image (yet): no /rom
    if romfs is not None:
        os.mount(romfs, "/rom")
        sys.path[2:2] = ["/rom", "/rom/lib"]
    sys.argv.clear()


def _vb_run(name):
    # Like pyexec_file_if_exists(): True if absent or ran without exception.
    try:
        f = open(name)
    except OSError:
        return True
    try:
        code = compile(f.read(), name, "exec")
    except Exception as e:
        f.close()
        sys.print_exception(e)
        return False
    f.close()
    globals()["__file__"] = name
    try:
        exec(code, globals())
    except SystemExit:
        raise  # -> interpreter exits -> vboard soft reboot, as on a board
    except BaseException as e:
        sys.print_exception(e)
        return False
    return True


globals().pop("__file__", None)
try:
    _vb_setup()
except Exception as e:
    sys.print_exception(e)
sys.stdout.write("\x1b]vboard;ready\x07")
try:
    if _vb_run("boot.py") and os.getenv("VBOARD_MODE") != "raw":
        _vb_run("main.py")
finally:
    for _n in ("_VbFS", "_vb_rom", "_vb_setup", "_vb_run", "_n"):
        globals().pop(_n, None)
    sys.stdout.write("\x1b]vboard;repl\x07")
