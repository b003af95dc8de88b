"""`scripts/bench oauth`: the token endpoint's cost.

In one run, against one uvicorn worker (pinned to one core) with wrk in another process (on the other):
  refresh grants per second (real rotation chains: wrk keeps a pool of refresh tokens and presents each one
  once, putting back the one its answer returns),
  introspections per second of one active access token,
  and, as the baseline, a bare form POST to the same app that parses a form of the same size and answers JSON.
Prints each rate and its ratio to the baseline.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.common import report, require_wrk, scratch_dir, uvicorn_process, wrk
from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.services import clients, tokens, workspaces
from token_broker.services.actors import Actor
from token_broker.services.connections import open_connection
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.models import Workspace
from token_broker.store.oauth_models import OAuthClient

SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CHAINS = 16
TOKENS_PER_ROUND = 3 * CHAINS  # wrk may ask for a connection's next request before the answer that refills the pool
CALLBACK = "https://zapier.com/dashboard/auth/oauth/return/App1CLIAPI/"


async def bare_form(request: Request) -> JSONResponse:
    form = await request.form()
    return JSONResponse({"ok": True, "fields": len(form)}, headers={"Cache-Control": "no-store"})


def bench_app() -> Starlette:
    """The real app, plus POST /bench/form: parse a form, answer JSON, nothing else."""
    app = create_app(Settings.from_env())
    app.router.routes.insert(0, Route("/bench/form", bare_form, methods=["POST"]))
    return app


def prepare(folder: Path) -> tuple[str, dict[str, Any]]:
    url = f"sqlite:///{folder / 'bench.db'}"
    database = Database(url)
    migrate.upgrade(database)
    settings = Settings.from_env({"TOKEN_BROKER_SECRET_KEY": "bench-secret-key-" + "x" * 32})
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Benchmark")
    workspaces.add_user(database, SecretHasher(settings.hashing), operator, "bench@example.com", "bench-password",
                        account_id, "owner")  # fmt: skip
    client = clients.register_client(database, operator, "zapier", [CALLBACK])
    lifetimes = tokens.TokenLifetimes.of(settings.access_seconds(), 90, settings.secret_key or "")
    refresh_tokens, access = [], ""
    with database.write() as session:
        row = session.query(OAuthClient).filter_by(client_id=client.client_id).one()
        workspace = session.query(Workspace).filter_by(account_id=account_id).one()
        for _ in range(TOKENS_PER_ROUND * ROUNDS + 1):
            issued = open_connection(session, row, workspace, "bench", ["links:read"], 3600, lifetimes.refresh)
            refresh_tokens.append(issued.refresh_token)
            access = issued.access_token
    database.dispose()
    return url, {"client_id": client.client_id, "client_secret": client.client_secret, "refresh": refresh_tokens,
                 "access": access}  # fmt: skip


def _form(fields: dict[str, str]) -> str:
    return urlencode(fields)


def main() -> None:
    require_wrk()
    folder = scratch_dir("oauth")
    url, material = prepare(folder)
    env = {"TOKEN_BROKER_DATABASE_URL": url, "TOKEN_BROKER_TOKEN_RATE_LIMIT": "999999999/minute",
           "TOKEN_BROKER_SECRET_KEY": "bench-secret-key-" + "x" * 32,
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # fmt: skip
    auth = {"client_id": material["client_id"], "client_secret": material["client_secret"]}
    here = Path(__file__).parent
    sample = _form({"grant_type": "refresh_token", "refresh_token": material["refresh"][0], **auth})
    introspection = _form({"token": material["access"], **auth})
    rates: dict[str, list[float]] = {"bare": [], "refresh": [], "introspect": []}
    with uvicorn_process("benchmarks.oauth:bench_app", env, folder / "server.log") as base:
        for round_index in range(ROUNDS):
            # each round rotates its own connections: a token rotated out in an earlier round would count as reuse
            tokens_file = folder / f"refresh-tokens-{round_index}.txt"
            chains = material["refresh"][round_index * TOKENS_PER_ROUND : (round_index + 1) * TOKENS_PER_ROUND]
            tokens_file.write_text("\n".join(chains) + "\n")
            runs = {
                "bare": wrk(base, SECONDS, CHAINS, script=here / "form.lua", script_args=("/bench/form", sample)),
                "refresh": wrk(base, SECONDS, CHAINS, script=here / "refresh.lua",
                               script_args=(str(tokens_file), auth["client_id"], auth["client_secret"])),
                "introspect": wrk(base, SECONDS, CHAINS, script=here / "form.lua",
                                  script_args=("/oauth/introspect", introspection)),
            }  # fmt: skip
            for kind, run in runs.items():
                if run.non_2xx:
                    raise SystemExit(f"{kind}: {run.non_2xx} requests were refused during the benchmark")
                rates[kind].append(run.requests_per_second)
    bare, refresh, introspect = (statistics.median(rates[kind]) for kind in ("bare", "refresh", "introspect"))
    report(
        "oauth",
        [
            ("bare form POST to the same app", f"{bare:,.0f} req/s"),
            ("refresh grants (rotating chains)", f"{refresh:,.0f} req/s"),
            ("introspections", f"{introspect:,.0f} req/s"),
            ("rounds x seconds", f"{ROUNDS} x {SECONDS}, {CHAINS} connections, one worker, SQLite"),
        ],
        [("refresh / bare", refresh / bare, None), ("introspect / bare", introspect / bare, None)],
    )
    print(json.dumps({"bare": bare, "refresh": refresh, "introspect": introspect}))


if __name__ == "__main__":
    main()
