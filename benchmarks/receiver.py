"""A local webhook receiver for `scripts/bench speed`: answers every POST 204 at once and counts them.

GET /count answers {"count": n, "first": t, "last": t} (monotonic seconds of the first and last POST), GET /healthz
is the readiness check. `python -m uvicorn benchmarks.receiver:app --factory`.
"""

from __future__ import annotations

import json
import time

from starlette.types import Receive, Scope, Send


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass
            now = time.monotonic()
            self.first = self.first or now
            self.last = now
            self.count += 1
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"count": self.count, "first": self.first, "last": self.last}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def app() -> Receiver:
    return Receiver()
