"""Scope names and what they let a credential do, in words a consent page or a panel can show. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from token_broker.errors import InvalidInput

SCOPE_DESCRIPTIONS: dict[str, str] = {
    "links:read": "see your short links",
    "links:write": "create, change and delete your short links",
    "analytics:read": "see click analytics for your links",
    "hooks:write": "subscribe to events such as new links and clicks",
}
ALL_SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)


def validate_scopes(scopes: Iterable[str], field: str = "scopes") -> tuple[str, ...]:
    """Known scope names, deduplicated, in canonical order."""
    wanted = set()
    for scope in scopes:
        if scope not in SCOPE_DESCRIPTIONS:
            known = ", ".join(ALL_SCOPES)
            raise InvalidInput(field, f"{field}: unknown scope {scope!r}; known scopes are {known}")
        wanted.add(scope)
    return tuple(scope for scope in ALL_SCOPES if scope in wanted)
