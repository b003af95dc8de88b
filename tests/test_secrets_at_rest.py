"""No plaintext secret reaches the store (SQLite's main file, WAL and shared memory included; every PostgreSQL row),
nor a log line, however verbose the logging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import truncate_postgres
from tests.support import Team, make_team
from token_broker import credentials
from token_broker.credentials import SecretHasher
from token_broker.errors import InvalidCredential
from token_broker.services import client_lifecycle, clients, keys, verification
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store.database import Database
from token_broker.store.models import Base

N8N_CALLBACK = "https://n8n.example.com/rest/oauth2-credential/callback"


def exercise(database: Database, hasher: SecretHasher, team: Team) -> list[str]:
    """Create, use, rotate and revoke keys; return every plaintext that was shown, and its secret part alone."""
    request = KeyRequest(name="k", scopes=["links:read"])
    created = keys.create_key(database, hasher, team.admin, team.account_id, request)
    verification.verify(database, hasher, created.plaintext)
    rotated = keys.rotate_key(database, hasher, team.admin, created.view.id, grace_seconds=60)
    verification.verify(database, hasher, created.plaintext)
    keys.revoke_key(database, team.admin, created.view.id)
    with pytest.raises(InvalidCredential):
        verification.verify(database, hasher, rotated.plaintext)
    shown = [created.plaintext, rotated.plaintext]
    return (
        shown
        + [plaintext.split("_")[3][: credentials.SECRET_LENGTH] for plaintext in shown]
        + client_secrets(database, team)
    )


def client_secrets(database: Database, team: Team) -> list[str]:
    """Register an OAuth client, rotate its secret twice (a grace window running) and revoke it; return its secrets."""
    made = clients.register_client(database, team.admin, "n8n", [N8N_CALLBACK], account_id=team.account_id)
    first = client_lifecycle.rotate_client_secret(database, team.admin, made.client_id, grace_seconds=3600)
    second = client_lifecycle.rotate_client_secret(database, Actor.operator(), made.client_id)
    client_lifecycle.revoke_client(database, team.owner, made.client_id, account_id=team.account_id)
    return [made.client_secret, first.client_secret, second.client_secret]


def test_nothing_secret_in_the_sqlite_files_or_the_logs(
    tmp_path: Path, sqlite_template: Path, hasher: SecretHasher, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(sqlite_template.read_bytes())
    database = Database(f"sqlite:///{path}", echo=True)  # SQLAlchemy logs every statement and its parameters
    caplog.set_level(logging.DEBUG)
    team = make_team(database, hasher)
    secrets = exercise(database, hasher, team)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("store.db")]
    assert any(p.name.endswith("-wal") for p in files)  # the WAL is still there, and is searched too
    contents = b"".join(p.read_bytes() for p in files)
    database.dispose()
    contents += b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("store.db"))
    assert "INSERT INTO credentials" in caplog.text
    for secret in secrets:
        assert secret.encode() not in contents
        assert secret not in caplog.text
    assert b"correct horse battery" not in contents


@pytest.mark.postgres
def test_nothing_secret_in_any_postgres_row(postgres_url: str, hasher: SecretHasher) -> None:
    truncate_postgres(postgres_url)
    database = Database(postgres_url)
    team = make_team(database, hasher)
    secrets = exercise(database, hasher, team)
    dump = []
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            dump += [str(row) for row in connection.execute(text(f"SELECT t::text FROM {table.name} t"))]
    database.dispose()
    everything = "\n".join(dump)
    assert "argon2id" in everything
    for secret in secrets:
        assert secret not in everything
