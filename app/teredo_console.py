# The board shell (MicroPython): owns WiFi, the UDP socket, the clock, the
# watchdog, the status LED and the serial console, and feeds the shared core
# (teredo.client) datagrams and time.  The core itself never sees any of it.
#
# Console protocol (the REPL UART/USB, while the client runs): the host sends
# one command line; the board answers with one line "##teredo " + JSON:
#   {"ok": true, "cmd": C, "data": ...} or {"ok": false, "cmd": C, "error": S}
# Commands: status, peers, config, config set {JSON}, ping ADDR [COUNT],
# restart, help.  Unsolicited lines with the same marker carry events:
# {"event": "boot"|"status"|"ping_reply"|"ping_done", ...}.  Log lines start
# with "teredo: ".  Ctrl-C stops the client and leaves the REPL.

import gc
import json
import select
import socket
import sys
import time

from teredo import VERSION, addr
from teredo.client import EV_ECHO_REPLY, QUALIFIED, QUALIFYING, Client
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
COMMANDS = ("status", "peers", "config", "config set {JSON}", "ping ADDR [COUNT]", "restart", "help")
WIFI_RETRY_MIN_MS = 2000
WIFI_RETRY_MAX_MS = 60000
WDT_IDLE_MS = 3600000          # watchdog while at the REPL after Ctrl-C
RX_MAX = 1400                  # largest datagram read: 1280 (RFC 4380 §5.1.2) + headers
RX_BURST = 16                  # datagrams handled per wake-up


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


class Shell:
    def __init__(self):
        self.board = _board()
        self.client = None
        self.cfg = None
        self.sock = None
        self.sockaddr = {}  # (ip, port) -> what this port's sendto takes
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.line = bytearray(512)
        self.llen = 0
        self.seen = -1
        self.wlan = None
        self.wifi_up = False
        self.wifi_next = 0
        self.wifi_wait = WIFI_RETRY_MIN_MS
        self.error = None
        self.ping_dst = None
        self.ping_left = 0
        self.ping_next = 0
        self.ping_seq = 0
        self.ping_sent = 0
        self.ping_got = 0
        self.ping_t = {}
        self.led = None
        self.wdt = None
        self.errors = 0  # turns of the loop lost to MemoryError or OSError
        self.src4 = bytearray(4)
        self.room = None
        self.tuple_addr = sys.platform != "linux"  # unix port: sockaddr bytes
        pin = self.board.get("led_pin")
        if machine is not None and pin is not None:
            self.led = machine.Pin(pin, machine.Pin.OUT)
            self.led.value(0)
        if machine is not None and self.board.get("wdt_ms"):
            self.wdt = machine.WDT(timeout=self.board["wdt_ms"])

    # ---- configuration and client life cycle ------------------------------

    def load(self):
        cfg, err = _tconfig().load()
        _drop_tconfig()
        self.cfg = cfg
        self.error = err
        if err:
            log(err)
            self.client = None
            return
        if self.client is not None and self.client.server_addr[0] == cfg["server"] and \
                self.client.cfg["refresh_s"] == cfg["refresh_s"]:
            return
        self.client = None
        gc.collect()
        try:
            # a small heap (under 96 KB) gets one queue buffer instead of two:
            # a second destination then waits for the first one's tests
            small = gc.mem_free() + gc.mem_alloc() < 96 * 1024
            self.client = Client(cfg["server"], cfg["server2"], rand=rand, refresh_s=cfg["refresh_s"],
                                 queue_slots=1 if small else 2)
        except ValueError as e:
            self.error = "config.json: %s" % e
            log(self.error)

    def start(self, now):
        self.stop_client()
        if self.client is None:
            return
        port = self.cfg["client_port"]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
        except OSError as e:
            s.close()
            self.error = "cannot bind UDP port %d (%s): set another client_port" % (port, e)
            log(self.error)
            return
        s.setblocking(False)
        self.sock = s
        self.poll.register(s, select.POLLIN)
        ip = "0.0.0.0"
        if self.wlan is not None:
            ip = self.wlan.ifconfig()[0]
        self.client.set_local("%s:%d" % (ip, port) if port else ip)
        self.client.start(now)
        self.seen = -1
        log("client started, server %s" % self.cfg["server"])

    def stop_client(self):
        if self.sock is not None:
            try:
                self.poll.unregister(self.sock)
            except (OSError, ValueError, KeyError):
                pass
            self.sock.close()
            self.sock = None
        if self.client is not None:
            self.client.stop("stopped")

    # ---- WiFi (network.WLAN, with retries and back-off) --------------------

    def wifi(self, now):
        """True while the network is usable.  Boards without WiFi config
        (or without WiFi) count as connected."""
        if self.cfg is None or not self.cfg.get("wifi_ssid") or network is None:
            return True
        if self.wlan is None:
            self.wlan = network.WLAN(network.STA_IF)
            self.wlan.active(True)
        up = self.wlan.isconnected()
        if up != self.wifi_up:
            self.wifi_up = up
            if up:
                self.wifi_wait = WIFI_RETRY_MIN_MS
                log("WiFi %s up, %s" % (self.cfg["wifi_ssid"], self.wlan.ifconfig()[0]))
                self.start(now)
            else:
                log("WiFi %s lost; rejoining" % self.cfg["wifi_ssid"])
                self.stop_client()
                if self.client is not None:
                    self.client.error = "WiFi %s is down; rejoining" % self.cfg["wifi_ssid"]
                self.wifi_next = now
        if not up and time.ticks_diff(now, self.wifi_next) >= 0:
            try:
                self.wlan.connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"] or "")
            except OSError as e:
                log("WiFi connect: %s" % e)
            self.wifi_next = time.ticks_add(now, self.wifi_wait)
            self.wifi_wait = min(self.wifi_wait * 2, WIFI_RETRY_MAX_MS)
        return up

    # ---- console --------------------------------------------------------------

    def status(self):
        if self.client is not None:
            st = self.client.status()
        else:
            st = {"state": "offline", "server": None, "server2": None, "nat": "unknown",
                  "address": None, "mapped": None, "local": None, "relay": None,
                  "refresh_s": None, "uptime_s": 0, "peers": 0, "rx": 0, "tx": 0, "drops": {},
                  "error": None}
        if self.error and not st["error"]:
            st["error"] = self.error
        gc.collect()  # so heap_used is what is live, not garbage
        st["heap_free"] = gc.mem_free()
        st["heap_used"] = gc.mem_alloc()
        st["board"] = self.board.get("name")
        st["firmware"] = VERSION
        st["loop_errors"] = self.errors
        return st

    def command(self, text, now):
        text = text.strip()
        cmd, _, arg = text.partition(" ")
        if cmd == "config" and arg.startswith("set"):
            cmd = "config set"
            arg = arg[3:].strip()
        try:
            data = self.run(cmd, arg, now)
            emit({"ok": True, "cmd": cmd, "data": data})
        except ValueError as e:
            emit({"ok": False, "cmd": cmd, "error": str(e)})
        except MemoryError:
            gc.collect()
            emit({"ok": False, "cmd": cmd, "error": "out of memory; heap free %d" % gc.mem_free()})

    def run(self, cmd, arg, now):
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
            if isinstance(new, dict) and new.get("wifi_password") == "********" and self.cfg:
                new["wifi_password"] = self.cfg.get("wifi_password")  # the masked one: keep it
            try:
                cfg = _tconfig().save(new)
            finally:
                _drop_tconfig()
            self.stop_client()
            self.load()
            self.wifi_up = False
            if self.wifi(now):
                self.start(now)
            try:
                return _tconfig().masked(cfg)
            finally:
                _drop_tconfig()
        if cmd == "restart":
            self.load()
            self.wifi_up = False
            if self.wifi(now):
                self.start(now)
            return None
        if cmd == "peers":
            return self.peers(now)
        if cmd == "ping":
            parts = arg.split()
            if not parts:
                raise ValueError("usage: ping ADDR [COUNT]")
            self.ping_dst = addr.parse_ipv6(parts[0])
            self.ping_left = int(parts[1]) if len(parts) > 1 else 4
            if not 1 <= self.ping_left <= 100:
                raise ValueError("COUNT must be 1 to 100")
            self.ping_next = now
            self.ping_sent = 0
            self.ping_got = 0
            self.ping_t = {}
            return {"to": addr.format_ipv6(self.ping_dst), "count": self.ping_left}
        raise ValueError("unknown command %r; send help" % cmd)

    def peers(self, now):
        out = []
        c = self.client
        if c is None:
            return out
        t = c.peers
        for i in range(t.n):
            b = i * NF
            if t.v[b + F_USED]:
                a = t.addr[i]
                out.append({"address": addr.format_ipv6(t.ip6, i * 16),
                            "mapped": ("%s:%d" % a) if a else None,
                            "trusted": bool(t.v[b + F_TRUSTED]),
                            "last_rx_s": time.ticks_diff(now, t.v[b + F_LAST_RX]) // 1000})
        return out

    def console(self, now):
        """Read what the console has; run complete lines."""
        ch = sys.stdin.read(1)
        if not ch:
            return
        if ch in "\r\n":
            if self.llen:
                text = bytes(self.line[:self.llen]).decode()
                self.llen = 0
                self.command(text, now)
            return
        if self.llen < len(self.line) and " " <= ch <= "~":
            self.line[self.llen] = ord(ch)
            self.llen += 1

    # ---- the event loop ---------------------------------------------------------

    def send_all(self):
        c = self.client
        n = c.pop_tx()
        while n:
            a = c.tx_addr
            if not self.tuple_addr:
                sa = self.sockaddr.get(a)
                if sa is None:
                    sa = socket.getaddrinfo(a[0], a[1])[0][-1]
                    if len(self.sockaddr) > 16:
                        self.sockaddr = {}
                    self.sockaddr[a] = sa
                a = sa
            try:
                self.sock.sendto(c.tx_mv[c.tx_off:c.tx_off + n], a)
            except OSError:
                pass  # a full socket buffer or a lost link: Teredo retries
            n = c.pop_tx()

    def receive(self, now):
        """Up to RX_BURST datagrams per wake-up: the loop's housekeeping is
        then paid once per burst, not once per packet."""
        for _ in range(RX_BURST):
            try:
                data, src = self.sock.recvfrom(RX_MAX)
            except OSError:
                return  # EAGAIN: all read
            self.datagram(data, src, now)
            self.send_all()

    def datagram(self, data, src, now):
        c = self.client
        ip4 = self.src4
        if self.tuple_addr:  # ESP32: ("1.2.3.4", port)
            ip4 = addr.parse_ipv4(src[0])
            port = src[1]
        else:  # unix port: struct sockaddr_in, copied without a slice
            ip4[0] = src[4]
            ip4[1] = src[5]
            ip4[2] = src[6]
            ip4[3] = src[7]
            port = (src[2] << 8) | src[3]
        ev = c.on_datagram(data, len(data), ip4, port, now)
        if ev == EV_ECHO_REPLY and self.ping_dst is not None:
            seq = c.ev_seq
            t0 = self.ping_t.get(seq)
            if t0 is not None:
                self.ping_got += 1
                emit({"event": "ping_reply", "from": addr.format_ipv6(c.rx, c.ev_src), "seq": seq,
                      "rtt_ms": time.ticks_diff(now, t0)})

    def pinger(self, now):
        c = self.client
        if self.ping_dst is None or c is None or c.state != QUALIFIED:
            return
        if self.ping_left and time.ticks_diff(now, self.ping_next) >= 0:
            self.ping_seq = (self.ping_seq + 1) & 0xFFFF
            self.ping_t[self.ping_seq] = now
            c.ping(self.ping_dst, self.ping_seq, now)
            self.ping_sent += 1
            self.ping_left -= 1
            self.ping_next = time.ticks_add(now, 1000)
        elif not self.ping_left and time.ticks_diff(now, self.ping_next) >= 1000:
            emit({"event": "ping_done", "sent": self.ping_sent, "received": self.ping_got})
            self.ping_dst = None

    def blink(self, now):
        if self.led is None:
            return
        s = self.client.state if self.client is not None else 0
        if s == QUALIFIED:
            self.led.value(1)
        elif s == QUALIFYING:
            self.led.value((now // 250) & 1)
        else:
            self.led.value(0)

    def _ipoll(self, wait):
        # ipoll reuses one tuple: no garbage per turn of the loop
        if hasattr(self.poll, "ipoll"):
            return self.poll.ipoll(wait)
        return self.poll.poll(wait)

    def loop(self):
        now = time.ticks_ms()
        self.load()
        emit({"event": "boot", "firmware": VERSION, "board": self.board.get("name")})
        if self.wifi(now):
            self.start(now)
        if self.room:
            del self.room[:]  # the block main.py held: now free for recvfrom
            gc.collect()
        while True:
            try:
                self.turn()
            except MemoryError as e:
                gc.collect()  # drop what we were doing; the protocol retries
                if not self.errors:
                    log("out of memory (heap free %d); going on" % gc.mem_free())
                    sys.print_exception(e)
                self.errors += 1
                time.sleep_ms(5)  # no busy spin while the heap is short
            except OSError as e:  # a socket or console error: log, go on
                log("error: %s" % e)
                self.errors += 1

    def turn(self):
        """One turn of the event loop: timers, socket, console, WiFi, LED."""
        now = time.ticks_ms()
        if self.wdt is not None:
            self.wdt.feed()
        c = self.client
        wait = 250
        due = 0
        if c is not None and self.sock is not None:
            self.send_all()
            if c.changes != self.seen:
                self.seen = c.changes
                st = self.status()
                emit({"event": "status", "data": st})
                log("%s%s%s" % (st["state"], (" " + st["address"]) if st["address"] else "",
                                (": " + st["error"]) if st["error"] else ""))
            due = c.next_deadline()  # once per turn: it walks the peer table
            d = time.ticks_diff(due, now)
            if d < wait:
                wait = d if d > 0 else 0
        for obj, _ev in self._ipoll(wait):
            now = time.ticks_ms()
            if obj is self.sock:
                self.receive(now)
            else:
                self.console(now)
        now = time.ticks_ms()
        self.wifi(now)
        if c is not None and self.sock is not None:
            if time.ticks_diff(now, due) >= 0:
                c.on_timer(now)  # (a deadline set meanwhile is seen next turn)
            self.pinger(now)
        self.blink(now)


def main(room=None):
    sh = Shell()
    sh.room = room
    try:
        sh.loop()
    except KeyboardInterrupt:
        sh.stop_client()
        if sh.led is not None:
            sh.led.value(0)
        if sh.wdt is not None:
            # at the REPL nobody feeds the watchdog: give mpremote time
            sh.wdt = machine.WDT(timeout=WDT_IDLE_MS)
        log("stopped (Ctrl-C); at the REPL. machine.soft_reset() or Ctrl-D restarts")
