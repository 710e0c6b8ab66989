# UDP echo (RFC 862) on port 7 of the board's Teredo address: every datagram
# goes back to where it came from.  A teredo app: a module with
# `async def main(iface)`, started once the interface is up
#   teredoctl flash --app examples/udp_echo.py            (on the board)
#   teredoctl client --server S --app examples/udp_echo.py  (on a host)
# Try it from any IPv6 host:  echo hi | nc -u -6 -w1 <board's address> 7
PORT = 7


async def main(iface):
    s = iface.socket(PORT)
    buf = bytearray(1232)  # the largest UDP payload in one Teredo packet
    while True:
        n = await s.arecv_into(buf)  # the source is in s.src6 / s.sport
        try:
            s.sendto(memoryview(buf)[:n], (s.src6, s.sport))
        except OSError:
            pass  # not qualified right now, or the transmit ring is full: UDP may drop
