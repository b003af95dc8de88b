"""The command line's organization commands (the operator acts as an owner of every organization and workspace)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from token_broker.errors import InvalidInput
from token_broker.services import governance, organizations

Command = Callable[..., Any]


def _organization(ctx: Any) -> str:
    """`--org ORG`, or the older positional ORG_ID."""
    chosen: str | None = ctx.args.org or ctx.args.id
    if not chosen:
        raise InvalidInput("org", "name the organization with --org ORG")
    return chosen


def cmd_org_create(ctx: Any) -> dict[str, Any]:
    made = organizations.create_organization(
        ctx.database, ctx.actor, ctx.args.name, account_ids=ctx.args.workspace or [], owners=ctx.args.owner or []
    )
    return {"org_id": made.id}


def cmd_org_list(ctx: Any) -> list[dict[str, Any]]:
    return [{"id": o.id, "name": o.name} for o in organizations.organizations_of(ctx.database, ctx.actor)]


def cmd_org_show(ctx: Any) -> dict[str, Any]:
    return organizations.show_organization(ctx.database, ctx.actor, ctx.args.id).to_json()


def cmd_workspace_move(ctx: Any) -> dict[str, Any]:
    account_id = ctx.args.account_id or ctx.args.workspace
    if not account_id:
        raise InvalidInput("workspace", "name the workspace: workspace move ACCOUNT_ID --org ORG")
    placed = organizations.add_workspace(ctx.database, ctx.actor, _organization(ctx), account_id)
    return {"account_id": account_id, "org_id": placed.id}


def cmd_org_role(ctx: Any) -> dict[str, Any]:
    changed = organizations.set_role(ctx.database, ctx.actor, _organization(ctx), ctx.args.email, ctx.args.role)
    return {"org_id": changed.id, "user_id": changed.subject, "role": ctx.args.role}


def cmd_org_governance(ctx: Any) -> dict[str, Any]:
    where = governance.GovernanceFilter(
        usage=ctx.args.usage,
        no_expiry=ctx.args.no_expiry,
        no_ip_allow_list=ctx.args.no_ip_allow_list,
        platform=ctx.args.platform,
    )
    return governance.governance_report(ctx.database, ctx.actor, ctx.args.id, where).to_json()


def _org_option(parser: Any) -> None:
    parser.add_argument("id", nargs="?", metavar="ORG_ID", help="older spelling of --org")
    parser.add_argument("--org", "--organization", dest="org", metavar="ORG_ID")


def add_commands(commands: Any, workspace: Any, command: Command, parser_class: type) -> None:
    move = command(workspace, "move", cmd_workspace_move, "place a workspace in an organization")
    move.add_argument("account_id", nargs="?", metavar="ACCOUNT_ID")
    move.add_argument("--org", "--organization", dest="org", required=True, metavar="ORG_ID")
    move.set_defaults(id=None, workspace=None)

    org = commands.add_parser("org", help="organizations above workspaces").add_subparsers(
        dest="action", required=True, parser_class=parser_class, metavar="ACTION"
    )
    create = command(org, "create", cmd_org_create, "create an organization (name owners now or with `org role`)")
    create.add_argument("--name", required=True)
    create.add_argument("--owner", action="append", metavar="USER_ID_OR_EMAIL", help="an owner (repeatable)")
    create.add_argument("--workspace", action="append", metavar="ACCOUNT_ID", help="a workspace to place in it")
    command(org, "list", cmd_org_list, "list the organizations")
    command(org, "show", cmd_org_show, "an organization's workspaces and people").add_argument("id", metavar="ORG_ID")
    add = command(org, "add-workspace", cmd_workspace_move, "older spelling of `workspace move A --org ORG`")
    _org_option(add)
    add.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    add.set_defaults(account_id=None)
    role = command(org, "role", cmd_org_role, "name an owner or admin of an organization, or take the role away")
    _org_option(role)
    role.add_argument("--email", "--user", dest="email", required=True, metavar="EMAIL", help="or a usr_... id")
    role.add_argument("--role", required=True, choices=organizations.ROLE_CHOICES)
    view = command(org, "governance", cmd_org_governance, "every credential and connection of the organization")
    view.add_argument("id", metavar="ORG_ID")
    view.add_argument("--usage", choices=governance.USAGE_FILTERS)
    view.add_argument("--no-expiry", action="store_true", help="only keys that never expire")
    view.add_argument("--no-ip-allow-list", action="store_true", help="only keys usable from any address")
    view.add_argument("--platform", choices=("zapier", "make", "n8n"), help="only connections of this platform")
