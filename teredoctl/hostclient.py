"""The host build: the library's own Interface (teredo.iface) on CPython, the
same shell the board runs, under asyncio.

stdout carries JSON lines (the status object at start and at every change,
ping results, app events); stderr carries log lines for a person.  With
--app FILE the same app module a board runs (`async def main(iface)`) runs
here once the interface is up; a crash in it is logged and shown in status,
and the client goes on.
"""
import asyncio
import importlib.machinery
import importlib.util
import json
import os
import signal
import socket
import sys
import traceback

from teredo import addr
from teredo.iface import Interface, _diff
from teredoctl.netinfo import host_lan

APP_MODULE = "teredo_user_app"


def local_address(server, port):
    """The local IPv4 the kernel would use toward the server (no packet sent)."""
    if server is None:
        return "0.0.0.0"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((server, 3544))
        return s.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    finally:
        s.close()


def log(msg):
    print("teredoctl client: %s" % msg, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def load_app(path):
    """The app module at path (ValueError saying what is wrong with it)."""
    if not os.path.isfile(path):
        raise ValueError("--app %s: no such file" % path)
    loader = importlib.machinery.SourceFileLoader(APP_MODULE, path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(APP_MODULE, loader))
    try:
        loader.exec_module(mod)
    except Exception as e:  # the user's code: say where it broke
        raise ValueError("--app %s does not load: %s: %s" % (path, type(e).__name__, e))
    if not asyncio.iscoroutinefunction(getattr(mod, "main", None)):
        raise ValueError("--app %s has no async def main(iface)" % path)
    return mod


class HostClient:
    def __init__(self, args):
        if args.echo_rate < 0:
            raise ValueError("--echo-rate must be 0 (no limit) or more")
        self.args = args
        self.app = load_app(args.app) if args.app else None
        self.app_state = {"name": os.path.basename(args.app), "state": "waiting", "error": None} \
            if args.app else None
        self.iface = Interface(args.server, args.server2, port=args.port, refresh_s=args.refresh,
                               echo_rate=args.echo_rate, lan=host_lan(),
                               local_discovery=not getattr(args, "no_local_discovery", False))
        self.iface.on_change = self.changed
        self.stop = None
        self.result = 0

    def status(self):
        st = self.iface.status()
        if self.app_state is not None:
            st["app"] = dict(self.app_state)
        return st

    def changed(self, iface):
        st = self.status()
        emit(st)
        log("state %s%s%s" % (st["state"], (", address " + st["address"]) if st["address"] else "",
                              (": " + st["error"]) if st["error"] else ""))

    async def pinger(self):
        """An echo request a second; a reply counts whenever it comes until a
        second after the last request (the first ones wait for bubbles to open
        the path, and then come together)."""
        a = self.args
        i = self.iface
        dst = addr.parse_ipv6(a.ping)
        await i.aup(2 ** 29)
        sent = got = 0
        times = {}  # seq -> ticks sent
        seen = i.pong_count()
        last = i.ticks()
        while sent < a.count or (got < sent and _diff(i.ticks(), last) < 1000):
            while seen != i.pong_count():
                r = i.pong(seen)
                seen = (seen + 1) & 0x3FFFFFFF
                t0 = times.pop(r[0], None) if r else None
                if t0 is not None:
                    got += 1
                    rtt = _diff(r[1], t0)
                    emit({"ping_reply": a.ping, "seq": r[0], "rtt_ms": rtt})
                    log("reply from %s: seq=%d time=%d ms" % (a.ping, r[0], rtt))
            now = i.ticks()
            if sent < a.count and (sent == 0 or _diff(now, last) >= 1000):
                sent += 1
                times[sent] = now
                i.ping_send(dst, sent, now)
                last = now
            await asyncio.sleep(0.01)
        emit({"ping_done": a.ping, "sent": sent, "received": got})
        if a.exit_after_ping:
            self.result = 0 if got else 1
            self.stop.set()

    async def run_app(self):
        await self.iface.aup(2 ** 29)
        self.app_state["state"] = "running"
        log("app %s started" % self.app_state["name"])
        self.changed(self.iface)
        try:
            await self.app.main(self.iface)
            self.app_state["state"] = "finished"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the user's code: log it, keep the client up
            self.app_state["state"] = "crashed"
            self.app_state["error"] = "%s: %s" % (type(e).__name__, e)
            emit({"event": "app_error", "app": self.app_state["name"], "error": self.app_state["error"]})
            log("app %s crashed:\n%s" % (self.app_state["name"], traceback.format_exc().rstrip()))
        self.changed(self.iface)

    async def main(self):
        self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        a = self.args
        try:
            self.iface.open()
        except OSError as e:
            raise ValueError("cannot bind UDP port %d: %s; pick another with --port" % (a.port, e.args[-1]))
        c = self.iface.client
        local = "%s:%d" % (local_address(c.server_addr[0] if c.servers else None, a.port),
                           self.iface.sock.getsockname()[1])
        self.iface.client.set_local(local)
        log("local %s, server %s" % (local, c.server_text() if c.servers else a.server))
        self.iface.astart()
        tasks = []
        if a.ping:
            tasks.append(asyncio.create_task(self.pinger()))
        if self.app is not None:
            tasks.append(asyncio.create_task(self.run_app()))
        try:
            await self.stop.wait()
            log("stopping")
        finally:
            for t in tasks:
                t.cancel()
            self.iface.close()
        return self.result


def run(args):
    hc = HostClient(args)
    return asyncio.run(hc.main())
