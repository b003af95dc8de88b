"""`token-broker org ...` and `workspace create --org|move`: results, one-line refusals, audit rows."""

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
    acme = cli.json("workspace", "create", "--name", "Acme")
    assert acme == {"account_id": acme["account_id"], "org_id": None}
    labs = cli.json("workspace", "create", "--name", "Acme Labs")["account_id"]
    ceo = cli.json("user", "create", "--email", "ceo@acme.example", "--workspace", acme["account_id"],
                   "--role", "owner", stdin=PASSWORD + "\n")["user_id"]  # fmt: skip
    cto = cli.json("user", "create", "--email", "cto@acme.example", "--workspace", labs, "--role", "admin",
                   stdin=PASSWORD + "\n")["user_id"]  # fmt: skip
    org = cli.json("org", "create", "--name", "Acme Holdings")
    assert list(org) == ["org_id"] and org["org_id"].startswith("org_")
    org_id = org["org_id"]
    assert cli.json("workspace", "move", acme["account_id"], "--org", org_id) == {
        "account_id": acme["account_id"],
        "org_id": org_id,
    }
    assert cli.json("org", "role", "--org", org_id, "--email", "ceo@acme.example", "--role", "owner") == {
        "org_id": org_id,
        "user_id": ceo,
        "role": "owner",
    }
    assert cli.json("org", "role", "--org", org_id, "--email", "cto@acme.example", "--role", "admin") == {
        "org_id": org_id,
        "user_id": cto,
        "role": "admin",
    }
    # The older spellings still work: a positional ORG_ID, --user, add-workspace, --organization.
    assert cli.json("org", "add-workspace", org_id, "--workspace", labs) == {"account_id": labs, "org_id": org_id}
    shown = cli.json("org", "show", org_id)
    assert {w["account_id"] for w in shown["workspaces"]} == {acme["account_id"], labs}
    assert {p["email"]: p["role"] for p in shown["people"]} == {
        "ceo@acme.example": "owner",
        "cto@acme.example": "admin",
    }
    assert cli.json("org", "list") == [{"id": org_id, "name": "Acme Holdings"}]
    cli.json("key", "create", "--workspace", labs, "--name", "Labs export")
    born = cli.json("workspace", "create", "--name", "Acme Ventures", "--org", org_id)
    assert born == {"account_id": born["account_id"], "org_id": org_id}
    older = cli.json("workspace", "create", "--name", "Acme Old", "--organization", org_id)
    assert older["org_id"] == org_id
    assert {born["account_id"], older["account_id"]} <= {
        w["account_id"] for w in cli.json("org", "show", org_id)["workspaces"]
    }
    assert refused(cli, "workspace", "create", "--name", "Nowhere", "--org", "org_unknown")[:2] == (1, "not_found")
    report = cli.json("org", "governance", org_id, "--no-expiry", "--usage", "never_used")
    assert [(c["workspace"], c["name"]) for c in report["credentials"]] == [("Acme Labs", "Labs export")]
    # --role none takes the role away, and says so.
    assert cli.json("org", "role", org_id, "--user", cto, "--role", "none") == {
        "org_id": org_id,
        "user_id": cto,
        "role": "none",
    }
    assert [p["email"] for p in cli.json("org", "show", org_id)["people"]] == ["ceo@acme.example"]
    assert outcomes(cli, "organization.created") == [("ok", None)]
    # One row per workspace placed (in its own log): moved, added, and the two born in the organization are
    # audited as workspace.created.
    assert outcomes(cli, "organization.workspace_added") == [("ok", None), ("ok", None)]
    assert outcomes(cli, "organization.role_changed") == [("ok", None), ("ok", None), ("ok", None)]


def test_bad_input_gets_one_clear_error_each(cli: Cli) -> None:
    acme = cli.json("workspace", "create", "--name", "Acme")["account_id"]
    cli.json("user", "create", "--email", "ceo@acme.example", "--workspace", acme, "--role", "owner",
             stdin=PASSWORD + "\n")  # fmt: skip
    org = cli.json("org", "create", "--name", "Acme Holdings", "--owner", "ceo@acme.example")["org_id"]
    cases = [
        (("org", "create"), 2, "usage"),
        (("org", "create", "--name", "X", "--owner", "nobody@acme.example"), 1, "not_found"),
        (("org", "create", "--name", "  "), 2, "invalid_request"),
        (("org", "show", "org_unknown"), 1, "not_found"),
        (("workspace", "move", acme, "--org", "org_unknown"), 1, "not_found"),
        (("workspace", "move", "acc_unknown", "--org", org), 1, "not_found"),
        (("workspace", "move", acme), 2, "usage"),
        (("org", "add-workspace", "org_unknown", "--workspace", acme), 1, "not_found"),
        (("org", "role", "--org", org, "--email", "ceo@acme.example", "--role", "admin"), 1, "conflict"),
        (("org", "role", "--org", org, "--email", "nobody@acme.example", "--role", "admin"), 1, "not_found"),
        (("org", "role", "--org", "org_unknown", "--email", "ceo@acme.example", "--role", "admin"), 1, "not_found"),
        (("org", "role", "--org", org, "--email", "ceo@acme.example", "--role", "emperor"), 2, "usage"),
        (("org", "role", "--org", org, "--role", "admin"), 2, "usage"),
        (("org", "role", "--email", "ceo@acme.example", "--role", "admin"), 2, "invalid_request"),
        (("org", "governance", "org_unknown"), 1, "not_found"),
    ]
    for args, status, code in cases:
        got_status, got_code, _ = refused(cli, *args)
        assert (got_status, got_code) == (status, code), args
    last = refused(cli, "org", "role", "--org", org, "--email", "ceo@acme.example", "--role", "none")
    assert last[:2] == (1, "conflict") and "last owner" in last[2]
    cli.json("workspace", "move", acme, "--org", org)
    other = cli.json("org", "create", "--name", "Other", "--owner", "ceo@acme.example")["org_id"]
    assert refused(cli, "workspace", "move", acme, "--org", other)[:2] == (1, "conflict")
    assert ("refused", "conflict") in outcomes(cli, "organization.workspace_added")
    assert ("refused", "invalid_request") in outcomes(cli, "organization.created")
    assert ("refused", "conflict") in outcomes(cli, "organization.role_changed")
