"""The public redirect under a flood: one address is limited (429 with Retry-After) while another still redirects, and
the clicks, written in batches, are all counted, with one link.clicked event each, on both stores, also across a stop.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.servers import command_env, running_server
from tests.support import Team, make_team
from token_broker.credentials import SecretHasher
from token_broker.guard.redirect_limit import BURST, RedirectLimit
from token_broker.services import links
from token_broker.store.database import Database
from token_broker.store.link_models import Link, LinkClick, OutboxEvent
from token_broker.store.models import Workspace

FLOOD = 3 * BURST


def visitor(base_url: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, timeout=60, transport=transport, follow_redirects=False)


def make_link(database: Database, team: Team, make: Keys, slug: str) -> None:
    key = make.workspace_key()
    with database.read() as session:
        workspace_id = session.scalars(select(Workspace.id).where(Workspace.account_id == team.account_id)).one()
    links.create_link(database, workspace_id, key.view.id, f"https://example.com/{slug}", slug)


def clicks_of(database: Database, slug: str) -> tuple[int, int, list[int]]:
    """(the link's count, its click rows, the link.clicks of its link.clicked events in order)."""
    with database.read() as session:
        link = session.scalars(select(Link).where(Link.slug_key == slug.lower())).one()
        rows = len(session.scalars(select(LinkClick.id).where(LinkClick.link_id == link.id)).all())
        events = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == "link.clicked").order_by(OutboxEvent.id)
        ).all()
    return link.click_count, rows, [event["data"]["link"]["clicks"] for event in events]


def test_one_address_is_limited_while_another_still_redirects(
    live: LiveServer, database: Database, team: Team, make: Keys
) -> None:
    make_link(database, team, make, "promo")
    flood: Counter[int] = Counter()
    retry_after: list[str] = []
    done = threading.Event()

    elapsed: list[float] = []

    def attack() -> None:
        started = time.monotonic()
        with visitor(live.base_url, "127.0.0.2") as attacker:
            for _ in range(FLOOD):
                answer = attacker.get("/r/promo")
                flood[answer.status_code] += 1
                if answer.status_code == 429:
                    retry_after.append(answer.headers["retry-after"])
        elapsed.append(time.monotonic() - started)
        done.set()

    thread = threading.Thread(target=attack)
    thread.start()
    legit = Counter[int]()
    with visitor(live.base_url, "127.0.0.3") as person:
        while not done.is_set() or not legit:
            legit[person.get("/r/promo").status_code] += 1
            if sum(legit.values()) >= BURST // 2:
                break
    thread.join()
    assert set(legit) == {302}, legit
    assert flood[429] > 0 and flood[302] + flood[429] == FLOOD, flood
    # The burst, plus what refilled while the flood lasted (one a second), and no more.
    assert flood[302] <= BURST + elapsed[0] + 1, (flood, elapsed)
    assert all(value.isdigit() and int(value) >= 1 for value in retry_after)

    live.resources.clicks.flush(live.resources.database)
    count, rows, events = clicks_of(database, "promo")
    assert count == rows == flood[302] + legit[302]
    assert events == list(range(1, count + 1))  # one event per click, counting up as if written one by one
    scraped = httpx.get(f"{live.base_url}/metrics").text
    assert f"token_broker_redirects_refused_total {float(flood[429])}" in scraped
    assert f"token_broker_clicks_written_total {float(count)}" in scraped


def test_clicks_noted_before_a_graceful_stop_are_written(
    database_url: str, database: Database, team: Team, make: Keys
) -> None:
    make_link(database, team, make, "launch")
    with live_server(database_url) as live:
        with visitor(live.base_url, "127.0.0.4") as person:
            answers = [person.get("/r/launch").status_code for _ in range(20)]
        assert answers == [302] * 20
    count, rows, events = clicks_of(database, "launch")  # the stop wrote what the timer had not yet
    assert count == rows == len(events) == 20


def test_the_limit_refills_and_is_per_address_block() -> None:
    limit = RedirectLimit(burst=2, rate=0.5)
    assert [limit.take("2001:db8::1"), limit.take("2001:db8::2")] == [0, 0]
    wait = limit.take("2001:db8::3")  # the same /64
    assert wait >= 1 and wait <= 2
    assert limit.take("2001:db8:0:1::1") == 0  # another /64
    assert limit.take("192.0.2.1") == 0


def test_sigterm_writes_the_clicks_of_a_served_process(tmp_path: Path, hasher: SecretHasher) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with running_server(command_env(url), tmp_path / "server.log") as base:
        database = Database(url)
        try:
            team = make_team(database, hasher)
            make_link(database, team, Keys(database, hasher, team), "served")
            with visitor(base, "127.0.0.5") as person:
                assert [person.get("/r/served").status_code for _ in range(15)] == [302] * 15
        finally:
            database.dispose()
    # running_server stops it with SIGTERM: the lifespan writes what the once-a-second timer had not yet.
    database = Database(url)
    try:
        count, rows, events = clicks_of(database, "served")
    finally:
        database.dispose()
    assert count == rows == len(events) == 15
