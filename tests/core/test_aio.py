# teredo.aio on both interpreters' asyncio: the interface task, await aup(),
# a task waiting in arecvfrom() woken by a datagram, async for over a socket.
# The Internet is the simulated one (tests/core/harness.py).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from teredo import wire
from harness import V6HOST, interface, ip6


def udp_from(n, i, sport, dport, data):
    b = bytearray(48 + len(data))
    wire.build_udp6(b, 0, ip6(V6HOST), i.client.address, sport, dport, data, len(data))
    n.from_relay(bytes(b), i.client.address)
    n.flush()


def test_echo_app_over_asyncio():
    n, i = interface()
    i.ping(ip6(V6HOST), timeout_ms=0)
    n.flush()
    got = []

    async def app():
        await i.aup(1000)
        s = i.socket(7)
        async for data, peer in s:
            got.append((data, peer))
            s.sendto(data, peer)
            if len(got) == 3:
                s.close()

    async def internet():
        for k in range(3):
            await asyncio.sleep(0.01)
            udp_from(n, i, 4000 + k, 7, b"msg%d" % k)

    async def main():
        i.astart()
        t = asyncio.create_task(app())
        await internet()
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        i.close()
        return t

    before = len(n.sent("out"))
    asyncio.run(main())
    assert [g[0] for g in got] == [b"msg0", b"msg1", b"msg2"]
    assert [g[1] for g in got] == [(V6HOST, 4000), (V6HOST, 4001), (V6HOST, 4002)]
    echoed = [e[3][48:] for e in n.sent("out")[before:] if e[3][6] == 17]
    assert echoed == [b"msg0", b"msg1", b"msg2"]


def test_aup_times_out_with_the_reason():
    n, i = interface()
    i.down("test")
    n.server_up = False

    async def clock():
        for _ in range(200):  # the simulated clock: 20 ms a step, bounded
            n.now += 20
            await asyncio.sleep(0)

    async def main():
        t = asyncio.create_task(clock())
        try:
            await i.aup(500)
        except OSError as e:
            return e, i.status()
        finally:
            i.close()
            t.cancel()

    e, st = asyncio.run(main())
    assert "not qualified after 500 ms" in str(e) and "no answer from Teredo server" in str(e)
    assert st["error"] and "no answer" in st["error"] and st["state"] != "qualified"
