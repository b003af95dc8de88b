"""Browser tests' fixtures: one Chromium and one SQLite-backed server per module, a new browser context per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import CHEAP_HASHING, Team, make_team
from tests.web.browser import CHROMIUM_ARGS, chromium_path
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database

# Assertions wait as long as actions do: Playwright's own 5 s is short for a page on a busy 2-core machine.
expect.set_options(timeout=15_000)


@dataclass
class Site:
    """A real server over a store with a team in every role, shared by one module's browser tests."""

    live: LiveServer
    team: Team
    database: Database
    make: Keys

    @property
    def base_url(self) -> str:
        return self.live.base_url

    def panel(self, account_id: str | None = None) -> str:
        return f"/workspaces/{account_id or self.team.account_id}/api-access"


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("site") / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    database = Database(url)
    hasher = SecretHasher(CHEAP_HASHING)
    team = make_team(database, hasher)
    try:
        with live_server(url, webhook_allow_hosts=("127.0.0.1",)) as live:
            yield Site(live=live, team=team, database=database, make=Keys(database, hasher, team))
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=site.base_url, viewport={"width": 1280, "height": 900})
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        made.close()
