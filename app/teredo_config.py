# The board's configuration file: load with validation, save atomically.
# Board code (not part of the shared core), but plain enough to run on
# CPython too, where the tests drive it.
#
# config.json holds one JSON object:
#   server        Teredo server: IPv4 (global unicast) or host name, or a
#                 comma-separated list of them (failover)    required
#   server2       its second address (default: server + 1; a single IPv4 server only)
#   wifi_ssid     WiFi network name (boards with WiFi)
#   wifi_password
#   refresh_s     refresh interval in seconds (default 30, RFC 4380 §5.2)
#   client_port   local UDP port, 0 = random (RFC 4380 §5.2)
#   local_discovery  true (default): find Teredo clients on the same LAN
#                 (RFC 4380 §5.2.8); false: never (§7.3.4)
#
# A write goes to config.new first, then replaces config.json (remove and
# rename: FAT cannot rename over a file).  A reset at any point leaves either
# the old config.json, or config.new complete and ready, which load() uses.

import json
import os

from teredo import addr

PATH = "config.json"
NEW = "config.new"
FIELDS = ("server", "server2", "wifi_ssid", "wifi_password", "refresh_s", "client_port",
          "local_discovery")
DEFAULTS = {"server": None, "server2": None, "wifi_ssid": None, "wifi_password": None,
            "refresh_s": 30, "client_port": 0, "local_discovery": True}


def validate(cfg):
    """Return a complete, checked config dict; ValueError says what to fix."""
    if not isinstance(cfg, dict):
        raise ValueError("config must be a JSON object")
    out = {}
    for k in FIELDS:
        out[k] = DEFAULTS[k]
    for k in cfg:
        if k not in DEFAULTS:
            raise ValueError("unknown config key %r (known: %s)" % (k, ", ".join(FIELDS)))
        out[k] = cfg[k]
    v = out["server"]
    if v is None:
        raise ValueError("no Teredo server configured: run teredoctl config --server IPV4")
    if not isinstance(v, str):
        raise ValueError("server must be text in quotes: an IPv4 address or host name, or a "
                         "comma-separated list of them")
    if len(v) > 1024:
        raise ValueError("server is too long")
    try:
        b = addr.parse_ipv4(v)
        if not addr.is_global_ipv4(b):
            raise ValueError("server %s is not a global unicast IPv4 address" % v)
        items = [b]
    except ValueError:
        if "," not in v and _dotted(v):
            raise
        from teredo import servers  # a list or a name: loaded only then
        items = servers.parse(v)
    v = out["server2"]
    if v is not None:
        if not isinstance(v, str):
            raise ValueError("server2 must be an IPv4 address in quotes")
        b = addr.parse_ipv4(v)
        if not addr.is_global_ipv4(b):
            raise ValueError("server2 %s is not a global unicast IPv4 address" % v)
        if len(items) != 1 or isinstance(items[0], str):
            raise ValueError("server2 goes with a single server address, not with a list or a host "
                             "name (each server's second address is then the next one)")
        if items[0] == b:
            raise ValueError("server2 must differ from server")
    for k in ("wifi_ssid", "wifi_password"):
        v = out[k]
        if v is not None and not isinstance(v, str):
            raise ValueError("%s must be text" % k)
    if out["wifi_ssid"] is not None and not 1 <= len(out["wifi_ssid"]) <= 32:
        raise ValueError("wifi_ssid must be 1 to 32 characters")
    if out["wifi_password"] is not None and len(out["wifi_password"]) > 64:
        raise ValueError("wifi_password must be at most 64 characters")
    r = out["refresh_s"]
    if type(r) is not int or not 10 <= r <= 3600:
        raise ValueError("refresh_s must be a whole number of seconds, 10 to 3600")
    p = out["client_port"]
    if type(p) is not int or not 0 <= p <= 65535:
        raise ValueError("client_port must be 0 (random) or 1 to 65535")
    if type(out["local_discovery"]) is not bool:
        raise ValueError("local_discovery must be true or false")
    return out


def _dotted(v):
    for c in v:
        if c != "." and not ("0" <= c <= "9"):
            return False
    return True


def masked(cfg):
    """The config as shown to a person: the password masked."""
    out = {}
    for k in cfg:
        out[k] = cfg[k]
    if out.get("wifi_password"):
        out["wifi_password"] = "********"
    return out


def _read(path):
    with open(path) as f:
        return validate(json.loads(f.read()))


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load(path=PATH, new=NEW):
    """(config, None) or (None, a sentence saying what is wrong and what to do).
    A complete config.new left by an interrupted save wins; it is put in place."""
    if _exists(new):
        try:
            cfg = _read(new)
        except (OSError, ValueError):
            cfg = None  # the save itself was cut short: config.json is still the good one
        if cfg is not None:
            try:
                if _exists(path):
                    os.remove(path)
                os.rename(new, path)
            except OSError:
                pass
            return cfg, None
        try:
            os.remove(new)
        except OSError:
            pass
    if not _exists(path):
        return None, "no config on the board: run teredoctl config --server IPV4"
    try:
        return _read(path), None
    except ValueError as e:
        return None, "config.json is invalid (%s): run teredoctl config again" % e
    except OSError as e:
        return None, "cannot read config.json (%s): run teredoctl config again" % e


def save(cfg, path=PATH, new=NEW):
    """Validate and write atomically; returns the validated config."""
    cfg = validate(cfg)
    text = json.dumps(cfg)
    with open(new, "w") as f:
        f.write(text)
    # read back: a short write (full flash) must not replace a good config
    if _read(new) != cfg:
        raise ValueError("config did not read back as written; flash full?")
    if _exists(path):
        os.remove(path)
    os.rename(new, path)
    return cfg


def damaged(text, check):
    """None when text matches its console check "N,crc=X" (its byte length
    and CRC-32 in hex, app/teredo_console.py), else what to say."""
    n, _, crc = check.partition(",crc=")
    try:
        import binascii
        if int(n) == len(text) and (not crc or binascii.crc32(text.encode()) == int(crc, 16)):
            return None
    except (ValueError, ImportError, AttributeError):
        pass
    return ("the line was damaged on its way (%s announced, %d bytes came): nothing was changed; "
            "send it again" % (n, len(text)))
