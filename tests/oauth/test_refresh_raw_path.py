"""The refresh grant's common case runs as fixed SQL on the DB-API cursor (services.refresh, store.raw_statements). On
both stores: it writes what the ORM's general path writes (the same rows, stored the same way, the same audit row and
change note), and a process killed between its statements, before the commit, leaves nothing of it behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from tests.connect import Platform, register
from tests.oauth.test_refresh_rotation import LIFETIMES, Family, _client, _connect, _public_id
from tests.support import Team
from token_broker.oauth.factory import build_server
from token_broker.oauth.request_adapter import build_request
from token_broker.oauth.server import BrokerAuthorizationServer
from token_broker.oauth.token_audit import refresh_event, rotated_event
from token_broker.oauth.token_routes import FORM_TYPE
from token_broker.services import refresh, tokens
from token_broker.services.actors import Actor
from token_broker.services.client_lifecycle import revoke_client, rotate_client_secret
from token_broker.services.client_rows import ClientRecord
from token_broker.services.connections import open_connection
from token_broker.services.tokens import Refreshed
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent, CredentialChange, Workspace, utcnow
from token_broker.store.oauth_models import RefreshToken
from token_broker.store.raw_statements import RawCursor

ISSUER = "https://broker.example"
ACTOR = Actor(label="client:test", client_address="203.0.113.9")
# Columns whose values differ between two families by nature (ids, secrets' hashes, times): compared by shape.
VARYING = {
    *("id", "public_id", "connection_id", "token_hash", "successor_id", "secret_hash", "previous_secret_hash", "hint"),
    *("target_id", "created_at", "expires_at", "rotated_at", "previous_valid_until", "occurred_at"),
}


def _shape(value: Any) -> str:
    """A value's stored type and form: letters and digits as x (a datetime stored as text keeps its format)."""
    if isinstance(value, str):
        return "str:" + re.sub(r"[A-Za-z0-9]", "x", value)
    return type(value).__name__


def _stored(database: Database, sql: str, **params: Any) -> dict[str, Any]:
    """One row as the driver returns it (no SQLAlchemy type processing), varying columns by shape."""
    with database.engine.connect() as connection:
        row = connection.execute(text(sql), params).mappings().one()
    return {name: _shape(value) if name in VARYING else value for name, value in row.items()}


def _written(database: Database, family: Family, issued_refresh: str) -> dict[str, Any]:
    old, new = _public_id(family.issued.refresh_token), _public_id(issued_refresh)
    tokens_sql, access_id = "SELECT * FROM refresh_tokens WHERE public_id = :p", _public_id(family.issued.access_token)
    return {
        "old": _stored(database, tokens_sql, p=old),
        "new": _stored(database, tokens_sql, p=new),
        "access": _stored(database, "SELECT * FROM credentials WHERE public_id = :p", p=access_id),
        "audit": _stored(
            database,
            "SELECT actor, workspace_id, action, outcome, reason, target_id, client_address, details, occurred_at"
            " FROM audit_events WHERE target_id = :c",
            c=family.issued.connection_id,
        ),
        "note": _stored(
            database,
            "SELECT count(*) AS notes FROM credential_changes WHERE credential_id = :p",
            p=access_id,
        ),
    }


def test_the_raw_path_writes_what_the_general_path_writes(database: Database, team: Team) -> None:
    raw_family, orm_family = _connect(database, team), _connect(database, team)
    with database.write() as session:
        rotated = refresh.rotate_active(
            session, _client(session, raw_family.client_id), raw_family.issued.refresh_token, "links:read", LIFETIMES
        )
        assert rotated is not None
        rotated_event(session, ACTOR, rotated)
    with database.write() as session:
        outcome = tokens.refresh(
            session, _client(session, orm_family.client_id), orm_family.issued.refresh_token, "links:read", LIFETIMES
        )
        assert isinstance(outcome, Refreshed) and not outcome.replay
        refresh_event(session, ACTOR, outcome)
    raw = _written(database, raw_family, rotated.tokens.refresh_token)
    orm = _written(database, orm_family, outcome.tokens.refresh_token)
    assert raw == orm
    assert raw["old"]["status"] == "rotated" and raw["new"]["status"] == "active" and raw["note"]["notes"] == 1
    assert raw["access"]["version"] == 2 and raw["audit"]["action"] == "token.refreshed"
    assert rotated.tokens.to_json().keys() == outcome.tokens.to_json().keys()
    assert (rotated.tokens.scope, rotated.tokens.expires_in) == (outcome.tokens.scope, outcome.tokens.expires_in)


# The child rotates a refresh token in a write transaction and kills itself with SIGKILL after `KILL_AFTER` of the
# raw path's statements (0: after all of them, the audit row written), before the commit; `lean`: in a lean write
# (store.lean_write), as the token route runs it, else in a write() transaction.
_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import select
    from token_broker.oauth.token_audit import rotated_event
    from token_broker.services import refresh
    from token_broker.services.actors import Actor
    from token_broker.services.tokens import TokenLifetimes
    from token_broker.store.database import Database
    from token_broker.store.oauth_models import OAuthClient
    from token_broker.store.raw_statements import RawCursor

    url, client_id, presented, kill_after, key, mode = sys.argv[1:7]
    executed = 0
    execute = RawCursor.execute

    def counted(self, statement, values):
        global executed
        rowcount = execute(self, statement, values)
        executed += 1
        if executed == int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)
        return rowcount

    RawCursor.execute = counted
    lifetimes = TokenLifetimes.of({"zapier": 3600, "make": 3600, "n8n": 3600}, 90, key)
    database = Database(url)
    with database.read() as session:
        client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).one()
    with database.lean_write() if mode == "lean" else database.write() as session:
        rotated = refresh.rotate_active(session, client, presented, None, lifetimes)
        assert rotated is not None
        rotated_event(session, Actor(label="client:test"), rotated)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("mode", ["lean", "session"])
@pytest.mark.parametrize("kill_after", [2, 4, 0])  # after the claim; after the successor's INSERT; before COMMIT
def test_a_kill_between_the_statements_leaves_nothing_written(
    database: Database, team: Team, kill_after: int, mode: str
) -> None:
    family = _connect(database, team)
    before = _counts(database)
    key = "test-secret-key-" + "k" * 32  # LIFETIMES' key
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            database.url,
            family.client_id,
            family.issued.refresh_token,
            str(kill_after),
            key,
            mode,
        ],
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert _counts(database) == before
    with database.read() as session:
        token = session.scalars(
            select(RefreshToken).where(RefreshToken.public_id == _public_id(family.issued.refresh_token))
        ).one()
    assert token.status == "active" and token.successor_id is None
    # The token still refreshes, the common way, as if the killed attempt had never been.
    with database.write() as session:
        rotated = refresh.rotate_active(
            session, _client(session, family.client_id), family.issued.refresh_token, None, LIFETIMES
        )
    assert rotated is not None


def _counts(database: Database) -> tuple[int, ...]:
    with database.read() as session:
        return (
            session.scalar(select(func.count()).select_from(RefreshToken)) or 0,
            session.scalar(select(func.count()).select_from(CredentialChange)) or 0,
            session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            session.scalar(text("SELECT version FROM credentials WHERE kind = 'pat'")) or 0,
        )


def test_the_client_read_on_the_cursor_is_the_orm_row(database: Database, team: Team) -> None:
    """The token endpoint reads its client on the cursor (oauth/server.py): the same values as the ORM, JSON and
    times decoded alike, through a secret rotation's grace and a revocation."""
    platform = register(database, "zapier")
    server = build_server(database, {}, LIFETIMES)
    for change in (None, "rotate", "revoke"):
        if change == "rotate":
            rotate_client_secret(database, Actor.operator(), platform.client_id, 3600)
        elif change == "revoke":
            revoke_client(database, Actor.operator(), platform.client_id)
        with server.transaction("https://broker.example") as session:
            found = server.query_client(platform.client_id)
            assert found is not None and server.query_client("no-such-client") is None
            row = _client(session, platform.client_id)
            for name in ClientRecord.__dataclass_fields__:
                assert getattr(found.row, name) == getattr(row, name), (change, name)
    assert (
        found.revoked and found.row.previous_valid_until is None and found.row.redirect_uris == [platform.redirect_uri]
    )


def test_a_driver_error_on_the_cursor_is_sqlalchemys_and_names_no_values(database: Database, team: Team) -> None:
    """A statement the store refuses raises SQLAlchemy's error of the same kind, as the ORM path would, without the
    parameters (hashes) in its text; the transaction rolls back whole."""
    family = _connect(database, team)
    taken = _public_id(family.issued.refresh_token)
    secret_hash = "sha256$" + "e" * 64
    before = _counts(database)
    row = {"public_id": taken, "connection_id": 1, "token_hash": secret_hash, "scope": "links:read"}

    def claim_then_clash() -> None:
        with database.write() as session:
            cursor = RawCursor(session)
            cursor.execute(refresh._CLAIM, {"token": 1, "now": utcnow(), "successor": "x"})
            cursor.execute(refresh._ADD_SUCCESSOR, {**row, "now": utcnow(), "expires_at": utcnow()})

    with pytest.raises(IntegrityError) as raised:
        claim_then_clash()
    assert secret_hash not in str(raised.value)
    assert _counts(database) == before


def _lean_family(database: Database, team: Team) -> tuple[Platform, Family]:
    """A connected client whose secret is known (for requests through the token endpoint's grant)."""
    platform = register(database, "zapier")
    with database.write() as session:
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == team.account_id)).one()
        issued = open_connection(
            session,
            _client(session, platform.client_id),
            workspace,
            "usr_test",
            ["links:read"],
            3600,
            LIFETIMES.refresh,
        )
    return platform, Family(platform.client_id, issued)


def _token_request(platform: Platform, presented: str) -> Any:
    pairs = [("grant_type", "refresh_token"), ("refresh_token", presented)]
    pairs += [("client_id", platform.client_id), ("client_secret", platform.client_secret)]
    return build_request("POST", ISSUER, "/oauth/token", {"Content-Type": FORM_TYPE}, pairs, True)


def _grant(server: BrokerAuthorizationServer, platform: Platform, presented: str) -> tuple[int, dict[str, Any]]:
    """The token endpoint's refresh grant as the route runs it (server.run_lean), without HTTP."""
    request = _token_request(platform, presented)
    response = server.run_lean(ISSUER, lambda: server.create_token_response(request))
    return response.status_code, orjson.loads(bytes(response.body))


def _audit_actions(database: Database, connection_id: str) -> list[tuple[str, str, bool]]:
    with database.read() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.target_id == connection_id).order_by(AuditEvent.id)
        ).all()
        return [(row.action, row.outcome, bool((row.details or {}).get("replay"))) for row in rows]


def test_the_lean_transaction_writes_what_the_general_path_writes(database: Database, team: Team) -> None:
    """The common case in a lean write (store.lean_write: the pool's DB-API connection, no Session) stores what the
    ORM's general path stores, and the changed access token is announced once it committed, not before."""
    lean_family, orm_family = _connect(database, team), _connect(database, team)
    heard: list[str] = []
    stop = database.on_credential_change(heard.append)
    with database.read() as session:
        client = _client(session, lean_family.client_id)
    with database.lean_write() as lean:
        rotated = refresh.rotate_active(lean, client, lean_family.issued.refresh_token, "links:read", LIFETIMES)
        assert rotated is not None
        rotated_event(lean, ACTOR, rotated)
        assert heard == []
    assert heard == [_public_id(lean_family.issued.access_token)]
    stop()
    with database.write() as session:
        outcome = tokens.refresh(
            session, _client(session, orm_family.client_id), orm_family.issued.refresh_token, "links:read", LIFETIMES
        )
        assert isinstance(outcome, Refreshed)
        refresh_event(session, ACTOR, outcome)
    assert _written(database, lean_family, rotated.tokens.refresh_token) == _written(
        database, orm_family, outcome.tokens.refresh_token
    )


def test_a_lean_write_that_fails_leaves_nothing_and_announces_nothing(database: Database, team: Team) -> None:
    family = _connect(database, team)
    before = _counts(database)
    heard: list[str] = []
    database.on_credential_change(heard.append)
    with database.read() as session:
        client = _client(session, family.client_id)

    def rotate_then_fail() -> None:
        with database.lean_write() as lean:
            rotated = refresh.rotate_active(lean, client, family.issued.refresh_token, None, LIFETIMES)
            assert rotated is not None
            rotated_event(lean, ACTOR, rotated)
            raise RuntimeError("after every statement, before the commit")

    with pytest.raises(RuntimeError):
        rotate_then_fail()
    assert _counts(database) == before and heard == []
    with database.lean_write() as lean:  # the token still refreshes, on a connection as good as new
        assert refresh.rotate_active(lean, client, family.issued.refresh_token, None, LIFETIMES) is not None
    assert _counts(database) != before and heard == [_public_id(family.issued.access_token)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL's writers take row locks
def test_a_lean_write_takes_its_turn_on_the_writers_lock(database: Database, team: Team) -> None:
    """SQLite: a lean write queues behind this process's other writers (and they behind it), as write() does."""
    entered = threading.Event()

    def lean() -> None:
        with database.lean_write():
            entered.set()

    with database.write() as session:
        session.execute(text("SELECT 1"))
        waiting = threading.Thread(target=lean)
        waiting.start()
        assert not entered.wait(0.5)  # whatever the timing, never while the other writer is in
    waiting.join(timeout=60)
    assert entered.is_set()


def test_through_the_grant_the_common_case_is_lean_and_the_rest_runs_again_with_a_session(
    database: Database, team: Team
) -> None:
    """server.run_lean, as the token route runs a refresh: the common case is answered in the lean transaction; a
    replay within the window, a reuse after it and a revoked client each need the general path (or none), which runs
    again from the start in a write() transaction, nothing of the lean attempt kept: one audit row each."""
    server = build_server(database, {}, LIFETIMES)
    platform, family = _lean_family(database, team)
    status, first = _grant(server, platform, family.issued.refresh_token)
    assert status == 200 and first["scope"] == "links:read"
    status, again = _grant(server, platform, family.issued.refresh_token)  # a retry within the replay window
    assert status == 200 and (again["access_token"], again["refresh_token"]) == (
        first["access_token"],
        first["refresh_token"],
    )
    status, second = _grant(server, platform, first["refresh_token"])
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert _audit_actions(database, family.issued.connection_id) == [
        ("token.refreshed", "ok", False),
        ("token.refreshed", "ok", True),
        ("token.refreshed", "ok", False),
    ]
    with database.write() as session:  # the window passes: the first token presented again is reuse
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.public_id == _public_id(family.issued.refresh_token))
            .values(rotated_at=utcnow() - timedelta(hours=1))
        )
    status, reused = _grant(server, platform, family.issued.refresh_token)
    assert status == 400 and reused["error"] == "invalid_grant"
    status, ended = _grant(server, platform, second["refresh_token"])  # the family was revoked with its connection
    assert status == 400 and ended["error"] == "invalid_grant"
    assert [action for action, _, _ in _audit_actions(database, family.issued.connection_id)][3:] == [
        "token.reused",
        "token.refreshed",
    ]
    other, other_family = _lean_family(database, team)
    revoke_client(database, Actor.operator(), other.client_id)
    before = _counts(database)
    status, refused = _grant(server, other, other_family.issued.refresh_token)
    assert status == 400 and refused["error"] == "invalid_grant" and _counts(database) == before


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_lean_write_whose_connection_died_leaves_the_next_one_working(database: Database, team: Team) -> None:
    """PostgreSQL: a lean write whose server process ended is raised as an error, and its connection is not pooled
    again: the next lean write works."""
    dbapi_error: type[Exception] = database.engine.dialect.loaded_dbapi.Error

    def die() -> None:
        with database.lean_write() as lean:
            lean.dbapi_connection.cursor().execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(dbapi_error):
        die()
    with database.lean_write() as lean:
        cursor = lean.dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
