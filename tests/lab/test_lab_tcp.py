"""TCP over Teredo with the host build (`teredoctl client --app`): the
library's TCP against the real Linux TCP stack, curl on the IPv6-only host
(through the miredo relay) and on the miredo peer client (Teredo to Teredo),
fetching the web page example.  Root only; CI runs these."""
import hashlib
import json
import os
import sys

import pytest

import lab as L
from ourclient import OurClient

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTP = os.path.join(ROOT, "examples", "http_status.py")


def app_state(o):
    a = o.get("app") if "state" in o else None
    return a.get("state") if isinstance(a, dict) else None


def blob_sha(n):
    return hashlib.sha256(bytes(i & 0xFF for i in range(n))).hexdigest()


def curl(lab, ns, url, out, timeout=120):
    return lab.run(ns, ["curl", "-6", "-sS", "--max-time", str(timeout), "-o", out,
                        "-w", "%{http_code} %{size_download}", url], timeout=timeout + 10)


@pytest.fixture
def web(lab):
    c = OurClient(lab, "cli1", "--server", L.SERVER_IP, "--app", HTTP, log="http.log")
    try:
        st = c.wait_for(lambda o: app_state(o) == "running", 20, "the web app running")
        yield c, st["address"]
    finally:
        c.stop()


def test_curl_from_the_ipv6_only_host_gets_page_status_and_a_1mb_blob(lab, web, tmp_path):
    c, address = web
    base = "http://[%s]" % address
    page = str(tmp_path / "page.html")
    r = curl(lab, "v6h", base + "/", page)
    assert r.stdout.startswith("200 "), r.stdout + r.stderr
    html = open(page).read()
    assert "<html>" in html and address in html
    st = str(tmp_path / "status.json")
    r = curl(lab, "v6h", base + "/status.json", st)
    assert r.stdout.startswith("200 "), r.stdout + r.stderr
    j = json.load(open(st))
    assert j["state"] == "qualified" and j["address"] == address
    assert 80 in j["tcp"]["listening"]
    blob = str(tmp_path / "blob")
    r = curl(lab, "v6h", base + "/blob?bytes=1000000", blob, timeout=180)
    assert r.stdout == "200 1000000", r.stdout + r.stderr
    assert hashlib.sha256(open(blob, "rb").read()).hexdigest() == blob_sha(1000000)


def test_curl_puts_a_body_the_board_reads_whole(lab, web, tmp_path):
    """PUT /sink: the board reads the whole body (host -> board) and answers
    its length; a body shorter than its Content-Length is answered 400."""
    c, address = web
    body = tmp_path / "body"
    body.write_bytes(bytes(range(256)) * 1200)  # 307200 bytes
    out = str(tmp_path / "answer")
    r = lab.run("v6h", ["curl", "-6", "-sS", "--max-time", "120", "-H", "Expect:", "-T", str(body),
                        "-o", out, "-w", "%{http_code} %{size_upload}",
                        "http://[%s]/sink" % address], timeout=130)
    assert r.stdout == "200 307200", r.stdout + r.stderr
    assert open(out).read() == "307200\n"
    # a client that promises more than it sends and closes its side
    r = lab.run("v6h", [sys.executable, "-c",
                        "import socket,sys; s=socket.create_connection((sys.argv[1], 80), 20);"
                        "s.sendall(b'PUT /sink HTTP/1.0\\r\\n'"
                        " b'Content-Length: 5000\\r\\n\\r\\n' + bytes(1000));"
                        "s.shutdown(socket.SHUT_WR); d=b''\n"
                        "while True:\n c=s.recv(4096)\n if not c: break\n d+=c\n"
                        "print(d.split(b' ')[1].decode(), d.rsplit(b'\\n', 2)[-2].decode())", address],
                timeout=30)
    assert r.stdout.split() == ["400", "1000"], r.stdout + r.stderr


def test_curl_from_the_miredo_peer_client(lab, web, tmp_path):
    c, address = web
    lab.peer_teredo_address(timeout=30)
    blob = str(tmp_path / "blob")
    r = curl(lab, "cli2", "http://[%s]/blob?bytes=200000" % address, blob, timeout=120)
    assert r.stdout == "200 200000", r.stdout + r.stderr
    assert hashlib.sha256(open(blob, "rb").read()).hexdigest() == blob_sha(200000)


def test_closed_port_gets_rst(lab, web):
    c, address = web
    r = lab.run("v6h", [sys.executable, "-c",
                        "import socket,sys\n"
                        "s=socket.socket(socket.AF_INET6); s.settimeout(8)\n"
                        "try:\n    s.connect((sys.argv[1], 81)); print('connected')\n"
                        "except ConnectionRefusedError: print('refused')\n"
                        "except socket.timeout: print('timeout')\n", address], timeout=20)
    assert r.stdout.strip() == "refused", r.stdout + r.stderr
