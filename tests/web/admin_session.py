"""A dashboard session driven with httpx, the way the panel's own scripts would call the admin JSON API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.browser_forms import sign_in
from tests.live import LiveServer
from tests.support import PASSWORD

EMAILS = {
    "owner": "owner@acme.example",
    "admin": "admin@acme.example",
    "member": "member@acme.example",
    "viewer": "viewer@acme.example",
    "outsider": "owner@globex.example",
}


class AdminSession:
    """A signed-in httpx client that sends the session's CSRF token on unsafe methods (unless told not to)."""

    def __init__(self, client: httpx.Client, csrf_token: str) -> None:
        self.client, self.csrf_token = client, csrf_token

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf_token} if csrf else {}
        if body is None:
            return self.client.post(path, headers=headers, **kwargs)
        return self.client.post(path, json=body, headers=headers, **kwargs)

    def patch(self, path: str, body: Any = None, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf_token} if csrf else {}
        return self.client.patch(path, json=body, headers=headers)

    def delete(self, path: str, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf_token} if csrf else {}
        return self.client.delete(path, headers=headers)


@contextmanager
def signed_in(live: LiveServer, role: str) -> Iterator[AdminSession]:
    with live.client() as client:
        assert sign_in(client, EMAILS[role], PASSWORD).status_code == 303
        token = client.get("/api/session").json()["csrf_token"]
        yield AdminSession(client, token)
