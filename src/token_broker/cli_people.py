"""The command line's people commands: workspace members and passwords (the operator acts as an owner)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from token_broker.errors import InvalidInput
from token_broker.services import members
from token_broker.store.models import ROLES

Command = Callable[..., Any]


def cmd_member_list(ctx: Any) -> list[dict[str, Any]]:
    return [view.to_json() for view in members.list_members(ctx.database, ctx.actor, ctx.args.workspace)]


def cmd_member_remove(ctx: Any) -> dict[str, Any]:
    view = members.remove_member(ctx.database, ctx.actor, ctx.args.workspace, ctx.args.email)
    return {"user_id": view.user_id, "removed": True}


def cmd_member_role(ctx: Any) -> dict[str, Any]:
    view = members.change_role(ctx.database, ctx.actor, ctx.args.workspace, ctx.args.email, ctx.args.role)
    return {"user_id": view.user_id, "role": view.role}


def cmd_user_set_password(ctx: Any) -> dict[str, Any]:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput("password", "give the new password on standard input")
    return {"user_id": members.reset_password(ctx.database, ctx.hasher(), ctx.actor, ctx.args.email, password)}


def _email(parser: Any) -> None:
    parser.add_argument("--email", "--user", dest="email", required=True, metavar="EMAIL", help="or a usr_... id")


def add_commands(commands: Any, user: Any, command: Command, parser_class: type) -> None:
    set_password = command(
        user,
        "set-password",
        cmd_user_set_password,
        "set a user's password (first line of stdin); ends their sessions",
        aliases=["reset-password"],
    )
    _email(set_password)

    member = commands.add_parser("member", help="the people of a workspace").add_subparsers(
        dest="action", required=True, parser_class=parser_class, metavar="ACTION"
    )
    command(member, "list", cmd_member_list, "list a workspace's members").add_argument(
        "--workspace", required=True, metavar="ACCOUNT_ID"
    )
    remove = command(member, "remove", cmd_member_remove, "remove a member; ends their dashboard sessions")
    remove.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    _email(remove)
    role = command(member, "role", cmd_member_role, "change a member's role; a demotion ends their sessions")
    role.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    _email(role)
    role.add_argument("--role", required=True, choices=ROLES)
