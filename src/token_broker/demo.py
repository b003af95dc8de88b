"""`token-broker demo`: a fresh store with a workspace and an admin, then the server, with directions printed."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.server import migrate_store, serve
from token_broker.services import keys, workspaces
from token_broker.services.actors import Actor
from token_broker.store.database import Database

DEMO_EMAIL = "admin@demo.example"


def run_demo(settings: Settings, port: int, database_url: str | None = None) -> None:
    if database_url is None:
        folder = Path(tempfile.mkdtemp(prefix="token-broker-demo-"))
        database_url = f"sqlite:///{folder / 'demo.db'}"
    settings = replace(settings, database_url=database_url, issuer=settings.issuer or f"http://127.0.0.1:{port}")
    migrate_store(settings)
    database = Database(settings.database_url)
    hasher = SecretHasher(settings.hashing)
    operator = Actor.operator(client_address="demo")
    password = secrets.token_urlsafe(12)
    try:
        account_id = workspaces.create_workspace(database, operator, "Demo workspace")
        workspaces.add_user(database, hasher, operator, DEMO_EMAIL, password, account_id, "owner")
        demo_key = keys.create_key(database, hasher, operator, account_id, keys.KeyRequest(name="Demo key"))
    finally:
        database.dispose()
    base = settings.issuer
    print(
        "\n".join(
            [
                "",
                "token-broker demo",
                f"  store:      {settings.database_url}",
                f"  workspace:  Demo workspace ({account_id})",
                f"  log in:     {base}/login  as {DEMO_EMAIL} / {password}",
                f"  health:     {base}/healthz",
                f"  a demo key: {demo_key.plaintext}",
                "  try it:     token-broker key list --workspace "
                + account_id
                + f" --database-url {settings.database_url}",
                "  (demo credentials are printed here on purpose; a real store never shows a secret twice)",
                "",
            ]
        ),
        flush=True,
    )
    serve(settings, host="127.0.0.1", port=port)
