"""`token-broker`: the operator's command line. Thin: parse, call a service, print.

Exit status: 0 on success, 1 when the operation is refused (one line on stderr), 2 on bad usage.
With --json, stdout holds exactly one JSON document: the result, or {"error", "message"} when refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sqlalchemy.exc import SQLAlchemyError

from token_broker import cli_orgs, cli_people, credentials
from token_broker.config import Settings, SettingsError
from token_broker.credentials import SecretHasher
from token_broker.errors import BrokerError, InvalidInput
from token_broker.scopes import PLATFORMS
from token_broker.services import client_lifecycle, clients, connections, keys, workspaces
from token_broker.services.actors import Actor
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.models import ROLES

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _credential_id(value: str) -> str:
    if not credentials.is_public_id(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a key id (12 letters and digits, as `key list` shows)")
    return value


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of workers from 1 to 64")
    return int(value)


def _seconds(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None


class Context:
    """What a command needs, made on first use: settings, the store (checked to be migrated), the hasher."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = Settings.from_env(**_overrides(args))
        self.actor = Actor.operator(client_address="cli")
        self._database: Database | None = None

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.database_url)
            if not migrate.is_current(self._database):
                raise BrokerError("The store's schema is not up to date: run `token-broker migrate` first.")
        return self._database

    def hasher(self) -> SecretHasher:
        return SecretHasher(self.settings.hashing)

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    url = getattr(args, "database_url", None)
    return {"database_url": url} if url else {}


def cmd_migrate(ctx: Context) -> dict[str, Any]:
    database = Database(ctx.settings.database_url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()
    return {"status": "up to date"}


def cmd_workspace_create(ctx: Context) -> dict[str, Any]:
    organization = ctx.args.org
    return {
        "account_id": workspaces.create_workspace(ctx.database, ctx.actor, ctx.args.name, organization),
        "org_id": organization,
    }


def cmd_user_create(ctx: Context) -> dict[str, Any]:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput("password", "give the user's password on standard input")
    added = workspaces.add_user(
        ctx.database, ctx.hasher(), ctx.actor, ctx.args.email, password, ctx.args.workspace, ctx.args.role
    )
    return {"user_id": added.user_id, "created": added.created}


def cmd_key_create(ctx: Context) -> dict[str, Any]:
    request = keys.KeyRequest(
        name=ctx.args.name,
        scopes=ctx.args.scope,
        expires_in=ctx.args.expires_in,
        allowed_ips=ctx.args.allow_ip,
        rate_limits=ctx.args.rate_limit,
    )
    return keys.create_key(ctx.database, ctx.hasher(), ctx.actor, ctx.args.workspace, request).to_json()


def cmd_key_list(ctx: Context) -> list[dict[str, Any]]:
    return [view.to_json() for view in keys.list_keys(ctx.database, ctx.actor, ctx.args.workspace)]


def cmd_key_rotate(ctx: Context) -> dict[str, Any]:
    issued = keys.rotate_key(ctx.database, ctx.hasher(), ctx.actor, ctx.args.id, ctx.args.grace)
    result = {"id": issued.view.id, "key": issued.plaintext, "grace_until": issued.view.to_json()["grace_until"]}
    if issued.plaintext is None:  # a partner install token: its connection ended, the platform must reconnect
        result["status"] = issued.view.status
    return result


def cmd_key_revoke(ctx: Context) -> dict[str, Any]:
    view = keys.revoke_key(ctx.database, ctx.actor, ctx.args.id)
    return {"id": view.id, "status": view.status}


def cmd_client_create(ctx: Context) -> dict[str, Any]:
    made = clients.register_client(
        ctx.database, ctx.actor, ctx.args.platform, ctx.args.redirect_uri, account_id=ctx.args.workspace
    )
    return {"client_id": made.client_id, "client_secret": made.client_secret}


def cmd_client_list(ctx: Context) -> list[dict[str, Any]]:
    return [view.to_json() for view in client_lifecycle.list_clients(ctx.database, ctx.actor, ctx.args.workspace)]


def cmd_client_revoke(ctx: Context) -> dict[str, Any]:
    return client_lifecycle.revoke_client(ctx.database, ctx.actor, ctx.args.client_id).to_json()


def cmd_client_rotate(ctx: Context) -> dict[str, Any]:
    return client_lifecycle.rotate_client_secret(ctx.database, ctx.actor, ctx.args.client_id, ctx.args.grace).to_json()


def cmd_connection_list(ctx: Context) -> list[dict[str, Any]]:
    return [view.to_json() for view in connections.list_connections(ctx.database, ctx.actor, ctx.args.workspace)]


def cmd_connection_disconnect(ctx: Context) -> dict[str, Any]:
    view = connections.disconnect(ctx.database, ctx.actor, ctx.args.id)
    return {"id": view.id, "status": view.status}


def cmd_serve(ctx: Context) -> None:
    from token_broker.server import serve

    serve(ctx.settings, host=ctx.args.host, port=ctx.args.port, workers=ctx.args.workers)


def cmd_demo(ctx: Context) -> None:
    from token_broker.demo import run_demo

    run_demo(ctx.settings, port=ctx.args.port, database_url=getattr(ctx.args, "database_url", None))


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="the store (default: $TOKEN_BROKER_DATABASE_URL, else sqlite:///./token-broker.db)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="token-broker", description="Partner-integration token broker.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(
        group: Any, name: str, handler: Callable[[Context], object], help_text: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, aliases=list(aliases), parents=[common], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        return sub

    serve = command(commands, "serve", cmd_serve, "migrate the store, then serve all (needs TOKEN_BROKER_ISSUER)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=_workers, default=1, help="worker processes (default 1); migrations run once first"
    )
    demo = command(commands, "demo", cmd_demo, "serve a fresh demo store, printing how to log in and connect")
    demo.add_argument("--port", type=int, default=8000)
    command(commands, "migrate", cmd_migrate, "bring the store's schema up to date")

    workspace = commands.add_parser("workspace", help="workspaces").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION"
    )
    workspace_create = command(workspace, "create", cmd_workspace_create, "create a workspace")
    workspace_create.add_argument("--name", required=True)
    workspace_create.add_argument(
        "--org", "--organization", dest="org", metavar="ORG_ID", help="place it in this organization at once"
    )

    user = commands.add_parser("user", help="dashboard users").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION"
    )
    user_create = command(user, "create", cmd_user_create, "add a user to a workspace (password on stdin)")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    user_create.add_argument("--role", required=True, choices=ROLES)
    cli_people.add_commands(commands, user, command, _Parser)
    cli_orgs.add_commands(commands, workspace, command, _Parser)

    key = commands.add_parser("key", help="workspace API keys and partner install tokens").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION"
    )
    key_create = command(key, "create", cmd_key_create, "create a workspace API key (its plaintext is shown once)")
    key_create.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    key_create.add_argument("--name", required=True)
    key_create.add_argument("--scope", action="append", help="limit the key to a scope (repeatable)")
    key_create.add_argument("--expires-in", type=_seconds, metavar="SECONDS")
    key_create.add_argument("--allow-ip", action="append", metavar="CIDR", help="allowed caller network (repeatable)")
    key_create.add_argument(
        "--rate-limit", action="append", metavar="N/PERIOD", help="N/second|minute|hour|day (repeatable)"
    )
    command(key, "list", cmd_key_list, "list a workspace's keys and partner tokens").add_argument(
        "--workspace", required=True, metavar="ACCOUNT_ID"
    )
    key_rotate = command(key, "rotate", cmd_key_rotate, "give a key a new secret; the old one lasts the grace window")
    key_rotate.add_argument("id", type=_credential_id)
    key_rotate.add_argument("--grace", type=_seconds, metavar="SECONDS", help="default 86400, at most 604800")
    command(key, "revoke", cmd_key_revoke, "revoke a key at once").add_argument("id", type=_credential_id)

    client = commands.add_parser("client", help="OAuth clients of the platforms").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION"
    )
    client_create = command(
        client, "create", cmd_client_create, "register a platform's OAuth client (secret shown once)"
    )
    client_create.add_argument("--platform", required=True, choices=PLATFORMS)
    client_create.add_argument(
        "--redirect-uri", required=True, action="append", metavar="URI", help="exact callback URL (repeatable)"
    )
    client_create.add_argument("--workspace", metavar="ACCOUNT_ID", help="n8n only: the workspace of this instance")
    command(client, "list", cmd_client_list, "list OAuth clients, newest first (never their secrets)").add_argument(
        "--workspace", metavar="ACCOUNT_ID", help="only the clients this workspace registered"
    )
    command(
        client, "revoke", cmd_client_revoke, "revoke a client at once, ending every connection it holds"
    ).add_argument("client_id", metavar="CLIENT_ID")
    client_rotate = command(
        client,
        "rotate",
        cmd_client_rotate,
        "give a client a new secret (shown once); the old one lasts the grace window",
        aliases=["rotate-secret"],
    )
    client_rotate.add_argument("client_id", metavar="CLIENT_ID")
    client_rotate.add_argument(
        "--grace", type=_seconds, metavar="SECONDS", help="default 86400, 0 allowed, at most 604800"
    )

    connection = commands.add_parser("connection", help="connections made by connect flows").add_subparsers(
        dest="action", required=True, parser_class=_Parser, metavar="ACTION"
    )
    command(connection, "list", cmd_connection_list, "list a workspace's connections").add_argument(
        "--workspace", required=True, metavar="ACCOUNT_ID"
    )
    command(connection, "disconnect", cmd_connection_disconnect, "end a connection and all its tokens").add_argument(
        "id", metavar="CONNECTION_ID"
    )
    return parser


def _print_human(result: object) -> None:
    if isinstance(result, list):
        if not result:
            print("(none)")
        for item in result:
            print("  ".join(f"{k}={v}" for k, v in item.items() if v not in (None, [], "")))
        return
    if isinstance(result, dict):
        for name, value in result.items():
            print(f"{name}: {value}")
        if result.get("key") or result.get("client_secret"):
            print("Store the secret now: it is not shown again.", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        as_json = getattr(args, "json", False)
        ctx = Context(args)
    except UsageError as error:
        return _fail(as_json, "usage", str(error), EXIT_USAGE)
    except SettingsError as error:
        return _fail(as_json, "bad_setting", str(error), EXIT_USAGE)
    try:
        result = args.handler(ctx)
    except InvalidInput as error:
        return _fail(as_json, error.code, error.message, EXIT_USAGE)
    except BrokerError as error:
        return _fail(as_json, error.code, error.message, EXIT_REFUSED)
    except SettingsError as error:
        return _fail(as_json, "bad_setting", str(error), EXIT_USAGE)
    except SQLAlchemyError as error:
        reason = type(getattr(error, "orig", None) or error).__name__
        return _fail(as_json, "store_unavailable", f"the store could not be used ({reason}); check --database-url", 1)
    except KeyboardInterrupt:
        return 130
    finally:
        if "ctx" in locals():
            ctx.close()
    if result is not None:
        if as_json:
            print(json.dumps(result))
        else:
            _print_human(result)
    return EXIT_OK


def _fail(as_json: bool, code: str, message: str, status: int) -> int:
    if as_json:
        print(json.dumps({"error": code, "message": message}))
    print(f"token-broker: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
