"""`token-broker member list|remove|role` and `user set-password`: results, one-line refusals, audit rows."""

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
    assert [sorted(m) for m in listed] == [["created_at", "email", "role", "user_id"]] * 2
    assert {(m["user_id"], m["email"], m["role"]) for m in listed} == {
        (owner, "owner@acme.example", "owner"),
        (ada, "ada@acme.example", "member"),
    }
    assert all(m["created_at"].endswith("Z") for m in listed)
    changed = cli.json("member", "role", "--workspace", account_id, "--email", "Ada@acme.example", "--role", "admin")
    assert changed == {"user_id": ada, "role": "admin"}
    # --user is the older spelling of --email, and takes a usr_ id too.
    assert cli.json("member", "role", "--workspace", account_id, "--user", ada, "--role", "viewer") == {
        "user_id": ada,
        "role": "viewer",
    }
    removed = cli.json("member", "remove", "--workspace", account_id, "--email", "ada@acme.example")
    assert removed == {"user_id": ada, "removed": True}
    assert [m["user_id"] for m in cli.json("member", "list", "--workspace", account_id)] == [owner]
    assert actions(cli, "membership.role_changed") == [("ok", None), ("ok", None)]
    assert actions(cli, "membership.removed") == [("ok", None)]


def test_bad_input_gets_one_clear_error_each(cli: Cli, account_id: str) -> None:
    owner = add(cli, account_id, "owner@acme.example", "owner")
    add(cli, account_id, "ada@acme.example", "member")
    cases = [
        (("member", "remove", "--workspace", account_id, "--email", "nobody@acme.example"), 1, "not_found"),
        (("member", "remove", "--workspace", "acc_nope", "--email", "owner@acme.example"), 1, "not_found"),
        (("member", "remove", "--workspace", account_id, "--email", "owner@acme.example"), 1, "conflict"),
        (("member", "remove", "--workspace", account_id), 2, "usage"),
        (("member", "role", "--workspace", account_id, "--email", "owner@acme.example", "--role", "viewer"), 1,
         "conflict"),
        (("member", "role", "--workspace", account_id, "--email", "ada@acme.example", "--role", "member"), 1,
         "conflict"),
        (("member", "role", "--workspace", account_id, "--email", owner, "--role", "king"), 2, "usage"),
        (("member", "role", "--workspace", account_id, "--role", "admin"), 2, "usage"),
        (("member", "role", "--workspace", "acc_nope", "--email", owner, "--role", "admin"), 1, "not_found"),
        (("member", "list", "--workspace", "acc_nope"), 1, "not_found"),
        (("member", "list"), 2, "usage"),
    ]  # fmt: skip
    for args, status, code in cases:
        got_status, body, _ = refused(cli, *args)
        assert (got_status, body["error"]) == (status, code), (args, body)
    assert "last owner" in refused(cli, "member", "remove", "--workspace", account_id, "--email", owner)[2]
    assert "last owner" in refused(cli, "member", "role", "--workspace", account_id, "--email", owner, "--role",
                                   "admin")[2]  # fmt: skip
    assert [reason for _, reason in actions(cli, "membership.removed")] == ["not_found", "not_found", "conflict",
                                                                            "conflict"]  # fmt: skip
    assert [reason for _, reason in actions(cli, "membership.role_changed")] == ["conflict", "conflict",
                                                                                 "not_found", "conflict"]  # fmt: skip


def test_the_operator_sets_a_password_from_standard_input(cli: Cli, account_id: str) -> None:
    ada = add(cli, account_id, "ada@acme.example", "member")
    assert cli.json("user", "set-password", "--email", "ada@acme.example", stdin="a fresh password\n") == {
        "user_id": ada
    }
    # reset-password and --user are the older spellings.
    assert cli.json("user", "reset-password", "--user", ada, stdin="a fresher password\n") == {"user_id": ada}
    for args, stdin, status, code in [
        (("user", "set-password", "--email", "nobody@acme.example"), "a fresh password\n", 1, "not_found"),
        (("user", "set-password", "--email", "ada@acme.example"), "short\n", 2, "invalid_request"),
        (("user", "set-password", "--email", "ada@acme.example"), "", 2, "invalid_request"),
        (("user", "set-password"), "a fresh password\n", 2, "usage"),
    ]:
        got_status, body, _ = refused(cli, *args, stdin=stdin)
        assert (got_status, body["error"]) == (status, code), args
    assert actions(cli, "user.password_reset") == [("ok", None), ("ok", None), ("refused", "not_found")]
    # The old password no longer adds Ada to another workspace; the new one does.
    other = cli.json("workspace", "create", "--name", "Globex")["account_id"]
    status, body, _ = refused(cli, "user", "create", "--email", "ada@acme.example", "--workspace", other, "--role",
                              "viewer", stdin=PASSWORD + "\n")  # fmt: skip
    assert (status, body["error"]) == (1, "conflict")
    assert cli.json("user", "create", "--email", "ada@acme.example", "--workspace", other, "--role", "viewer",
                    stdin="a fresher password\n")["created"] is False  # fmt: skip
