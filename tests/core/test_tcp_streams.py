# teredo.stream under asyncio, on both interpreters: the wake-ups of tasks
# waiting on one stream.  asyncio's usual full-duplex shape is a reader task
# and a writer task on the same stream; both must be woken for as long as
# each waits, and a close by one must wake the other.  (Found in the lab: a
# 1 MB each-way exchange hung when the writer's wait ended while the reader
# still waited.)
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from teredo import stream
from teredo.iface import Interface
from vectors import SERVER, Rand


class OneConnection:
    """Stands in for teredo.tcp (what is tested is the streams' wake-ups;
    the TCP would not fit the heap as well): one connection with nothing to
    read until the app closes it."""

    def __init__(self):
        self.closed = False

    def status(self):
        return {"connections": [{"cid": 1, "remote": "2001:db8:f::100", "rport": 5001}]}

    def readable(self, cid):
        return self.closed

    def close(self, cid, now):
        self.closed = True

    def next_deadline(self):
        return None

    def listen(self, port, backlog):
        return 0

    def accept(self, lh):
        return -1  # nobody connects

    def unlisten(self, lh, now):
        pass


def interface():
    """An Interface that never touches a network (the wake-ups need none)."""
    return Interface(SERVER, rand=Rand(3), clock=lambda: 0, udp=object())


def _spin(k=20):
    async def go():
        for _ in range(k):
            await asyncio.sleep(0)
    return go()


def test_a_second_task_waiting_on_the_stream_is_still_woken_after_the_first_leaves():
    i = interface()
    s = stream._Waitable(i)
    ready = {"reader": False, "writer": False}
    done = []

    async def wait(who):
        await s._await(lambda: ready[who])
        done.append(who)

    async def main():
        ts = [asyncio.create_task(wait("reader")), asyncio.create_task(wait("writer"))]
        await _spin()
        ready["writer"] = True   # the writer's room came: it leaves its wait
        i._tcp_wake()
        await _spin()
        ready["reader"] = True   # then data for the reader, who still waits
        i._tcp_wake()
        await _spin()
        for t in ts:
            t.cancel()
        await _spin()
        return list(done), len(i._waiters)

    got, left = asyncio.run(main())
    assert got == ["writer", "reader"], got
    assert left == 0  # nobody waits any more: the stream is off the list


def test_close_by_one_task_wakes_the_task_reading_the_stream():
    i = interface()
    i.tcp = OneConnection()
    s = stream.TCPStream(i, 1)
    got = []

    async def reader():
        got.append(await s.aread(100))

    async def main():
        r = asyncio.create_task(reader())
        await _spin()
        s.close()
        await _spin()
        if not got:
            r.cancel()
            await _spin()
        return list(got), len(i._waiters)

    got, left = asyncio.run(main())
    assert got == [b""], got  # the end of the stream, not a task waiting for ever
    assert left == 0


def test_closing_a_listener_ends_the_task_waiting_in_aaccept():
    i = interface()
    i.tcp = OneConnection()
    lst = stream.TCPListener(i, 80, 2)
    out = []

    async def server():
        try:
            await lst.aaccept()
            out.append("accepted")
        except OSError as e:
            out.append(e.args[0])

    async def main():
        t = asyncio.create_task(server())
        await _spin()
        lst.close()
        await _spin()
        if not out:
            t.cancel()
            await _spin()
        return list(out)

    assert asyncio.run(main()) == [stream.ENOTCONN]  # "listener closed", not a task hung for ever
