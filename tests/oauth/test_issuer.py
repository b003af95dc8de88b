"""The issuer comes from TOKEN_BROKER_ISSUER only, never from a request: `serve` refuses to start without it, and
what the metadata, the authorization responses and the OpenAPI document name ignores the Host header."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.browser_forms import sign_in
from tests.connect import approve, authorize_params, redirect_query, register
from tests.live import LiveServer, live_server
from tests.servers import command_env, console_script, free_port
from tests.support import PASSWORD, Team
from token_broker.app import create_app
from token_broker.config import Settings, SettingsError


def test_serve_without_an_issuer_refuses_to_start(tmp_path: Path) -> None:
    env = command_env(f"sqlite:///{tmp_path / 'store.db'}")
    env.pop("TOKEN_BROKER_ISSUER", None)
    done = subprocess.run([console_script(), "serve", "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TOKEN_BROKER_ISSUER" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "store.db").exists()  # refused before touching the store


def test_create_app_without_an_issuer_is_refused() -> None:
    with pytest.raises(SettingsError, match="TOKEN_BROKER_ISSUER"):
        create_app(Settings(database_url="sqlite:///:memory:", secret_key="k" * 40))


@pytest.mark.parametrize(
    "value",
    [
        "http://broker.example",
        "ftp://broker.example",
        "https://",
        "https://broker.example/?x=1",
        "https://broker.example/#f",
        "broker.example",
        "https://broker .example",
    ],
)
def test_an_issuer_that_is_not_an_https_url_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="TOKEN_BROKER_ISSUER"):
        Settings.from_env({"TOKEN_BROKER_ISSUER": value})


def test_issuer_forms_that_are_accepted() -> None:
    assert Settings.from_env({"TOKEN_BROKER_ISSUER": "https://broker.example/"}).issuer == "https://broker.example"
    assert Settings.from_env({"TOKEN_BROKER_ISSUER": "https://a.example/tb"}).issuer == "https://a.example/tb"
    assert Settings.from_env({"TOKEN_BROKER_ISSUER": "http://127.0.0.1:8000"}).issuer == "http://127.0.0.1:8000"
    assert Settings.from_env({"TOKEN_BROKER_ISSUER": "http://localhost:8000"}).issuer == "http://localhost:8000"


def test_the_metadata_ignores_the_host_header(live: LiveServer) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    answer = httpx.get(f"{live.base_url}/.well-known/oauth-authorization-server", headers=forged)
    assert answer.status_code == 200
    assert answer.json()["issuer"] == live.base_url and "evil" not in answer.text
    openapi = httpx.get(f"{live.base_url}/openapi.json", headers=forged)
    assert openapi.status_code == 200 and "evil.example" not in openapi.text


def test_the_configured_issuer_is_what_the_metadata_names(database_url: str) -> None:
    with live_server(database_url, issuer="https://broker.example") as live:
        answer = httpx.get(f"{live.base_url}/.well-known/oauth-authorization-server")
        document = answer.json()
        assert document["issuer"] == "https://broker.example"
        assert document["token_endpoint"] == "https://broker.example/oauth/token"
        # built from the settings alone, so a shared cache may keep it
        assert "private" not in answer.headers["cache-control"]


def test_authorization_responses_ignore_the_host_header(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    with live.client() as browser:
        assert sign_in(browser, "admin@acme.example", PASSWORD).status_code == 303
        browser.headers["Host"] = "evil.example"
        answer = approve(browser, authorize_params(platform), team.account_id)
        assert answer.status_code == 303, answer.text
        assert redirect_query(answer)["iss"] == live.base_url
