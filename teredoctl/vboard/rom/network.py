"""network -- vboard ROM shim of the ESP32 MicroPython ``network`` module.

Simulated WLAN only; the firmware's sockets are the host's real sockets (the
unix port's ``socket``), so "WiFi down" does NOT cut traffic -- it only
changes what WLAN reports (cut traffic with the lab's netns tools).

``WLAN(STA_IF)`` (one shared object per interface, as on ESP32):
  active([bool]); connect([ssid, key]) -- raises OSError('Wifi Not Started')
  if not active; isconnected(); status() -> STAT_IDLE / STAT_CONNECTING /
  STAT_GOT_IP (status('rssi') -> -50 when connected); disconnect();
  ifconfig([(ip, mask, gw, dns)]); config('mac'|'ssid'|'hostname'|...|k=v);
  scan().
Simulation: the station is connected WIFI_DELAY_MS (env VBOARD_WIFI_DELAY_MS,
default 300) after connect() while the control file ``<ctl>/wifi`` does not
contain ``down``.  While it says ``down`` a connected station drops
(isconnected() False, status() STAT_CONNECTING: ESP32 keeps retrying); when it
is removed / says ``up`` the station reconnects after WIFI_DELAY_MS again.
ifconfig() of a connected STA is the host's IPv4 (default-route interface,
passed by the vboard; 127.0.0.1 if there is none), zeros otherwise.
AP_IF is only a stub (active flag, 192.168.4.1).
"""
import time
import _vboard

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

_hostname = ["mpy-" + _vboard.BOARD]
_ZERO = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = name


def country(code=None):
    return "01" if code is None else None


def _link_up():
    return _vboard.read("wifi", "up") != "down"


class _If:
    def __init__(self, n):
        self.n = n
        self.active = False
        self.want = False  # connect() requested
        self.t_up = None  # ticks_ms when the (re)association started
        self.static = None
        self.cfg = {"ssid": "" if n == STA_IF else "MicroPython-%02x%02x%02x" % tuple(_vboard.MAC[3:]),
                    "channel": 1, "txpower": 20, "pm": 1, "reconnects": -1,
                    "security": 0, "hidden": False, "key": ""}


_ifs = (_If(STA_IF), _If(AP_IF))


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface_id=STA_IF):
        self._s = _ifs[interface_id]

    def __repr__(self):
        return "<WLAN %s>" % ("STA" if self._s.n == STA_IF else "AP")

    def active(self, is_active=None):
        s = self._s
        if is_active is None:
            return s.active
        s.active = bool(is_active)
        if not s.active:
            s.want = False
            s.t_up = None

    def connect(self, ssid=None, key=None, *, bssid=None):
        s = self._s
        if s.n != STA_IF:
            raise OSError("AP doesn't support connect")
        if not s.active:
            raise OSError("Wifi Not Started")
        if ssid is not None:
            s.cfg["ssid"] = ssid
        if key is not None:
            s.cfg["key"] = key
        s.want = True
        s.t_up = time.ticks_ms()

    def disconnect(self):
        self._s.want = False
        self._s.t_up = None

    def isconnected(self):
        s = self._s
        if s.n == AP_IF:
            return s.active
        if not (s.active and s.want):
            return False
        if not _link_up():
            s.t_up = None
            return False
        now = time.ticks_ms()
        if s.t_up is None:
            s.t_up = now
        return time.ticks_diff(now, s.t_up) >= _vboard.WIFI_DELAY_MS

    def status(self, param=None):
        s = self._s
        if param is None:
            if s.n == AP_IF:
                return STAT_IDLE
            if self.isconnected():
                return STAT_GOT_IP
            return STAT_CONNECTING if (s.active and s.want) else STAT_IDLE
        if param == "rssi":
            if s.n == STA_IF and self.isconnected():
                return -50
            raise OSError("STA not connected")
        if param == "stations":
            return []
        raise ValueError("unknown status param")

    def ifconfig(self, config=None):
        s = self._s
        if config is not None:
            s.static = tuple(config)
            return
        if s.n == AP_IF:
            return s.static or ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        if not self.isconnected():
            return _ZERO
        return s.static or _vboard.IFCONFIG

    def config(self, *args, **kwargs):
        s = self._s
        if kwargs:
            for k in kwargs:
                v = kwargs[k]
                if k in ("hostname", "dhcp_hostname"):
                    hostname(v)
                else:
                    s.cfg["ssid" if k == "essid" else k] = v
            return
        if len(args) != 1:
            raise TypeError("can query only one param")
        k = args[0]
        if k == "mac":
            m = bytearray(_vboard.MAC)
            m[5] = (m[5] + s.n) & 0xFF  # ESP32: AP MAC = STA MAC + 1
            return bytes(m)
        if k in ("hostname", "dhcp_hostname"):
            return hostname()
        if k == "essid":
            k = "ssid"
        if k == "authmode":
            k = "security"
        if k in s.cfg and k != "key":
            return s.cfg[k]
        raise ValueError("unknown config param")

    def scan(self):
        s = self._s
        if not s.active:
            raise OSError("Wifi Not Started")
        if not _link_up():
            return []
        name = s.cfg["ssid"] or "vboard-ap"
        return [(name.encode(), b"\x02\x00\x00\x00\x00\x01", 1, -50, AUTH_WPA2_PSK, False)]
