"""TCP over Teredo through an impaired relay link, with the host build
(`teredoctl client --app examples/http_status.py`) and curl on the IPv6-only
host.  Root only.

The impairments are real packet drops, copies and delays of the UDP (Teredo)
datagrams between the miredo relay (198.51.100.20:3544) and our client's NAT
(198.51.100.31), in both directions, made inside the relay's namespace
(tests/lab/impair.py; this kernel has no netem):

- loss: iptables `-m statistic --mode random --probability 0.05 -j DROP` in
  INPUT (from the NAT) and in OUTPUT (to the NAT): 5 % each way;
- duplication: `-m statistic --probability 0.02 -j TEE --gateway ...` in the
  mangle table: toward the NAT the copy is sent to the NAT's address itself;
  from the NAT it is sent to the relay's own address (it comes back in over
  lo, addressed as the original): 2 % each way, each copy then meets the
  loss and delay rules on its own;
- delay, jitter and so reordering: `-j NFQUEUE --queue-num 7 --queue-bypass`
  and impair.py's NFQUEUE consumer holding every packet 100 ms +- 20 ms
  (uniform) before NF_ACCEPT, in due-time order: 200 +- 40 ms added to each
  round trip, and packets closer than 40 ms often overtake each other.

What the server side of our TCP meets: data segments lost, copied and
reordered, ACKs likewise; its transmit ring is 4 KB (3 segments in flight),
so most losses end in a retransmission time-out (RFC 6298, 1 s minimum)
rather than a fast retransmit.  Measured here: 7-10 KB/s under the full mix
(200 KB in 20-29 s over four runs), against 2.4 MB/s without impairments.
"""
import time

import pytest

import lab as L
from impair import Impairment
from tcputil import HTTP, blob_sha, curl, file_sha, median, ping_rtts, start_app, status_json

pytestmark = pytest.mark.lab

BLOB = 200000  # bytes: 20-29 s under the full mix on this machine


@pytest.fixture
def web(lab):
    c, address = start_app(lab, HTTP, "http-impaired.log")
    try:
        yield c, address
    finally:
        c.stop()


def relay_link(lab, **kw):
    """The relay <-> client NAT link, impaired as asked (see the docstring)."""
    return Impairment(lab, "rly", "eth0", remote=L.NAT1_WAN, local=L.RELAY_IP, max_seconds=600, **kw)


def fetch_blob(lab, address, tmp_path, n, timeout=300):
    out = str(tmp_path / "blob")
    t0 = time.monotonic()
    r = curl(lab, "v6h", "http://[%s]/blob?bytes=%d" % (address, n), out, timeout)
    return r, time.monotonic() - t0, out


def test_the_delay_is_real_and_the_path_survives_its_consumer_dying(lab, web):
    c, address = web
    ping_rtts(lab, address, 2)  # the relay's path to the client is set up
    base = median(ping_rtts(lab, address))
    imp = relay_link(lab, delay_ms=100)
    try:
        delayed = median(ping_rtts(lab, address))
        held = imp.packets("NFQUEUE")
        # SIGKILL: nothing accepts the queue any more; --queue-bypass lets
        # the packets through undelayed while the rules stay
        imp.proc.kill()
        imp.proc.wait(10)
        bypassed = median(ping_rtts(lab, address, 5))
        still = imp.packets("NFQUEUE")
    finally:
        imp.stop()
    print("ping RTT median: %.2f ms plain, %.2f ms with 100 ms each way, %.2f ms after the consumer died"
          % (base, delayed, bypassed))
    assert held >= 20, held  # 10 requests and 10 replies went through the queue
    assert 180 <= delayed - base <= 260, (base, delayed)
    assert still > held and bypassed < base + 50, (base, bypassed, held, still)


def test_blob_byte_for_byte_through_loss_delay_jitter_and_duplication(lab, web, tmp_path):
    c, address = web
    assert status_json(lab, address, tmp_path)["state"] == "qualified"  # the path is up
    imp = relay_link(lab, loss=0.05, dup=0.02, delay_ms=100, jitter_ms=20)
    try:
        r, dt, out = fetch_blob(lab, address, tmp_path, BLOB)
        drops, copies = imp.packets("DROP"), imp.packets("TEE")
    finally:
        q = imp.stop()
    st = status_json(lab, address, tmp_path, "after.json")["tcp"]["counters"]
    print("%d bytes in %.1f s (%.1f KB/s); relay link: %d dropped, %d duplicated, %d delayed, %d reordered; "
          "our TCP: %d retransmits, %d fast retransmits, %d duplicate ACKs, %d out of order"
          % (BLOB, dt, BLOB / dt / 1000, drops, copies, q.get("packets", 0), q.get("reordered", 0),
             st["retransmits"], st["fast_retransmits"], st["dup_acks"], st["out_of_order"]))
    assert r.stdout == "200 %d" % BLOB, r.stdout + r.stderr
    assert file_sha(out) == blob_sha(BLOB)
    # the impairments really happened (each is near certain over ~400 packets)
    assert drops > 0 and copies > 0 and q["reordered"] > 0, (drops, copies, q)
    assert q["accepted"] == q["packets"], q  # the consumer let every packet go
    assert st["retransmits"] + st["fast_retransmits"] > 0, st


def test_blob_byte_for_byte_through_loss_and_delay(lab, web, tmp_path):
    c, address = web
    assert status_json(lab, address, tmp_path)["state"] == "qualified"
    imp = relay_link(lab, loss=0.05, delay_ms=100, jitter_ms=20)
    try:
        r, dt, out = fetch_blob(lab, address, tmp_path, BLOB)
        drops = imp.packets("DROP")
    finally:
        q = imp.stop()
    print("%d bytes in %.1f s (%.1f KB/s); %d dropped, %d reordered" % (BLOB, dt, BLOB / dt / 1000, drops,
                                                                         q.get("reordered", 0)))
    assert r.stdout == "200 %d" % BLOB, r.stdout + r.stderr
    assert file_sha(out) == blob_sha(BLOB)
    assert drops > 0 and q["reordered"] > 0, (drops, q)
