"""Driving Debian's Chromium with Playwright: launch options, signing in, screenshots and axe-core checks.

Playwright's own browser download does not work here; scripts/test installs Debian's Chromium and exports
TOKEN_BROKER_CHROMIUM. Screenshots go to artifacts/screenshots/ and axe-core reports to artifacts/axe/ (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.support import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_REPORTS = ARTIFACTS / "axe"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# axe-core findings accepted on purpose, by rule id, with the reason. Serious and critical ones are never accepted.
ACCEPTED_AXE_RULES: dict[str, str] = {}
BLOCKING_IMPACTS = ("serious", "critical")


def chromium_path() -> str:
    found = os.environ.get("TOKEN_BROKER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        pytest.fail(
            f"Chromium is not installed at {found}: run scripts/test (it installs it), or apt-get install chromium"
        )
    return found


def sign_in(page: Page, email: str, landing: str = "**/api-access") -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(landing)


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """The page as shown (the whole page, or the viewport: a modal dialog dims only the viewport)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def check_accessibility(page: Page, name: str) -> list[dict[str, Any]]:
    """axe-core on the page as it is now: fails on any serious or critical violation, and on any other one that is
    not accepted (with its reason) in ACCEPTED_AXE_RULES. Returns the accepted ones; writes the report either way."""
    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    (AXE_REPORTS / f"{name}.json").write_text(json.dumps(violations, indent=2), encoding="utf-8")
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS or v["id"] not in ACCEPTED_AXE_RULES]
    assert not blocking, f"axe-core on {name}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']]}" for v in blocking
    )
    return violations
