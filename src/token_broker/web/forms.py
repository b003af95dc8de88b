"""What the panel's forms send, read into the services' requests. Validation proper stays in the services (policy.py);
this only turns form fields (strings, repeated checkboxes, lists typed one per line) into the values they take."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from token_broker.errors import InvalidInput
from token_broker.policy import DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS
from token_broker.scopes import ALL_SCOPES
from token_broker.services.clients import N8N_CALLBACK_PATH
from token_broker.services.keys import KeyRequest

EXPIRY_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "Never"),
    ("86400", "In 1 day"),
    ("604800", "In 7 days"),
    ("2592000", "In 30 days"),
    ("7776000", "In 90 days"),
    ("31536000", "In 1 year"),
)
GRACE_CHOICES: tuple[tuple[int, str], ...] = (
    (0, "No grace: the old key stops now"),
    (3600, "1 hour"),
    (DEFAULT_GRACE_SECONDS, "24 hours"),
    (MAX_GRACE_SECONDS, "7 days"),
)
_LIST_SEPARATORS = re.compile(r"[\s,;]+")
_LINE_SEPARATORS = re.compile(r"[\n,;]+")


def _text(form: Mapping[str, Any], name: str, limit: int = 4096) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


@dataclass(frozen=True)
class KeyForm:
    """The generate-key form as typed, kept to fill the form in again when it is refused."""

    name: str = ""
    access: str = "full"
    scopes: tuple[str, ...] = ()
    expires_in: str = ""
    allowed_ips: str = ""
    rate_limits: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: FormData) -> KeyForm:
        scopes = tuple(value for value in form.getlist("scope") if isinstance(value, str))
        return cls(
            name=_text(form, "name", 200),
            access="scoped" if _text(form, "access") == "scoped" else "full",
            scopes=scopes[: len(ALL_SCOPES) * 2],
            expires_in=_text(form, "expires_in", 20),
            allowed_ips=_text(form, "allowed_ips"),
            rate_limits=_text(form, "rate_limits", 400),
        )

    def request(self) -> KeyRequest:
        """The service's request; InvalidInput naming the form field for what the form alone can tell is wrong."""
        scopes = None
        if self.access == "scoped":
            if not self.scopes:
                raise InvalidInput("scopes", "Choose at least one scope, or give the key full access.")
            scopes = list(self.scopes)
        expires_in: object = None
        if self.expires_in:
            expires_in = int(self.expires_in) if self.expires_in.isdigit() else self.expires_in
        allowed_ips: list[object] = [item for item in _LIST_SEPARATORS.split(self.allowed_ips) if item]
        rate_limits: list[object] = [item.strip() for item in _LINE_SEPARATORS.split(self.rate_limits) if item.strip()]
        return KeyRequest(
            name=self.name,
            scopes=scopes,
            expires_in=expires_in,
            allowed_ips=allowed_ips,
            rate_limits=rate_limits or None,
        )

    def refused(self, error: InvalidInput) -> KeyForm:
        return KeyForm(
            name=self.name,
            access=self.access,
            scopes=self.scopes,
            expires_in=self.expires_in,
            allowed_ips=self.allowed_ips,
            rate_limits=self.rate_limits,
            errors={error.field: error.message},
        )


def read_grace(form: Mapping[str, Any]) -> int:
    raw = _text(form, "grace_seconds", 20)
    if not raw.isdigit():
        raise InvalidInput("grace_seconds", "Choose how long the old key keeps working.")
    return int(raw)


def n8n_callback_url(base_url: str) -> str:
    """The callback URL of the n8n instance at base_url (its callback URL itself is taken as it is)."""
    value = base_url.strip()
    if value.endswith(N8N_CALLBACK_PATH):
        return value
    return value.rstrip("/") + N8N_CALLBACK_PATH if value else ""
