"""The `token-broker` command line: every command, its --json output, and bad input answered in one line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import command_env, console_script, running_server
from tests.support import CHEAP_HASHING_ENV, PASSWORD
from token_broker.cli import main


class Cli:
    def __init__(self, database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.database_url = database_url
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def run(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        status = main([*args, "--database-url", self.database_url])
        out, err = self.capsys.readouterr()
        return status, out, err

    def json(self, *args: str, stdin: str = "") -> Any:
        status, out, err = self.run(*args, "--json", stdin=stdin)
        assert status == 0, err
        assert err == "" or err.startswith("Store the secret now")
        return json.loads(out)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name, value in CHEAP_HASHING_ENV.items():
        monkeypatch.setenv(name, value)
    return Cli(database_url, capsys, monkeypatch)


@pytest.fixture
def account_id(cli: Cli) -> str:
    account: str = cli.json("workspace", "create", "--name", "Acme")["account_id"]
    return account


def test_the_whole_key_lifecycle(cli: Cli, account_id: str) -> None:
    assert account_id.startswith("acc_")
    user = cli.json(
        "user",
        "create",
        "--email",
        "Ada@Acme.example",
        "--workspace",
        account_id,
        "--role",
        "admin",
        stdin=PASSWORD + "\n",
    )
    assert user["user_id"].startswith("usr_") and user["created"] is True
    created = cli.json(
        "key", "create", "--workspace", account_id, "--name", "Zapier prod", "--scope", "links:read",
        "--scope", "analytics:read", "--expires-in", "86400", "--allow-ip", "203.0.113.0/24",
        "--allow-ip", "2001:db8::/32", "--rate-limit", "100/minute", "--rate-limit", "10/second",
    )  # fmt: skip
    assert created["key"].startswith(f"nim_key_{created['id']}_")
    assert created["scopes"] == ["links:read", "analytics:read"]
    assert created["rate_limits"] == ["10/second", "100/minute"]
    listed = cli.json("key", "list", "--workspace", account_id)
    contract = {"id", "name", "kind", "platform", "status", "created_at", "created_by", "last_used_at", "expires_at"}
    contract |= {"scopes", "allowed_ips", "hint"}
    assert contract <= set(listed[0])
    assert listed[0]["created_by"] == "operator" and listed[0]["kind"] == "workspace_key"
    assert created["key"] not in json.dumps(listed)
    rotated = cli.json("key", "rotate", created["id"], "--grace", "0")
    assert set(rotated) == {"id", "key", "grace_until"}
    assert rotated["grace_until"] is None and rotated["key"] != created["key"]
    assert cli.json("key", "revoke", created["id"]) == {"id": created["id"], "status": "revoked"}
    assert cli.json("key", "list", "--workspace", account_id)[0]["status"] == "revoked"


def test_human_output_warns_that_the_key_is_shown_once(cli: Cli, account_id: str) -> None:
    status, out, err = cli.run("key", "create", "--workspace", account_id, "--name", "k")
    assert status == 0
    assert "key: nim_key_" in out
    assert "not shown again" in err


@pytest.mark.parametrize(
    ("args", "expected_status", "expected"),
    [
        (["key", "create", "--workspace", "acc_unknown", "--name", "k"], 1, "No workspace"),
        (["key", "list", "--workspace", "acc_unknown"], 1, "No workspace"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--allow-ip", "10.0.0.1/8"], 2, "did you mean"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--allow-ip", "nonsense"], 2, "CIDR"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--rate-limit", "5/week"], 2, "N/minute"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--scope", "everything"], 2, "unknown scope"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--expires-in", "soon"], 2, "whole number"),
        (["key", "create", "--workspace", "{acc}", "--name", "k", "--expires-in", "0"], 2, "expires_in"),
        (["key", "create", "--workspace", "{acc}", "--name", " "], 2, "name is required"),
        (["key", "rotate", "{key}", "--grace", "604801"], 2, "7 days"),
        (["key", "rotate", "{key}", "--grace", "-5"], 2, "between 0"),
        (["key", "rotate", "not-a-key-id"], 2, "is not a key id"),
        (["key", "revoke", "nim_key_whole_secret_pasted"], 2, "is not a key id"),
        (["key", "revoke", "ZZZZZZZZZZZZ"], 1, "No key"),
        (["key", "frobnicate"], 2, "invalid choice"),
        (["user", "create", "--email", "a@b.example", "--workspace", "{acc}", "--role", "god"], 2, "invalid choice"),
        (["user", "create", "--email", "not-an-email", "--workspace", "{acc}", "--role", "admin"], 2, "email"),
        (
            ["user", "create", "--email", "a@b.example", "--workspace", "acc_unknown", "--role", "admin"],
            1,
            "No workspace",
        ),
        (["workspace", "create"], 2, "--name"),
        (["workspace", "create", "--name", ""], 2, "name is required"),
        (["workspace", "create", "--name", "W", "--org", "org_unknown"], 1, "org_unknown"),
        (["workspace", "move", "{acc}", "--org", "org_unknown"], 1, "org_unknown"),
        (["workspace", "move", "acc_unknown", "--org", "org_unknown"], 1, "org_unknown"),
        (["workspace", "move", "{acc}"], 2, "--org"),
        (["org", "create"], 2, "--name"),
        (["org", "role", "--org", "org_unknown", "--email", "a@b.example", "--role", "admin"], 1, "org_unknown"),
        (["org", "role", "--org", "org_unknown", "--email", "a@b.example", "--role", "emperor"], 2, "invalid choice"),
        (["org", "role", "--org", "org_unknown", "--role", "admin"], 2, "--email"),
        (["member", "list", "--workspace", "acc_unknown"], 1, "No workspace"),
        (["member", "role", "--workspace", "{acc}", "--email", "a@b.example", "--role", "king"], 2, "invalid choice"),
        (["member", "role", "--workspace", "{acc}", "--role", "admin"], 2, "--email"),
        (["member", "role", "--workspace", "{acc}", "--email", "a@b.example", "--role", "admin"], 1, "not a member"),
        (["member", "remove", "--workspace", "{acc}"], 2, "--email"),
        (["member", "remove", "--workspace", "{acc}", "--email", "a@b.example"], 1, "not a member"),
        (["user", "set-password"], 2, "--email"),
        (["user", "set-password", "--email", "a@b.example"], 1, "No user"),
        ([], 2, "required"),
    ],
)
def test_bad_input_gets_one_line_and_a_status(
    cli: Cli, account_id: str, args: list[str], expected_status: int, expected: str
) -> None:
    key_id = cli.json("key", "create", "--workspace", account_id, "--name", "k")["id"]
    args = [arg.replace("{acc}", account_id).replace("{key}", key_id) for arg in args]
    status, out, err = cli.run(*args, stdin=PASSWORD + "\n")
    assert status == expected_status, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("token-broker: ") and expected in err
    status, out, err = cli.run(*args, "--json", stdin=PASSWORD + "\n")
    assert status == expected_status
    assert set(json.loads(out)) == {"error", "message"}


def test_password_is_required_on_stdin(cli: Cli, account_id: str) -> None:
    status, _, err = cli.run("user", "create", "--email", "a@b.example", "--workspace", account_id, "--role", "admin")
    assert status == 2 and "standard input" in err
    status, _, err = cli.run("user", "create", "--email", "a@b.example", "--workspace", account_id, "--role", "admin",
                             stdin="short\n")  # fmt: skip
    assert status == 2 and "8 to 1024" in err


def test_an_existing_user_joins_another_workspace_only_with_their_password(cli: Cli, account_id: str) -> None:
    second = cli.json("workspace", "create", "--name", "Second")["account_id"]
    first = cli.json("user", "create", "--email", "a@b.example", "--workspace", account_id, "--role", "owner",
                     stdin=PASSWORD + "\n")  # fmt: skip
    status, _, err = cli.run("user", "create", "--email", "a@b.example", "--workspace", second, "--role", "viewer",
                             stdin="another password\n")  # fmt: skip
    assert status == 1 and "password given is not theirs" in err
    joined = cli.json("user", "create", "--email", "A@B.example", "--workspace", second, "--role", "viewer",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert joined == {"user_id": first["user_id"], "created": False}
    status, _, err = cli.run("user", "create", "--email", "a@b.example", "--workspace", second, "--role", "viewer",
                             stdin=PASSWORD + "\n")  # fmt: skip
    assert status == 1 and "already a member" in err


def test_an_unmigrated_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["workspace", "create", "--name", "x", "--database-url", f"sqlite:///{tmp_path / 'new.db'}"])
    assert status == 1
    assert "token-broker migrate" in capsys.readouterr().err
    assert main(["migrate", "--database-url", f"sqlite:///{tmp_path / 'new.db'}", "--json"]) == 0


def test_an_unreachable_store_is_one_line_without_the_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://user:hunter2secret@127.0.0.1:1/none"
    assert main(["key", "list", "--workspace", "acc_x", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "hunter2secret" not in err


def token_broker(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_installed_command_never_prints_a_traceback(tmp_path: Path) -> None:
    env = command_env(f"sqlite:///{tmp_path / 'store.db'}")
    assert token_broker("migrate", env=env).returncode == 0
    for args in (["key", "revoke", "bad id"], ["key", "list", "--workspace", "acc_none"], ["nonsense"],
                 ["key", "rotate", "AAAAAAAAAAAA", "--grace", "9999999"]):  # fmt: skip
        done = token_broker(*args, env=env)
        assert done.returncode in (1, 2)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    bad_env = {**env, "TOKEN_BROKER_TRUSTED_PROXIES": "nonsense"}
    done = token_broker("migrate", env=bad_env)
    assert done.returncode == 2 and "TOKEN_BROKER_TRUSTED_PROXIES" in done.stderr and "Traceback" not in done.stderr


def test_serve_migrates_and_answers_health(tmp_path: Path) -> None:
    env = command_env(f"sqlite:///{tmp_path / 'store.db'}")
    with running_server(env, tmp_path / "server.log") as base:
        answer = httpx.get(f"{base}/healthz")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert "server" not in answer.headers
        account = token_broker("workspace", "create", "--name", "Live", "--json", env=env)
        assert account.returncode == 0, account.stderr  # the store that serve migrated is usable at once
    assert (tmp_path / "store.db.secret-key").exists()


def test_clients_and_connections(cli: Cli, account_id: str) -> None:
    zapier = cli.json("client", "create", "--platform", "zapier", "--redirect-uri",
                      "https://zapier.com/dashboard/auth/oauth/return/App1CLIAPI/")  # fmt: skip
    assert zapier["client_id"].startswith("zapier_") and len(zapier["client_secret"]) == 40
    assert ":" not in zapier["client_secret"] and "%" not in zapier["client_secret"]
    n8n = cli.json("client", "create", "--platform", "n8n", "--workspace", account_id, "--redirect-uri",
                   "https://n8n.example.com/rest/oauth2-credential/callback")  # fmt: skip
    assert n8n["client_id"].startswith("n8n_")
    for args, expected in [
        (
            ["--platform", "n8n", "--redirect-uri", "https://n8n.example.com/rest/oauth2-credential/callback"],
            "workspace",
        ),
        (["--platform", "make", "--redirect-uri", "http://make.example/cb"], "https"),
        (["--platform", "n8n", "--workspace", account_id, "--redirect-uri", "https://n8n.example.com/cb"], "ends in"),
        (
            ["--platform", "zapier", "--workspace", account_id, "--redirect-uri", "https://z.example/"],
            "every workspace",
        ),
        (["--platform", "zapier", "--redirect-uri", "https://z.example/#frag"], "fragment"),
    ]:
        status, _, err = cli.run("client", "create", *args)
        assert status == 2 and expected in err, err
    assert cli.json("connection", "list", "--workspace", account_id) == []
    status, _, err = cli.run("connection", "disconnect", "con_nothing")
    assert status == 1 and "No connection" in err
