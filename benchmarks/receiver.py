"""A local webhook receiver for the benchmarks: checks every delivery's signature, answers 204 at once, counts.

It shares the machine's cores with the worker and the store, so it is as lean as a fast real receiver: a raw asyncio
protocol, HTTP/1.1 with Content-Length bodies and keep-alive, nothing else. A delivery counts only when its
`webhook-signature` is the Standard Webhooks HMAC of its id, timestamp and body under the secret registered for its
path, and its timestamp is within 5 minutes; any other POST is answered 400 and counted as `rejected`.

- `POST /secrets` with `{"<path>": "whsec_...", ...}`: the secret of the hook at each path.
- `GET /count`: `{"count": n, "rejected": n, "first": t, "last": t}` (monotonic seconds of the first and last good
  delivery). `GET /healthz`: the readiness check.

`python -m benchmarks.receiver PORT` serves on 127.0.0.1:PORT; `receiver_process` (benchmarks/common.py) starts it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
TOLERANCE_SECONDS = 300
NO_CONTENT = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Tally:
    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {}  # path -> HMAC key
        self.count = 0
        self.rejected = 0
        self.first = 0.0
        self.last = 0.0

    def good(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
        key = self.keys.get(path)
        webhook_id, stamp = headers.get(b"webhook-id"), headers.get(b"webhook-timestamp", b"")
        signatures = headers.get(b"webhook-signature", b"").split()
        if key is None or webhook_id is None or not stamp.isdigit() or not signatures:
            return False
        if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return False
        expected = base64.b64encode(hmac.new(key, b"%s.%s.%s" % (webhook_id, stamp, body), hashlib.sha256).digest())
        return any(hmac.compare_digest(b"v1," + expected, signature) for signature in signatures)


def _answer(status: str, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(),
        len(body),
        body,
    )


class Connection(asyncio.Protocol):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._close(BAD)
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get(b"content-length", b"0")
            if not length.isdigit() or int(length) > MAX_BODY or b"transfer-encoding" in headers:
                self._close(BAD)
                return
            if len(self.buffer) < end + 4 + int(length):
                return
            body = bytes(self.buffer[end + 4 : end + 4 + int(length)])
            del self.buffer[: end + 4 + int(length)]
            method, _, rest = lines[0].partition(b" ")
            path = rest.partition(b" ")[0]
            self.transport.write(self._respond(method, path, headers, body))

    def _respond(self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        tally = self.tally
        if method == b"POST" and path == b"/secrets":
            for hook_path, secret in json.loads(body).items():
                key = base64.b64decode(secret.removeprefix("whsec_") + "==")
                tally.keys[hook_path.encode()] = key
            return NO_CONTENT
        if method == b"POST":
            if not tally.good(path, headers, body):
                tally.rejected += 1
                return _answer("400 Bad Request", b'{"error":"bad signature"}')
            now = time.monotonic()
            tally.first = tally.first or now
            tally.last = now
            tally.count += 1
            return NO_CONTENT
        if path == b"/count":
            seen = {"count": tally.count, "rejected": tally.rejected, "first": tally.first, "last": tally.last}
            return _answer("200 OK", json.dumps(seen).encode())
        return _answer("200 OK", b'{"status":"ok"}')

    def _close(self, answer: bytes) -> None:
        assert self.transport is not None
        self.transport.write(answer)
        self.transport.close()


async def serve(port: int) -> None:
    tally = Tally()
    server = await asyncio.get_running_loop().create_server(lambda: Connection(tally), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
