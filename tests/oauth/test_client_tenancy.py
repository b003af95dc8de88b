"""An n8n client reaches only the workspace that registered it, whoever is sent its authorize link.

The attacker is the owner of one workspace (Globex) who registers an "n8n instance" whose callback is on a host they
control, then sends the authorize link to an admin of another workspace (Acme). Each step refuses on its own: the
consent page offers no other workspace, a forged `account_id` in the POST makes no code, and a code for another
workspace (however it came to be) is not redeemed. Platform-wide clients (Zapier, Make) still offer every workspace
the user manages.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from tests.browser_forms import forms, hidden_inputs, sign_in
from tests.connect import Platform, authorize_params, exchange, register
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.credentials import SecretHasher
from token_broker.services import clients, tokens, workspaces
from token_broker.services.actors import Actor
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent, User, Workspace
from token_broker.store.oauth_models import AuthorizationCode, Connection, OAuthClient

ATTACKER_CALLBACK = "https://collect.attacker.example:8443/rest/oauth2-credential/callback"


def attackers_client(database: Database, team: Team) -> Platform:
    """An n8n client registered by Globex's owner, its callback on the attacker's host."""
    made = clients.register_client(
        database, team.outsider, "n8n", [ATTACKER_CALLBACK], account_id=team.other_account_id
    )
    return Platform("n8n", made.client_id, made.client_secret, ATTACKER_CALLBACK)


@pytest.fixture
def victim(live: LiveServer, team: Team) -> Iterator[httpx.Client]:
    """Acme's admin, signed in: manages Acme only."""
    with live.client() as client:
        assert sign_in(client, "admin@acme.example", PASSWORD).status_code == 303
        yield client


def selectable(html: str) -> list[str]:
    [consent] = [form for form in forms(html) if form["action"] == "/oauth/authorize"]
    options = consent["selects"]
    assert isinstance(options, dict)
    return list(options["account_id"])


def connections_of(database: Database, account_id: str) -> int:
    with database.read() as session:
        count: int = session.scalar(
            select(func.count(Connection.id))
            .join(Workspace, Workspace.id == Connection.workspace_id)
            .where(Workspace.account_id == account_id)
        )
        return count


def codes_of(database: Database, account_id: str) -> int:
    with database.read() as session:
        count: int = session.scalar(
            select(func.count(AuthorizationCode.id))
            .join(Workspace, Workspace.id == AuthorizationCode.workspace_id)
            .where(Workspace.account_id == account_id)
        )
        return count


def test_the_consent_page_offers_the_victim_nothing(live: LiveServer, team: Team, victim: httpx.Client) -> None:
    attacker = attackers_client(live.resources.database, team)
    page = victim.get("/oauth/authorize", params=authorize_params(attacker))
    assert page.status_code == 403
    assert "Globex" in page.text and "can connect only to it" in page.text
    assert team.account_id not in page.text and 'name="decision"' not in page.text
    assert "Internal Server Error" not in page.text


def test_a_forged_account_id_makes_no_code(
    live: LiveServer, team: Team, victim: httpx.Client, hasher: SecretHasher
) -> None:
    database = live.resources.database
    attacker = attackers_client(database, team)
    # The victim could approve for Globex if they managed it; the form would then carry the right hidden fields.
    workspaces.add_user(database, hasher, Actor.operator(), "admin@acme.example", PASSWORD, team.other_account_id,
                        "admin")  # fmt: skip
    page = victim.get("/oauth/authorize", params=authorize_params(attacker))
    assert page.status_code == 200
    assert selectable(page.text) == [team.other_account_id]
    fields = hidden_inputs(page.text, "/oauth/authorize")
    forged = victim.post("/oauth/authorize", data={**fields, "account_id": team.account_id, "decision": "approve"})
    assert forged.status_code == 403 and "Globex" in forged.text
    assert "location" not in forged.headers
    assert codes_of(database, team.account_id) == 0
    # The forgery is an attack signal: both workspaces' audits show it, naming who tried and from where.
    with database.read() as session:
        rows = session.execute(
            select(Workspace.account_id, AuditEvent.outcome, AuditEvent.reason, AuditEvent.actor, AuditEvent.target_id,
                   AuditEvent.client_address, AuditEvent.details)
            .join(Workspace, Workspace.id == AuditEvent.workspace_id)
            .where(AuditEvent.action == "oauth.consent_refused")
        ).all()  # fmt: skip
        victim_id = session.scalar(select(User.public_id).where(User.email == "admin@acme.example"))
    assert sorted(row.account_id for row in rows) == sorted([team.account_id, team.other_account_id])
    for row in rows:
        assert (row.outcome, row.reason, row.actor) == ("refused", "workspace_mismatch", victim_id)
        assert row.target_id == attacker.client_id and row.client_address == "127.0.0.1"
        assert row.details == {"platform": "n8n", "account_id": team.account_id}
    honest = victim.post(
        "/oauth/authorize", data={**fields, "account_id": team.other_account_id, "decision": "approve"}
    )
    assert honest.status_code == 303 and honest.headers["location"].startswith(ATTACKER_CALLBACK + "?code=")
    assert codes_of(database, team.other_account_id) == 1


def test_a_code_for_another_workspace_is_not_redeemed(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    attacker = attackers_client(database, team)
    code = secrets.token_urlsafe(32)
    with database.write() as session:  # a code the consent steps would never make, planted as if they had
        client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == attacker.client_id)).one()
        acme = session.scalars(select(Workspace).where(Workspace.account_id == team.account_id)).one()
        admin = session.scalars(select(User).where(User.email == "admin@acme.example")).one()
        tokens.issue_code(session, code, client, acme.id, admin.id, ATTACKER_CALLBACK, "links:read", attacker.challenge,
                          "S256")  # fmt: skip
    for style in ("post", "basic"):
        answer = exchange(live.base_url, attacker, code, style=style)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
        assert "access_token" not in answer.json()
    assert connections_of(database, team.account_id) == 0


def test_the_consent_page_names_the_platform_the_host_and_the_registering_workspace(
    live: LiveServer, team: Team, victim: httpx.Client
) -> None:
    own = register(live.resources.database, "n8n", team.account_id, team.admin)
    page = victim.get("/oauth/authorize", params=authorize_params(own))
    assert page.status_code == 200
    assert "Connect n8n" in page.text
    assert "<strong>n8n.example.com</strong>" in page.text
    assert "the workspace <strong>Acme</strong>" in page.text
    assert selectable(page.text) == [team.account_id]


def test_a_platform_wide_client_still_offers_every_managed_workspace(
    live: LiveServer, team: Team, victim: httpx.Client, hasher: SecretHasher
) -> None:
    database = live.resources.database
    workspaces.add_user(database, hasher, Actor.operator(), "admin@acme.example", PASSWORD, team.other_account_id,
                        "owner")  # fmt: skip
    zapier = register(database, "zapier")
    page = victim.get("/oauth/authorize", params=authorize_params(zapier))
    assert page.status_code == 200
    assert selectable(page.text) == [team.account_id, team.other_account_id]
    assert "<strong>zapier.com</strong>" in page.text and "Registered by" not in page.text
    fields = hidden_inputs(page.text, "/oauth/authorize")
    answer = victim.post(
        "/oauth/authorize", data={**fields, "account_id": team.other_account_id, "decision": "approve"}
    )
    assert answer.status_code == 303 and "code=" in answer.headers["location"]


def test_a_user_who_manages_no_workspace_gets_a_page(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    own = register(live.resources.database, "n8n", team.account_id, team.admin)
    with live.client() as member:
        assert sign_in(member, "member@acme.example", PASSWORD).status_code == 303
        for platform in (zapier, own):
            page = member.get("/oauth/authorize", params=authorize_params(platform))
            assert page.status_code == 403 and "owner or admin" in page.text, page.text
            fields = {**authorize_params(platform), "csrf_token": member.get("/api/session").json()["csrf_token"]}
            posted = member.post("/oauth/authorize", data={**fields, "account_id": team.account_id,
                                                            "decision": "approve"})  # fmt: skip
            assert posted.status_code == 403 and "location" not in posted.headers
