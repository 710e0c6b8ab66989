# A sensor that sends a reading to a fixed IPv6 address every few seconds,
# as one UDP datagram of text: "<board>,<sequence>,<reading>".
#   teredoctl flash --app examples/udp_sensor.py
# Edit COLLECTOR to the IPv6 address (and port) of the host that listens,
# e.g. on that host:  nc -u -6 -l 5005
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

COLLECTOR = ("2001:db8:f::100", 5005)
EVERY_S = 5
PORT = 5005  # our source port


def reading():
    """The value to send: the chip's temperature where the port has it, else
    the free heap (any board)."""
    try:
        import esp32
        return esp32.mcu_temperature()
    except (ImportError, AttributeError):
        pass
    try:
        import gc
        return gc.mem_free()
    except (ImportError, AttributeError):
        return 0


async def main(iface):
    s = iface.socket(PORT)
    seq = 0
    while True:
        if iface.qualified():
            seq += 1
            msg = "%s,%d,%s" % (iface.address, seq, reading())
            try:
                s.sendto(msg.encode(), COLLECTOR)
            except OSError as e:
                print("sensor: not sent (%s)" % e)
        await asyncio.sleep(EVERY_S)
