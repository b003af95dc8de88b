"""`token-broker member list|remove|role` and `user reset-password`: results, one-line refusals, audit rows."""

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


@pytest.fixture
def account_id(cli: Cli) -> str:
    account: str = cli.json("workspace", "create", "--name", "Acme")["account_id"]
    return account


def add(cli: Cli, account: str, email: str, role: str) -> str:
    user_id: str = cli.json("user", "create", "--email", email, "--workspace", account, "--role", role,
                            stdin=PASSWORD + "\n")["user_id"]  # fmt: skip
    return user_id


def refused(cli: Cli, *args: str, stdin: str = "") -> tuple[int, dict[str, str], str]:
    status, out, err = cli.run(*args, "--json", stdin=stdin)
    assert err.count("\n") == 1 and err.startswith("token-broker: ")
    return status, json.loads(out), err


def actions(cli: Cli, action: str) -> list[tuple[str, str | None]]:
    database = Database(cli.database_url)
    try:
        with database.read() as session:
            rows = session.execute(
                select(AuditEvent.outcome, AuditEvent.reason).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
            return [(outcome, reason) for outcome, reason in rows]
    finally:
        database.dispose()


def test_members_are_listed_changed_and_removed(cli: Cli, account_id: str) -> None:
    owner = add(cli, account_id, "owner@acme.example", "owner")
    ada = add(cli, account_id, "ada@acme.example", "member")
    listed = cli.json("member", "list", "--workspace", account_id)
    assert {m["email"]: m["role"] for m in listed} == {"owner@acme.example": "owner", "ada@acme.example": "member"}
    changed = cli.json("member", "role", "--workspace", account_id, "--user", "Ada@acme.example", "--role", "admin")
    assert changed == {"user_id": ada, "email": "ada@acme.example", "role": "admin"}
    removed = cli.json("member", "remove", "--workspace", account_id, "--user", ada)
    assert removed["status"] == "removed" and removed["user_id"] == ada
    assert [m["user_id"] for m in cli.json("member", "list", "--workspace", account_id)] == [owner]
    assert actions(cli, "membership.role_changed") == [("ok", None)]
    assert actions(cli, "membership.removed") == [("ok", None)]


def test_bad_input_gets_one_clear_error_each(cli: Cli, account_id: str) -> None:
    owner = add(cli, account_id, "owner@acme.example", "owner")
    add(cli, account_id, "ada@acme.example", "member")
    cases = [
        (("member", "remove", "--workspace", account_id, "--user", "usr_nobody"), 1, "not_found"),
        (("member", "remove", "--workspace", "acc_nope", "--user", owner), 1, "not_found"),
        (("member", "remove", "--workspace", account_id, "--user", owner), 1, "conflict"),
        (("member", "role", "--workspace", account_id, "--user", owner, "--role", "viewer"), 1, "conflict"),
        (
            ("member", "role", "--workspace", account_id, "--user", "ada@acme.example", "--role", "member"),
            1,
            "conflict",
        ),
        (("member", "role", "--workspace", account_id, "--user", owner, "--role", "king"), 2, "usage"),
        (("member", "list", "--workspace", "acc_nope"), 1, "not_found"),
    ]
    for args, status, code in cases:
        got_status, body, _ = refused(cli, *args)
        assert (got_status, body["error"]) == (status, code), (args, body)
    assert "last owner" in refused(cli, "member", "remove", "--workspace", account_id, "--user", owner)[2]
    assert [reason for _, reason in actions(cli, "membership.removed")] == ["not_found", "not_found", "conflict",
                                                                            "conflict"]  # fmt: skip


def test_the_operator_resets_a_password_from_standard_input(cli: Cli, account_id: str) -> None:
    ada = add(cli, account_id, "ada@acme.example", "member")
    reset = cli.json("user", "reset-password", "--user", "ada@acme.example", stdin="a fresh password\n")
    assert reset["user_id"] == ada and reset["sessions_ended"] is True
    for args, stdin, status, code in [
        (("user", "reset-password", "--user", "nobody@acme.example"), "a fresh password\n", 1, "not_found"),
        (("user", "reset-password", "--user", ada), "short\n", 2, "invalid_request"),
        (("user", "reset-password", "--user", ada), "", 2, "invalid_request"),
    ]:
        got_status, body, _ = refused(cli, *args, stdin=stdin)
        assert (got_status, body["error"]) == (status, code)
    assert actions(cli, "user.password_reset") == [("ok", None), ("refused", "not_found")]
    # The old password no longer adds Ada to another workspace; the new one does.
    other = cli.json("workspace", "create", "--name", "Globex")["account_id"]
    status, body, _ = refused(cli, "user", "create", "--email", "ada@acme.example", "--workspace", other, "--role",
                              "viewer", stdin=PASSWORD + "\n")  # fmt: skip
    assert (status, body["error"]) == (1, "conflict")
    assert cli.json("user", "create", "--email", "ada@acme.example", "--workspace", other, "--role", "viewer",
                    stdin="a fresh password\n")["created"] is False  # fmt: skip
