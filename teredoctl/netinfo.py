"""What the host's network looks like, for the host build and the virtual board."""
import re
import socket


def host_ifconfig():
    """(ip, netmask, gateway, dns) of the default-route interface, else loopback."""
    lo = ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
    try:
        with open("/proc/net/route") as f:
            rows = [ln.split() for ln in f.read().splitlines()[1:] if ln.strip()]
    except OSError:
        return lo

    def h2ip(h):
        return socket.inet_ntoa(int(h, 16).to_bytes(4, "little"))

    default = [r for r in rows if r[1] == "00000000" and r[7] == "00000000"]
    if not default:
        return lo
    iface, gw = default[0][0], h2ip(default[0][2])
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((gw if gw != "0.0.0.0" else "192.0.2.1", 9))
            ip = s.getsockname()[0]
        finally:
            s.close()
    except OSError:
        return lo
    mask = "255.255.255.255"
    ipn = int.from_bytes(socket.inet_aton(ip), "big")
    for r in rows:
        if r[0] != iface or r[7] == "00000000":
            continue
        m = int.from_bytes(int(r[7], 16).to_bytes(4, "little"), "big")
        d = int.from_bytes(int(r[1], 16).to_bytes(4, "little"), "big")
        if ipn & m == d:
            mask = socket.inet_ntoa(m.to_bytes(4, "big"))
            break
    dns = gw
    try:
        with open("/etc/resolv.conf") as f:
            for ln in f:
                p = ln.split()
                if len(p) >= 2 and p[0] == "nameserver" and re.match(r"^\d+\.\d+\.\d+\.\d+$", p[1]):
                    dns = p[1]
                    break
    except OSError:
        pass
    return (ip, mask, gw, dns)

def host_lan():
    """(ip, netmask) of the default-route interface, for local discovery
    (RFC 4380 §5.2.8), or None when the host has no such interface."""
    ip, mask = host_ifconfig()[:2]
    return None if ip.startswith("127.") else (ip, mask)
