"""Each connector's manifest: its shape, that the broker serves every endpoint in it, and that it lists exactly the
endpoints the connector's code calls (a static scan of the JS, TS and IML)."""

from __future__ import annotations

import re

import pytest

from tests.connectors.connectors import (
    CONNECTORS,
    METHODS,
    PLATFORMS,
    as_normalized,
    called_in_code,
    manifest,
    manifest_endpoints,
    served_endpoints,
)
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import endpoint_scopes
from token_broker.scopes import load_manifest, may_receive


@pytest.mark.parametrize("platform", PLATFORMS)
def test_manifest_shape(platform: str) -> None:
    document = manifest(platform)
    assert set(document) <= {"platform", "endpoints", "events"} and {"platform", "endpoints"} <= set(document)
    assert document["platform"] == platform
    entries = document["endpoints"]
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) == {"method", "path"}, entry
        assert entry["method"] in METHODS, entry
        assert entry["path"].startswith("/v1/"), entry
    assert len({(entry["method"], entry["path"]) for entry in entries}) == len(entries), "duplicate endpoints"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_manifest_endpoint_is_in_the_route_table(platform: str) -> None:
    missing = manifest_endpoints(platform) - served_endpoints()
    assert not missing, f"{platform} names endpoints the broker does not serve: {sorted(missing)}"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_code_calls_exactly_the_manifest(platform: str) -> None:
    calls = called_in_code(platform)
    assert calls, f"found no /v1/ calls in {CONNECTORS / platform}: is the scan still looking at the right files?"
    listed = as_normalized(manifest_endpoints(platform))
    outside = sorted((method, path, name) for method, path, name in calls if (method, path) not in listed)
    assert not outside, f"{platform} calls endpoints its manifest does not list: {outside}"
    unused = sorted(listed - {(method, path) for method, path, _ in calls})
    assert not unused, f"{platform}'s manifest lists endpoints its code never calls: {unused}"


def test_the_scan_sees_calls_in_each_form() -> None:
    """Guard the scanner itself: a method-and-path call, a bare path, template placeholders and IML urls."""
    zapier = {(method, path) for method, path, _ in called_in_code("zapier")}
    assert ("DELETE", "/v1/workspaces/{}/hooks/{}") in zapier
    n8n = {(method, path) for method, path, _ in called_in_code("n8n")}
    assert ("GET", "/v1/me") in n8n  # the API-key credential's test request: a url with no method
    assert ("PATCH", "/v1/workspaces/{}/links/{}") in n8n
    make = {(method, path) for method, path, _ in called_in_code("make")}
    assert ("GET", "/v1/me") in make  # the connection's info, an absolute URL
    assert ("GET", "/v1/workspaces/{}/links/{}/analytics") in make


def test_every_platform_has_an_endpoint_outside_its_manifest() -> None:
    """The live suites show that a platform's token is refused outside its manifest; each needs such an endpoint."""
    for platform in PLATFORMS:
        assert served_endpoints() - manifest_endpoints(platform), platform


_EVENT = re.compile(r"""["'](link\.(?:created|updated|deleted|clicked))["']""")
_SOURCE_SUFFIXES = (".js", ".ts", ".json")


def subscribed_in_code(platform: str) -> set[str]:
    """Link events named in the connector's own code (not its tests, packages or manifest)."""
    found: set[str] = set()
    for path in (CONNECTORS / platform).rglob("*"):
        parts = set(path.relative_to(CONNECTORS / platform).parts)
        if path.suffix not in _SOURCE_SUFFIXES or parts & {"node_modules", "test", "dist"}:
            continue
        if path.name in ("manifest.json", "package.json", "package-lock.json"):
            continue
        found |= set(_EVENT.findall(path.read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_manifest_lists_the_events_the_code_subscribes_to_and_grants_their_scopes(platform: str) -> None:
    events = set(manifest(platform).get("events", []))
    assert subscribed_in_code(platform) == events
    granted = load_manifest(CONNECTORS / platform / "manifest.json", endpoint_scopes(ROUTES)).scopes
    for event in events:
        assert may_receive(event, granted, partner=True), (platform, event, granted)
