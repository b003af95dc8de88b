"""The refresh grant's common case in few statements (services.refresh), on both stores: it writes what the general
path writes, leaves everything else to the general path untouched, and a refresh that waits for a concurrent one's
lock is answered as that one's replay (the same pair), never a second rotation."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from tests.connect import register
from tests.support import Team
from token_broker import credentials
from token_broker.services import refresh, tokens
from token_broker.services.connections import IssuedTokens, open_connection
from token_broker.services.tokens import Refreshed, Refused, TokenLifetimes
from token_broker.store.database import Database
from token_broker.store.models import Credential, CredentialChange, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient, RefreshToken

LIFETIMES = TokenLifetimes.of({"zapier": 3600, "make": 3600, "n8n": 3600}, 90, "test-secret-key-" + "k" * 32)


@dataclass(frozen=True)
class Family:
    client_id: str
    issued: IssuedTokens


def _connect(database: Database, team: Team, scopes: list[str] | None = None) -> Family:
    platform = register(database, "zapier")
    with database.write() as session:
        client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == platform.client_id)).one()
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == team.account_id)).one()
        issued = open_connection(
            session, client, workspace, "usr_test", scopes or ["links:read", "links:write"], 3600, LIFETIMES.refresh
        )
    return Family(platform.client_id, issued)


def _client(session: Session, client_id: str) -> OAuthClient:
    return session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).one()


def _public_id(token: str) -> str:
    return credentials.parse(token).public_id


def _general_refresh(database: Database, client_id: str, presented: str) -> IssuedTokens | Refreshed | Refused:
    """What the grant does: the common case first, then the general path."""
    with database.write() as session:
        client = _client(session, client_id)
        rotated = refresh.rotate_active(session, client, presented, None, LIFETIMES)
        if rotated is not None:
            return rotated.tokens
        return tokens.refresh(session, client, presented, None, LIFETIMES)


def _notes(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(CredentialChange)) or 0


def test_a_rotation_writes_what_the_general_path_writes(database: Database, team: Team) -> None:
    family = _connect(database, team)
    notes = _notes(database)
    with database.write() as session:
        client = _client(session, family.client_id)
        rotated = refresh.rotate_active(session, client, family.issued.refresh_token, "links:read", LIFETIMES)
    assert rotated is not None
    issued = rotated.tokens
    assert issued.scope == "links:read" and issued.connection_id == family.issued.connection_id
    assert issued.account_id == team.account_id and issued.expires_in == 3600
    with database.read() as session:
        old_id, new_id = _public_id(family.issued.refresh_token), _public_id(issued.refresh_token)
        old = session.scalars(select(RefreshToken).where(RefreshToken.public_id == old_id)).one()
        new = session.scalars(select(RefreshToken).where(RefreshToken.public_id == new_id)).one()
        access = session.scalars(select(Credential).where(Credential.connection_id == old.connection_id)).one()
    assert old.status == "rotated" and old.rotated_at is not None and old.successor_id == new_id
    assert new.status == "active" and new.scope == "links:read links:write"  # the grant stays; the token narrows
    assert new.token_hash == credentials.fast_hash(issued.refresh_token)
    assert access.secret_hash == credentials.fast_hash(issued.access_token) and access.version == 2
    assert access.previous_secret_hash == credentials.fast_hash(family.issued.access_token)
    assert access.previous_valid_until is not None and access.scopes == ["links:read"]
    assert _notes(database) == notes + 1
    # The same token again: left to the general path, which answers the replay with the same pair.
    again = _general_refresh(database, family.client_id, family.issued.refresh_token)
    assert isinstance(again, Refreshed) and again.replay
    assert (again.tokens.access_token, again.tokens.refresh_token) == (issued.access_token, issued.refresh_token)


def test_an_expired_access_token_is_not_kept_as_the_previous_one(database: Database, team: Team) -> None:
    family = _connect(database, team)
    with database.write() as session:
        past = utcnow() - timedelta(minutes=1)
        expired = update(Credential).where(Credential.public_id == _public_id(family.issued.access_token))
        session.execute(expired.values(expires_at=past))
    issued = _general_refresh(database, family.client_id, family.issued.refresh_token)
    assert isinstance(issued, IssuedTokens)
    with database.read() as session:
        access = session.scalars(
            select(Credential).where(Credential.public_id == _public_id(issued.access_token))
        ).one()
    assert access.previous_secret_hash is None and access.previous_valid_until is None


def test_everything_but_the_common_case_is_left_untouched(database: Database, team: Team) -> None:
    family = _connect(database, team, ["links:read"])
    other = _connect(database, team)
    notes = _notes(database)
    presented = family.issued.refresh_token
    cases = [
        (family.client_id, presented, "links:read links:write"),  # wider than granted
        (other.client_id, presented, None),  # another client's token
        (family.client_id, presented[:-1] + ("A" if presented[-1] != "A" else "B"), None),  # wrong checksum
        (family.client_id, family.issued.access_token, None),  # not a refresh token
        (family.client_id, "rt_nonsense", None),
    ]
    for client_id, token, scope in cases:
        with database.write() as session:
            assert refresh.rotate_active(session, _client(session, client_id), token, scope, LIFETIMES) is None
    with database.write() as session:
        session.execute(update(Connection).values(status="disconnected", disconnected_at=utcnow()))
    with database.write() as session:
        assert refresh.rotate_active(session, _client(session, family.client_id), presented, None, LIFETIMES) is None
    with database.read() as session:
        statuses = session.scalars(select(RefreshToken.status)).all()
    assert statuses == ["active", "active"] and _notes(database) == notes


def test_a_refresh_waiting_for_a_concurrent_one_gets_its_pair(database: Database, team: Team) -> None:
    family = _connect(database, team)
    answers: list[IssuedTokens | Refreshed | Refused] = []
    with database.write() as session:
        client = _client(session, family.client_id)
        first = refresh.rotate_active(session, client, family.issued.refresh_token, None, LIFETIMES)
        assert first is not None
        second = threading.Thread(
            target=lambda: answers.append(_general_refresh(database, family.client_id, family.issued.refresh_token))
        )
        second.start()
        _until_waiting(database, second)
    second.join(timeout=120)
    [answer] = answers
    assert isinstance(answer, Refreshed) and answer.replay, answer
    assert (answer.tokens.access_token, answer.tokens.refresh_token) == (
        first.tokens.access_token,
        first.tokens.refresh_token,
    )


def _until_waiting(database: Database, thread: threading.Thread) -> None:
    """On PostgreSQL, until the thread's transaction waits for a row lock (so that it read before the first one
    committed); on SQLite its BEGIN IMMEDIATE waits for the write lock, which cannot be seen, and either order must
    give the same answer."""
    if database.dialect != "postgresql":
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and thread.is_alive():
        with database.engine.connect() as connection:
            if connection.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.05)
