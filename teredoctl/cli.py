"""teredoctl: the host tool of the Teredo client for microcontrollers.

One table of commands, each a handler plus its own argument parser (the shape
of mpremote).  Expected failures raise CliError, caught once in main(), which
prints `teredoctl: what went wrong and what to do` and exits non-zero.
"""
import argparse
import json
import sys

from teredo import addr
from teredoctl.errors import CliError


# ---- decode ---------------------------------------------------------------

def decode_fields(text):
    """Teredo address text -> dict of its fields (ValueError with a reason)."""
    a = addr.parse_ipv6(text.strip())
    server, flags, port, mapped = addr.decode_teredo(a)
    return {
        "address": addr.format_ipv6(a),
        "prefix": "2001:0::/32",
        "server": addr.format_ipv4(server),
        "flags": flags,
        "cone": bool(flags & 0x8000),
        "random_bits": flags & 0x3CFF,
        "mapped_port": port,
        "mapped_ipv4": addr.format_ipv4(mapped),
    }


def cmd_decode(args):
    try:
        d = decode_fields(args.address)
    except ValueError as e:
        raise CliError(str(e))
    if args.json:
        print(json.dumps(d, sort_keys=True))
        return 0
    print("address      %s" % d["address"])
    print("prefix       %s (Teredo)" % d["prefix"])
    print("server       %s" % d["server"])
    print("flags        0x%04x (cone %s, random bits 0x%03x)"
          % (d["flags"], "yes" if d["cone"] else "no", d["random_bits"]))
    print("mapped port  %d" % d["mapped_port"])
    print("mapped IPv4  %s" % d["mapped_ipv4"])
    return 0


def add_decode(p):
    p.add_argument("address", help="a Teredo IPv6 address (2001:0::/32)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


# ---- client (host build) --------------------------------------------------

def add_client(p):
    p.add_argument("--server", required=True,
                   help="Teredo server: IPv4 address or host name, or a comma-separated list of them "
                        "(the first to answer is used; a dead one is failed over)")
    p.add_argument("--server2", help="secondary server address (default: server + 1; a single IPv4 "
                                     "server only)")
    p.add_argument("--port", type=int, default=0, help="local UDP port (default: random)")
    p.add_argument("--refresh", type=int, default=30, help="refresh interval in seconds (default 30)")
    p.add_argument("--ping", metavar="ADDR", help="once qualified, ping this IPv6 address")
    p.add_argument("--count", type=int, default=4, help="pings to send with --ping (default 4)")
    p.add_argument("--echo-rate", type=int, default=200,
                   help="echo replies per second, 0 for no limit (default 200)")
    p.add_argument("--no-local-discovery", action="store_true",
                   help="do not look for Teredo clients on this LAN (RFC 4380 §5.2.8: bubbles to "
                        "224.0.0.253 let two clients behind one NAT talk directly)")
    p.add_argument("--exit-after-ping", action="store_true",
                   help="exit when the pings are done (status 0 if any reply came back)")
    p.add_argument("--app", metavar="FILE",
                   help="run this app module (async def main(iface)) once qualified, as a board would")
    t = p.add_argument_group("IPv6 tunnel (root or CAP_NET_ADMIN)")
    t.add_argument("--tun", action="store_true",
                   help="be this host's IPv6 link: a tun interface with the Teredo address and "
                        "a route for 2001::/32")
    t.add_argument("--ifname", default="teredo", help="tun interface name (default teredo)")
    t.add_argument("--default-route", action="store_true",
                   help="also a default IPv6 route via the tunnel, with a higher metric than "
                        "native routes (native IPv6 wins)")
    t.add_argument("--sunset-probe", metavar="ADDR",
                   help="RFC 4380 §5.5 sunset: when ADDR answers pings over native IPv6, the "
                        "tunnel goes dormant, and wakes when native IPv6 goes away")
    t.add_argument("--sunset-interval", type=int, default=60, metavar="S",
                   help="seconds between sunset checks (default 60)")


def cmd_client(args):
    from teredoctl import hostclient
    try:
        if args.tun:
            from teredoctl import tun
            return tun.run(args)
        return hostclient.run(args)
    except ValueError as e:
        raise CliError(str(e))


def commands(only=None):
    """The one table of commands: name -> (handler, argument adder, help).
    only: a host command (client, decode) run alone, for which the board
    commands (flashing, the virtual board: ~40 ms of imports) are not loaded."""
    table = {
        "decode": (cmd_decode, add_decode, "decode a Teredo address"),
        "client": (cmd_client, add_client, "run the Teredo client on this host"),
    }
    if only not in table:
        from teredoctl import boardcmds
        table.update(boardcmds.COMMANDS)
    return table


def build_parser(argv=None):
    p = argparse.ArgumentParser(prog="teredoctl", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    args = sys.argv[1:] if argv is None else argv
    table = commands(args[0] if args else None)
    for name in sorted(table):
        handler, adder, help_text = table[name]
        sp = sub.add_parser(name, help=help_text, description=help_text)
        adder(sp)
        sp.set_defaults(handler=handler)
    return p


def main(argv=None):
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except CliError as e:
        print("teredoctl: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
