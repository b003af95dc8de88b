"""Receive token-broker webhooks: check each delivery's Standard Webhooks signature, then print the event.

    WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 8080

Subscribe first with the workspace API (the answer's `secret` is shown only then):

    curl -X POST "$TOKEN_BROKER_URL/v1/workspaces/$ACCOUNT_ID/hooks" -H "Authorization: Bearer $NIM_API_KEY" \
         -H "Content-Type: application/json" -d '{"event": "link.created", "target_url": "https://you.example/hooks"}'

A valid delivery is answered 204 and printed as one line: `<webhook-id> <type> <JSON data>`; one with a missing or
wrong signature, or a timestamp more than 5 minutes off, is answered 400 and printed to stderr. Deliveries are
at-least-once: the same `webhook-id` may arrive again after a timeout or an error, so process each id once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_BODY = 1024 * 1024


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    webhook = Webhook(secret)
    seen: set[str] = set()
    # Deliveries arrive concurrently (one thread each): the check of `seen` and the line written must not interleave.
    one_at_a_time = threading.Lock()

    def say(line: str, stream: TextIO = sys.stdout) -> None:
        with one_at_a_time:
            stream.write(line + "\n")
            stream.flush()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                self.answer(413)
                return
            body = self.rfile.read(length)
            try:
                event = webhook.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError) as error:  # ValueError: not UTF-8, not JSON, bad base64
                say(f"refused a delivery: {error}", sys.stderr)
                self.answer(400)
                return
            webhook_id = self.headers["webhook-id"]
            with one_at_a_time:
                first_time = webhook_id not in seen
                seen.add(webhook_id)
            if first_time:
                say(f"{webhook_id} {event['type']} {json.dumps(event['data'], sort_keys=True)}")
            else:
                say(f"{webhook_id} again (already processed)")
            self.answer(204)

        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description="Receive and verify token-broker webhooks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        print("set WEBHOOK_SECRET to the hook's secret (whsec_...), shown when the hook was created", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), make_handler(secret))
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
