"""Fixtures for webhook tests: a stand-in for the world's DNS (no test here ever asks a real resolver), a canary
listener, settings that allow 127.0.0.1, credentials that own hooks, and an in-process delivery worker."""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta

import anyio
import pytest
from anyio import to_thread
from sqlalchemy import select

from tests.makers import Keys
from tests.support import CHEAP_HASHING, Team
from tests.webhooks.receivers import Canary
from token_broker import credentials
from token_broker.config import Settings
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.net import ssrf
from token_broker.services import links, verification
from token_broker.services.deliveries import RetryPolicy
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient
from token_broker.webhooks import transport
from token_broker.webhooks.delivery_worker import DeliveryWorker

FAST = RetryPolicy(first_delay=timedelta(milliseconds=50), max_delay=timedelta(milliseconds=200))
SECRET_KEY = "test-secret-key-for-sealing-hook-secrets-0123456789"


@dataclass
class FakeDns:
    """Names the test gives addresses to; every other name does not resolve. Counts lookups."""

    names: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def __call__(self, host: str, _port: int) -> list[str]:
        assert host.endswith("."), "names are resolved as absolute names"
        self.lookups.append(host)
        found = self.names.get(host.removesuffix("."))
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(found)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(ssrf, "resolver", fake)
    return fake


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()
    assert listener.connections == [], "something connected to the canary"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return replace(
        Settings.from_env({}),
        database_url=database_url,
        secret_key=SECRET_KEY,
        hashing=CHEAP_HASHING,
        webhook_allow_hosts=("127.0.0.1",),
    )


@pytest.fixture
def owner(make: Keys, hasher: SecretHasher) -> VerifiedCredential:
    """A workspace API key with every scope, verified."""
    issued = make.workspace_key(rate_limits=["100000/minute"])
    assert issued.plaintext is not None
    return verification.verify(make.database, hasher, issued.plaintext)


@dataclass(frozen=True)
class Partner:
    credential: VerifiedCredential
    plaintext: str
    connection_id: int
    credential_row_id: int


def make_partner(database: Database, hasher: SecretHasher, team: Team, platform: str = "zapier") -> Partner:
    """A connection with its partner install token, made directly in the store as a connect flow leaves them."""
    made = credentials.generate(CredentialKind.PARTNER_ACCESS)
    now = utcnow()
    with database.write() as session:
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == team.account_id)).one()
        client = OAuthClient(
            client_id=f"client_{secrets.token_hex(8)}", secret_hash="x", platform=platform, workspace_id=None,
            redirect_uris=["https://platform.example/cb"], created_at=now, created_by="operator",
        )  # fmt: skip
        session.add(client)
        session.flush()
        connection = Connection(
            public_id=f"con_{secrets.token_hex(8)}", workspace_id=workspace.id, client_id=client.id,
            platform=platform, scopes=["links:read", "hooks:write"], approved_by="usr_test", created_at=now,
            status="active",
        )  # fmt: skip
        session.add(connection)
        session.flush()
        row = Credential(
            public_id=made.public_id, workspace_id=workspace.id, kind="pat", platform=platform,
            name=f"{platform} connection", secret_hash=hasher.hash(made.plaintext), status="active",
            scopes=["links:read", "hooks:write"], allowed_ips=[], rate_limits=["60/minute"],
            expires_at=now + timedelta(hours=1), hint=credentials.hint(made), created_at=now, created_by="connect",
            version=1, connection_id=connection.id,
        )  # fmt: skip
        session.add(row)
        session.flush()
        connection_id, row_id = connection.id, row.id
    return Partner(verification.verify(database, hasher, made.plaintext), made.plaintext, connection_id, row_id)


@pytest.fixture
def partner(database: Database, hasher: SecretHasher, team: Team) -> Partner:
    return make_partner(database, hasher, team)


def make_events(database: Database, credential: VerifiedCredential, count: int) -> list[str]:
    """`count` link.created events in the credential's workspace; returns the links' ids."""
    return [
        links.create_link(
            database, credential.workspace_id, credential.id, f"https://example.com/{index}", None,
            source_credential_id=credential.id,
        ).id
        for index in range(count)
    ]  # fmt: skip


def run_worker(
    database: Database,
    settings: Settings,
    until: Callable[[], bool],
    timeout: float = 20.0,
    verify: ssl.SSLContext | bool = True,
    make_client: Callable[[], transport.Client] | None = None,
    **options: object,
) -> DeliveryWorker:
    """Run a delivery worker in this process until `until()` (called in a thread) is true, then stop it. Its client
    is the service's own (`transport.make_client`) unless `make_client` gives another."""
    options.setdefault("policy", FAST)
    options.setdefault("poll_seconds", 0.02)

    async def main() -> DeliveryWorker:
        async with make_client() if make_client is not None else transport.make_client(verify) as client:
            worker = DeliveryWorker(database, settings, client, **options)  # type: ignore[arg-type]
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(worker.run_forever)
                with anyio.fail_after(timeout):
                    while not await to_thread.run_sync(until):
                        await anyio.sleep(0.02)
                tasks.cancel_scope.cancel()
            return worker

    return anyio.run(main)
