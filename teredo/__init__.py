# The Teredo client (RFC 4380, RFC 5991, RFC 6081) as a library, shared byte
# for byte by the ESP32 firmware (MicroPython) and the host (CPython):
#
#   import teredo
#   iface = teredo.Interface("198.51.100.10")
#   iface.up()
#   s = iface.socket(7)
#
# A lazy facade (as MicroPython's asyncio package does): a name is imported
# on first use, so the core alone costs a board only what it uses.
VERSION = "0.2.0"

_LAZY = {
    "Interface": "iface",
    "UDPSocket": "iface",
    "Client": "client",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        # MicroPython asks here before it imports a submodule for
        # "from teredo import addr": hand it the submodule
        try:
            return __import__("teredo." + name, None, None, [name])
        except ImportError:
            raise AttributeError(name)
    m = __import__("teredo." + mod, None, None, [name])
    value = getattr(m, name)
    globals()[name] = value
    return value
