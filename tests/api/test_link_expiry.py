"""Link expiry through a real server: an optional expires_at, 410 Gone with a plain page once past (no click
counted), listed as expired, reactivated by PATCHing a new expiry; bad expiries refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from token_broker.store.link_models import Link


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def let_it_expire(make: Keys, link_id: str) -> None:
    """What the passing of time does to the link: its expires_at is now behind us."""
    with make.database.write() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(Link).where(Link.public_id == link_id).values(expires_at=past))


def test_an_expired_link_answers_410_and_a_new_expiry_reactivates_it(live: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(rate_limits=["1000/minute"]).plaintext)
    base = f"/v1/workspaces/{team.account_id}/links"
    soon = datetime.now(UTC) + timedelta(days=1)
    with live.client() as client:
        created = client.post(base, headers=auth, json={"destination": "https://example.com/sale", "slug": "Sale",
                                                        "expires_at": stamp(soon)})  # fmt: skip
        assert created.status_code == 201, created.text
        link = created.json()
        assert link["expires_at"] == stamp(soon) and link["status"] == "active"
        assert httpx.get(f"{live.base_url}/r/sale").status_code == 302

        let_it_expire(make, link["id"])
        gone = httpx.get(f"{live.base_url}/r/SALE")
        assert gone.status_code == 410 and gone.headers["content-type"].startswith("text/plain")
        assert "expired" in gone.text and "example.com" not in gone.text
        assert httpx.get(f"{live.base_url}/r/unknown-slug").status_code == 404
        live.resources.clicks.flush(live.resources.database)  # clicks are written in batches
        listed = client.get(base, headers=auth).json()["data"]
        assert [(item["id"], item["status"]) for item in listed] == [(link["id"], "expired")]
        assert client.get(f"{base}/{link['id']}", headers=auth).json()["clicks"] == 1, "no click counted when gone"

        later = datetime.now(UTC) + timedelta(days=30)
        revived = client.patch(f"{base}/{link['id']}", headers=auth, json={"expires_at": stamp(later)})
        assert revived.status_code == 200 and revived.json()["status"] == "active"
        assert httpx.get(f"{live.base_url}/r/sale").status_code == 302
        let_it_expire(make, link["id"])
        forever = client.patch(f"{base}/{link['id']}", headers=auth, json={"expires_at": None})
        assert forever.status_code == 200 and forever.json()["expires_at"] is None
        assert forever.json()["status"] == "active"
        assert httpx.get(f"{live.base_url}/r/sale").status_code == 302


def test_bad_expiries_are_refused_naming_the_field(live: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(rate_limits=["1000/minute"]).plaintext)
    base = f"/v1/workspaces/{team.account_id}/links"
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    with live.client() as client:
        for value in (past, "tomorrow", "2030-01-01", "2030-01-01T00:00:00", 1893456000, "9999-12-31T00:00:00Z", []):
            answer = client.post(base, headers=auth, json={"destination": "https://example.com/", "expires_at": value})
            assert answer.status_code == 422, (value, answer.text)
            assert answer.json()["error"] == "invalid_request" and "expires_at" in answer.json()["message"]
        link = client.post(base, headers=auth, json={"destination": "https://example.com/"}).json()
        assert link["expires_at"] is None and link["status"] == "active"
        refused = client.patch(f"{base}/{link['id']}", headers=auth, json={"expires_at": past})
        assert refused.status_code == 422 and "expires_at" in refused.json()["message"]


def test_the_openapi_document_describes_expiry(live: LiveServer) -> None:
    with live.client() as client:
        document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("Link", "LinkCreate", "LinkUpdate"):
        assert "expires_at" in schemas[name]["properties"]
    assert schemas["Link"]["properties"]["status"]["enum"] == ["active", "expired"]
    assert "410" in document["paths"]["/r/{slug}"]["get"]["responses"]
