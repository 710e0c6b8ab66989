"""`make bench`'s scripts run end to end with tiny counts (--quick: no lab) and
write well-formed results JSON with every figure the README table reads.
No timing assertions: speed is what the bench reports, not what tests gate."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")

CASES = ("echo_64", "echo_1280", "udp_64", "udp_1280")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not os.access(MICROPYTHON, os.X_OK):
        pytest.skip("MicroPython unix port not in the venv (make venv)")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    cp = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--out", str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    with open(str(out)) as f:
        return json.load(f), cp.stdout


def test_progress_lines_and_machine(results):
    r, stdout = results
    assert "bench: core:" in stdout and "bench: loopback:" in stdout and "bench: done" in stdout
    assert r["date"] and r["quick"] is True
    for k in ("cpu", "python", "micropython", "mpy_cross"):
        assert r["machine"][k], k


def test_core_figures_per_interpreter_and_size(results):
    r, _ = results
    for interp in ("micropython", "cpython"):
        for c in CASES:
            assert r["core_us_per_packet"][interp][c] > 0, (interp, c)
    for c in CASES:
        # the core's own proof (tests/core/test_alloc.py) held here too
        assert r["core_allocs_per_packet"]["micropython"][c] == 0, c
        assert r["core_heap_lock_ok"][c] is True, c


def test_loopback_ratios_and_size(results):
    r, _ = results
    for interp in ("micropython", "cpython"):
        assert 0 < r["overhead_vs_bare_udp"][interp], interp
        for mode in ("bare_64", "teredo_64"):
            assert r["loopback"][interp][mode]["pps"] > 0
    assert r["overhead_firmware_loop_vs_bare_udp"]["micropython"] > 0
    assert r["mpy_bytes"] == sum(r["mpy_files"].values()) > 0
    assert "teredo_console.mpy" in r["mpy_files"] and "main.py" in r["mpy_files"]
    names = [n for n, _ in r["heap_map_bytes"]]
    assert names[-1] == "total" and "Interface(): Client() state and buffers" in names


def test_lab_left_out_and_targets_say_so(results):
    r, _ = results
    assert r["lab_skipped"]
    assert "echo_ratio_vs_miredo" not in r
    by = {t["target"]: t for t in r["targets"]}
    lab_targets = [t for name, t in by.items() if "miredo" in name or "heap that" in name]
    assert lab_targets and all(t["met"] is None and t["by"] == "not measured" for t in lab_targets)
    assert all(t["met"] in (True, False) for name, t in by.items() if name.startswith(".mpy"))


def test_ping_summary_parsing():
    from bench.labbench import parse_ping
    text = ("--- 2001:0:c633:640a::1 ping statistics ---\n"
            "20007 packets transmitted, 20000 received, 0.0349866% packet loss, time 1000ms\n"
            "rtt min/avg/max/mdev = 0.1/0.3/2.0/0.1 ms, pipe 8, ipg/ewma 0.05/0.3 ms\n")
    r = parse_ping(text, 8)
    assert r["sent"] == 20007 and r["received"] == 20000
    assert r["loss"] == 0.0  # 7 still in flight when ping stopped: not lost
    assert r["replies_per_s"] == 20000.0
    assert "error" in parse_ping("ping: connect: Network is unreachable\n", 8)


def test_bench_board_main_is_the_firmware_main_with_echo_unlimited():
    from bench.labbench import ECHO_UNLIMITED, bench_main_py
    with open(os.path.join(ROOT, "app", "main.py")) as f:
        firmware_main = f.read()
    text = bench_main_py()
    assert text.replace(ECHO_UNLIMITED, "") == firmware_main
    assert text.index(ECHO_UNLIMITED) < text.rindex("teredo_console.main(")
    compile(text, "main.py", "exec")
