"""`token-broker demo`: a fresh store with a workspace and an admin, then the server, with directions printed."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.server import migrate_store, serve
from token_broker.services import clients, keys, workspaces
from token_broker.services.actors import Actor
from token_broker.store.database import Database

DEMO_EMAIL = "admin@demo.example"
# Callback URLs of the demo clients: Make's real ones, a Zapier CLI app's usual form, a local n8n's.
DEMO_CALLBACKS = {
    "zapier": ["https://zapier.com/dashboard/auth/oauth/return/App000000CLIAPI/"],
    "make": ["https://www.make.com/oauth/cb/app", "https://www.integromat.com/oauth/cb/app"],
    "n8n": ["http://localhost:5678/rest/oauth2-credential/callback"],
}


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
        platform_clients = [
            clients.register_client(
                database, operator, platform, uris, account_id=account_id if platform == "n8n" else None
            )
            for platform, uris in DEMO_CALLBACKS.items()
        ]
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
                "  platform clients (client_id / client_secret / callback):",
                *(
                    f"    {made.platform:6} {made.client_id} / {made.client_secret} / {made.redirect_uris[0]}"
                    for made in platform_clients
                ),
                "  connect:    point the platform's OAuth settings at "
                f"{base}/.well-known/oauth-authorization-server, or open",
                f"              {base}/oauth/authorize?response_type=code&client_id={platform_clients[0].client_id}"
                f"&redirect_uri={platform_clients[0].redirect_uris[0]}&state=demo",
                f"  try it:     .venv/bin/token-broker key list --workspace {account_id} "
                f"--database-url {settings.database_url}",
                "  (demo credentials are printed here on purpose; a real store never shows a secret twice)",
                "",
            ]
        ),
        flush=True,
    )
    serve(settings, host="127.0.0.1", port=port)
