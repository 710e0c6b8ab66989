"""_vboard -- private helper of the vboard ROM shims (not a MicroPython module).

Holds what the virtual board (teredoctl/vboard/board.py) passes to the
interpreter in VBOARD_* environment variables, and gives the shims access to
the board's control directory (a host directory *outside* the flash
filesystem, reached through an unmounted ``os.VfsPosix`` so it does not show
up in the board's ``/``).

Control files (all plain text, in the control directory):
  wifi     written by tests: ``down`` = access point unreachable, else up
  pin<N>   written by machine.Pin outputs ("0"/"1"); read by Pin inputs
  wdt      written by machine.WDT: timeout in ms; its mtime is the last feed
  request  written by machine.reset()/deepsleep(); consumed by the vboard
"""
import os

_g = os.getenv
BOARD = _g("VBOARD_BOARD") or "esp32"
RESET_CAUSE = int(_g("VBOARD_RESET_CAUSE") or 1)
WIFI_DELAY_MS = int(_g("VBOARD_WIFI_DELAY_MS") or 300)
# "ip,netmask,gateway,dns" of the host's default-route interface
IFCONFIG = tuple((_g("VBOARD_IFCONFIG") or "127.0.0.1,255.0.0.0,127.0.0.1,127.0.0.1").split(","))
MAC = bytes(int(x, 16) for x in (_g("VBOARD_MAC") or "24:0a:c4:00:00:01").split(":"))
_c = _g("VBOARD_CTL")
ctl = os.VfsPosix(_c) if _c else None
del _c, _g


def read(name, default=None):
    """Contents (stripped) of control file ``name``, or ``default``."""
    if ctl is None:
        return default
    try:
        f = ctl.open("/" + name, "r")
    except OSError:
        return default
    try:
        return f.read().strip()
    finally:
        f.close()


def write(name, text):
    if ctl is not None:
        f = ctl.open("/" + name, "w")
        try:
            f.write(text)
        finally:
            f.close()


def open_ctl(name, mode="w"):
    return ctl.open("/" + name, mode)
