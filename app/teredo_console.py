# The board firmware (MicroPython): asyncio tasks around one teredo.Interface.
#   wifi     joins network.WLAN and rejoins with back-off; the interface is
#            taken down (iface.down) while the link is lost, reopened after
#   iface    the interface task (teredo.aio.run): the UDP socket, the timers
#   console  the serial console protocol below
#   blink    the status LED and the watchdog
#   app      the user's app: teredo_user_app.main(iface), started once the
#            interface is first qualified.  A crash is logged, sent as an
#            app_error event and shown in status; it takes nothing else down.
#
# Console protocol (the REPL UART/USB, while the firmware runs): the host sends
# one command line; the board answers with one line "##teredo " + JSON:
#   {"ok": true, "cmd": C, "data": ...} or {"ok": false, "cmd": C, "error": S}
# Commands: status, peers, config, config set {JSON}, ping ADDR [COUNT],
# restart, help.  A long line may end in " #len=N,crc=X" (the byte length and
# CRC-32 of what comes before it, X in hex): a board's UART keeps a small
# ring and drops bytes past it, so a line that does not match is refused,
# changing nothing, and the host sends it again (review A11).  Unsolicited
# lines with the same marker carry events:
# {"event": "boot"|"status"|"ping_reply"|"ping_done"|"app_error", ...}.  Log
# lines start with "teredo: ".  Ctrl-C stops the firmware and leaves the REPL.

import gc
import json
import select
import sys
import time

try:
    import asyncio
except ImportError:  # older MicroPython
    import uasyncio as asyncio  # type: ignore[no-redef]

from teredo import VERSION, addr, aio
from teredo.client import QUALIFIED, QUALIFYING, Client
from teredo.iface import Interface
from teredo.peers import F_LAST_RX, F_TRUSTED, F_USED, NF

try:
    import machine
except ImportError:  # a port without it
    machine = None  # type: ignore[assignment]
try:
    import network
except ImportError:
    network = None  # type: ignore[assignment]

try:
    import os
    _urandom = os.urandom
except (ImportError, AttributeError):
    _urandom = None  # type: ignore[assignment]

MARK = "##teredo "
BOARD_FILE = "board.json"      # written by teredoctl flash from board_configs/
APP = "teredo_user_app"        # the user's app module (teredoctl flash --app FILE)
COMMANDS = ("status", "peers", "config", "config set {JSON}", "ping ADDR [COUNT]", "restart", "help")
# The TCP an app gets on a board (made on first use): 3 connections with 2 KB
# rings each way, 12 KB in all (teredo.tcp's defaults, 4 x 6 KB, suit a host)
BOARD_TCP = {"slots": 3, "rx_bytes": 2048, "tx_bytes": 2048}
WIFI_RETRY_MIN_MS = 2000
WIFI_RETRY_MAX_MS = 60000
WDT_IDLE_MS = 3600000          # watchdog while at the REPL after Ctrl-C
CONSOLE_BURST = 512            # console bytes taken per wake-up (an ESP32's UART ring holds 260)
MASK = 0x3FFFFFFF              # the interface's ticks wrap at 2**30


def _tconfig():
    """teredo_config is needed at boot and on a config command only: imported then
    and dropped after (its code is about 4 KB of heap while loaded)."""
    import teredo_config
    return teredo_config


def _drop_tconfig():
    sys.modules.pop("teredo_config", None)
    gc.collect()


def emit(obj):
    print(MARK + json.dumps(obj))


def log(msg):
    print("teredo: " + msg)


def rand(bits):
    """The core's random source: the hardware RNG (os.urandom) on a board."""
    b = _urandom(2)
    return ((b[0] << 8) | b[1]) & ((1 << bits) - 1)


def _board():
    try:
        with open(BOARD_FILE) as f:
            b = json.loads(f.read())
        if isinstance(b, dict):
            return b
    except (OSError, ValueError):
        pass
    return {"name": sys.platform, "led_pin": None, "wdt_ms": 30000}


def _offline():
    """The status while there is no interface (no valid config)."""
    return {"state": "offline", "server": None, "server2": None, "nat": "unknown", "address": None,
            "mapped": None, "local": None, "relay": None, "refresh_s": None, "uptime_s": 0, "peers": 0,
            "rx": 0, "tx": 0, "drops": {}, "error": None, "sockets": []}


class Firmware:
    def __init__(self):
        self.board = _board()
        self.iface = None          # teredo.Interface, once a valid config is loaded
        self.key = None            # (server, server2, refresh_s) its client was built for
        self.cfg = None
        self.error = None
        self.wlan = None
        self.wifi_up = False
        self.wifi_next = 0
        self.wifi_wait = WIFI_RETRY_MIN_MS
        self.line = bytearray(512)
        self.llen = 0
        self.pinger = None         # the task of the running ping command
        self.seq = 0
        self.app = None            # the user's module, imported at boot
        self.app_st = {"name": None, "state": "none", "error": None}
        self.errors = 0            # turns of a task lost to MemoryError or OSError
        self.led = None
        self.wdt = None
        pin = self.board.get("led_pin")
        if machine is not None and pin is not None:
            self.led = machine.Pin(pin, machine.Pin.OUT)
            self.led.value(0)
        if machine is not None and self.board.get("wdt_ms"):
            self.wdt = machine.WDT(timeout=self.board["wdt_ms"])

    # ---- configuration and the interface ------------------------------------

    def load(self):
        """(Re)read config.json; build the interface, or give it a new client
        when the server or the refresh interval changed (the app's sockets
        stay bound)."""
        cfg, err = _tconfig().load()
        _drop_tconfig()
        self.cfg = cfg
        self.error = err
        i = self.iface
        if err:
            log(err)
            if i is not None:
                i.down(err)
            return
        key = (cfg["server"], cfg["server2"], cfg["refresh_s"], cfg["local_discovery"])
        if i is not None and key == self.key:
            return
        gc.collect()
        # a small heap (under 96 KB) gets one queue buffer instead of two:
        # a second destination then waits for the first one's tests
        small = gc.mem_free() + gc.mem_alloc() < 96 * 1024
        opts = {"refresh_s": cfg["refresh_s"], "queue_slots": 1 if small else 2,
                "local_discovery": cfg["local_discovery"]}
        try:
            if i is None:
                i = Interface(cfg["server"], cfg["server2"], rand=rand, tcp=BOARD_TCP, **opts)
            else:
                c = Client(cfg["server"], cfg["server2"], rand=rand, **opts)
                i.down("config changed")
                for p in i.client.ports:
                    c.bind(p)
                i.client = c
        except ValueError as e:
            self.error = "config.json: %s" % e
            log(self.error)
            return
        self.key = key
        if self.iface is None:
            self.iface = i
            i.on_change = self.changed
            # the interface task; aup() and astart() in an app see it running
            i.task = asyncio.create_task(self.guard(aio.run, i))

    def open(self):
        """The link is up: open the interface's socket and qualify."""
        i = self.iface
        if i is None:
            return
        port = self.cfg["client_port"]
        i.port = port
        # the WiFi LAN, for local discovery (RFC 4380 §5.2.8); None: the
        # interface asks network.WLAN itself
        i.lan = self.wlan.ifconfig()[:2] if self.wlan is not None else None
        try:
            i.open()
        except OSError:
            log(i.error)
            return
        ip = self.wlan.ifconfig()[0] if self.wlan is not None else "0.0.0.0"
        i.client.set_local("%s:%d" % (ip, port) if port else ip)
        log("client started, server %s" % self.cfg["server"])

    def changed(self, i):
        """The interface's state or address, or the app's state, changed: a
        status event."""
        st = self.status()
        emit({"event": "status", "data": st})
        log("%s%s%s" % (st["state"], (" " + st["address"]) if st["address"] else "",
                        (": " + st["error"]) if st["error"] else ""))

    def relink(self):
        """After a config change or restart: reopen (requalify) at once."""
        self.load()
        if self.iface is not None:
            self.iface.down("restarted")
        self.wifi_up = False
        self.link(time.ticks_ms())

    # ---- WiFi (network.WLAN, with retries and back-off) --------------------

    def link(self, now):
        """Check the link; open the interface when it comes up, take it down
        when it goes.  Boards without WiFi config (or WiFi) count as up."""
        ssid = self.cfg.get("wifi_ssid") if self.cfg else None
        if not ssid or network is None:
            up = True
        else:
            if self.wlan is None:
                self.wlan = network.WLAN(network.STA_IF)
                self.wlan.active(True)
            up = self.wlan.isconnected()
        if up != self.wifi_up:
            self.wifi_up = up
            if up:
                if ssid:
                    self.wifi_wait = WIFI_RETRY_MIN_MS
                    log("WiFi %s up, %s" % (ssid, self.wlan.ifconfig()[0]))
                self.open()
            else:
                log("WiFi %s lost; rejoining" % ssid)
                if self.iface is not None:
                    self.iface.down("WiFi %s is down; rejoining" % ssid)
                self.wifi_next = now
        if not up and time.ticks_diff(now, self.wifi_next) >= 0:
            try:
                self.wlan.connect(ssid, self.cfg["wifi_password"] or "")
            except OSError as e:
                log("WiFi connect: %s" % e)
            self.wifi_next = time.ticks_add(now, self.wifi_wait)
            self.wifi_wait = min(self.wifi_wait * 2, WIFI_RETRY_MAX_MS)

    async def wifi(self):
        while True:
            self.link(time.ticks_ms())
            await asyncio.sleep_ms(250)

    # ---- LED and watchdog -------------------------------------------------------

    async def blink(self):
        """Feed the watchdog (a task that never yields starves this one and
        the board resets); the LED: on qualified, blinking while qualifying."""
        while True:
            if self.wdt is not None:
                self.wdt.feed()
            if self.led is not None:
                s = self.iface.client.state if self.iface is not None else 0
                if s == QUALIFIED:
                    self.led.value(1)
                elif s == QUALIFYING:
                    self.led.value((time.ticks_ms() // 250) & 1)
                else:
                    self.led.value(0)
            await asyncio.sleep_ms(125)

    # ---- the user's app ------------------------------------------------------------

    def app_import(self):
        try:
            mod = __import__(APP)
        except ImportError as e:
            if APP in str(e):
                return  # none installed
            self.app_crashed(e)
            return
        except Exception as e:  # a syntax error, an .mpy of another version, ...
            self.app_crashed(e)
            return
        self.app_st["name"] = APP
        if not hasattr(mod, "main"):
            self.app_crashed(ValueError("%s has no async def main(iface)" % APP))
            return
        self.app = mod
        self.app_st["state"] = "waiting"  # for the interface to qualify
        asyncio.create_task(self.app_run())

    async def app_run(self):
        while self.iface is None or not self.iface.qualified():
            await asyncio.sleep_ms(100)
        self.app_st["state"] = "running"
        log("app %s started" % APP)
        self.changed(self.iface)
        try:
            await self.app.main(self.iface)
            self.app_st["state"] = "finished"
            log("app %s finished" % APP)
        except Exception as e:
            self.app_crashed(e)

    def app_crashed(self, e):
        err = "%s: %s" % (type(e).__name__, e)
        self.app_st["name"] = APP
        self.app_st["state"] = "crashed"
        self.app_st["error"] = err
        log("app %s crashed: %s" % (APP, err))
        sys.print_exception(e)  # type: ignore[attr-defined]
        emit({"event": "app_error", "app": APP, "error": err})
        if self.iface is not None:
            # its sockets go with it (the firmware binds none of its own):
            # their ports now answer port unreachable
            for s in list(self.iface._ports.values()):
                s.close()
        gc.collect()
        self.changed(self.iface)

    # ---- console --------------------------------------------------------------

    def status(self):
        i = self.iface
        st = i.status() if i is not None else _offline()
        if self.error and not st["error"]:
            st["error"] = self.error
        gc.collect()  # so heap_used is what is live, not garbage
        st["heap_free"] = gc.mem_free()
        st["heap_used"] = gc.mem_alloc()
        st["board"] = self.board.get("name")
        st["firmware"] = VERSION
        st["loop_errors"] = self.errors
        st["app"] = self.app_st
        return st

    def command(self, text):
        text = text.strip()
        i = text.rfind(" #len=")
        err = None
        if i > 0:  # checked in teredo_config, loaded only for it
            err = _tconfig().damaged(text[:i], text[i + 6:])
            _drop_tconfig()
            text = text[:i]
        cmd, _, arg = text.partition(" ")
        if cmd == "config" and arg.startswith("set"):
            cmd = "config set"
            arg = arg[3:].strip()
        if err:
            emit({"ok": False, "cmd": cmd, "error": err})
            return
        try:
            data = self.run(cmd, arg)
            emit({"ok": True, "cmd": cmd, "data": data})
        except ValueError as e:
            emit({"ok": False, "cmd": cmd, "error": str(e)})
        except MemoryError:
            gc.collect()
            emit({"ok": False, "cmd": cmd, "error": "out of memory; heap free %d" % gc.mem_free()})

    def run(self, cmd, arg):
        if cmd == "status":
            return self.status()
        if cmd == "help":
            return COMMANDS
        if cmd == "config":
            if self.cfg is None:
                raise ValueError(self.error or "no config")
            try:
                return _tconfig().masked(self.cfg)
            finally:
                _drop_tconfig()
        if cmd == "config set":
            try:
                new = json.loads(arg)
            except ValueError:
                raise ValueError("config set takes one JSON object")
            if not isinstance(new, dict):
                raise ValueError("config set takes one JSON object")
            old = self.cfg
            if old:  # a partial change: the keys given, over what is in force
                merged = dict(old)
                merged.update(new)
                new = merged
            if new.get("wifi_password") == "********" and old:
                new["wifi_password"] = old.get("wifi_password")  # the masked one: keep it
            try:
                cfg = _tconfig().save(new)
                shown = _tconfig().masked(cfg)
            finally:
                _drop_tconfig()
            i = self.iface
            diff = [k for k in cfg if cfg[k] != old.get(k)] if old else None
            if diff == []:
                pass  # nothing changed: nothing to restart
            elif diff == ["refresh_s"] and i is not None and self.key is not None:
                # only the refresh interval: the same socket and address
                i.client.set_refresh(cfg["refresh_s"], time.ticks_ms())
                self.cfg = cfg
                self.key = (cfg["server"], cfg["server2"], cfg["refresh_s"])
                self.changed(i)
            else:
                self.relink()
            return shown
        if cmd == "restart":
            self.relink()
            return None
        if cmd == "peers":
            return self.peers()
        if cmd == "ping":
            parts = arg.split()
            if not parts:
                raise ValueError("usage: ping ADDR [COUNT]")
            dst = addr.parse_ipv6(parts[0])
            count = int(parts[1]) if len(parts) > 1 else 4
            if not 1 <= count <= 100:
                raise ValueError("COUNT must be 1 to 100")
            if self.iface is None:
                raise ValueError(self.error or "no config")
            if self.pinger is not None:
                self.pinger.cancel()  # a new ping replaces the running one
            self.pinger = asyncio.create_task(self.ping(dst, count))
            return {"to": addr.format_ipv6(dst), "count": count}
        raise ValueError("unknown command %r; send help" % cmd)

    def peers(self):
        out = []
        if self.iface is None:
            return out
        now = time.ticks_ms()
        t = self.iface.client.peers
        for i in range(t.n):
            b = i * NF
            if t.v[b + F_USED]:
                a = t.addr[i]
                out.append({"address": addr.format_ipv6(t.ip6, i * 16),
                            "mapped": ("%s:%d" % a) if a else None,
                            "trusted": bool(t.v[b + F_TRUSTED]),
                            "last_rx_s": time.ticks_diff(now, t.v[b + F_LAST_RX]) // 1000})
        return out

    async def ping(self, dst, count):
        """ping ADDR COUNT: an echo request a second while qualified, a
        ping_reply event per reply, ping_done a second after the last."""
        i = self.iface
        to = addr.format_ipv6(dst)
        sent = got = 0
        times = {}  # seq -> ticks sent
        seen = i.pong_count()
        last = i.ticks()
        while sent < count or (i.ticks() - last) & MASK < 1000:
            while seen != i.pong_count():  # each reply, also several in one turn
                r = i.pong(seen)
                seen = (seen + 1) & MASK
                t0 = times.pop(r[0], None) if r else None
                if t0 is not None:
                    got += 1
                    emit({"event": "ping_reply", "from": to, "seq": r[0], "rtt_ms": (r[1] - t0) & MASK})
            now = i.ticks()
            if sent < count and (sent == 0 or (now - last) & MASK >= 1000) and i.qualified():
                self.seq = (self.seq + 1) & 0xFFFF
                times[self.seq] = now
                i.ping_send(dst, self.seq, now)
                sent += 1
                last = now
            await asyncio.sleep_ms(10)
        emit({"event": "ping_done", "sent": sent, "received": got})
        self.pinger = None

    def take(self, ch):
        """One console character: complete lines run as commands."""
        if ch in "\r\n":
            if self.llen:
                text = bytes(self.line[:self.llen]).decode()
                self.llen = 0
                self.command(text)
        elif self.llen < len(self.line) and " " <= ch <= "~":
            self.line[self.llen] = ord(ch)
            self.llen += 1

    async def console(self):
        """Wait for the console, then take every byte already there: a board's
        UART keeps only a small ring, and a command line may be longer."""
        rd = asyncio.StreamReader(sys.stdin)  # type: ignore[attr-defined]
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        while True:
            ch = await rd.read(1)
            if not ch:  # end of input (a pipe closed): nothing more will come
                await asyncio.sleep_ms(1000)
            n = 0
            while ch and n < CONSOLE_BURST:
                self.take(ch)
                n += 1
                ch = sys.stdin.read(1) if p.poll(0) else None

    # ---- the tasks ------------------------------------------------------------------

    async def guard(self, fn, *args):
        """Run a firmware task forever: a MemoryError (a fragmented heap) or an
        OSError (a socket, the console) costs it one turn, counted in
        loop_errors, never the task itself."""
        while True:
            try:
                await fn(*args)
            except MemoryError as e:
                gc.collect()  # drop what we were doing; the protocol retries
                if not self.errors:
                    log("out of memory (heap free %d); going on" % gc.mem_free())
                    sys.print_exception(e)  # type: ignore[attr-defined]
                self.errors += 1
            except OSError as e:
                log("error: %s" % e)
                self.errors += 1
            await asyncio.sleep_ms(5)  # no busy spin while the heap is short

    async def main(self, room):
        self.load()
        emit({"event": "boot", "firmware": VERSION, "board": self.board.get("name")})
        self.app_import()
        self.link(time.ticks_ms())
        asyncio.create_task(self.guard(self.wifi))
        asyncio.create_task(self.guard(self.blink))
        if room:
            del room[:]  # the block main.py held: now free for recvfrom
        gc.collect()
        await self.guard(self.console)


def main(room=None):
    fw = Firmware()
    try:
        asyncio.run(fw.main(room))
    except KeyboardInterrupt:
        asyncio.new_event_loop()  # drop the tasks: nothing runs at the REPL
        if fw.iface is not None:
            fw.iface.down("stopped")
        if fw.led is not None:
            fw.led.value(0)
        if fw.wdt is not None:
            # at the REPL nobody feeds the watchdog: give mpremote time
            fw.wdt = machine.WDT(timeout=WDT_IDLE_MS)
        log("stopped (Ctrl-C); at the REPL. machine.soft_reset() or Ctrl-D restarts")
