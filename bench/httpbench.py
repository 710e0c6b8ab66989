"""The web page example's transfer endpoints for Linux's own TCP, run in a lab
namespace (cli2, behind miredo's client) so that the bench compares the
board's TCP with Linux's on the same relay path and the same requests:
GET /blob?bytes=N (byte i is i % 256) and PUT /sink (answers the body's
length).  Serves until killed; every request is bounded by its length.

    python httpbench.py PORT
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket

CHUNK = bytes(range(256)) * 64
LIMIT = 64 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if not self.path.startswith("/blob?bytes="):
            return self._answer(404, b"not found\n")
        n = int(self.path[12:])
        if not 0 <= n <= LIMIT:
            return self._answer(400, b"too big\n")
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.send_header("Connection", "close")
        self.end_headers()
        while n > 0:
            k = min(n, len(CHUNK))
            self.wfile.write(CHUNK[:k])
            n -= k

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "-1"))
        if self.path != "/sink" or not 0 <= n <= LIMIT:
            return self._answer(400, b"bad request\n")
        got = 0
        while got < n:
            d = self.rfile.read(min(65536, n - got))
            if not d:
                break
            got += len(d)
        self._answer(200 if got == n else 400, b"%d\n" % got)


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


if __name__ == "__main__":
    Server(("::", int(sys.argv[1])), Handler).serve_forever()
