"""Scope names and what they let a credential do, in words a consent page or a panel can show. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from token_broker.errors import InvalidInput

SCOPE_DESCRIPTIONS: dict[str, str] = {
    "links:read": "see your short links",
    "links:write": "create, change and delete your short links",
    "analytics:read": "see click analytics for your links",
    "hooks:write": "subscribe to events such as new links and clicks",
}
ALL_SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)

# The scope a hook's owner needs to receive each event: the scope that reads the same data through the API. Admin
# notices (credential and connection events) carry no scope: only a full-access workspace key (scopes null) gets them.
EVENT_SCOPES: dict[str, str | None] = {
    "link.created": "links:read",
    "link.updated": "links:read",
    "link.deleted": "links:read",
    "link.clicked": "analytics:read",
    "integration.disconnected": None,
    "credential.revoked": None,
    "credential.rotated": None,
    "credential.expiring": None,
}
FULL_ACCESS = "full access (a workspace API key with no scope list)"


def event_scope_needed(event: str) -> str:
    """What reading this event takes, in words for an error message."""
    scope = EVENT_SCOPES.get(event)
    return FULL_ACCESS if scope is None else f"the {scope} scope"


def may_receive(event: str, scopes: Iterable[str] | None, partner: bool) -> bool:
    """May a hook owner with these scopes (None: a key with full access) subscribe to, and receive, this event?"""
    if event not in EVENT_SCOPES:
        return False
    needed = EVENT_SCOPES[event]
    if needed is None:
        return not partner and scopes is None
    return scopes is None or needed in scopes


def validate_scopes(scopes: Iterable[str], field: str = "scopes") -> tuple[str, ...]:
    """Known scope names, deduplicated, in canonical order."""
    wanted = set()
    for scope in scopes:
        if scope not in SCOPE_DESCRIPTIONS:
            known = ", ".join(ALL_SCOPES)
            raise InvalidInput(field, f"{field}: unknown scope {scope!r}; known scopes are {known}")
        wanted.add(scope)
    return tuple(scope for scope in ALL_SCOPES if scope in wanted)


PLATFORMS = ("zapier", "make", "n8n")
Endpoint = tuple[str, str]  # (method, path template), e.g. ("GET", "/v1/workspaces/{account_id}/links")


class ManifestError(ValueError):
    """A connector manifest is missing, malformed, or names an endpoint the broker does not serve."""


@dataclass(frozen=True)
class Manifest:
    """What one platform's integration calls: a partner install token of that platform reaches these and no more."""

    platform: str
    endpoints: frozenset[Endpoint]
    scopes: tuple[str, ...]
    events: tuple[str, ...] = ()

    def allows(self, method: str, path: str) -> bool:
        return (method, path) in self.endpoints or (method == "HEAD" and ("GET", path) in self.endpoints)

    def describe(self) -> list[str]:
        """What the platform will be able to do, in words, for the consent page."""
        return [SCOPE_DESCRIPTIONS[scope] for scope in self.scopes]


def load_manifest(path: Path, endpoint_scopes: Mapping[Endpoint, str | None]) -> Manifest:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        platform = document["platform"]
        endpoints = frozenset((entry["method"].upper(), entry["path"]) for entry in document["endpoints"])
        events = tuple(document.get("events", ()))
        if not all(isinstance(event, str) for event in events):
            raise TypeError("events must be strings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{path}: not a connector manifest ({error})") from None
    if platform not in PLATFORMS or path.parent.name != platform:
        raise ManifestError(f"{path}: platform {platform!r} does not match its folder")
    unknown = sorted(f"{method} {route}" for method, route in endpoints if (method, route) not in endpoint_scopes)
    if unknown:
        raise ManifestError(f"{path}: the broker serves no {', '.join(unknown)}")
    not_link_events = sorted(str(event) for event in events if EVENT_SCOPES.get(event) is None)
    if not_link_events:
        raise ManifestError(f"{path}: a platform may subscribe to link events only, not {', '.join(not_link_events)}")
    # A platform's token may read what its endpoints return and what the events its triggers subscribe to carry.
    wanted = {scope for endpoint in endpoints if (scope := endpoint_scopes[endpoint])}
    wanted |= {scope for event in events if (scope := EVENT_SCOPES[event])}
    return Manifest(platform=platform, endpoints=endpoints, scopes=validate_scopes(wanted), events=events)


def load_manifests(directory: Path, endpoint_scopes: Mapping[Endpoint, str | None]) -> dict[str, Manifest]:
    """Every platform's manifest from <directory>/<platform>/manifest.json; a platform without one cannot connect."""
    return {
        platform: load_manifest(directory / platform / "manifest.json", endpoint_scopes)
        for platform in PLATFORMS
        if (directory / platform / "manifest.json").exists()
    }
