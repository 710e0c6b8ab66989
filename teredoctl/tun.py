"""`teredoctl client --tun`: the host build as a real IPv6 tunnel.

The library's Interface (teredo.iface) with the core's RawClient
(teredo.raw), wired to a Linux tun device: every IPv6 packet the core
accepts for our Teredo address is written to the tun (the kernel's stack
answers pings, runs TCP, sends errors), and every packet the kernel routes
into the tun goes out through the core (RawClient.send_ip: source checked,
copied once).

One thread, one poll: the UDP socket toward the Internet, the tun, the
signal pipe and, while a sunset check runs, its ICMPv6 socket, all
non-blocking; each wake-up drains up to a burst from what is readable.

Addresses and routes are set with the `ip` program (iproute2), not with
netlink from Python: they change a few times a day (qualification, a NAT
remap, sunset), where a fork costs nothing that matters, while a netlink
client would be a few hundred lines of message packing to maintain; `ip`
is on every Linux host, and its error text is what the user sees.

The interface is non-persistent: the kernel removes it, with its addresses
and routes, when our descriptor closes (exit, Ctrl-C, SIGTERM, even
SIGKILL).  Its alias names us ("teredoctl pid=N"), so a leftover tun of
ours (one made persistent by hand) is recognised and removed at start,
and an interface that is not ours is never touched.

Sunset (RFC 4380 §5.5: a node with native IPv6 MUST NOT behave as a
Teredo client): with --sunset-probe ADDR, every --sunset-interval seconds
the route to ADDR is looked up; when it leaves through another interface
from a global address and ADDR answers an echo request sent that way, the
tunnel goes dormant (the client stops: no Teredo traffic, no address, no
routes; the interface stays).  When the native path goes away, it wakes
and qualifies again.
"""
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys

from teredo import addr
from teredo.client import QUALIFIED, _add
from teredo.iface import Interface, _diff
from teredo.raw import EV_IP, RawClient
from teredoctl.netinfo import host_lan

TUNSETIFF = 0x400454CA         # _IOW('T', 202, int), linux/if_tun.h
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000             # bare IPv6 packets, no packet-information header
CAP_NET_ADMIN = 12
MTU = 1280                     # RFC 4380 §5.1.2: the Teredo MTU
LINK_LOCAL = "fe80::ffff:ffff:ffff/64"  # the link-local address miredo uses too
TEREDO_PREFIX = "2001::/32"
PREFIX_METRIC = 1024
DEFAULT_METRIC = 2048          # above native defaults (RA 1024, NetworkManager 100..600): native wins
ALIAS = "teredoctl pid=%d"
TUN_BURST = 32                 # packets read from the tun per wake-up
PKT_MAX = 1500                 # read buffer (the tun's MTU is 1280)
UDP_RCVBUF = 1 << 20           # room for a TCP window's burst while we write to the tun
SUNSET_TRIES = 3               # echo requests per check, 1 s apart
SUNSET_GAP_MS = 1000
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
SUNSET_IDENT = 0x5353


def log(msg):
    print("teredoctl client: %s" % msg, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


# ---- privileges, ip ---------------------------------------------------------

def _caps(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def check_privileges(ifname):
    """ValueError unless we may make a tun and configure it (root, or
    CAP_NET_ADMIN ambient, so that the ip commands we run have it too)."""
    if os.geteuid() == 0 and _caps("CapEff") >> CAP_NET_ADMIN & 1:
        return
    if _caps("CapEff") >> CAP_NET_ADMIN & 1 and _caps("CapAmb") >> CAP_NET_ADMIN & 1:
        return
    raise ValueError("--tun needs root or CAP_NET_ADMIN (to create the tun interface %s and set its "
                     "addresses and routes): run it with sudo" % ifname)


def ip(*args, ok_errors=()):
    """Run `ip ARGS`; ValueError with ip's own message when it fails (unless
    the message contains one of ok_errors)."""
    try:
        r = subprocess.run(("ip",) + args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ValueError("ip %s: %s" % (" ".join(args), e))
    if r.returncode:
        msg = (r.stderr or r.stdout).strip()
        for s in ok_errors:
            if s in msg:
                return ""
        raise ValueError("ip %s: %s" % (" ".join(args), msg))
    return r.stdout


def link_info(ifname):
    """The interface's `ip -j -d link` object, or None when there is none."""
    r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", ifname],
                       capture_output=True, text=True, timeout=10)
    if r.returncode:
        return None
    try:
        return json.loads(r.stdout)[0]
    except (ValueError, IndexError):
        return None


def _pid_is_teredoctl(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"teredoctl" in f.read()
    except OSError:
        return False


def clean_stale(ifname):
    """Remove a tun of ours left behind (its alias names a teredoctl that is
    gone); refuse an interface of that name that is not ours or is alive."""
    info = link_info(ifname)
    if info is None:
        return False
    kind = (info.get("linkinfo") or {}).get("info_kind")
    alias = info.get("ifalias") or ""
    if kind != "tun" or not alias.startswith("teredoctl pid="):
        raise ValueError("interface %s exists and is not a teredoctl tunnel (%s%s); pick another name "
                         "with --ifname" % (ifname, kind or "not a tun",
                                            ", alias %r" % alias if alias else ""))
    try:
        pid = int(alias.split("=", 1)[1].split()[0])
    except (ValueError, IndexError):
        pid = 0
    if pid and pid != os.getpid() and _pid_is_teredoctl(pid):
        raise ValueError("interface %s belongs to a running teredoctl (pid %d): stop it, or pick "
                         "another name with --ifname" % (ifname, pid))
    ip("link", "del", "dev", ifname)
    log("removed a stale interface %s of teredoctl pid %d" % (ifname, pid))
    return True


class Tun:
    """A non-persistent tun device (IFF_TUN | IFF_NO_PI), non-blocking."""

    def __init__(self, ifname):
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise ValueError("cannot open /dev/net/tun (%s): load the tun module (modprobe tun)"
                             % e.strerror)
        ifr = struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI)
        try:
            r = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as e:
            os.close(fd)
            if e.errno == errno.EPERM:
                raise ValueError("--tun needs root or CAP_NET_ADMIN (to create the tun interface %s): "
                                 "run it with sudo" % ifname)
            raise ValueError("cannot create tun interface %s: %s" % (ifname, e.strerror))
        self.fd = fd
        self.name = r[:16].rstrip(b"\0").decode()

    def fileno(self):
        return self.fd

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class TunInterface(Interface):
    """The Interface with a RawClient: what the core accepts goes whole to
    the tun, not to UDP sockets and the library's TCP."""

    def __init__(self, tunnel, *a, **kw):
        Interface.__init__(self, *a, client_class=RawClient, **kw)
        self.tunnel = tunnel
        self._rxmv = memoryview(self._rxbuf)

    def feed(self, data, n, src4, sport, now):
        c = self.client
        ev = c.on_datagram(data, n, src4, sport, now)
        if ev == EV_IP:
            t = self.tunnel
            mv = self._rxmv if data is self._rxbuf else memoryview(data)
            try:
                os.write(t.tun.fd, mv[c.ev_off:c.ev_off + c.ev_len])
                t.rx_packets += 1
            except OSError:
                t.dropped += 1
        self.flush()
        return ev


class _Fd:
    """A bare descriptor for Interface.watch (it polls objects with fileno)."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


# ---- sunset (RFC 4380 §5.5) -------------------------------------------------

class Sunset:
    """Is there working native IPv6?  A route to the probe address through
    another interface from a global address, and an echo reply over it.
    One check every interval; each sends at most SUNSET_TRIES echoes."""

    def __init__(self, tunnel, probe, interval_s):
        self.t = tunnel
        self.probe = probe
        self.interval = interval_s * 1000
        self.native = None        # None: not checked yet
        self.detail = None        # what the last check saw
        self.next_at = tunnel.iface.ticks()  # the first check at once
        self.sock = None
        self.via = None
        self.sent = 0
        self.seq = 0
        self.send_at = 0
        self.checks = 0

    def status(self):
        return {"probe": self.probe, "native": self.native, "detail": self.detail,
                "checks": self.checks, "interval_s": self.interval // 1000}

    def due(self, now):
        """ms until run() wants to be called."""
        t = self.send_at if self.sock is not None else self.next_at
        d = _diff(t, now)
        return d if d > 0 else 0

    def native_route(self):
        """(dev, source) of a native route to the probe, or None and why."""
        r = subprocess.run(["ip", "-j", "-6", "route", "get", self.probe],
                           capture_output=True, text=True, timeout=10)
        if r.returncode:
            return None, "no route to %s" % self.probe
        try:
            rt = json.loads(r.stdout)[0]
        except (ValueError, IndexError):
            return None, "no route to %s" % self.probe
        dev, src = rt.get("dev"), rt.get("prefsrc")
        if not dev or dev == self.t.ifname or not src:
            return None, "the route to %s is the tunnel" % self.probe
        a = addr.parse_ipv6(src)
        if addr.is_teredo(a, 0) or a[0] & 0xE0 != 0x20:  # 2000::/3 global unicast, not Teredo
            return None, "no global native source toward %s (%s via %s)" % (self.probe, src, dev)
        return (dev, src), None

    def run(self, now):
        if self.sock is None:
            if _diff(now, self.next_at) < 0:
                return
            self.checks += 1
            via, why = self.native_route()
            if via is None:
                self._done(now, False, why)
                return
            try:
                s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
                s.setblocking(False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, via[0].encode())
                s.bind((via[1], 0))
            except OSError as e:
                self._done(now, False, "cannot send echo requests via %s: %s" % (via[0], e))
                return
            self.sock = s
            self.via = via
            self.sent = 0
            self.t.iface.watch(s, self.on_readable)
            self.send_at = now
        if self.sock is not None and _diff(now, self.send_at) >= 0:
            if self.sent >= SUNSET_TRIES:
                self._done(now, False, "%s did not answer via %s" % (self.probe, self.via[0]))
                return
            self.sent += 1
            self.seq = (self.seq + 1) & 0xFFFF
            msg = struct.pack("!BBHHH8s", ICMP6_ECHO_REQUEST, 0, 0, SUNSET_IDENT, self.seq, b"sunset..")
            try:
                self.sock.sendto(msg, (self.probe, 0))  # the kernel fills the ICMPv6 checksum
            except OSError:
                pass  # unreachable now: the next try or the end of the check says so
            self.send_at = _add(now, SUNSET_GAP_MS)

    def on_readable(self, now):
        want = addr.parse_ipv6(self.probe)
        for _ in range(8):
            try:
                data, src = self.sock.recvfrom(256)
            except OSError:
                return
            if (len(data) >= 8 and data[0] == ICMP6_ECHO_REPLY
                    and (data[4] << 8 | data[5]) == SUNSET_IDENT
                    and addr.parse_ipv6(src[0].split("%")[0]) == want):
                self._done(now, True, "%s answered via %s from %s" % (self.probe, self.via[0], self.via[1]))
                return

    def _done(self, now, native, why):
        if self.sock is not None:
            self.t.iface.unwatch(self.sock)
            self.sock.close()
            self.sock = None
        self.next_at = _add(now, self.interval)
        changed = native != self.native
        self.native = native
        self.detail = why
        self.t.on_sunset(native, changed)

    def close(self):
        if self.sock is not None:
            self.t.iface.unwatch(self.sock)
            self.sock.close()
            self.sock = None


# ---- the tunnel ---------------------------------------------------------------

class Tunnel:
    def __init__(self, args):
        if args.app or args.ping:
            raise ValueError("--tun hands the tunnel to the system: use ping -6 and the system's "
                             "sockets instead of --ping / --app")
        name = args.ifname
        if not name or len(name) > 15 or "/" in name or " " in name:
            raise ValueError("--ifname must be 1..15 characters without / or spaces")
        if args.sunset_probe:
            try:
                p = addr.parse_ipv6(args.sunset_probe)
            except ValueError as e:
                raise ValueError("--sunset-probe: %s" % e)
            if addr.is_teredo(p, 0):
                raise ValueError("--sunset-probe must be a native IPv6 address, not a Teredo one")
        if args.sunset_interval < 5:
            raise ValueError("--sunset-interval must be 5 seconds or more")
        if shutil.which("ip") is None:
            raise ValueError("--tun needs the ip command (iproute2)")
        check_privileges(name)
        self.args = args
        self.ifname = name
        self.iface = TunInterface(self, args.server, args.server2, port=args.port, refresh_s=args.refresh,
                                  lan=host_lan(),
                                  local_discovery=not getattr(args, "no_local_discovery", False))
        self.iface.on_change = self.changed
        self.tun = None
        self.sunset = Sunset(self, args.sunset_probe, args.sunset_interval) if args.sunset_probe else None
        self.dormant = False
        self.started = False      # the client was opened (not waiting for the first sunset check)
        self.addr_on = None       # the Teredo address on the interface
        self.default_on = False
        self.error = None         # the last ip error
        self.rx_packets = 0       # written to the kernel
        self.tx_packets = 0       # read from the kernel and sent
        self.dropped = 0
        self.buf = bytearray(PKT_MAX)
        self.iov = [self.buf]
        self.stopping = False
        self.gone = None          # why the interface is no longer ours to run

    # ---- the interface ----------------------------------------------------------

    def create(self):
        clean_stale(self.ifname)
        self.tun = Tun(self.ifname)
        n = self.tun.name
        try:
            ip("link", "set", "dev", n, "alias", ALIAS % os.getpid())
            ip("link", "set", "dev", n, "mtu", str(MTU), "addrgenmode", "none")
            _sysctl("net/ipv6/conf/%s/router_solicitations" % n, "0")
            _sysctl("net/ipv6/conf/%s/accept_ra" % n, "0")
            ip("link", "set", "dev", n, "up")
            ip("-6", "addr", "add", LINK_LOCAL, "dev", n, "nodad")
        except ValueError:
            self.destroy()
            raise
        log("interface %s up (mtu %d, %s)" % (n, MTU, LINK_LOCAL))

    def destroy(self):
        if self.tun is not None:
            self.iface.unwatch(self.tun)
            self.tun.close()
            self.tun = None
        # non-persistent: gone with our descriptor; made persistent by someone: remove it
        info = link_info(self.ifname)
        if info is not None and (info.get("ifalias") or "") == ALIAS % os.getpid():
            ip("link", "del", "dev", self.ifname, ok_errors=("Cannot find",))

    def reconcile(self):
        """Put the address and routes the client's state calls for on the
        interface: the Teredo address /32, 2001::/32, and the default route
        (--default-route) while qualified; nothing otherwise."""
        c = self.iface.client
        want = addr.format_ipv6(c.address) if c.state == QUALIFIED and c.has_address else None
        want_default = bool(self.args.default_route and want)
        n = self.ifname
        try:
            if want != self.addr_on:
                if want:
                    ip("-6", "addr", "add", want + "/32", "dev", n, "nodad", "noprefixroute",
                       ok_errors=("File exists",))
                    ip("-6", "route", "add", TEREDO_PREFIX, "dev", n, "metric", str(PREFIX_METRIC),
                       ok_errors=("File exists",))
                if self.addr_on:
                    ip("-6", "addr", "del", self.addr_on + "/32", "dev", n, ok_errors=("Cannot assign",))
                if not want:
                    ip("-6", "route", "del", TEREDO_PREFIX, "dev", n, "metric", str(PREFIX_METRIC),
                       ok_errors=("No such process",))
                log("interface %s: %s" % (n, ("address %s/32, route %s" % (want, TEREDO_PREFIX))
                                          if want else "no address, no routes (carries nothing)"))
                self.addr_on = want
            if want_default != self.default_on:
                if want_default:
                    ip("-6", "route", "add", "default", "dev", n, "metric", str(DEFAULT_METRIC),
                       ok_errors=("File exists",))
                else:
                    ip("-6", "route", "del", "default", "dev", n, "metric", str(DEFAULT_METRIC),
                       ok_errors=("No such process",))
                log("interface %s: %s" % (n, "default route, metric %d" % DEFAULT_METRIC
                                          if want_default else "no default route"))
                self.default_on = want_default
            self.error = None
        except ValueError as e:
            self.error = str(e)
            log(self.error)

    # ---- status --------------------------------------------------------------

    def tun_state(self):
        if self.dormant:
            return "dormant"
        return "active" if self.addr_on else "inactive"

    def status(self):
        st = self.iface.status()
        st["tun"] = {"ifname": self.ifname, "state": self.tun_state(), "address": self.addr_on,
                     "default_route": self.default_on, "rx_packets": self.rx_packets,
                     "tx_packets": self.tx_packets, "dropped": self.dropped, "error": self.error}
        if self.dormant:
            st["state"] = "dormant"
            st["error"] = None
        elif not self.started:
            st["state"] = "waiting"  # for the first sunset check
        if self.sunset is not None:
            st["sunset"] = self.sunset.status()
        return st

    def changed(self, iface=None):
        self.reconcile()
        st = self.status()
        emit(st)
        log("state %s%s%s" % (st["state"], (", address " + st["address"]) if st["address"] else "",
                              (": " + st["error"]) if st["error"] else ""))

    # ---- packets ----------------------------------------------------------------

    def from_kernel(self, now):
        """Up to TUN_BURST packets the kernel routed into the tunnel."""
        c = self.iface.client
        fd = self.tun.fd
        iov = self.iov
        buf = self.buf
        for _ in range(TUN_BURST):
            try:
                n = os.readv(fd, iov)
            except BlockingIOError:
                return
            except OSError as e:
                # the interface was deleted under us (ip link del): the
                # descriptor stays readable with an error, so stop
                self.gone = "interface %s went away (%s): stopping" % (self.ifname, e.strerror)
                self.stopping = True
                return
            if c.send_ip(buf, n, now):
                self.dropped += 1  # counted by reason in the client's drops
            else:
                self.tx_packets += 1
            self.iface.flush()

    # ---- life cycle -----------------------------------------------------------------

    def start_client(self):
        i = self.iface
        try:
            i.open()
        except OSError as e:
            raise ValueError("cannot bind UDP port %d: %s; pick another with --port"
                             % (self.args.port, e.args[-1]))
        try:
            i.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError:
            pass
        from teredoctl.hostclient import local_address
        c = i.client
        i.client.set_local("%s:%d" % (local_address(c.server_addr[0] if c.servers else None,
                                                    self.args.port),
                                      i.sock.getsockname()[1]))
        self.started = True

    def on_sunset(self, native, changed):
        if native and not self.dormant:
            self.dormant = True
            self.iface.down("dormant: native IPv6 works (%s)" % self.sunset.detail)
            log("sunset (RFC 4380 §5.5): %s; the tunnel goes dormant" % self.sunset.detail)
            self.changed()
        elif not native and (self.dormant or not self.started):
            was = self.dormant
            self.dormant = False
            if was:
                log("waking: %s" % self.sunset.detail)
            self.start_client()
            self.changed()
        elif changed:
            self.changed()

    def on_signal(self, now):
        try:
            data = os.read(self._sig_r, 64)
        except OSError:
            return
        for b in data:
            if b in (signal.SIGINT, signal.SIGTERM):
                self.stopping = True
            elif b == signal.SIGUSR1:
                emit(self.status())

    def run(self):
        self._sig_r, self._sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_fd = signal.set_wakeup_fd(self._sig_w)
        old = {}
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            old[s] = signal.signal(s, lambda signum, frame: None)  # the byte on the pipe is enough
        try:
            self.create()
            i = self.iface
            i.watch(self.tun, self.from_kernel)
            i.watch(_Fd(self._sig_r), self.on_signal)
            if self.sunset is None:
                self.start_client()
            self.changed()
            log("server %s, local %s" % (i.client.server_text(), i.client.local))
            while not self.stopping:
                wait = 1000
                if self.sunset is not None:
                    d = self.sunset.due(i.ticks())
                    if d < wait:
                        wait = d
                i.poll(wait)
                if self.sunset is not None:
                    self.sunset.run(i.ticks())
            log("stopping")
        finally:
            if self.sunset is not None:
                self.sunset.close()
            self.iface.close()
            self.destroy()
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                signal.signal(s, h)
            os.close(self._sig_r)
            os.close(self._sig_w)
        self.addr_on = None
        self.default_on = False
        emit(self.status())
        if self.gone:
            raise ValueError(self.gone)
        return 0


def _sysctl(path, value):
    try:
        with open("/proc/sys/" + path, "w") as f:
            f.write(value)
    except OSError:
        pass  # a knob this kernel lacks: the defaults only cost a few dropped packets


def run(args):
    return Tunnel(args).run()

