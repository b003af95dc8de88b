"""A reporter, as a test plays it: locally made ECDSA P-256 key pairs, served as a key set in GitHub's format by a
small real HTTP server on 127.0.0.1, and reports signed the way GitHub signs them."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPORT_PATH = "/secret-scanning/github"


@dataclass
class SigningKey:
    identifier: str = field(default_factory=lambda: secrets.token_hex(32))
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def entry(self, current: bool = True) -> dict[str, Any]:
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"key_identifier": self.identifier, "key": pem.decode(), "is_current": current}

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": self.identifier,
            "Github-Public-Key-Signature": self.sign(body),
        }


class KeySetServer:
    """Serves {"public_keys": [...]} for the keys it is given; counts the fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                if owner.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps({"public_keys": [key.entry() for key in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/meta/public_keys/secret_scanning"


@contextmanager
def key_set_server(*keys: SigningKey) -> Iterator[KeySetServer]:
    served = KeySetServer(*keys)
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        thread.join(timeout=10)


def match(
    token: str,
    url: str = "https://github.com/octo/repo/blob/abc/config.py",
    source: str = "content",
    type: str = "token_broker_credential",
) -> dict[str, str]:
    return {"token": token, "type": type, "url": url, "source": source}


def body_of(*matches: dict[str, str]) -> bytes:
    """Compact JSON, as GitHub sends it; the signature covers exactly these bytes."""
    return json.dumps(list(matches), separators=(",", ":")).encode()


def send(base_url: str, key: SigningKey, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(base_url + REPORT_PATH, content=body, headers={**key.headers(body), **headers}, timeout=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
