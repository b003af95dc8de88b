"""Connect flows end to end through a real server, the way each platform runs them, then the API with the token."""

from __future__ import annotations

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from tests.connect import connect, register
from tests.live import LiveServer
from tests.support import Team
from token_broker import credentials
from token_broker.services import connections, keys


def test_metadata(live: LiveServer) -> None:
    document = httpx.get(f"{live.base_url}/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == live.base_url
    assert document["authorization_endpoint"] == f"{live.base_url}/oauth/authorize"
    assert document["token_endpoint"] == f"{live.base_url}/oauth/token"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert set(document["scopes_supported"]) == {"links:read", "links:write", "analytics:read", "hooks:write"}
    assert document["authorization_response_iss_parameter_supported"] is True
    AuthorizationServerMetadata(document).validate()


@pytest.mark.parametrize(
    ("platform", "style", "pkce"),
    [("zapier", "post", True), ("zapier", "post", False), ("make", "post", True), ("make", "basic", False),
     ("n8n", "basic", True), ("n8n", "post", True)],
)  # fmt: skip
def test_connect_then_call_the_api(live: LiveServer, team: Team, make: object, platform: str, style: str,
                                   pkce: bool) -> None:  # fmt: skip
    database = live.resources.database
    client = register(database, platform, team.account_id, team.admin)
    tokens = connect(live.base_url, client, team.account_id, style=style, pkce=pkce)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "account_id"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["account_id"] == team.account_id
    assert tokens["access_token"].startswith("nim_pat_") and tokens["refresh_token"].startswith("nim_prt_")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = httpx.get(f"{live.base_url}/v1/me", headers=auth).json()
    assert me["credential"]["kind"] == "partner_install_token" and me["credential"]["platform"] == platform
    links = httpx.get(f"{live.base_url}/v1/workspaces/{team.account_id}/links", headers=auth)
    assert links.status_code == 200
    listed = keys.list_keys(database, team.viewer, team.account_id)
    assert [(view.kind, view.platform) for view in listed] == [("partner_install_token", platform)]
    assert listed[0].id == credentials.parse(tokens["access_token"]).public_id
    [connection] = connections.list_connections(database, team.member, team.account_id)
    assert connection.platform == platform and connection.status == "active"
    assert connection.client_id == client.client_id and connection.created_by == team.admin.label


def test_token_answers_are_not_cached_and_ignore_a_bearer_header(live: LiveServer, team: Team) -> None:
    client = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, client, team.account_id)
    answer = httpx.post(
        f"{live.base_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client.client_id,
              "client_secret": client.client_secret},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},  # Zapier's beforeRequest adds this
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store" and answer.headers["pragma"] == "no-cache"
    assert answer.json()["refresh_token"] != tokens["refresh_token"]


def test_scope_is_at_most_the_manifests(live: LiveServer, team: Team) -> None:
    client = register(live.resources.database, "zapier")
    manifest = live.resources.manifests["zapier"]
    tokens = connect(live.base_url, client, team.account_id)
    assert tokens["scope"].split() == list(manifest.scopes)


def test_a_partner_token_reaches_only_its_manifests_endpoints(live: LiveServer, team: Team) -> None:
    client = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, client, team.account_id)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    manifest = live.resources.manifests["zapier"]
    outside = [(m, p) for m, p in (("DELETE", "/v1/workspaces/{account_id}/links/{link_id}"),
                                   ("PATCH", "/v1/workspaces/{account_id}/links/{link_id}"))
               if not manifest.allows(m, p)]  # fmt: skip
    assert outside, "the test needs an endpoint outside the zapier manifest"
    for method, path in outside:
        url = live.base_url + path.format(account_id=team.account_id, link_id="lnk_whatever")
        answer = httpx.request(method, url, headers=auth, json={})
        assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"
