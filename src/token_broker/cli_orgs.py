"""The command line's organization commands (the operator acts as an owner of every organization and workspace)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from token_broker.services import governance, organizations

Command = Callable[[Any, str, Callable[[Any], object], str], Any]


def cmd_org_create(ctx: Any) -> dict[str, Any]:
    made = organizations.create_organization(
        ctx.database, ctx.actor, ctx.args.name, account_ids=ctx.args.workspace or [], owners=ctx.args.owner or []
    )
    return made.to_json()


def cmd_org_list(ctx: Any) -> list[dict[str, Any]]:
    return [{"id": o.id, "name": o.name} for o in organizations.organizations_of(ctx.database, ctx.actor)]


def cmd_org_show(ctx: Any) -> dict[str, Any]:
    return organizations.show_organization(ctx.database, ctx.actor, ctx.args.id).to_json()


def cmd_org_add_workspace(ctx: Any) -> dict[str, Any]:
    return organizations.add_workspace(ctx.database, ctx.actor, ctx.args.id, ctx.args.workspace).to_json()


def cmd_org_role(ctx: Any) -> dict[str, Any]:
    return organizations.set_role(ctx.database, ctx.actor, ctx.args.id, ctx.args.user, ctx.args.role).to_json()


def cmd_org_governance(ctx: Any) -> dict[str, Any]:
    where = governance.GovernanceFilter(
        usage=ctx.args.usage,
        no_expiry=ctx.args.no_expiry,
        no_ip_allow_list=ctx.args.no_ip_allow_list,
        platform=ctx.args.platform,
    )
    return governance.governance_report(ctx.database, ctx.actor, ctx.args.id, where).to_json()


def add_commands(commands: Any, command: Command, parser_class: type) -> None:
    org = commands.add_parser("org", help="organizations above workspaces").add_subparsers(
        dest="action", required=True, parser_class=parser_class, metavar="ACTION"
    )
    create = command(org, "create", cmd_org_create, "create an organization, with its owners and workspaces")
    create.add_argument("--name", required=True)
    create.add_argument("--owner", action="append", metavar="USER_ID_OR_EMAIL", help="an owner (repeatable, one+)")
    create.add_argument("--workspace", action="append", metavar="ACCOUNT_ID", help="a workspace to place in it")
    command(org, "list", cmd_org_list, "list the organizations")
    command(org, "show", cmd_org_show, "an organization's workspaces and people").add_argument("id", metavar="ORG_ID")
    add = command(org, "add-workspace", cmd_org_add_workspace, "place a workspace in an organization")
    add.add_argument("id", metavar="ORG_ID")
    add.add_argument("--workspace", required=True, metavar="ACCOUNT_ID")
    role = command(org, "role", cmd_org_role, "name an owner or admin of an organization, or take the role away")
    role.add_argument("id", metavar="ORG_ID")
    role.add_argument("--user", required=True, metavar="USER_ID_OR_EMAIL")
    role.add_argument("--role", required=True, choices=organizations.ROLE_CHOICES)
    view = command(org, "governance", cmd_org_governance, "every credential and connection of the organization")
    view.add_argument("id", metavar="ORG_ID")
    view.add_argument("--usage", choices=governance.USAGE_FILTERS)
    view.add_argument("--no-expiry", action="store_true", help="only keys that never expire")
    view.add_argument("--no-ip-allow-list", action="store_true", help="only keys usable from any address")
    view.add_argument("--platform", choices=("zapier", "make", "n8n"), help="only connections of this platform")
