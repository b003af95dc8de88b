"""Introspection answered from remembered client authentications and token descriptions (oauth/fast_introspection.py)
tells exactly what the full way through authlib and the store would.

The attacker's hopes: a token revoked (at /oauth/revoke, by a disconnect, a key revocation, a client revocation) keeps
introspecting active from the cache, here or on another instance; another client, or a wrong secret naming a remembered
client, rides on the legitimate client's remembered authentication; an expired token stays active while cached; the
cache leaks the tokens or secrets it was fed. Each test has the legitimate client working alongside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.connect import Platform, connect, register
from tests.live import LiveServer, live_server
from tests.support import Team
from token_broker import credentials
from token_broker.oauth.client_auth import PresentedClient
from token_broker.oauth.client_cache import VerifiedClients
from token_broker.oauth.fast_introspection import cached_answer, remember
from token_broker.oauth.introspection_cache import Description, DescriptionCache
from token_broker.oauth.server import BrokerAuthorizationServer
from token_broker.services import client_lifecycle, connections, keys, tokens
from token_broker.services.actors import Actor
from token_broker.services.credential_changes import client_change_id

POLL_SECONDS = 30.0  # another instance hears a change within its poll (0.25 s) or a NOTIFY; generous for busy CI


def introspect(live: LiveServer, platform: Platform, token: str, style: str = "post", **extra: str) -> httpx.Response:
    data = {"token": token, **extra}
    headers = platform.basic() if style == "basic" else {}
    if style == "post":
        data |= {"client_id": platform.client_id, "client_secret": platform.client_secret}
    return httpx.post(f"{live.base_url}/oauth/introspect", data=data, headers=headers, timeout=30)


def server_of(live: LiveServer) -> BrokerAuthorizationServer:
    server: BrokerAuthorizationServer = live.app.state.authorization_server
    return server


def warmed(live: LiveServer, platform: Platform, token: str, style: str = "post") -> dict[str, Any]:
    """Introspect until the answer comes from the cache; the active answer."""
    descriptions = server_of(live).descriptions
    for _ in range(3):
        hits = descriptions.hits
        answer = introspect(live, platform, token, style)
        assert answer.status_code == 200 and answer.json()["active"] is True, answer.text
        if descriptions.hits > hits:
            found: dict[str, Any] = answer.json()
            return found
    raise AssertionError("the introspection was never answered from the cache")


def remembered(live: LiveServer, token: str) -> bool:
    descriptions = server_of(live).descriptions
    return descriptions.digest(token) in descriptions._entries


def until(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def other(database_url: str, live: LiveServer) -> Iterator[LiveServer]:
    """A second instance over the same store."""
    with live_server(database_url) as server:
        yield server


def counted_describes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each store read of a description (the full way), counted."""
    calls: list[str] = []
    original = tokens.describe

    def describe(session: Any, presented: str) -> Any:
        calls.append("describe")
        return original(session, presented)

    monkeypatch.setattr(tokens, "describe", describe)
    return calls


def counted_thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each hand-off of the token routes to a worker thread, counted."""
    from anyio import to_thread

    from token_broker.oauth import token_routes

    hops: list[str] = []

    class Counting:
        @staticmethod
        async def run_sync(*args: Any, **kwargs: Any) -> Any:
            hops.append("hop")
            return await to_thread.run_sync(*args, **kwargs)

    monkeypatch.setattr(token_routes, "to_thread", Counting)
    return hops


def comparable(answer: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [
        (name, value) for name, value in answer.headers.items() if name not in ("date", "server", "x-request-id")
    ]
    return answer.status_code, answer.content, headers


def test_a_remembered_answer_is_the_full_ways_answer_byte_for_byte(
    live: LiveServer, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    describes, hops = counted_describes(monkeypatch), counted_thread_hops(monkeypatch)
    platform = register(live.resources.database, "zapier")
    other_client = register(live.resources.database, "make")
    issued = connect(live.base_url, platform, team.account_id)
    for style in ("post", "basic"):
        hopped = len(hops)
        full = introspect(live, platform, issued["access_token"], style)
        assert len(hops) == hopped + 1  # the full way: one worker thread
        assert full.headers["cache-control"] == "no-store" and full.headers["pragma"] == "no-cache"
        read, hopped = len(describes), len(hops)
        remembered = [introspect(live, platform, issued["access_token"], style) for _ in range(3)]
        assert len(describes) == read and len(hops) == hopped  # neither the store nor a worker thread was asked
        assert [comparable(answer) for answer in remembered] == [comparable(full)] * 3
    foreign_full = introspect(live, other_client, issued["access_token"])
    assert foreign_full.json() == {"active": False}
    read = len(describes)
    foreign_remembered = introspect(live, other_client, issued["access_token"])
    assert len(describes) == read and comparable(foreign_remembered) == comparable(foreign_full)
    hinted = introspect(live, platform, issued["access_token"], token_type_hint="refresh_token")
    odd_hint = introspect(live, platform, issued["access_token"], token_type_hint="banana")
    assert hinted.json()["active"] is True and odd_hint.json()["active"] is True  # a hint is only a hint
    refresh_answers = [introspect(live, platform, issued["refresh_token"]) for _ in range(2)]
    assert all(answer.json()["token_type"] == "refresh_token" for answer in refresh_answers)
    assert len(describes) == read + 2  # refresh tokens are never remembered


def test_a_token_revoked_at_revoke_is_inactive_here_at_once_and_on_another_instance(
    live: LiveServer, other: LiveServer, team: Team
) -> None:
    platform = register(live.resources.database, "make")
    issued = connect(live.base_url, platform, team.account_id)
    kept = connect(live.base_url, register(live.resources.database, "zapier"), team.account_id)
    for instance in (live, other):
        warmed(instance, platform, issued["access_token"])
    auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    revoked = httpx.post(f"{live.base_url}/oauth/revoke", data={"token": issued["access_token"], **auth}, timeout=30)
    assert revoked.status_code == 200
    assert introspect(live, platform, issued["access_token"]).json() == {"active": False}
    assert until(lambda: introspect(other, platform, issued["access_token"]).json() == {"active": False})
    for instance in (live, other):
        assert introspect(instance, platform, issued["access_token"]).json() == {"active": False}
        assert introspect(instance, platform, issued["refresh_token"]).json() == {"active": False}
    assert kept["access_token"] != issued["access_token"]


@pytest.mark.parametrize("change", ["disconnect", "revoke_key", "revoke_client", "refresh"])
def test_every_change_to_a_remembered_token_is_heard_on_both_instances(
    live: LiveServer, other: LiveServer, team: Team, change: str
) -> None:
    database = live.resources.database
    platform = register(database, "zapier")
    bystander = register(database, "make")
    issued = connect(live.base_url, platform, team.account_id)
    unrelated = connect(live.base_url, bystander, team.account_id)
    for instance in (live, other):
        warmed(instance, platform, issued["access_token"])
        warmed(instance, bystander, unrelated["access_token"])
    [connection] = [c for c in connections.list_connections(database, team.admin, team.account_id)
                    if c.client_id == platform.client_id]  # fmt: skip
    if change == "disconnect":
        connections.disconnect(database, team.admin, connection.id)
    elif change == "revoke_key":
        keys.revoke_key(database, team.admin, connection.credential_id or "")
    elif change == "revoke_client":
        client_lifecycle.revoke_client(database, Actor.operator(), platform.client_id)
    else:
        form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
        answer = httpx.post(f"{live.base_url}/oauth/token", data=form, headers=platform.basic(), timeout=30)
        assert answer.status_code == 200, answer.text
    if change == "refresh":  # the old access token lives out its time, described afresh (issued at the rotation)
        assert not remembered(live, issued["access_token"])
        assert until(lambda: not remembered(other, issued["access_token"]))
        for instance in (live, other):
            assert introspect(instance, platform, issued["access_token"]).json()["active"] is True
    elif change == "revoke_client":  # the client itself is refused now, as the full way refuses it
        assert introspect(live, platform, issued["access_token"]).json()["error"] == "invalid_client"
        assert until(lambda: introspect(other, platform, issued["access_token"]).status_code == 400)
    else:
        assert introspect(live, platform, issued["access_token"]).json() == {"active": False}
        assert until(lambda: introspect(other, platform, issued["access_token"]).json() == {"active": False})
    for instance in (live, other):  # the legitimate bystander keeps working, from the cache
        assert introspect(instance, bystander, unrelated["access_token"]).json()["active"] is True


def test_a_secret_rotated_out_without_grace_stops_at_once_here_and_soon_on_another_instance(
    live: LiveServer, other: LiveServer, team: Team
) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    issued = connect(live.base_url, platform, team.account_id)
    old = Platform(platform.name, platform.client_id, platform.client_secret, platform.redirect_uri)
    for instance in (live, other):
        for style in ("post", "basic"):
            warmed(instance, old, issued["access_token"], style)
    rotated = client_lifecycle.rotate_client_secret(live.resources.database, Actor.operator(), platform.client_id, 0)
    platform.client_secret = rotated.client_secret
    assert introspect(live, old, issued["access_token"]).json()["error"] == "invalid_client"
    assert introspect(live, old, issued["access_token"], "basic").status_code == 401
    assert until(lambda: introspect(other, old, issued["access_token"], "basic").status_code == 401)
    assert introspect(other, old, issued["access_token"]).status_code == 400
    for instance in (live, other):
        warmed(instance, platform, issued["access_token"])  # the new secret works, and is remembered
        assert introspect(instance, old, issued["access_token"]).status_code == 400


def test_another_client_learns_nothing_of_a_remembered_token(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    owner, intruder = register(database, "zapier"), register(database, "make")
    mine, theirs = connect(live.base_url, owner, team.account_id), connect(live.base_url, intruder, team.account_id)
    warmed(live, owner, mine["access_token"])
    warmed(live, intruder, theirs["access_token"])  # the intruder's own authentication is remembered too
    hits = server_of(live).descriptions.hits
    for style in ("post", "basic", "post"):
        assert introspect(live, intruder, mine["access_token"], style).json() == {"active": False}
    assert server_of(live).descriptions.hits > hits  # answered from the cache, and still refused
    assert introspect(live, owner, mine["access_token"]).json()["active"] is True


def test_a_wrong_secret_naming_a_remembered_client_is_refused_and_charged(database_url: str, team: Team) -> None:
    with live_server(database_url, client_auth_failure_limit="3/hour") as live:
        platform = register(live.resources.database, "zapier")
        issued = connect(live.base_url, platform, team.account_id)
        warmed(live, platform, issued["access_token"])
        wrong = Platform(platform.name, platform.client_id, platform.client_secret + "x", platform.redirect_uri)
        hits = server_of(live).descriptions.hits
        refused_post = introspect(live, wrong, issued["access_token"])
        refused_basic = introspect(live, wrong, issued["access_token"], "basic")
        assert refused_post.status_code == 400 and refused_post.json()["error"] == "invalid_client"
        assert refused_basic.status_code == 401 and refused_basic.json()["error"] == "invalid_client"
        assert "www-authenticate" in refused_basic.headers and "active" not in refused_post.json()
        both = {"token": issued["access_token"], "client_secret": platform.client_secret}
        two_methods = httpx.post(f"{live.base_url}/oauth/introspect", data=both, headers=platform.basic(), timeout=30)
        assert two_methods.status_code == 400 and two_methods.json()["error"] == "invalid_request"
        assert server_of(live).descriptions.hits == hits  # none of them reached the cache
        introspect(live, wrong, issued["access_token"])  # the address's third failure: its budget is spent
        locked = introspect(live, platform, issued["access_token"])
        assert locked.status_code == 429 and locked.json()["error"] == "rate_limited"  # the cache does not bypass it


def test_a_remembered_token_past_its_expiry_is_inactive(database_url: str, team: Team) -> None:
    lifetimes = (("zapier", 2), ("make", 2), ("n8n", 2))
    with live_server(database_url, access_token_seconds=lifetimes) as live:
        platform = register(live.resources.database, "zapier")
        issued = connect(live.base_url, platform, team.account_id)
        exp = warmed(live, platform, issued["access_token"])["exp"]
        while time.time() <= exp + 1:
            time.sleep(0.2)
        assert introspect(live, platform, issued["access_token"]).json() == {"active": False}


def test_the_answer_checks_exp_whatever_the_cache_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    descriptions = DescriptionCache()
    token = credentials.generate(credentials.CredentialKind.PARTNER_ACCESS).plaintext
    fields = {"active": True, "client_id": "client_a", "exp": int(time.time()) + 60, "token_type": "Bearer"}
    descriptions.put(descriptions.digest(token), Description("client_a", b"{}", fields["exp"], "abc"), 0)
    form = {"token": token}
    assert cached_answer(descriptions, "client_a", form) is not None
    import token_broker.oauth.fast_introspection as fast

    class Later:
        @staticmethod
        def time() -> float:
            return float(fields["exp"]) + 1

    monkeypatch.setattr(fast, "time", Later)
    late = cached_answer(descriptions, "client_a", form)
    assert late is not None and late.body == b'{"active":false}'


def test_a_description_read_before_a_change_is_not_kept_after_it() -> None:
    descriptions = DescriptionCache()

    class Introspected:
        def __init__(self, token: str) -> None:
            self.form = {"token": token}
            self.introspected = {"active": True, "client_id": "client_a", "exp": int(time.time()) + 60,
                                 "token_type": "Bearer"}  # fmt: skip

    token = credentials.generate(credentials.CredentialKind.PARTNER_ACCESS)
    since = descriptions.generation
    descriptions.invalidate(token.public_id)  # a revocation committed while the description was being read
    remember(descriptions, Introspected(token.plaintext), since)
    assert len(descriptions) == 0
    remember(descriptions, Introspected(token.plaintext), descriptions.generation)
    assert len(descriptions) == 1
    descriptions.invalidate(token.public_id)
    assert len(descriptions) == 0
    refresh = credentials.generate(credentials.CredentialKind.PARTNER_REFRESH)
    request = Introspected(refresh.plaintext)
    request.introspected["token_type"] = "refresh_token"
    remember(descriptions, request, descriptions.generation)
    assert len(descriptions) == 0


def test_the_caches_hold_no_token_and_no_secret(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    issued = connect(live.base_url, platform, team.account_id)
    for style in ("post", "basic"):
        warmed(live, platform, issued["access_token"], style)
    server = server_of(live)
    held = repr(server.descriptions._entries) + repr(server.verified_clients._entries)
    held += "".join(description.body.decode() for description, *_ in server.descriptions._entries.values())
    secrets_presented = (issued["access_token"], issued["refresh_token"], platform.client_secret)
    for secret in secrets_presented:
        for form in (secret, secret[-24:], credentials.fast_hash(secret)):
            assert form not in held
    assert all(len(key) == 32 for key in server.descriptions._entries)


def test_introspections_sent_after_a_revocation_answered_are_inactive(live: LiveServer, team: Team) -> None:
    """The legitimate client introspects without pause on four connections while it revokes the token."""
    platform = register(live.resources.database, "zapier")
    issued = connect(live.base_url, platform, team.account_id)
    warmed(live, platform, issued["access_token"])
    seen: list[tuple[float, bool]] = []
    revoked_at: list[float] = []

    def caller() -> None:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (revoked_at and sum(at > revoked_at[0] for at, _ in seen) > 40):
                sent = time.monotonic()
                data = {"token": issued["access_token"], "client_id": platform.client_id,
                        "client_secret": platform.client_secret}  # fmt: skip
                answer = client.post(f"{live.base_url}/oauth/introspect", data=data)
                assert answer.status_code == 200, answer.text
                seen.append((sent, answer.json()["active"]))

    with ThreadPoolExecutor(4) as pool:
        callers = [pool.submit(caller) for _ in range(4)]
        assert until(lambda: len(seen) >= 20)
        auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
        answer = httpx.post(f"{live.base_url}/oauth/revoke", data={"token": issued["access_token"], **auth})
        assert answer.status_code == 200
        revoked_at.append(time.monotonic())
        for done in callers:
            done.result()
    after = [active for sent, active in seen if sent > revoked_at[0]]
    assert after and not any(after)
    assert any(active for sent, active in seen if sent < revoked_at[0])


def test_a_remembered_authentication_ends_with_its_secrets_grace(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    issued = connect(live.base_url, platform, team.account_id)
    rotated = client_lifecycle.rotate_client_secret(live.resources.database, Actor.operator(), platform.client_id, 2)
    assert rotated.grace_until is not None
    warmed(live, platform, issued["access_token"])  # the rotated-out secret, in its grace, answered from the cache
    while time.time() <= rotated.grace_until.timestamp() + 0.5:
        time.sleep(0.2)
    assert introspect(live, platform, issued["access_token"]).json()["error"] == "invalid_client"
    platform.client_secret = rotated.client_secret
    assert introspect(live, platform, issued["access_token"]).json()["active"] is True


def test_a_client_authentication_read_before_a_client_change_is_not_kept_after_it() -> None:
    remembered = VerifiedClients()
    digest = remembered.digest(PresentedClient("client_a", "secret", "client_secret_post"))
    since = remembered.generation
    remembered.forget_change(credentials.new_public_id())  # a credential's note: not a client's
    remembered.put(digest, "client_a", since)
    assert remembered.get(digest) == "client_a"
    since = remembered.generation
    remembered.forget_change(client_change_id("client_a"))  # the secret was rotated while it was being verified
    remembered.put(digest, "client_a", since)
    assert remembered.get(digest) is None
    remembered.put(digest, "client_a", remembered.generation)
    remembered.forget_change(client_change_id("client_b"))
    assert remembered.get(digest) == "client_a"
    remembered.forget_change(client_change_id("client_a"))
    assert remembered.get(digest) is None
