"""The link shortener's rules, on SQLite and PostgreSQL: what a destination and a slug may be, who sees which link,
pagination, the outbox event of every change, click counting under concurrency, and analytics by UTC day."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select

from tests.support import Team
from token_broker import wire
from token_broker.api import payloads
from token_broker.errors import Conflict, InvalidInput, NotFound
from token_broker.services import link_analytics, link_clicks, link_fields, links, outbox
from token_broker.services.links import LinkView
from token_broker.store.database import Database
from token_broker.store.link_models import DEFAULT_DOMAIN, Link, LinkClick, OutboxEvent
from token_broker.store.models import Workspace

CREDENTIAL_ID = "4fQ2k9LmZx0a"


def link_body(view: LinkView) -> dict[str, Any]:
    """A link as the API and the link events send it."""
    found: dict[str, Any] = msgspec.to_builtins(wire.link(view))
    return found


def analytics(database: Database, workspace_id: int, link_id: str, days: int = 30) -> dict[str, Any]:
    """A link's analytics as the API sends them."""
    found: dict[str, Any] = msgspec.to_builtins(
        payloads.analytics(link_analytics.link_analytics(database, workspace_id, link_id, days))
    )
    return found


def workspace_id(database: Database, account_id: str) -> int:
    with database.read() as session:
        found = session.scalar(select(Workspace.id).where(Workspace.account_id == account_id))
    assert found is not None
    return found


@pytest.fixture
def acme(database: Database, team: Team) -> int:
    return workspace_id(database, team.account_id)


@pytest.fixture
def globex(database: Database, team: Team) -> int:
    return workspace_id(database, team.other_account_id)


def events(database: Database) -> list[OutboxEvent]:
    with database.read() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def count(database: Database, model: type[Link] | type[LinkClick] | type[OutboxEvent]) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# Destinations.

GOOD_DESTINATIONS = [
    ("https://example.com", "https://example.com"),
    ("http://example.com/path?q=1#top", "http://example.com/path?q=1#top"),
    ("HTTPS://EXAMPLE.COM/Keep/Path/Case", "https://example.com/Keep/Path/Case"),
    ("https://medium.com/@someone/a-post", "https://medium.com/@someone/a-post"),
    ("https://example.com:8443/x", "https://example.com:8443/x"),
    ("http://192.0.2.10/", "http://192.0.2.10/"),
    ("https://[2001:db8:0:0::1]:8080/", "https://[2001:db8::1]:8080/"),
    ("https://example.com/a%20b?x=%41", "https://example.com/a%20b?x=%41"),
    ("https://münchen.example/straße?ä=ö", "https://xn--mnchen-3ya.example/stra%C3%9Fe?%C3%A4=%C3%B6"),
    ('https://example.com/"><script>', "https://example.com/%22%3E%3Cscript%3E"),
    ("https://example.com./", "https://example.com./"),
]

HOSTILE_DESTINATIONS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "javascript://example.com/%0Aalert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD4=",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "ftp://example.com/file",
    "mailto:someone@example.com",
    "//example.com/scheme-relative",
    "/relative/path",
    "example.com",
    "https:example.com",
    "https:/example.com",
    "http://",
    "https:///no-host",
    " https://example.com",
    "https://example.com ",
    "https://exa mple.com",
    "https://example.com/\x00",
    "https://example.com/\r\nSet-Cookie: x=1",
    "\u202ehttps://example.com",
    "https://exam\u200bple.com",
    "https://user:secret@example.com/",
    "https://user@example.com/",
    "https://example.com%2F@evil.example/",
    "https://example.com\\@evil.example/",
    "https:\\\\evil.example",
    "https://evil.example\uff0fgood.example",
    "https://%65vil.example/",
    "https://stra\u00dfe.example/",  # IDNA 2003 would make it strasse.example, browsers xn--strae-oqa.example
    "https://example.com:99999/",
    "https://example.com:0/",
    "https://example.com:http/",
    "https://[not-an-address]/",
    "http://[::1",
    "https://a..example/",
    "https://" + "a" * 64 + ".example/",
    "https://example.com/" + "a" * 2049,
    "https\uff1a//example.com",  # a fullwidth colon
    "",
    None,
    42,
    b"https://example.com",
    ["https://example.com"],
]


@pytest.mark.parametrize(("given_value", "stored"), GOOD_DESTINATIONS)
def test_good_destinations_are_kept_or_normalised(given_value: str, stored: str) -> None:
    assert link_fields.validate_destination(given_value) == stored


@pytest.mark.parametrize("value", HOSTILE_DESTINATIONS)
def test_hostile_or_odd_destinations_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        link_fields.validate_destination(value)
    assert caught.value.field == "destination"
    assert caught.value.message.endswith(".") and len(caught.value.message) < 200


def test_destinations_are_at_most_2048_characters_even_once_encoded() -> None:
    prefix = "https://example.com/"
    assert link_fields.validate_destination(prefix + "a" * (2048 - len(prefix))) == prefix + "a" * (2048 - len(prefix))
    with pytest.raises(InvalidInput, match="2048"):
        link_fields.validate_destination(prefix + "a" * (2049 - len(prefix)))
    with pytest.raises(InvalidInput, match="percent-encoded"):
        link_fields.validate_destination(prefix + "é" * 500)  # 520 characters given, 3020 once encoded


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text().map(lambda tail: "https://" + tail), st.text().map(lambda t: "http://a.b/" + t)))
def test_validation_refuses_or_stores_printable_ascii(value: str) -> None:
    try:
        stored = link_fields.validate_destination(value)
    except InvalidInput as error:
        refused: InvalidInput | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.field == "destination"
        return
    assert stored.startswith(("http://", "https://"))
    assert stored.isascii() and stored.isprintable() and " " not in stored and "\\" not in stored
    assert len(stored) <= 2048
    assert link_fields.validate_destination(stored) == stored  # normalising is idempotent


# Slugs.


@pytest.mark.parametrize("slug", ["a", "Promo", "spring-sale_2026", "9lives", "x" * 64, "ADMINS", "v1beta", "rr"])
def test_good_slugs_are_kept_as_written(slug: str) -> None:
    assert link_fields.validate_slug(slug) == slug


@pytest.mark.parametrize(
    "slug",
    ["", "-lead", "_lead", "has space", "dot.ted", "slash/ed", "x" * 65, "émoji🙂", "tab\t", "nul\x00", "a\n", 7],
)
def test_malformed_slugs_are_refused(slug: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        link_fields.validate_slug(slug)
    assert caught.value.field == "slug"
    assert caught.value.message == link_fields.SLUG_RULE


@pytest.mark.parametrize(
    "slug",
    [
        "api",
        "ADMIN",
        "Login",
        "logout",
        "oauth",
        "r",
        "R",
        "v1",
        "V2",
        "v3",
        "static",
        "assets",
        "healthz",
        "metrics",
        "openapi.json",
        "dashboard",
        "workspaces",
        ".well-known",
        "app",
        "docs",
        "help",
        "Support",
    ],
)
def test_reserved_slugs_are_refused_whatever_their_case(slug: str) -> None:
    with pytest.raises(InvalidInput, match="reserved") as caught:
        link_fields.validate_slug(slug)
    assert caught.value.field == "slug"


# Creating, reading and listing.


def test_create_with_a_slug(database: Database, team: Team, acme: int) -> None:
    view = links.create_link(database, acme, team.admin.label, "https://example.com/spring", "Spring-Sale")
    assert view.id.startswith("lnk_") and len(view.id) == 20
    assert (view.domain, view.slug, view.destination, view.clicks) == (
        DEFAULT_DOMAIN,
        "Spring-Sale",
        "https://example.com/spring",
        0,
    )
    assert view.created_by == team.admin.label and view.created_at == view.updated_at
    assert view.created_at.tzinfo is not None
    body = link_body(view)
    assert body["created_at"].endswith("Z") and body["updated_at"] == body["created_at"]
    assert set(body) == {"id", "domain", "slug", "destination", "clicks", "created_at", "updated_at", "created_by",
                         "expires_at", "status"}  # fmt: skip
    assert links.get_link(database, acme, view.id) == view
    with database.read() as session:
        row = session.scalars(select(Link)).one()
    assert row.slug_key == "spring-sale"


def test_create_without_a_slug_picks_a_random_one(database: Database, acme: int) -> None:
    made = [links.create_link(database, acme, "operator", "https://example.com") for _ in range(20)]
    slugs = [view.slug for view in made]
    assert all(len(slug) == 7 and slug.isalnum() and slug.isascii() for slug in slugs)
    assert len({slug.lower() for slug in slugs}) == 20


def test_random_slugs_retry_past_taken_ones(database: Database, acme: int, monkeypatch: pytest.MonkeyPatch) -> None:
    links.create_link(database, acme, "operator", "https://example.com", "AAAAAAA")
    picks = iter(["aaaaaaa", "v1", "bbbbbbb"])  # taken (case-insensitively), reserved, free
    monkeypatch.setattr(links, "random_slug", lambda: next(picks))
    assert links.create_link(database, acme, "operator", "https://example.com").slug == "bbbbbbb"


def test_slugs_are_unique_per_domain_whatever_their_case(database: Database, acme: int, globex: int) -> None:
    links.create_link(database, acme, "operator", "https://example.com/a", "Promo")
    for workspace, slug in [(acme, "promo"), (acme, "PROMO"), (globex, "pRoMo")]:
        with pytest.raises(Conflict) as caught:
            links.create_link(database, workspace, "operator", "https://example.com/b", slug)
        assert caught.value.message == f"The slug '{slug}' is already taken on nim.link; choose another."
    assert count(database, Link) == 1
    assert [event.type for event in events(database)] == ["link.created"]


def test_invalid_input_writes_nothing(database: Database, acme: int) -> None:
    with pytest.raises(InvalidInput):
        links.create_link(database, acme, "operator", "javascript:alert(1)", "fine")
    with pytest.raises(InvalidInput):
        links.create_link(database, acme, "operator", "https://example.com", "admin")
    assert count(database, Link) == 0 and count(database, OutboxEvent) == 0


MALFORMED_IDS = [
    "",
    "lnk_",
    "lnk_short",
    "nope",
    "lnk_" + "A" * 15 + "\x00",
    "lnk_\u00e9" * 4,
    "x" * 10_000,
    "lnk_%",
    "'",
]


def test_another_workspaces_link_is_not_found(database: Database, acme: int, globex: int) -> None:
    theirs = links.create_link(database, globex, "operator", "https://globex.example", "globex")
    with pytest.raises(NotFound) as caught:
        links.get_link(database, acme, theirs.id)
    assert caught.value.message == f"No link '{theirs.id}' in this workspace."
    with pytest.raises(NotFound):
        links.update_link(database, acme, theirs.id, {"destination": "https://acme.example"})
    with pytest.raises(NotFound):
        links.delete_link(database, acme, theirs.id)
    with pytest.raises(NotFound):
        analytics(database, acme, theirs.id)
    assert links.list_links(database, acme) == ([], False)
    assert links.get_link(database, globex, theirs.id).destination == "https://globex.example"
    assert [event.type for event in events(database)] == ["link.created"]


@pytest.mark.parametrize("link_id", [*MALFORMED_IDS, "lnk_" + "A" * 16])
def test_malformed_or_unknown_link_ids_are_not_found(database: Database, acme: int, link_id: str) -> None:
    with pytest.raises(NotFound, match="in this workspace"):
        links.get_link(database, acme, link_id)
    with pytest.raises(NotFound):
        links.update_link(database, acme, link_id, {"slug": "fine"})
    with pytest.raises(NotFound):
        links.delete_link(database, acme, link_id)


def test_pages_come_newest_first_with_a_cursor(database: Database, acme: int, globex: int) -> None:
    made = [links.create_link(database, acme, "operator", f"https://example.com/{i}", f"s{i}") for i in range(7)]
    links.create_link(database, globex, "operator", "https://globex.example", "theirs")
    newest_first = [view.id for view in reversed(made)]
    seen: list[str] = []
    cursor: str | None = None
    pages = []
    while True:
        page, has_more = links.list_links(database, acme, limit=3, starting_after=cursor)
        seen += [view.id for view in page]
        pages.append((len(page), has_more))
        if not has_more:
            break
        cursor = page[-1].id
    assert seen == newest_first
    assert pages == [(3, True), (3, True), (1, False)]
    assert links.list_links(database, acme, limit=7) == ([*reversed(made)], False)
    assert links.list_links(database, acme)[0] == [*reversed(made)]
    assert links.list_links(database, acme, starting_after=made[0].id) == ([], False)


@pytest.mark.parametrize("limit", [0, 101, -1, True, "5", 2.5, None])
def test_page_size_is_1_to_100(database: Database, acme: int, limit: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        links.list_links(database, acme, limit=limit)  # type: ignore[arg-type]
    assert caught.value.field == "limit"


def test_a_cursor_must_be_a_link_of_this_workspace(database: Database, acme: int, globex: int) -> None:
    theirs = links.create_link(database, globex, "operator", "https://globex.example")
    for cursor in [theirs.id, "lnk_" + "A" * 16, "garbage", "", "\x00" * 3]:
        with pytest.raises(InvalidInput) as caught:
            links.list_links(database, acme, starting_after=cursor)
        assert caught.value.field == "starting_after"


# Updating and deleting.


def test_update_destination_and_slug(database: Database, acme: int, monkeypatch: pytest.MonkeyPatch) -> None:
    original = links.create_link(database, acme, "operator", "https://example.com/old", "old")
    later = original.created_at + timedelta(minutes=5)
    monkeypatch.setattr(links, "utcnow", lambda: later)
    updated = links.update_link(database, acme, original.id, {"destination": "HTTPS://Example.com/new", "slug": "New"})
    assert (updated.id, updated.slug, updated.destination) == (original.id, "New", "https://example.com/new")
    assert updated.created_at == original.created_at and updated.updated_at == later
    assert links.get_link(database, acme, original.id) == updated
    assert link_clicks.record_click(database, "NEW", None, None) == "https://example.com/new"
    assert link_clicks.record_click(database, "old", None, None) is None
    recased = links.update_link(database, acme, original.id, {"slug": "nEw"})  # its own slug in another case
    assert recased.slug == "nEw"
    # the old slug is free again
    assert links.create_link(database, acme, "operator", "https://example.com/x", "OLD").slug == "OLD"


def test_update_refuses_a_taken_slug_and_writes_nothing(database: Database, acme: int, globex: int) -> None:
    links.create_link(database, globex, "operator", "https://globex.example", "taken")
    mine = links.create_link(database, acme, "operator", "https://example.com", "mine")
    before = events(database)
    with pytest.raises(Conflict, match=r"^The slug 'TAKEN' is already taken on nim\.link; choose another\.$"):
        links.update_link(database, acme, mine.id, {"destination": "https://example.com/changed", "slug": "TAKEN"})
    assert links.get_link(database, acme, mine.id) == mine
    assert [event.id for event in events(database)] == [event.id for event in before]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({}, "body"),
        ({"clicks": 5}, "clicks"),
        ({"destination": "https://example.com", "domain": "evil.example"}, "domain"),
        ({"created_by": "me"}, "created_by"),
        ({"destination": "javascript:alert(1)"}, "destination"),
        ({"destination": None}, "destination"),
        ({"slug": None}, "slug"),
        ({"slug": "login"}, "slug"),
        ({"slug": "bad slug"}, "slug"),
    ],
)
def test_update_refuses_what_cannot_change(
    database: Database, acme: int, changes: dict[str, object], field: str
) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com", "keep")
    with pytest.raises(InvalidInput) as caught:
        links.update_link(database, acme, view.id, changes)
    assert caught.value.field == field
    assert links.get_link(database, acme, view.id) == view
    assert count(database, OutboxEvent) == 1


def test_an_update_that_changes_nothing_writes_no_event(database: Database, acme: int) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com/", "same")
    assert links.update_link(database, acme, view.id, {"destination": "HTTPS://EXAMPLE.COM/", "slug": "same"}) == view
    assert [event.type for event in events(database)] == ["link.created"]


def test_delete_frees_the_slug_and_removes_the_clicks(database: Database, acme: int) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com", "gone")
    assert link_clicks.record_click(database, "gone", "https://ref.example/", "UA") == "https://example.com"
    links.delete_link(database, acme, view.id, source_credential_id=CREDENTIAL_ID)
    with pytest.raises(NotFound):
        links.get_link(database, acme, view.id)
    with pytest.raises(NotFound):
        links.delete_link(database, acme, view.id)
    assert link_clicks.record_click(database, "gone", None, None) is None
    assert count(database, LinkClick) == 0
    deleted = events(database)[-1]
    assert deleted.type == "link.deleted" and deleted.source_credential_id == CREDENTIAL_ID
    assert deleted.payload["data"]["link"] == {**link_body(view), "clicks": 1}
    assert links.create_link(database, acme, "operator", "https://example.com/again", "gone").slug == "gone"


# The outbox.


def test_every_change_writes_exactly_one_event(database: Database, team: Team, acme: int) -> None:
    view = links.create_link(
        database, acme, "operator", "https://example.com", "evt", source_credential_id=CREDENTIAL_ID
    )
    updated = links.update_link(database, acme, view.id, {"destination": "https://example.com/2"})
    link_clicks.record_click(database, "evt", "https://news.example/item?id=1", "Mozilla/5.0")
    links.delete_link(database, acme, view.id)
    written = events(database)
    assert [event.type for event in written] == ["link.created", "link.updated", "link.clicked", "link.deleted"]
    assert [event.source_credential_id for event in written] == [CREDENTIAL_ID, None, None, None]
    for event in written:
        payload = event.payload
        assert set(payload) == {"id", "type", "created_at", "account_id", "data"}
        assert payload["id"] == event.public_id and event.public_id.startswith("evt_") and len(event.public_id) == 20
        assert payload["type"] == event.type and payload["account_id"] == team.account_id
        assert payload["created_at"].endswith("Z") and event.workspace_id == acme
        assert payload["data"]["link"]["id"] == view.id
    assert written[0].payload["data"] == {"link": link_body(view)}
    assert written[1].payload["data"] == {"link": link_body(updated)}
    click = written[2].payload["data"]
    assert click["link"]["clicks"] == 1
    assert click["click"]["referrer"] == "news.example" and click["click"]["clicked_at"].endswith("Z")
    assert len({event.public_id for event in written}) == 4


def test_a_change_and_its_event_commit_together(database: Database, acme: int, monkeypatch: pytest.MonkeyPatch) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com/before", "atomic")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the outbox is down")

    monkeypatch.setattr(outbox, "add_event", refuse)
    with pytest.raises(RuntimeError):
        links.create_link(database, acme, "operator", "https://example.com", "never")
    with pytest.raises(RuntimeError):
        links.update_link(database, acme, view.id, {"destination": "https://example.com/after"})
    with pytest.raises(RuntimeError):
        links.delete_link(database, acme, view.id)
    with pytest.raises(RuntimeError):
        link_clicks.record_click(database, "atomic", None, None)
    assert links.list_links(database, acme) == ([view], False)
    assert count(database, LinkClick) == 0 and count(database, OutboxEvent) == 1


# The public redirect.


def test_a_click_counts_and_keeps_no_address(database: Database, acme: int) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com/landing", "Click")
    agent = "Mozilla/5.0 (X11)\x00\x1b[31m" + "x" * 1000
    assert link_clicks.record_click(database, "click", "https://Search.Example/q?secret=1", agent) == view.destination
    assert link_clicks.record_click(database, "CLICK", "news.example", None) == view.destination
    assert link_clicks.record_click(database, "Click", "not a host at all", "") == view.destination
    assert links.get_link(database, acme, view.id).clicks == 3
    with database.read() as session:
        clicks = list(session.scalars(select(LinkClick).order_by(LinkClick.id)))
        columns = {column["name"] for column in inspect(session.connection()).get_columns("link_clicks")}
    assert [click.referrer for click in clicks] == ["search.example", "news.example", None]
    assert clicks[0].user_agent == ("Mozilla/5.0 (X11)[31m" + "x" * 1000)[:300]
    assert clicks[2].user_agent is None
    assert all(click.workspace_id == acme and click.clicked_at.tzinfo is not None for click in clicks)
    assert columns == {"id", "link_id", "workspace_id", "clicked_at", "referrer", "user_agent"}


HOSTILE_SLUGS = [
    "",
    "nope",
    "x" * 10_240,
    "\x00",
    "click\x00",
    "cl\x00ick",
    "click\n",
    " click",
    "../click",
    "click/../../etc/passwd",
    "clïck",
    "\ud800",
    "🙂" * 100,
    "' OR 1=1 --",
    "%63lick",
    "admin",
    ".well-known",
]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_unknown_or_hostile_slugs_find_nothing(database: Database, acme: int, slug: str) -> None:
    links.create_link(database, acme, "operator", "https://example.com", "click")
    assert link_clicks.record_click(database, slug, "https://\x00evil\ud800/", "\ud800\x00" * 5000) is None
    assert links.get_link(database, acme, links.list_links(database, acme)[0][0].id).clicks == 0


@pytest.mark.parametrize(
    ("referrer", "user_agent"),
    [("\x00", "\x00"), ("\ud800", "\udfff"), ("https://[::1", "x" * 10_000), ("http://a\x00b/", "🙂" * 400), ("", "")],
)
def test_hostile_headers_still_redirect(database: Database, acme: int, referrer: str, user_agent: str) -> None:
    links.create_link(database, acme, "operator", "https://example.com", "click")
    assert link_clicks.record_click(database, "click", referrer, user_agent) == "https://example.com"
    with database.read() as session:
        click = session.scalars(select(LinkClick)).one()
    assert click.referrer is None
    assert click.user_agent is None or (len(click.user_agent) <= 300 and "\x00" not in click.user_agent)


def test_record_click_never_raises_for_any_text(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    try:
        with database.write() as session:
            session.add(Workspace(account_id="acc_hypothesis", name="H", created_at=links.utcnow()))
        known = links.create_link(database, workspace_id(database, "acc_hypothesis"), "operator", "https://e.example")

        @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.text(), st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
        def check(slug: str, referrer: str | None, user_agent: str | None) -> None:
            found = link_clicks.record_click(database, slug, referrer, user_agent)
            assert found is None or (found == known.destination and slug.lower() == known.slug.lower())

        check()
        assert link_clicks.record_click(database, known.slug.upper(), "\x00", "\x00") == known.destination
    finally:
        database.dispose()


def test_concurrent_clicks_are_all_counted(database: Database, acme: int) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com", "busy")
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def click(index: int) -> list[str | None]:
        barrier.wait()
        return [
            link_clicks.record_click(database, "busy", f"https://r{index}.example/", "UA") for _ in range(per_thread)
        ]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [found for batch in pool.map(click, range(threads)) for found in batch]
    assert results == ["https://example.com"] * threads * per_thread
    assert links.get_link(database, acme, view.id).clicks == threads * per_thread
    assert count(database, LinkClick) == threads * per_thread
    clicked = [event for event in events(database) if event.type == "link.clicked"]
    assert len(clicked) == threads * per_thread
    assert sorted(event.payload["data"]["link"]["clicks"] for event in clicked) == list(range(1, 201))


# Analytics.

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def add_clicks(database: Database, view: LinkView, *clicks: tuple[datetime, str | None]) -> None:
    with database.write() as session:
        row = session.scalars(select(Link).where(Link.public_id == view.id)).one()
        for clicked_at, referrer in clicks:
            session.add(
                LinkClick(link_id=row.id, workspace_id=row.workspace_id, clicked_at=clicked_at, referrer=referrer)
            )
        row.click_count += len(clicks)


def test_analytics_counts_clicks_per_utc_day(
    database: Database, database_url: str, acme: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (links, link_clicks, link_analytics):
        monkeypatch.setattr(module, "utcnow", lambda: NOW)
    view = links.create_link(database, acme, "operator", "https://example.com", "stats")
    other = links.create_link(database, acme, "operator", "https://example.com", "other")
    day = timedelta(days=1)
    add_clicks(
        database,
        view,
        (NOW, "a.example"),  # today
        (datetime(2026, 3, 10, 0, 0, tzinfo=UTC), "a.example"),  # today's first moment
        (datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC), "b.example"),  # yesterday's last
        (NOW - 2 * day, None),
        (NOW - 2 * day, "b.example"),
        (datetime(2026, 3, 8, 0, 0, tzinfo=UTC), "c.example"),  # first moment of the 3-day window
        (datetime(2026, 3, 7, 23, 59, 59, tzinfo=UTC), "d.example"),  # just outside a 3-day window
        (NOW - 40 * day, "old.example"),
    )
    add_clicks(database, other, (NOW, "a.example"))
    result = analytics(database, acme, view.id, days=3)
    assert result == {
        "link_id": view.id,
        "clicks": 8,
        "days": [
            {"date": "2026-03-08", "clicks": 3},
            {"date": "2026-03-09", "clicks": 1},
            {"date": "2026-03-10", "clicks": 2},
        ],
        "top_referrers": [
            {"referrer": "a.example", "clicks": 2},
            {"referrer": "b.example", "clicks": 2},
            {"referrer": "c.example", "clicks": 1},
        ],
    }
    month = analytics(database, acme, view.id)
    assert len(month["days"]) == 30 and month["days"][0] == {"date": "2026-02-09", "clicks": 0}
    assert sum(item["clicks"] for item in month["days"]) == 7
    assert analytics(database, acme, view.id, days=365)["days"][-41] == {
        "date": "2026-01-29",
        "clicks": 1,
    }
    if database.dialect == "postgresql":  # days are UTC days whatever the session's time zone
        elsewhere = Database(database_url, connect_args={"options": "-c TimeZone=Pacific/Chatham"})
        try:
            assert analytics(elsewhere, acme, view.id, days=3) == result
        finally:
            elsewhere.dispose()


def test_analytics_keeps_the_top_five_referrers(database: Database, acme: int) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com", "top")
    now = links.utcnow()
    add_clicks(database, view, *[(now, f"r{n}.example") for n in range(1, 8) for _ in range(n)])
    top = analytics(database, acme, view.id, days=1)["top_referrers"]
    assert top == [{"referrer": f"r{n}.example", "clicks": n} for n in range(7, 2, -1)]


@pytest.mark.parametrize("days", [0, 366, -5, True, "30", None])
def test_analytics_days_are_1_to_365(database: Database, acme: int, days: object) -> None:
    view = links.create_link(database, acme, "operator", "https://example.com", "d")
    with pytest.raises(InvalidInput) as caught:
        analytics(database, acme, view.id, days=days)  # type: ignore[arg-type]
    assert caught.value.field == "days"
