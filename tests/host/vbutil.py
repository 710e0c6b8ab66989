"""Helpers shared by the host tests that drive virtual boards."""
import os
import time


def wait_for(pred, timeout, step=0.05):
    """pred()'s first true value within timeout seconds, else its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def board_processes(flash):
    """pids of live processes started for this flash dir (interpreter or vboard)."""
    key = ("VBOARD_FLASH=%s" % flash).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if key in env and state != "Z":
            pids.append(int(d))
    return pids
