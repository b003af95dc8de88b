"""Recent activity does not grow for ever: rows older than TOKEN_BROKER_ACTIVITY_RETENTION_DAYS are pruned by every
server (at start, then hourly), while a key keeps writing links and an admin keeps reading the recent ones."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.config import Settings, SettingsError
from token_broker.services.link_activity import prune_activity
from token_broker.store.activity_models import LinkActivity
from token_broker.store.database import Database
from token_broker.store.models import utcnow


def activity_count(database: Database) -> int:
    with database.read() as session:
        return int(session.scalar(select(func.count(LinkActivity.id))) or 0)


def write_links(live: LiveServer, key: str, account_id: str, slugs: list[str]) -> list[str]:
    """The new links' ids."""
    base = f"{live.base_url}/v1/workspaces/{account_id}/links"
    made_ids = []
    for slug in slugs:
        made = httpx.post(
            base, headers={"Authorization": f"Bearer {key}"}, json={"destination": "https://example.com/", "slug": slug}
        )
        assert made.status_code == 201, made.text
        made_ids.append(made.json()["id"])
    return made_ids


def age(database: Database, days: int, count: int) -> None:
    """Make the oldest `count` rows `days` old."""
    with database.write() as session:
        oldest = list(session.scalars(select(LinkActivity.id).order_by(LinkActivity.id).limit(count)))
        session.execute(
            update(LinkActivity).where(LinkActivity.id.in_(oldest)).values(occurred_at=utcnow() - timedelta(days=days))
        )


def test_a_server_prunes_activity_older_than_the_retention_while_links_are_written(
    database_url: str, database: Database, live: LiveServer, make: Keys, team: Team
) -> None:
    key = make.workspace_key(name="Importer", rate_limits=["1000/minute"]).plaintext
    _, _, kept = write_links(live, key, team.account_id, ["a", "b", "c"])
    age(database, days=40, count=2)
    with live_server(database_url, activity_retention_days=30) as pruning:
        deadline = time.monotonic() + 60
        while activity_count(database) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        [newest] = write_links(pruning, key, team.account_id, ["d"])
        with signed_in(pruning, "admin") as admin:
            listed = admin.get(f"/api/workspaces/{team.account_id}/activity")
    assert listed.status_code == 200
    assert [item["link_id"] for item in listed.json()["data"]] == [newest, kept]


def test_pruning_goes_in_batches_and_keeps_what_is_recent(
    database: Database, live: LiveServer, make: Keys, team: Team
) -> None:
    key = make.workspace_key(name="Importer", rate_limits=["1000/minute"]).plaintext
    write_links(live, key, team.account_id, [f"s{n}" for n in range(7)])
    age(database, days=100, count=5)
    assert prune_activity(database, utcnow() - timedelta(days=90), batch=2) == 5
    assert activity_count(database) == 2
    assert prune_activity(database, utcnow() - timedelta(days=90), batch=2) == 0


def test_the_retention_setting_is_a_positive_number_of_days() -> None:
    assert Settings.from_env({}).activity_retention_days == 90
    assert Settings.from_env({"TOKEN_BROKER_ACTIVITY_RETENTION_DAYS": "7"}).activity_retention_days == 7
    for bad in ("0", "-1", "a week"):
        with pytest.raises(SettingsError, match="TOKEN_BROKER_ACTIVITY_RETENTION_DAYS"):
            Settings.from_env({"TOKEN_BROKER_ACTIVITY_RETENTION_DAYS": bad})
