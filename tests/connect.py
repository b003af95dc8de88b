"""Driving a connect flow as a platform and its user would: authorize URL, sign-in, consent, code, token."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.browser_forms import forms, hidden_inputs, sign_in
from tests.support import PASSWORD
from token_broker.services import clients
from token_broker.services.actors import Actor
from token_broker.store.database import Database

CALLBACKS = {
    "zapier": "https://zapier.com/dashboard/auth/oauth/return/App123CLIAPI/",
    "make": "https://www.make.com/oauth/cb/app",
    "n8n": "https://n8n.example.com/rest/oauth2-credential/callback",
}


@dataclass
class Platform:
    """An OAuth client of one platform, as registered with the broker."""

    name: str
    client_id: str
    client_secret: str
    redirect_uri: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def register(database: Database, name: str, account_id: str | None = None, admin: Actor | None = None) -> Platform:
    if name == "n8n":
        assert account_id is not None and admin is not None
        made = clients.register_client(database, admin, "n8n", [CALLBACKS["n8n"]], account_id=account_id)
    else:
        made = clients.register_client(database, Actor.operator(), name, [CALLBACKS[name]])
    return Platform(name, made.client_id, made.client_secret, CALLBACKS[name])


def authorize_params(platform: Platform, state: str = "st-123", pkce: bool = True, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": platform.client_id, "redirect_uri": platform.redirect_uri,
              "state": state}  # fmt: skip
    if pkce:
        params |= {"code_challenge": platform.challenge, "code_challenge_method": "S256"}
    return params | extra


def approve(
    browser: httpx.Client, params: dict[str, str], account_id: str, decision: str = "approve"
) -> httpx.Response:
    """GET the authorize URL (signed in), then submit the consent form; returns the final redirect."""
    page = browser.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    fields = hidden_inputs(page.text, "/oauth/authorize")
    return browser.post("/oauth/authorize", data={**fields, "account_id": account_id, "decision": decision})


def redirect_query(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def get_code(base_url: str, platform: Platform, account_id: str, email: str = "admin@acme.example",
             pkce: bool = True, **extra: str) -> str:  # fmt: skip
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        assert sign_in(browser, email, PASSWORD).status_code == 303
        answer = approve(browser, authorize_params(platform, pkce=pkce, **extra), account_id)
    assert answer.status_code == 303, answer.text
    query = redirect_query(answer)
    assert query["state"] == "st-123" and query["iss"] == base_url
    return query["code"]


def exchange(base_url: str, platform: Platform, code: str, style: str = "post", pkce: bool = True,
             **extra: str) -> httpx.Response:  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": platform.redirect_uri, **extra}
    if pkce:
        form["code_verifier"] = platform.verifier
    headers = {}
    if style == "basic":
        headers = platform.basic()
    else:
        form |= {"client_id": platform.client_id, "client_secret": platform.client_secret}
    return httpx.post(f"{base_url}/oauth/token", data=form, headers=headers, timeout=30)


def refresh(base_url: str, platform: Platform, refresh_token: str, style: str = "post", **extra: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    headers = {}
    if style == "basic":
        headers = platform.basic()
    else:
        form |= {"client_id": platform.client_id, "client_secret": platform.client_secret}
    return httpx.post(f"{base_url}/oauth/token", data=form, headers=headers, timeout=30)


def connect(
    base_url: str, platform: Platform, account_id: str, style: str = "post", pkce: bool = True
) -> dict[str, str]:
    code = get_code(base_url, platform, account_id, pkce=pkce)
    answer = exchange(base_url, platform, code, style=style, pkce=pkce)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, str] = answer.json()
    return tokens


__all__ = ["forms"]
