# A web page served from the board to the IPv6 Internet, over the library's
# own TCP (the board's lwIP never sees these packets):
#   GET /              the board's status as a small HTML page
#   GET /status.json   the status as JSON
#   GET /blob?bytes=N  N deterministic bytes (byte i is i % 256), for transfer tests
#   PUT /sink          reads the body (Content-Length) and answers its length, for uploads
# Every answer has Content-Length and Connection: close.
#   teredoctl flash --app examples/http_status.py
#   curl -6 'http://[<board's Teredo address>]/'
import json

PORT = 80
BLOB_MAX = 16 * 1024 * 1024
CHUNK = bytes(range(256)) * 4  # 1 KB of the blob pattern; a chunk starts at a multiple of 256


def page(st):
    rows = "".join("<tr><th>%s</th><td>%s</td></tr>" % (k, st[k]) for k in sorted(st)
                   if k not in ("tcp", "sockets", "drops"))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Teredo board</title></head>"
            "<body><h1>Teredo board %s</h1><table>%s</table><p><a href='/status.json'>status.json</a>"
            "</p></body></html>" % (st.get("address") or "", rows))


async def answer(writer, code, ctype, body=None, length=None):
    n = len(body) if body is not None else length
    writer.write(("HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (code, "OK" if code == 200 else "Error", ctype, n)).encode())
    if body is not None:
        writer.write(body)
    await writer.drain()


async def blob(writer, n):
    await answer(writer, 200, "application/octet-stream", length=n)
    while n > 0:
        k = n if n < len(CHUNK) else len(CHUNK)
        writer.write(CHUNK if k == len(CHUNK) else CHUNK[:k])
        await writer.drain()
        n -= k


async def sink(reader, writer, n):
    if not 0 <= n <= BLOB_MAX:
        await answer(writer, 400, "text/plain", b"Content-Length must be 0..%d\n" % BLOB_MAX)
        return
    buf = bytearray(1024)
    got = 0
    while got < n:
        k = await reader.readinto(buf)
        if not k:
            break
        got += k
    await answer(writer, 200 if got == n else 400, "text/plain", b"%d\n" % got)


def handler(iface):
    async def handle(reader, writer):
        req = await reader.readline()
        length = 0
        while True:  # the headers: only Content-Length matters here
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            if h[:15].lower() == b"content-length:":
                try:
                    length = int(h[15:])
                except ValueError:
                    length = -1
        parts = req.split()
        if len(parts) >= 2 and parts[0] == b"PUT" and parts[1] == b"/sink":
            await sink(reader, writer, length)
            await writer.wait_closed()
            return
        path = parts[1].decode() if len(parts) >= 2 and parts[0] == b"GET" else None
        if path == "/":
            await answer(writer, 200, "text/html; charset=utf-8", page(iface.status()).encode())
        elif path == "/status.json":
            await answer(writer, 200, "application/json", json.dumps(iface.status()).encode())
        elif path is not None and path.startswith("/blob?bytes="):
            try:
                n = int(path[12:])
            except ValueError:
                n = -1
            if 0 <= n <= BLOB_MAX:
                await blob(writer, n)
            else:
                await answer(writer, 400, "text/plain", b"bytes must be 0..%d\n" % BLOB_MAX)
        else:
            await answer(writer, 404, "text/plain", b"not found\n")
        await writer.wait_closed()
    return handle


async def main(iface):
    await iface.tcp_server(handler(iface), PORT, backlog=2)
