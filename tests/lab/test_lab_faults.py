"""Faults in the lab, with the host build: the Teredo server lost after
qualification, the relay gone and back.  Root only; CI runs these."""

import time

import pytest

import lab as L
from ourclient import OurClient

pytestmark = pytest.mark.lab


def test_server_lost_after_qualification_detected_then_recovers(lab):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--refresh", "10")
    try:
        c.wait_state("qualified")
        lab.stop_server()
        try:
            # one refresh interval (<= 10 s) plus 3 RS 4 s apart (RFC 4380 §5.2.1)
            st = c.wait_state("offline", timeout=10 + 12 + 4)
            assert "stopped answering" in st["error"] and st["address"] is None
        finally:
            lab.start_server()
        # back-off starts at 8 s: qualified again without a restart
        st = c.wait_state("qualified", timeout=8 + 4 + 6)
        assert st["error"] is None and st["address"]
    finally:
        c.stop()


def test_relay_gone_then_back_traffic_resumes(lab):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--ping", L.V6HOST, "--count", "60")
    try:
        c.wait_state("qualified")
        c.wait_for(lambda o: "ping_reply" in o, 10, "first ping reply")
        lab.stop_relay()
        try:
            time.sleep(3)
            # drain what arrived before the relay went
            while not c.lines.empty():
                c.seen.append(c.lines.get())
        finally:
            lab.start_relay()
        last_before = max([o["seq"] for o in c.seen if "ping_reply" in o] or [0])
        # the peer entry expires 30 s after the last reception (§5.2.4), then
        # the connectivity test finds the relay again
        r = c.wait_for(lambda o: "ping_reply" in o and o["seq"] > last_before + 2, 45,
                       "ping replies after the relay came back")
        assert r["ping_reply"] == L.V6HOST
    finally:
        c.stop()
