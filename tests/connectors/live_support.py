"""What the live connector suites share: a broker on 127.0.0.1 with a workspace and its team, a recording proxy in
front of it (so each suite can check every request its connector made against the manifest), a receiver for webhook
deliveries, the user's sign-in and consent, and a runner for one step of a connector's Node code."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.routing import BaseRoute, Mount, Route

from tests.browser_forms import sign_in
from tests.connect import Platform, approve, redirect_query
from tests.connectors.connectors import endpoint_of, manifest_endpoints, served_endpoints
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.services import connections
from token_broker.store.database import Database

ADMIN_EMAIL = "admin@acme.example"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


def _paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    for route in routes:
        if isinstance(route, Route):
            yield prefix + route.path
        elif isinstance(route, Mount):
            app = route.app
            while not hasattr(app, "routes") and hasattr(app, "app"):
                app = app.app
            yield from _paths(getattr(app, "routes", []), prefix + route.path)


def broker_serves(path: str) -> bool:
    """Whether the broker's app, as create_app builds it, has a route for this path."""
    app = create_app(
        Settings(database_url="sqlite:///:memory:", secret_key="route-table-probe", issuer="https://broker.example")
    )
    return path in set(_paths(app.routes))


requires_oauth = pytest.mark.skipif(
    not broker_serves("/oauth/token"), reason="the broker does not serve /oauth/token yet (the connect flow is needed)"
)


@dataclass
class Broker:
    server: LiveServer
    database: Database
    team: Team

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def account_id(self) -> str:
        return self.team.account_id

    def consent(self, authorize_url: str, expected_base: str) -> dict[str, str]:
        """The user signs in and approves what the platform's authorize URL asks; returns the redirect's query."""
        parts = urlsplit(authorize_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{expected_base}/oauth/authorize", authorize_url
        with httpx.Client(base_url=self.base_url, timeout=30) as browser:
            assert sign_in(browser, ADMIN_EMAIL, PASSWORD).status_code == 303
            answer = approve(browser, dict(parse_qsl(parts.query)), self.account_id)
        assert answer.status_code == 303, answer.text
        return redirect_query(answer)

    def connection_of(self, platform: Platform, access_token: str) -> str:
        answer = httpx.post(
            f"{self.base_url}/oauth/introspect",
            data={"token": access_token, "client_id": platform.client_id, "client_secret": platform.client_secret},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["active"], answer.text
        connection_id: str = answer.json()["connection_id"]
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        """What an admin's Disconnect button does."""
        view = connections.disconnect(self.database, self.team.admin, connection_id, self.account_id)
        assert view.status == "disconnected"

    def wait_until_refused(self, access_token: str, seconds: float = 3) -> httpx.Response:
        """The contract gives every server a second to learn of a disconnect or a revocation; wait for it before
        asking the connector, so that its check is not a race."""
        deadline = time.monotonic() + seconds
        while True:
            answer = self.api("GET", "/v1/me", access_token)
            if answer.status_code != 200 or time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, self.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
        )

    def assert_refused_outside(self, platform: str, token: str) -> None:
        """Every endpoint the broker serves that the platform's manifest does not list: 403 insufficient_scope."""
        outside = sorted(served_endpoints() - manifest_endpoints(platform))
        assert outside, f"nothing is outside the {platform} manifest"
        for method, template in outside:
            path = (
                template.replace("{account_id}", self.account_id)
                .replace("{link_id}", "lnk_not_checked")
                .replace("{hook_id}", "hook_not_checked")
            )
            answer = self.api(method, path, token, json={} if method in ("POST", "PATCH") else None)
            assert answer.status_code == 403, (method, template, answer.text)
            assert answer.json()["error"] == "insufficient_scope", (method, template, answer.text)


@dataclass
class Recorded:
    method: str
    path: str
    query: str


class RecordingProxy:
    """Forwards every request to the broker unchanged and notes its method and path: the connector's view of the
    broker is this proxy, so `requests` is everything the connector sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                proxy.requests.append(Recorded(self.command, parts.path, parts.query))
                headers = [(name, value) for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP]
                answer = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def assert_within_manifest(self, platform: str) -> None:
        endpoints = manifest_endpoints(platform)
        api = [(request.method, request.path) for request in self.requests if request.path.startswith("/v1/")]
        assert api, "the connector made no workspace API request through the proxy"
        outside = sorted({request for request in api if endpoint_of(*request, endpoints) is None})
        assert not outside, f"{platform} made requests outside its manifest: {outside}"
        others = {request.path for request in self.requests if not request.path.startswith("/v1/")}
        assert others <= {"/oauth/token", "/oauth/revoke"}, others


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verify(self, secret: str) -> None:
        """Standard Webhooks, checked with the reference implementation."""
        Webhook(secret).verify(self.body, self.headers)


@dataclass
class HookReceiver:
    """Where the broker delivers webhooks in these tests (TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS lets it use 127.0.0.1)."""

    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.deliveries.append(Delivery(self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}"

    def __enter__(self) -> HookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, name: str, matches: Callable[[dict[str, Any]], bool], timeout: float = 30) -> Delivery:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in list(self.deliveries):
                if delivery.path == f"/hooks/{name}" and matches(delivery.event):
                    return delivery
            time.sleep(0.1)
        raise AssertionError(f"no matching delivery to /hooks/{name} within {timeout} s: {self.deliveries}")


def node_step(folder: Path, script: str, payload: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Runs one step of a connector's Node code; the script prints `RESULT <json>`."""
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"{folder} has no node_modules: run npm ci there first (scripts/test does)")
    result = subprocess.run(
        ["node", script],
        input=json.dumps(payload),
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    answer: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return answer
