"""teredoctl's board commands: ports, flash, config, status, monitor, ping, vboard.

Listed in teredoctl.cli's one command table (COMMANDS below).  Each is a
handler plus its own argument adder.  status, monitor and ping talk to the
running firmware's serial console (teredoctl.transport, pyserial only);
flash and the config fallback run mpremote and esptool as programs
(teredoctl.flashing).  Expected failures end as CliError: one line on
stderr, exit 1, the port closed.
"""
import argparse
import functools
import getpass
import importlib.util
import json
import os
import sys
import tempfile
import time

from teredoctl import boards, flashing, paths
from teredoctl.errors import CliError
from teredoctl.transport import BoardError, Console

DEFAULT_TIMEOUT = 3.0
MASK = "********"


def _errors(handler):
    """Turn the expected failures of the lower layers into CliError."""
    @functools.wraps(handler)
    def run(args):
        try:
            return handler(args)
        except (BoardError, flashing.FlashError) as e:
            raise CliError(str(e))
    return run


def _port_options(p, timeout=True):
    p.add_argument("--port", help="serial port (default: the one port that looks like a known board)")
    p.add_argument("--baud", type=int, default=115200, help="console baud rate (default 115200)")
    if timeout:
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help="seconds to wait for the firmware's answer (default %g)" % DEFAULT_TIMEOUT)


# ---- ports -----------------------------------------------------------------------------------

def list_ports():
    """[(device, "vid:pid" or None, [board names], description)] of the serial ports."""
    try:
        from serial.tools import list_ports as lp
    except ImportError:
        raise CliError("pyserial is not installed: " + flashing.REINSTALL)
    try:
        known = boards.load_all()
    except ValueError as e:
        raise CliError(str(e))
    out = []
    for p in sorted(lp.comports(), key=lambda p: p.device):
        uid = boards.usb_id(p.vid, p.pid) if p.vid is not None and p.pid is not None else None
        names = sorted(n for n, c in known.items() if uid in c["usb_ids"]) if uid else []
        out.append((p.device, uid, names, p.description or ""))
    return out


def find_port(args):
    if getattr(args, "port", None):
        return args.port
    found = [p for p in list_ports() if p[2]]
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise CliError("no board found: no serial port has the USB id of a known board; plug one in, "
                       "or pass --port (teredoctl ports lists the ports)")
    raise CliError("%d boards found (%s): pick one with --port" % (len(found),
                                                                  ", ".join(p[0] for p in found)))


def cmd_ports(args):
    ports = list_ports()
    if args.json:
        print(json.dumps([{"port": d, "usb_id": u, "boards": b, "description": s}
                          for d, u, b, s in ports], sort_keys=True))
        return 0
    if not ports:
        print("no serial ports found (a virtual board's pty is not listed: give its link with --port)")
        return 0
    w = max(len(p[0]) for p in ports)
    print("%-*s  %-9s  %-24s  %s" % (w, "PORT", "USB ID", "LOOKS LIKE", "DESCRIPTION"))
    for d, u, b, s in ports:
        print("%-*s  %-9s  %-24s  %s" % (w, d, u or "-", ", ".join(b) or "-", s))
    return 0


def add_ports(p):
    p.add_argument("--json", action="store_true", help="print one JSON list")


# ---- flash ----------------------------------------------------------------------------------

def board_for_image(args, port):
    if args.board:
        try:
            return boards.get(args.board)
        except ValueError as e:
            raise CliError(str(e))
    match = [p for p in list_ports() if p[0] == port and p[2]]
    if match and len(match[0][2]) == 1:
        return boards.get(match[0][2][0])
    raise CliError("cannot tell which chip is on %s%s: pass --board (%s)" % (
        port, " (its USB id fits %s)" % ", ".join(match[0][2]) if match else "",
        ", ".join(n for n, c in sorted(boards.load_all().items()) if c["chip"])))


def cmd_flash(args):
    if args.app:
        flashing.check_app(args.app)  # before anything touches the board
    port = find_port(args)
    if args.image:
        cfg = board_for_image(args, port)
        flashing.check_image(args.image, cfg)
    if not os.path.exists(port):
        raise CliError("no serial port %s: check the cable and the name (teredoctl ports lists them)" % port)
    if args.image:
        flashing.flash_image(cfg, port, args.image, args.flash_baud)
        print("MicroPython written; waiting for its first boot", flush=True)
        time.sleep(args.boot_wait)
    res = flashing.flash_firmware(port, args.board, args.source, reset=not args.no_reset,
                                  timeout=max(args.timeout, 10.0), app=args.app, no_app=args.no_app,
                                  romfs=args.romfs)
    if args.no_reset:
        print("not reset (--no-reset): the new firmware runs after the next reset")
    return 0 if res else 1


def add_flash(p):
    _port_options(p)
    p.add_argument("--board", help="board config name (default: from the USB id or the board itself)")
    p.add_argument("--image", metavar="FILE", help="first erase the flash and write this MicroPython "
                   "image with esptool (e.g. ESP32_GENERIC-20250415-v1.25.0.bin)")
    p.add_argument("--flash-baud", type=int, default=None, help="esptool baud rate (default from the "
                   "board config)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--app", metavar="FILE", help="install FILE as the board's app (a module with async def "
                   "main(iface), started once the board is qualified); without --app the app on the "
                   "board stays")
    g.add_argument("--no-app", action="store_true", help="remove the app from the board")
    p.add_argument("--no-reset", action="store_true", help="do not soft-reset after copying")
    p.add_argument("--romfs", action="store_true",
                   help="put the modules in the board's ROMFS partition (MicroPython >= 1.25 built with "
                        "one), where their code runs in place from flash instead of taking heap; "
                        "boot.py, main.py, board.json and the app stay files")
    p.add_argument("--boot-wait", type=float, default=3.0, help=argparse.SUPPRESS)
    p.add_argument("--source", default=None, help=argparse.SUPPRESS)


# ---- config ---------------------------------------------------------------------------------

_TCONFIG = None


def teredo_config():
    """app/teredo_config.py, the board's own validation, loaded on the host."""
    global _TCONFIG
    if _TCONFIG is None:
        path = os.path.join(paths.app_dir(), "teredo_config.py")
        spec = importlib.util.spec_from_file_location("teredo_config", path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except OSError:
            raise CliError("cannot load %s: run teredoctl from the project checkout" % path)
        _TCONFIG = mod
    return _TCONFIG


def format_config(cfg):
    rows = []
    for k in teredo_config().FIELDS:
        v = cfg.get(k)
        if k == "server2" and v is None:
            text = "(server + 1)"
        elif k == "client_port" and v == 0:
            text = "0 (random)"
        elif k == "local_discovery":
            text = "on" if v else "off"
        elif v is None:
            text = "-"
        else:
            text = str(v)
        rows.append("%-14s %s" % (k, text))
    return "\n".join(rows)


def print_config(cfg, as_json):
    if as_json:
        print(json.dumps(cfg, sort_keys=True))
    else:
        print(format_config(cfg))


def wanted_changes(args):
    ch = {}
    for k, opt in (("server", "server"), ("server2", "server2"), ("wifi_ssid", "wifi_ssid"),
                   ("wifi_password", "wifi_password"), ("refresh_s", "refresh"),
                   ("client_port", "client_port")):
        v = getattr(args, opt)
        if v is not None:
            ch[k] = v
    if getattr(args, "local_discovery", None) is not None:
        ch["local_discovery"] = args.local_discovery == "on"
    if "wifi_ssid" in ch and "wifi_password" not in ch and sys.stdin.isatty():
        ch["wifi_password"] = getpass.getpass("WiFi password for %s (empty: open network): "
                                              % ch["wifi_ssid"]) or None
    for k in ("server2", "wifi_ssid", "wifi_password"):
        if ch.get(k) == "":
            ch[k] = None  # --server2 "" etc.: back to the default
    return ch


def check_changes(changes):
    """Each value given is checked here, before anything touches the board:
    a typo changes nothing and stops nothing."""
    probe = {"server": "198.51.100.10"}  # stands in for the board's server when it is not changed
    probe.update(changes)
    try:
        teredo_config().validate(probe)
    except ValueError as e:
        raise CliError("%s (nothing was changed on the board)" % e)


def merge(current, changes):
    """Board config + changes, validated on the host (ValueError -> CliError)."""
    new = {}
    for k in teredo_config().FIELDS:
        if current and k in current:
            new[k] = current[k]
    new.update(changes)
    try:
        return teredo_config().validate(new)
    except ValueError as e:
        raise CliError("%s (nothing was changed on the board)" % e)


def cmd_config(args):
    port = find_port(args)
    changes = wanted_changes(args)
    if changes:
        check_changes(changes)
    with Console(port, args.baud) as con:
        try:
            current = con.request("config", args.timeout)
            running = True
        except BoardError as e:
            if e.kind == "refused":  # the firmware runs; the board has no valid config
                if not changes:
                    raise
                current, running = None, True
            elif e.kind == "noanswer" and changes:
                current, running = None, False
            else:
                raise
        if not changes:
            print_config(current, args.json)
            return 0
        if running:
            # the firmware takes the change over its console; a password it
            # only shows masked stays as it is (it keeps the secret itself)
            cfg = merge(current, changes)
            try:
                shown = con.request("config set " + json.dumps(cfg), max(args.timeout, 5.0))
            except BoardError as e:
                if e.kind == "refused":
                    raise CliError("the board refused the config: %s" % e.detail)
                raise
            print_config(shown, args.json)
            return 0
    # The firmware is not running, or the board keeps a password we only see
    # masked: read and write config.json with mpremote, then soft-reset.
    if not running:
        print("no Teredo firmware answered on %s; writing config.json with mpremote" % port,
              file=sys.stderr, flush=True)
    shown = write_config_mpremote(port, changes, args.timeout)
    print_config(shown, args.json)
    return 0


READ_CONFIG = """\
import json
def _r(p):
    try:
        with open(p) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None
_c = _r('config.new')
if not isinstance(_c, dict):
    _c = _r('config.json')
print('##flash', json.dumps({'config': _c if isinstance(_c, dict) else None}))
"""

PLACE_CONFIG = """\
import os, json
_e = %s
with open('config.new') as f:
    _ok = json.loads(f.read()) == _e
if _ok:
    try:
        os.remove('config.json')
    except OSError:
        pass
    os.rename('config.new', 'config.json')
print('##flash', json.dumps({'ok': _ok}))
"""


def write_config_mpremote(port, changes, timeout):
    """config.new via mpremote, checked, renamed over config.json; soft reset
    (also when anything goes wrong).  Returns the config as shown (masked)."""
    with flashing.firmware_restarted(port, max(timeout, 10.0)):
        cfg = _write_config(port, changes)
    return _restart_and_show(port, cfg, timeout)


def _write_config(port, changes):
    got = flashing.parse_flash_line(flashing.mpremote(port, ["exec", READ_CONFIG], 30), port)
    try:
        cfg = merge(got.get("config"), changes)
    except CliError as e:
        raise flashing.FlashError(str(e))
    text = json.dumps(cfg)
    fd, tmp = tempfile.mkstemp(prefix="teredoctl-config-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        out = flashing.mpremote(port, ["fs", "cp", "-f", tmp, ":config.new", "+",
                                       "exec", PLACE_CONFIG % repr(cfg)], 30)
    finally:
        os.unlink(tmp)
    if not flashing.parse_flash_line(out, port).get("ok"):
        raise flashing.FlashError("config.new on %s did not read back as written (flash full?); "
                                  "config.json is unchanged: try again" % port)
    return cfg


def _restart_and_show(port, cfg, timeout):
    ev = None
    with Console(port) as con:
        con.soft_reset()
        ev = con.wait_boot(max(timeout, 10.0))
        if ev is not None:
            try:
                return con.request("config", timeout)
            except BoardError:
                pass
    if ev is None:
        print("config.json written, but no Teredo firmware started on %s: run teredoctl flash --port %s"
              % (port, port), file=sys.stderr)
    return teredo_config().masked(cfg)


def add_config(p):
    _port_options(p)
    p.add_argument("--server", help="Teredo server: IPv4 address (global unicast) or host name, or a "
                                    "comma-separated list of them for failover")
    p.add_argument("--server2", help="its second address (default: server + 1; \"\" for the default)")
    p.add_argument("--wifi-ssid", help="WiFi network name")
    p.add_argument("--wifi-password", help="WiFi password (prompted for when --wifi-ssid is given "
                   "without it on a terminal)")
    p.add_argument("--refresh", type=int, help="refresh interval in seconds (10 to 3600)")
    p.add_argument("--client-port", type=int, help="local UDP port, 0 = random")
    p.add_argument("--local-discovery", choices=("on", "off"),
                   help="find Teredo clients on the same LAN and talk to them directly "
                        "(RFC 4380 §5.2.8; default on)")
    p.add_argument("--json", action="store_true", help="print the config as one JSON object")


# ---- status -----------------------------------------------------------------------------------

def _duration(s):
    if not isinstance(s, int):
        return "-"
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min %02d s" % (s // 60, s % 60)
    return "%d h %02d min" % (s // 3600, s % 3600 // 60)


def _relay_row(st):
    """The relay, and whether one has answered a connectivity test: qualified
    is the server's word, IPv6 works once a relay has answered."""
    ago = st.get("relay_ok_s_ago")
    if ago is not None:
        return "%s  (last test answered %s ago)" % (st.get("relay") or "-", _duration(ago))
    if st.get("state") == "qualified":
        return "none has answered yet: qualified, but IPv6 beyond Teredo is not proven until one does"
    return "none yet"


def _server_row(x):
    """One server of the list: name, address, what it did, its round trip."""
    name = x.get("name")
    a = x.get("address") or "-"
    who = "%s (%s)" % (name, a) if name and name != a else a
    rtt = x.get("rtt_ms")
    return "%s  %s%s%s" % (who, x.get("state"), "" if rtt is None else ", %d ms" % rtt,
                           ": " + x["error"] if x.get("error") else "")


def _lan_row(st):
    d = st.get("local_discovery")
    if d is None:
        return "-"
    if d != "on":
        return "local discovery " + d
    n = st.get("local_peers") or 0
    return "local discovery on, %d Teredo client%s found on this LAN" % (n, "" if n == 1 else "s")


def format_status(st):
    def v(k, default="-"):
        x = st.get(k)
        return default if x is None else x
    state = v("state")
    nat = v("nat")
    rows = [
        ("state", "%s%s" % (state, "" if state != "qualified" else "  (NAT %s)" % nat)),
        ("address", v("address", "none yet")),
        ("server", "%s  (second %s)" % (v("server"), v("server2"))),
        ("NAT type", nat),
        ("mapped", "%s  (local %s)" % (v("mapped", "none yet"), v("local"))),
        ("relay", _relay_row(st)),
        ("uptime", "%s  (refresh every %s s)" % (_duration(st.get("uptime_s")), v("refresh_s"))),
        ("traffic", "rx %s  tx %s  peers %s" % (v("rx", 0), v("tx", 0), v("peers", 0))),
        ("LAN", _lan_row(st)),
        ("drops", ", ".join("%s %s" % kv for kv in sorted((st.get("drops") or {}).items())) or "none"),
    ]
    servers = st.get("servers") or []
    if len(servers) > 1 or any(x.get("name") or x.get("error") for x in servers):
        rows.append(("servers", "\n          ".join(_server_row(x) for x in servers)))
    socks = st.get("sockets") or []
    rows.append(("sockets", ", ".join("UDP %s (rx %s, tx %s, queued %s, dropped %s)" % (
        k.get("port"), k.get("rx"), k.get("tx"), k.get("queued"), k.get("dropped"))
        for k in socks) or "none"))
    tcp = st.get("tcp")
    if tcp:
        conns = tcp.get("connections") or []
        rows.append(("tcp", "listening %s; %d connection%s%s" % (
            ", ".join(str(p) for p in tcp.get("listening") or []) or "none", len(conns),
            "" if len(conns) == 1 else "s",
            "".join("\n          :%s <-> [%s]:%s %s rx %s tx %s" % (
                c.get("local"), c.get("remote"), c.get("rport"), c.get("state"), c.get("rx"), c.get("tx"))
                for c in conns))))
    app = st.get("app") or {}
    if app.get("name"):
        rows.append(("app", "%s %s%s" % (app["name"], app.get("state"),
                                         (": " + app["error"]) if app.get("error") else "")))
    else:
        rows.append(("app", "none (teredoctl flash --app FILE installs one)"))
    used, free = st.get("heap_used"), st.get("heap_free")
    if isinstance(used, int) and isinstance(free, int) and used + free:
        rows.append(("heap", "%d used, %d free (%d%% used)" % (used, free, 100 * used // (used + free))))
    rows.append(("board", "%s, firmware %s" % (v("board"), v("firmware"))))
    if st.get("error"):
        rows.append(("error", st["error"]))
    return "\n".join("%-9s %s" % r for r in rows)


def _check_status(st, port):
    if not isinstance(st, dict) or not isinstance(st.get("state"), str):
        raise CliError("%s answered status with something that is not a status object (%r): reflash "
                       "with teredoctl flash --port %s" % (port, str(st)[:60], port))
    return st


def cmd_status(args):
    port = find_port(args)
    with Console(port, args.baud) as con:
        if args.watch is None:
            st = _check_status(con.request("status", args.timeout), port)
            print(json.dumps(st, sort_keys=True) if args.json else format_status(st))
            return 0
        tty = sys.stdout.isatty()
        try:
            while True:
                st = _check_status(con.request("status", args.timeout), port)
                if args.json:
                    print(json.dumps(st, sort_keys=True))
                else:
                    head = "%s  %s  every %g s, Ctrl-C to stop" % (port, time.strftime("%H:%M:%S"),
                                                                   args.watch)
                    block = head + "\n" + format_status(st)
                    if tty:
                        sys.stdout.write("\x1b[H\x1b[2J" + block + "\n")
                    else:
                        sys.stdout.write(block + "\n\n")
                sys.stdout.flush()
                time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def add_status(p):
    _port_options(p)
    p.add_argument("--json", action="store_true", help="print the status object as JSON")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="refresh every SECONDS until Ctrl-C")


# ---- monitor ----------------------------------------------------------------------------------

def describe_event(ev):
    name = ev["event"]
    if name == "status" and isinstance(ev.get("data"), dict):
        d = ev["data"]
        parts = ["status: %s" % d.get("state")]
        if d.get("address"):
            parts.append("address %s" % d["address"])
        if d.get("nat") and d.get("nat") != "unknown":
            parts.append("NAT %s" % d["nat"])
        if d.get("mapped"):
            parts.append("mapped %s" % d["mapped"])
        if d.get("relay"):
            parts.append("relay %s" % d["relay"])
        if d.get("error"):
            parts.append("error: %s" % d["error"])
        return ", ".join(parts)
    if name == "boot":
        return "boot: firmware %s on board %s" % (ev.get("firmware"), ev.get("board"))
    if name == "ping_reply":
        return "reply from %s: seq=%s time=%s ms" % (ev.get("from"), ev.get("seq"), ev.get("rtt_ms"))
    if name == "ping_done":
        return "ping done: %s sent, %s received" % (ev.get("sent"), ev.get("received"))
    return "%s: %s" % (name, json.dumps({k: v for k, v in ev.items() if k != "event"}, sort_keys=True))


def cmd_monitor(args):
    port = find_port(args)
    with Console(port, args.baud) as con:
        if args.reset and not con.hard_reset():
            print("(%s has no reset lines: soft reset instead)" % port, flush=True)
            con.soft_reset()
        print("monitoring %s, Ctrl-C to stop" % port, flush=True)
        try:
            for kind, obj in con.follow():
                stamp = time.strftime("%H:%M:%S")
                if args.json:
                    if kind in ("event", "reply"):
                        print(json.dumps(obj, sort_keys=True), flush=True)
                    continue
                if kind == "event":
                    print("%s %s" % (stamp, describe_event(obj)), flush=True)
                elif kind == "log":
                    print("%s teredo: %s" % (stamp, obj), flush=True)
                elif kind == "reply":
                    print("%s reply to %s: %s" % (stamp, obj["cmd"], json.dumps(obj.get("data",
                                                                                     obj.get("error")))),
                          flush=True)
                elif kind == "garbage":
                    print("%s (garbage: %s)" % (stamp, obj), flush=True)
                elif obj.strip():
                    print("%s | %s" % (stamp, obj), flush=True)
        except KeyboardInterrupt:
            return 0


def add_monitor(p):
    _port_options(p, timeout=False)
    p.add_argument("--json", action="store_true", help="print only the marker lines, as JSON lines")
    p.add_argument("--reset", action="store_true", help="reset the board first (EN through RTS; a soft "
                   "reset where the port has no reset lines)")


# ---- ping ---------------------------------------------------------------------------------------

def cmd_ping(args):
    from teredo import addr
    try:
        dst = addr.format_ipv6(addr.parse_ipv6(args.address))
    except ValueError as e:
        raise CliError("%s: give an IPv6 address" % e)
    if not 1 <= args.count <= 100:
        raise CliError("--count must be 1 to 100")
    port = find_port(args)
    with Console(port, args.baud) as con:
        con.request("ping %s %d" % (dst, args.count), args.timeout)
        print("PING %s from the board on %s: %d echo requests" % (dst, port, args.count), flush=True)
        wait = args.count + 2 + args.wait
        end = time.monotonic() + wait
        got = 0
        while time.monotonic() < end:
            ev = con.wait_event("ping_done", min(0.5, end - time.monotonic()),
                                on_line=lambda k, o: _ping_line(k, o))
            if ev is not None:
                got = ev.get("received") or 0
                print("%s sent, %s received" % (ev.get("sent"), got))
                if not got:
                    raise CliError("no reply from %s: check that the board is qualified (teredoctl "
                                   "status) and that the address answers pings" % dst)
                return 0
    raise CliError("the board did not finish pinging within %d s: it pings only once qualified; "
                   "see teredoctl status --port %s" % (wait, port))


def _ping_line(kind, obj):
    if kind == "event" and obj["event"] == "ping_reply":
        print(describe_event(obj), flush=True)


def add_ping(p):
    _port_options(p)
    p.add_argument("address", help="IPv6 address to ping from the board")
    p.add_argument("--count", type=int, default=4, help="echo requests (default 4)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="extra seconds to wait for the board to qualify and finish (default 10)")


# ---- vboard -------------------------------------------------------------------------------------

def cmd_vboard(args):
    from teredoctl import vboard
    try:
        return vboard.run(args)
    except (OSError, ValueError, RuntimeError) as e:
        raise CliError("virtual board: %s" % e)


def add_vboard(p):
    from teredoctl.vboard import board
    board.add_arguments(p)


# name: (handler, argument adder, help); teredoctl.cli puts them in its table
COMMANDS = {
    "ports": (_errors(cmd_ports), add_ports, "list serial ports and the board each looks like"),
    "flash": (_errors(cmd_flash), add_flash, "write MicroPython (--image) and the Teredo firmware"),
    "config": (_errors(cmd_config), add_config, "show or change the board's config"),
    "status": (_errors(cmd_status), add_status, "show the board's Teredo status"),
    "monitor": (_errors(cmd_monitor), add_monitor, "follow the board's console until Ctrl-C"),
    "ping": (_errors(cmd_ping), add_ping, "have the board ping an IPv6 address"),
    "vboard": (_errors(cmd_vboard), add_vboard,
               "run a virtual board (MicroPython unix port behind a pty) until Ctrl-C"),
}
