"""A real `token-broker serve` run at debug level that handled keys, partner tokens, refresh tokens, codes, client
secrets, passwords, CSRF tokens and session cookies: its output is JSON lines with request ids, and none of them."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import httpx

from tests.browser_forms import hidden_inputs, sign_in
from tests.connect import authorize_params, exchange, redirect_query, refresh, register
from tests.servers import command_env, running_server
from tests.support import CHEAP_HASHING, PASSWORD, make_team
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database


def test_a_busy_run_logs_no_secret(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    database = Database(url)
    team = make_team(database, SecretHasher(CHEAP_HASHING))
    platform = register(database, "zapier")
    database.dispose()
    log_path = tmp_path / "serve.log"
    secret_values = [PASSWORD, platform.client_secret, platform.verifier, "wrong password 123"]
    env = command_env(url, TOKEN_BROKER_LOG_LEVEL="debug", TOKEN_BROKER_METRICS_TOKEN=secrets.token_urlsafe(24))
    secret_values.append(env["TOKEN_BROKER_METRICS_TOKEN"])
    with running_server(env, log_path) as base, httpx.Client(base_url=base, timeout=30) as browser:
        assert sign_in(browser, "admin@acme.example", "wrong password 123").status_code != 303
        assert sign_in(browser, "admin@acme.example", PASSWORD).status_code == 303
        secret_values += [value for value in browser.cookies.values() if len(value) >= 16]
        csrf = browser.get("/api/session").json()["csrf_token"]
        secret_values.append(csrf)
        made = browser.post(f"/api/workspaces/{team.account_id}/keys", json={"name": "logged?"},
                            headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        secret_values.append(key)
        rotated = browser.post(f"/api/workspaces/{team.account_id}/keys/{made.json()['id']}/rotate",
                               json={"grace_seconds": 60}, headers={"X-CSRF-Token": csrf})  # fmt: skip
        secret_values.append(rotated.json()["key"])
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-Nim-Api-Key": rotated.json()["key"]},
                        {"Authorization": f"Bearer {key[:-3]}"}, {"Authorization": f"Basic {key}"}):  # fmt: skip
            browser.get("/v1/me", headers=headers)
        browser.get("/v1/me", params={"api_key": key})  # a key in the query string must not reach the log either
        page = browser.get("/oauth/authorize", params=authorize_params(platform, state="state-" + "s" * 20))
        fields = hidden_inputs(page.text, "/oauth/authorize")
        answer = browser.post("/oauth/authorize", data={**fields, "account_id": team.account_id, "decision": "approve"})
        code = redirect_query(answer)["code"]
        secret_values.append(code)
        tokens = exchange(base, platform, code, style="basic").json()
        renewed = refresh(base, platform, tokens["refresh_token"]).json()
        secret_values += [tokens["access_token"], tokens["refresh_token"], renewed["access_token"],
                          renewed["refresh_token"]]  # fmt: skip
        browser.get("/v1/me", headers={"Authorization": f"Bearer {renewed['access_token']}"})
        form = {"token": renewed["refresh_token"], "client_id": platform.client_id,
                "client_secret": platform.client_secret}  # fmt: skip
        assert httpx.post(f"{base}/oauth/introspect", data=form).status_code == 200
        assert httpx.post(f"{base}/oauth/revoke", data=form).status_code == 200
        exchange(base, platform, code)  # a replayed code
        metrics = browser.get("/metrics", headers={"Authorization": f"Bearer {env['TOKEN_BROKER_METRICS_TOKEN']}"})
        assert metrics.status_code == 200
    output = log_path.read_text()
    assert len(secret_values) >= 14
    for value in secret_values:
        assert value not in output, f"a secret reached the log: {value[:6]}..."
    lines = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    requests = [line for line in lines if line["logger"] == "token_broker.access"]
    assert len(requests) >= 15
    assert all(len(line["request_id"]) >= 16 and line["route"] for line in requests)
    assert {"/v1/me", "/oauth/token", "/oauth/authorize", "/login"} <= {line["route"] for line in requests}
    assert any(line.get("credential_id") == made.json()["id"] for line in requests)
