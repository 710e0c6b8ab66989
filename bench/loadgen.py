"""Loopback load generator (CPython): keeps a bounded window of requests in
flight to a UDP echo server and counts the replies, bounded in count and in
time.  The request is an encapsulated ICMPv6 echo request as the relay sends
it, so the bare echo server and the Teredo echo path get the same bytes."""

import select
import socket
import time


class LoadGen:
    """One socket for all runs against one server (the Teredo echo shell
    learns its "relay" address from the first datagram)."""

    def __init__(self, port):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]  # the server answers here
        self.s.connect(("127.0.0.1", port))
        self.s.setblocking(False)
        self.poll = select.poll()
        self.poll.register(self.s, select.POLLIN)

    def drain(self, wait_s=0.05):
        n = 0
        while self.poll.poll(int(wait_s * 1000)):
            try:
                self.s.recv(2048)
                n += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
        return n

    def run(self, request, count, window=8, max_s=5.0, reply_type=None, timeout_s=0.2):
        """Send count copies of request, at most window in flight.  A reply
        counts when reply_type is None or its byte 40 (the ICMPv6 type after
        the IPv6 header) equals reply_type.  A silence of timeout_s counts
        what is in flight as lost and refills the window.  Returns
        dict(sent, received, lost, bad, seconds, pps)."""
        self.drain(0.01)
        s = self.s
        send, recv, poll = s.send, s.recv, self.poll.poll
        sent = received = lost = bad = inflight = 0
        timeout_ms = int(timeout_s * 1000)
        t0 = time.perf_counter()
        end = t0 + max_s
        while received + lost < count:
            while inflight < window and sent < count:
                send(request)
                sent += 1
                inflight += 1
            try:  # everything that is there before waiting again
                while True:
                    r = recv(2048)
                    inflight -= 1
                    if reply_type is None or (len(r) > 40 and r[40] == reply_type):
                        received += 1
                    else:
                        bad += 1
                        lost += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
            if received + lost >= count:
                break
            if time.perf_counter() > end:
                lost += inflight
                break
            if inflight < window and sent < count:
                continue  # room in the window: send before waiting
            if not poll(timeout_ms):
                lost += inflight
                inflight = 0
        seconds = time.perf_counter() - t0
        return {"sent": sent, "received": received, "lost": lost, "bad": bad,
                "seconds": round(seconds, 4),
                "pps": round(received / seconds, 1) if seconds > 0 else 0.0}

    def stop(self):
        try:
            self.s.send(b"STOP")
        except OSError:
            pass
        self.s.close()
