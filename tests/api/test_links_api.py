"""Links, analytics and the public redirect through a real server; every change leaves one outbox event."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from token_broker.store.link_models import OutboxEvent


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def events(make: Keys) -> list[tuple[str, str | None]]:
    with make.database.read() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [(row.type, row.source_credential_id) for row in rows]


def test_a_link_from_creation_to_deletion(live: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key(rate_limits=["1000/minute"])
    auth = bearer(issued.plaintext)
    base = f"/v1/workspaces/{team.account_id}/links"
    with live.client() as client:
        created = client.post(
            base, headers=auth, json={"destination": "https://example.com/launch?x=1", "slug": "Launch"}
        )
        assert created.status_code == 201, created.text
        link = created.json()
        assert link["slug"] == "Launch" and link["destination"] == "https://example.com/launch?x=1"
        assert link["id"].startswith("lnk_") and link["clicks"] == 0
        taken = client.post(base, headers=auth, json={"destination": "https://example.com/", "slug": "launch"})
        assert taken.status_code == 409 and taken.json()["error"] == "conflict"
        assert client.get(f"{base}/{link['id']}", headers=auth).json() == link
        listed = client.get(base, headers=auth).json()
        assert listed == {"data": [link], "has_more": False}

        visit = httpx.get(f"{live.base_url}/r/launch", headers={"Referer": "https://news.example/item"})
        assert visit.status_code == 302 and visit.headers["location"] == "https://example.com/launch?x=1"
        assert httpx.get(f"{live.base_url}/r/nothing-here").status_code == 404
        live.resources.clicks.flush(live.resources.database)  # clicks are written in batches

        report = client.get(f"{base}/{link['id']}/analytics?days=7", headers=auth).json()
        assert report["clicks"] == 1 and len(report["days"]) == 7 and report["days"][-1]["clicks"] == 1
        assert report["top_referrers"] == [{"referrer": "news.example", "clicks": 1}]

        changed = client.patch(f"{base}/{link['id']}", headers=auth, json={"destination": "https://example.org/"})
        assert changed.status_code == 200 and changed.json()["destination"] == "https://example.org/"
        assert client.delete(f"{base}/{link['id']}", headers=auth).status_code == 204
        assert client.get(f"{base}/{link['id']}", headers=auth).status_code == 404
    assert events(make) == [
        ("link.created", issued.view.id),
        ("link.clicked", None),
        ("link.updated", issued.view.id),
        ("link.deleted", issued.view.id),
    ]


def test_pagination_through_the_api(live: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(rate_limits=["1000/minute"]).plaintext)
    base = f"/v1/workspaces/{team.account_id}/links"
    with live.client() as client:
        made = [
            client.post(base, headers=auth, json={"destination": f"https://example.com/{i}"}).json() for i in range(5)
        ]
        first = client.get(f"{base}?limit=2", headers=auth).json()
        assert [link["id"] for link in first["data"]] == [made[4]["id"], made[3]["id"]] and first["has_more"]
        rest = client.get(f"{base}?limit=10&starting_after={made[3]['id']}", headers=auth).json()
        assert [link["id"] for link in rest["data"]] == [made[2]["id"], made[1]["id"], made[0]["id"]]
        assert rest["has_more"] is False
        assert client.get(f"{base}?limit=0", headers=auth).json()["error"] == "invalid_request"


def test_one_workspace_never_sees_anothers_links(live: LiveServer, make: Keys, team: Team) -> None:
    ours = bearer(make.workspace_key().plaintext)
    theirs = bearer(make.workspace_key(account_id=team.other_account_id).plaintext)
    with live.client() as client:
        link = client.post(f"/v1/workspaces/{team.account_id}/links", headers=ours,
                           json={"destination": "https://example.com/"}).json()  # fmt: skip
        response = client.get(f"/v1/workspaces/{team.other_account_id}/links/{link['id']}", headers=theirs)
        assert response.status_code == 404
        assert client.get(f"/v1/workspaces/{team.other_account_id}/links", headers=theirs).json()["data"] == []


def test_redirect_encodes_what_a_header_cannot_carry(live: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key().plaintext)
    with live.client() as client:
        created = client.post(f"/v1/workspaces/{team.account_id}/links", headers=auth,
                              json={"destination": "https://例え.jp/パス?q=ü", "slug": "unicode"})  # fmt: skip
        assert created.status_code == 201, created.text
    visit = httpx.get(f"{live.base_url}/r/UNICODE")
    assert visit.status_code == 302
    assert visit.headers["location"].isascii() and visit.headers["location"].startswith("https://xn--")
