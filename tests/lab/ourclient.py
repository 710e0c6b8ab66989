"""Runs our host build (`teredoctl client`) inside a lab namespace and reads
its JSON status lines, with bounded waits."""

import json
import os
import queue
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class OurClient:
    def __init__(self, lab, ns, *args, log="ours.log"):
        argv = [sys.executable, "-m", "teredoctl.cli", "client"] + list(args)
        self.lab = lab
        self.lines = queue.Queue()
        self.seen = []
        self.status = {}
        self.proc = lab.popen(ns, argv, cwd=ROOT, stdout=-1, stderr=open(lab.path(log), "w"),
                              text=True, bufsize=1)
        self.log = log
        t = threading.Thread(target=self._reader, daemon=True)
        t.start()

    def _reader(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    pass

    def wait_for(self, pred, timeout, what="condition"):
        """Wait until a JSON line satisfies pred; returns it.  Fails with the
        client's log when the time runs out."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                obj = self.lines.get(timeout=max(0.05, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(obj)
            if "state" in obj:
                self.status = obj
            if pred(obj):
                return obj
        raise AssertionError("timed out after %ss waiting for %s; last status %s; log:\n%s"
                             % (timeout, what, self.status, self.lab.log_tail(self.log)))

    def drain(self):
        """Read past every line already printed (they describe the past), so
        that the next wait_for sees only what comes after now."""
        while True:
            try:
                obj = self.lines.get_nowait()
            except queue.Empty:
                return
            self.seen.append(obj)
            if "state" in obj:
                self.status = obj

    def wait_state(self, state, timeout=15):
        return self.wait_for(lambda o: o.get("state") == state, timeout, "state " + state)

    def stop(self):
        if self.proc.poll() is None:
            self.lab.stop_process(self.proc)
        return self.proc.returncode
