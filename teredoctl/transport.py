"""A small transport over pyserial to the firmware's serial console.

The console protocol (firmware/teredo_console.py): the host sends one command line;
the board answers with exactly one line ``##teredo {"ok": ..., "cmd": ...}``.
Other lines starting with the marker are events (``{"event": ...}``); lines
without it are log or other console output.

    with Console("/dev/ttyUSB0") as con:
        st = con.request("status")          # data of the reply, or BoardError
        for kind, obj in con.follow():      # ("event"|"reply"|"log"|"other", ...)
            ...

Opening the port does not reset an ESP32.  Its dev boards wire DTR and RTS
to EN and IO0 through two transistors: EN is pulled low (reset) only while
RTS is asserted and DTR is not, IO0 only while DTR is asserted and RTS is
not.  Linux asserts both lines when the port is opened; both asserted is
"run".  So the port is opened with both asserted (pyserial's default) and
neither line is touched afterwards: clearing them one by one, as
``dtr = False; rts = False`` does, passes through "RTS only" = reset.
Closing drops both at once ("run" again).  ``hard_reset()`` pulses EN on
request.  The port is opened exclusively (flock, as mpremote does), so two
programs never share it.
"""
import errno
import json
import os
import time
import zlib

MARKER = b"##teredo "
CTRL_C, CTRL_B, CTRL_D = b"\x03", b"\x02", b"\x04"
IDEMPOTENT = ("status", "peers", "config", "help")
CHECK_OVER = 64    # lines longer than this carry " #len=N,crc=X" (the board checks it)
PACE_BYTES = 128   # written at most this much at a time ...
PACE_S = 0.015     # ... this far apart (128 bytes take 11 ms at 115200 baud)


class BoardError(Exception):
    """An expected failure; the message says what went wrong and what to do.
    kind: "port" (open, read, write), "noanswer", "garbage", "refused" (the
    firmware answered ok:false; detail is its sentence), "repl"."""

    def __init__(self, msg, kind="port", detail=None):
        Exception.__init__(self, msg)
        self.kind = kind
        self.detail = detail


def _serial():
    try:
        import serial
    except ImportError:
        raise BoardError("pyserial is not installed: run make venv (or pip install pyserial)")
    return serial


def classify(line):
    """One console line (bytes, no line end) -> (kind, value).

    kind: "reply" (dict with ok and cmd), "event" (dict with event), "log"
    (text after "teredo: "), "other" (text), "garbage" (a marker line whose
    JSON does not parse or is not a reply or event; value says why)."""
    i = line.find(MARKER)
    if i < 0:
        text = line.decode("utf-8", "replace")
        if text.startswith("teredo: "):
            return "log", text[8:]
        return "other", text
    body = line[i + len(MARKER):]
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "garbage", "a marker line that is not JSON: %r" % body[:60]
    if isinstance(obj, dict) and isinstance(obj.get("ok"), bool) and isinstance(obj.get("cmd"), str):
        if obj["ok"] or isinstance(obj.get("error"), str):
            return "reply", obj
    if isinstance(obj, dict) and isinstance(obj.get("event"), str):
        return "event", obj
    return "garbage", "a marker line that is neither a reply nor an event: %r" % body[:60]


def looks_binary(data):
    """True when most of data is not text (a wrong baud rate, line noise)."""
    if len(data) < 16:
        return False
    text = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13, 27))
    return text < 0.75 * len(data)


class Console:
    def __init__(self, port, baud=115200, exclusive=True):
        self.port = port
        self.baud = baud
        self.exclusive = exclusive
        self.ser = None
        self.buf = bytearray()
        self.seen = bytearray()  # everything read since the last request (for diagnosis)

    # ---- open / close ---------------------------------------------------------

    def open(self):
        serial = _serial()
        p = self.port
        if not os.path.exists(p):
            raise BoardError("no serial port %s: check the cable and the name (teredoctl ports lists them)"
                             % p)
        s = serial.Serial()
        s.port = p
        s.baudrate = self.baud
        s.timeout = 0.05
        s.write_timeout = 2
        s.exclusive = self.exclusive
        # Both asserted = "run" on the ESP32 auto-reset circuit (module docstring).
        s.dtr = True
        s.rts = True
        try:
            s.open()
        except serial.SerialException as e:
            raise BoardError(self._open_error(e))
        self.ser = s
        return self

    def _open_error(self, e):
        p = self.port
        n = getattr(e, "errno", None)
        text = str(e)
        if n in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text or n == errno.EBUSY:
            return ("%s is busy: another program (mpremote, a terminal, another teredoctl) has it open; "
                    "close that program and try again" % p)
        if n == errno.ENOENT:
            return "no serial port %s: check the cable and the name (teredoctl ports lists them)" % p
        if n in (errno.EACCES, errno.EPERM):
            return ("no permission to open %s: add yourself to its group (e.g. dialout) and log in again"
                    % p)
        return "cannot open %s (%s): check the cable and the port name" % (p, text)

    def close(self):
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001 (closing a port that went away)
                pass
            self.ser = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # ---- bytes and lines ---------------------------------------------------------

    def _read(self):
        serial = _serial()
        try:
            data = self.ser.read(self.ser.in_waiting or 1)
        except (serial.SerialException, OSError) as e:
            raise BoardError("lost %s while reading (%s): was the board unplugged or reset? "
                             "check it and try again" % (self.port, e))
        if data:
            self.seen += data[-4096:]
            del self.seen[:-4096]
        return data

    def write(self, data):
        serial = _serial()
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise BoardError("cannot write to %s (%s): check the board and try again" % (self.port, e))

    def _pop_line(self):
        """A complete line from what has been read (bytes, without CR/LF), or None."""
        i = self.buf.find(b"\n")
        if i < 0:
            return None
        line = bytes(self.buf[:i]).rstrip(b"\r")
        del self.buf[:i + 1]
        return line

    def readline(self, timeout):
        """One line (bytes, without CR/LF), or None when timeout seconds pass."""
        end = time.monotonic() + timeout
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            if time.monotonic() >= end:
                return None
            self.buf += self._read()

    def read_until(self, pattern, timeout):
        """Read until pattern appears (True) or timeout (False); consumes the
        bytes read up to and including the pattern."""
        end = time.monotonic() + timeout
        while True:
            i = self.buf.find(pattern)
            if i >= 0:
                del self.buf[:i + len(pattern)]
                return True
            if time.monotonic() >= end:
                return False
            self.buf += self._read()

    def discard_input(self):
        self.buf.clear()
        try:
            self.ser.reset_input_buffer()
        except Exception:  # noqa: BLE001
            pass
        self.seen.clear()

    def follow(self, timeout=None):
        """Yield (kind, value) for every console line; stops after timeout
        seconds without a line (None: never)."""
        while True:
            line = self.readline(0.5 if timeout is None else timeout)
            if line is None:
                if timeout is None:
                    continue
                return
            yield classify(line)

    # ---- the console protocol ------------------------------------------------------

    def send(self, text):
        # A leading line end flushes anything half-typed on the board's line.
        # A long line carries its length and CRC-32, which the board checks
        # (app/teredo_console.py), and goes in paced chunks: a board's UART
        # ring holds about 260 bytes while the firmware is busy elsewhere.
        data = text.encode()
        if len(data) > CHECK_OVER:
            data += b" #len=%d,crc=%08x" % (len(data), zlib.crc32(data) & 0xFFFFFFFF)
        data = b"\r\n" + data + b"\r\n"
        for i in range(0, len(data), PACE_BYTES):
            if i:
                time.sleep(PACE_S)
            self.write(data[i:i + PACE_BYTES])

    def request(self, text, timeout=3.0, on_line=None):
        """Send a command; return the data of its ok reply.  BoardError on an
        error reply (its own sentence), garbage, or no answer within timeout."""
        name = text.split(" ", 1)[0]
        if text.startswith("config set"):
            name = "config set"
        self.discard_input()
        self.send(text)
        resend = name in IDEMPOTENT
        damaged = 0
        start = time.monotonic()
        end = start + timeout
        while True:
            now = time.monotonic()
            if now >= end:
                raise BoardError(*self.no_answer())
            if resend and now - start >= timeout / 2:
                resend = False  # once more: a board that was just booting
                self.send(text)
            line = self.readline(min(0.2, end - now))
            if line is None:
                continue
            kind, obj = classify(line)
            if kind == "garbage":
                raise BoardError("%s answered garbage (%s): check --baud, or reflash with "
                                 "teredoctl flash --port %s" % (self.port, obj, self.port), "garbage")
            if kind == "reply" and obj["cmd"] == name:
                if not obj["ok"] and "damaged on its way" in str(obj.get("error")) and damaged < 2:
                    damaged += 1  # the board dropped bytes of our line and changed nothing
                    self.send(text)
                    continue
                if not obj["ok"]:
                    raise BoardError("the board says: %s" % obj["error"], "refused", obj["error"])
                return obj.get("data")
            if on_line is not None:
                on_line(kind, obj)

    def no_answer(self):
        p = self.port
        seen = bytes(self.seen)
        if looks_binary(seen):
            return ("%s answered garbage (%d bytes that are not text): check --baud (115200), or reflash "
                    "with teredoctl flash --port %s" % (p, len(seen), p), "garbage")
        msg = "no Teredo firmware answered on %s: run teredoctl flash --port %s" % (p, p)
        if b">>> " in seen or b"raw REPL" in seen or b"Traceback" in seen:
            msg += " (MicroPython answered at its REPL instead)"
        elif not seen:
            msg += " (nothing came back: is it the right port, and is the board powered?)"
        return msg, "noanswer"

    def wait_event(self, event, timeout, on_line=None):
        """The first event object named event within timeout seconds, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.readline(min(0.2, end - time.monotonic()))
            if line is None:
                continue
            kind, obj = classify(line)
            if kind == "event" and obj["event"] == event:
                return obj
            if on_line is not None:
                on_line(kind, obj)
        return None

    def wait_boot(self, timeout, on_line=None):
        """After a reset: the firmware's boot event; None when the MicroPython
        prompt comes back first (no main.py, or it stopped) or on timeout."""
        end = time.monotonic() + timeout
        while True:
            line = self._pop_line()
            if line is not None:
                kind, obj = classify(line)
                if kind == "event" and obj["event"] == "boot":
                    return obj
                if on_line is not None:
                    on_line(kind, obj)
                continue
            if self.buf.endswith(b">>> ") or time.monotonic() >= end:
                return None
            self.buf += self._read()

    # ---- resets ---------------------------------------------------------------------

    def hard_reset(self):
        """Pulse EN through RTS (DTR released first, so IO0 stays high: a
        normal boot, not the ROM bootloader).  False where the port has no
        modem lines (a pty: the virtual board)."""
        try:
            self.ser.dtr = False
            self.ser.rts = True
            time.sleep(0.1)
            self.ser.rts = False  # both released: "run"
        except (OSError, _serial().SerialException):
            return False
        return True

    def soft_reset(self, timeout=5.0):
        """Stop whatever runs (Ctrl-C), go to the friendly REPL (Ctrl-B) and
        soft-reset there (Ctrl-D), so boot.py and then main.py run.  (A soft
        reset from the raw REPL, as mpremote's, runs boot.py only.)"""
        self.write(b"\r" + CTRL_C + CTRL_C)
        time.sleep(0.2)
        self.discard_input()
        self.write(b"\r" + CTRL_B)
        if not self.read_until(b">>> ", timeout):
            raise BoardError("%s did not show the MicroPython prompt: press the board's reset button, "
                             "or flash MicroPython with teredoctl flash --port %s --image FILE"
                             % (self.port, self.port), "repl")
        self.write(CTRL_D)
        if not self.read_until(b"soft reboot", timeout):
            raise BoardError("%s did not soft-reset: press the board's reset button" % self.port, "repl")
