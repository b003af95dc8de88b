"""`token-broker org create|list|show|add-workspace|role|governance`: results, one-line refusals, audit rows."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.support import CHEAP_HASHING_ENV, PASSWORD
from tests.test_cli import Cli
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name, value in CHEAP_HASHING_ENV.items():
        monkeypatch.setenv(name, value)
    return Cli(database_url, capsys, monkeypatch)


def refused(cli: Cli, *args: str) -> tuple[int, str, str]:
    status, out, err = cli.run(*args, "--json")
    assert err.count("\n") == 1 and err.startswith("token-broker: ")
    return status, json.loads(out)["error"], err


def outcomes(cli: Cli, action: str) -> list[tuple[str, str | None]]:
    database = Database(cli.database_url)
    try:
        with database.read() as session:
            rows = session.execute(
                select(AuditEvent.outcome, AuditEvent.reason).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
            return [(outcome, reason) for outcome, reason in rows]
    finally:
        database.dispose()


def test_an_organization_from_creation_to_governance(cli: Cli) -> None:
    acme = cli.json("workspace", "create", "--name", "Acme")["account_id"]
    labs = cli.json("workspace", "create", "--name", "Acme Labs")["account_id"]
    cli.json("user", "create", "--email", "ceo@acme.example", "--workspace", acme, "--role", "owner",
             stdin=PASSWORD + "\n")  # fmt: skip
    cli.json("user", "create", "--email", "cto@acme.example", "--workspace", labs, "--role", "admin",
             stdin=PASSWORD + "\n")  # fmt: skip
    org = cli.json("org", "create", "--name", "Acme Holdings", "--owner", "ceo@acme.example", "--workspace", acme)
    assert org["workspaces"] == [{"account_id": acme, "name": "Acme"}]
    assert [p["email"] for p in org["people"]] == ["ceo@acme.example"]
    added = cli.json("org", "add-workspace", org["id"], "--workspace", labs)
    assert {w["account_id"] for w in added["workspaces"]} == {acme, labs}
    named = cli.json("org", "role", org["id"], "--user", "cto@acme.example", "--role", "admin")
    assert {p["email"]: p["role"] for p in named["people"]} == {
        "ceo@acme.example": "owner",
        "cto@acme.example": "admin",
    }
    assert cli.json("org", "list") == [{"id": org["id"], "name": "Acme Holdings"}]
    assert cli.json("org", "show", org["id"])["name"] == "Acme Holdings"
    cli.json("key", "create", "--workspace", labs, "--name", "Labs export")
    born = cli.json("workspace", "create", "--name", "Acme Ventures", "--organization", org["id"])["account_id"]
    assert born in {w["account_id"] for w in cli.json("org", "show", org["id"])["workspaces"]}
    assert refused(cli, "workspace", "create", "--name", "Nowhere", "--organization", "org_unknown")[:2] == (
        1,
        "not_found",
    )
    report = cli.json("org", "governance", org["id"], "--no-expiry", "--usage", "never_used")
    assert [(c["workspace"], c["name"]) for c in report["credentials"]] == [("Acme Labs", "Labs export")]
    assert outcomes(cli, "organization.created") == [("ok", None)]
    # One row for the workspace placed at creation (in its own log), one for the workspace added later.
    assert outcomes(cli, "organization.workspace_added") == [("ok", None), ("ok", None)]
    assert outcomes(cli, "organization.role_changed") == [("ok", None)]


def test_bad_input_gets_one_clear_error_each(cli: Cli) -> None:
    acme = cli.json("workspace", "create", "--name", "Acme")["account_id"]
    cli.json("user", "create", "--email", "ceo@acme.example", "--workspace", acme, "--role", "owner",
             stdin=PASSWORD + "\n")  # fmt: skip
    org = cli.json("org", "create", "--name", "Acme Holdings", "--owner", "ceo@acme.example")["id"]
    cases = [
        (("org", "create", "--name", "No owner"), 2, "invalid_request"),
        (("org", "create", "--name", "X", "--owner", "nobody@acme.example"), 1, "not_found"),
        (("org", "create", "--name", "  ", "--owner", "ceo@acme.example"), 2, "invalid_request"),
        (("org", "show", "org_unknown"), 1, "not_found"),
        (("org", "add-workspace", "org_unknown", "--workspace", acme), 1, "not_found"),
        (("org", "add-workspace", org, "--workspace", "acc_unknown"), 1, "not_found"),
        (("org", "role", org, "--user", "ceo@acme.example", "--role", "admin"), 1, "conflict"),
        (("org", "role", org, "--user", "nobody@acme.example", "--role", "admin"), 1, "not_found"),
        (("org", "role", org, "--user", "ceo@acme.example", "--role", "emperor"), 2, "usage"),
        (("org", "governance", "org_unknown"), 1, "not_found"),
    ]
    for args, status, code in cases:
        got_status, got_code, _ = refused(cli, *args)
        assert (got_status, got_code) == (status, code), args
    assert "last owner" in refused(cli, "org", "role", org, "--user", "ceo@acme.example", "--role", "none")[2]
    cli.json("org", "add-workspace", org, "--workspace", acme)
    other = cli.json("org", "create", "--name", "Other", "--owner", "ceo@acme.example")["id"]
    assert refused(cli, "org", "add-workspace", other, "--workspace", acme)[:2] == (1, "conflict")
    assert ("refused", "conflict") in outcomes(cli, "organization.workspace_added")
    assert ("refused", "invalid_request") in outcomes(cli, "organization.created")
