"""The library as MicroPython users install it: mip from package.json (the
unix port's own mip, over HTTP on loopback), and the manifests for frozen
firmware; everything it lists exists and nothing is missing."""
import filecmp
import functools
import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from teredo import VERSION
from teredoctl.vboard import find_micropython

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = find_micropython()


def test_package_json_lists_every_library_module_and_the_version():
    pkg = json.load(open(os.path.join(ROOT, "package.json")))
    listed = sorted(dst for dst, src in pkg["urls"])
    have = sorted("teredo/" + f for f in os.listdir(os.path.join(ROOT, "teredo")) if f.endswith(".py"))
    assert listed == have
    assert all(dst == src for dst, src in pkg["urls"])  # relative: forks and clones need no edit
    assert pkg["version"] == VERSION
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert re.search(r'^version = "%s"$' % re.escape(VERSION), pyproject, re.M)


def test_app_package_json_lists_the_console_app():
    pkg = json.load(open(os.path.join(ROOT, "app", "package.json")))
    names = sorted(dst for dst, src in pkg["urls"])
    assert names == ["teredo_config.py", "teredo_console.py"]
    for _dst, src in pkg["urls"]:
        assert os.path.isfile(os.path.join(ROOT, "app", src))
    assert pkg["version"] == VERSION


def test_manifests_freeze_the_library_and_the_app():
    m = open(os.path.join(ROOT, "manifest.py")).read()
    assert 'package("teredo")' in m and os.path.isdir(os.path.join(ROOT, "teredo"))
    a = open(os.path.join(ROOT, "app", "manifest.py")).read()
    assert 'include("../manifest.py")' in a
    for mod in re.findall(r'module\("([^"]+)"\)', a):
        assert os.path.isfile(os.path.join(ROOT, "app", mod))
    assert 'version="%s"' % VERSION in m and 'version="%s"' % VERSION in a


@pytest.mark.skipif(not MICROPYTHON, reason="MicroPython unix port not installed (make venv)")
def test_mip_installs_the_library_and_the_app_and_they_import(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        base = "http://127.0.0.1:%d" % srv.server_address[1]
        lib = str(tmp_path / "lib")
        code = ("import mip; mip.install('%s/package.json', target='%s'); "
                "mip.install('%s/app/package.json', target='%s')" % (base, lib, base, lib))
        r = subprocess.run([MICROPYTHON, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "Done" in r.stdout, r.stdout + r.stderr
    finally:
        srv.shutdown()
        srv.server_close()
    for f in os.listdir(os.path.join(ROOT, "teredo")):
        if f.endswith(".py"):
            assert filecmp.cmp(os.path.join(ROOT, "teredo", f), os.path.join(lib, "teredo", f), shallow=False)
    # what was installed imports and works on MicroPython, from /lib alone
    r = subprocess.run([MICROPYTHON, "-c", "import sys; sys.path.insert(0, '%s'); import teredo; "
                        "i = teredo.Interface('198.51.100.10'); s = i.socket(7); "
                        "print(teredo.VERSION, type(s).__name__, i.address)" % lib],
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split() == [VERSION, "UDPSocket", "None"], r.stdout + r.stderr
