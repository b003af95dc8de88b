"""The token endpoint remembers recent client authentications (oauth/client_cache.py) only to skip a read transaction
before the grant: the grant's own transaction still authenticates the client, so a secret rotated out without grace or a
client revoked after it was remembered is refused at once, and nothing of the chain is spent by the refused request.
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.connect import Platform, connect, refresh, register
from tests.live import LiveServer
from tests.support import Team
from token_broker.oauth.client_auth import PresentedClient
from token_broker.oauth.client_cache import VerifiedClients
from token_broker.services import client_lifecycle
from token_broker.services.actors import Actor
from token_broker.store.models import AuditEvent


def refreshed_twice(live: LiveServer, platform: Platform, refresh_token: str, style: str) -> str:
    """Two refreshes with the same client credentials (the second is answered from the remembered authentication);
    the newest refresh token."""
    for _ in range(2):
        answer = refresh(live.base_url, platform, refresh_token, style=style)
        assert answer.status_code == 200, answer.text
        refresh_token = answer.json()["refresh_token"]
    return refresh_token


def refreshes_audited(live: LiveServer) -> int:
    with live.resources.database.read() as session:
        return session.scalar(select(func.count()).where(AuditEvent.action == "token.refreshed")) or 0


def test_a_secret_rotated_out_without_grace_is_refused_though_remembered(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    for style in ("post", "basic"):
        platform = register(database, "n8n", team.account_id, team.admin)
        newest = refreshed_twice(live, platform, connect(live.base_url, platform, team.account_id)["refresh_token"],
                                 style)  # fmt: skip
        audited = refreshes_audited(live)
        rotated = client_lifecycle.rotate_client_secret(database, Actor.operator(), platform.client_id, 0)
        refused = refresh(live.base_url, platform, newest, style=style)
        assert refused.status_code == (401 if style == "basic" else 400), refused.text
        assert refused.json()["error"] == "invalid_client"
        assert refreshes_audited(live) == audited  # nothing was rotated for the refused request
        platform.client_secret = rotated.client_secret
        assert refresh(live.base_url, platform, newest, style=style).status_code == 200  # the chain is intact


def test_a_client_revoked_after_it_was_remembered_gets_nothing_more(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    platform = register(database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    newest = refreshed_twice(live, platform, tokens["refresh_token"], "post")
    client_lifecycle.revoke_client(database, Actor.operator(), platform.client_id)
    refused = refresh(live.base_url, platform, newest)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    assert "access_token" not in refused.json()


def test_a_wrong_secret_naming_a_remembered_client_is_refused(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    platform = register(database, "zapier")
    newest = refreshed_twice(live, platform, connect(live.base_url, platform, team.account_id)["refresh_token"], "post")
    form = {"grant_type": "refresh_token", "refresh_token": newest, "client_id": platform.client_id,
            "client_secret": platform.client_secret + "x"}  # fmt: skip
    answer = httpx.post(f"{live.base_url}/oauth/token", data=form, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"
    assert refresh(live.base_url, platform, newest).status_code == 200  # the attempt spent nothing of the chain


def test_entries_are_keyed_by_every_part_of_the_presentation_and_expire() -> None:
    remembered = VerifiedClients(ttl_seconds=0.0)
    presented = PresentedClient("client_a", "secret", "client_secret_post")
    digest = remembered.digest(presented)
    assert b"secret" not in digest and len(digest) == 32
    others = [PresentedClient("client_a", "secreT", "client_secret_post"),
              PresentedClient("client_b", "secret", "client_secret_post"),
              PresentedClient("client_a", "secret", "client_secret_basic")]  # fmt: skip
    assert all(remembered.digest(other) != digest for other in others)
    remembered.put(digest, "client_a")
    assert remembered.get(digest) is None  # expired at once with a zero TTL
    lasting = VerifiedClients()
    lasting.put(lasting.digest(presented), "client_a")
    assert lasting.get(lasting.digest(presented)) == "client_a"
    lasting.forget("client_a")
    assert lasting.get(lasting.digest(presented)) is None
