"""The link fields' rules, without the store: slugs (kept as written, unique per domain regardless of case, some
reserved), destinations (absolute http or https URLs, normalised to plain printable ASCII: lowercased scheme and host,
punycode for an international host, RFC 3986 percent-encoding elsewhere, so a redirect's `Location` never needs
escaping) and expiry."""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from token_broker.errors import InvalidInput
from token_broker.store.link_models import (
    MAX_DESTINATION_LENGTH,
    MAX_SLUG_LENGTH,
)
from token_broker.store.models import utcnow

# Paths that the service, its dashboard or well-known conventions use, or may use, at the root of a domain.
RESERVED_SLUGS = frozenset(
    {
        ".well-known",
        "account",
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "authorize",
        "callback",
        "connect",
        "dashboard",
        "docs",
        "favicon.ico",
        "health",
        "healthz",
        "help",
        "hooks",
        "links",
        "login",
        "logout",
        "metrics",
        "oauth",
        "openapi.json",
        "r",
        "robots.txt",
        "settings",
        "signup",
        "static",
        "status",
        "support",
        "token",
        "v1",
        "v2",
        "webhooks",
        "workspaces",
    }
)
_API_VERSION = re.compile(r"v[0-9]+")  # v1, v2 and every later version of the API
SLUG_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_SLUG_LENGTH - 1}}}")
_SCHEME = re.compile(r"(https?)://", re.IGNORECASE)
_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
REFERRER_HOST_PATTERN = re.compile(r"[a-z0-9._:-]+")
# Characters RFC 3986 allows in a URL (with "%" for escapes already made); every other one is percent-encoded.
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")

SLUG_RULE = (
    f"slug must be 1 to {MAX_SLUG_LENGTH} characters: letters, digits, '-' and '_', starting with a letter or digit."
)
_DESTINATION_REQUIRED = (
    "destination is required: an absolute http:// or https:// URL, such as https://example.com/page."
)


def _invisible(character: str) -> bool:
    """Whitespace, control, format (zero-width, bidi overrides), surrogate, private-use and unassigned characters."""
    return unicodedata.category(character)[0] in "CZ"


def _ascii_host(hostname: str | None) -> str | None:
    """The host as stored (lowercase, punycode, IPv6 in brackets), or None when it is not a host name or address."""
    if not hostname or "%" in hostname:
        return None
    if "\u00df" in hostname or "\u03c2" in hostname:  # ß and ς: IDNA 2003 (Python's codec) and browsers disagree
        return None
    if ":" in hostname:
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    try:
        encoded = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    core = encoded.removesuffix(".")
    if not core or len(core) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in core.split(".")):
        return None
    return encoded


def _percent_encode(text: str) -> str:
    return "".join(character if character in _URL_CHARACTERS else quote(character, safe="") for character in text)


def validate_destination(value: object) -> str:
    """The destination as stored: an absolute http or https URL in printable ASCII; InvalidInput otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("destination", _DESTINATION_REQUIRED)
    if len(value) > MAX_DESTINATION_LENGTH:
        raise InvalidInput("destination", f"destination must be at most {MAX_DESTINATION_LENGTH} characters long.")
    if any(_invisible(character) for character in value):
        raise InvalidInput(
            "destination",
            "destination must not contain spaces, control or invisible characters; "
            "percent-encode them (a space is %20).",
        )
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise InvalidInput(
            "destination",
            "destination must start with http:// or https://; other schemes, such as javascript:, data: or file:, "
            "are refused.",
        )
    if "\\" in value:
        raise InvalidInput("destination", "destination must not contain backslashes; percent-encode them as %5C.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput(
            "destination", "destination is not a valid URL: check its host name and port number."
        ) from None
    if "@" in parts.netloc:
        raise InvalidInput(
            "destination", "destination must not carry a user name or password; remove the part up to the '@'."
        )
    if not parts.hostname:
        raise InvalidInput("destination", "destination needs a host name, as in https://example.com/page.")
    host = _ascii_host(parts.hostname)
    if host is None or port == 0:
        raise InvalidInput(
            "destination",
            "destination is not a valid URL: check its host name (an international one may be written in punycode, "
            "xn--...) and port number.",
        )
    rest = value[len(scheme.group(0)) + len(parts.netloc) :]
    normalized = f"{scheme.group(1).lower()}://{host}{'' if port is None else f':{port}'}{_percent_encode(rest)}"
    if len(normalized) > MAX_DESTINATION_LENGTH:
        raise InvalidInput(
            "destination", f"destination must be at most {MAX_DESTINATION_LENGTH} characters long once percent-encoded."
        )
    return normalized


def is_reserved(slug: str) -> bool:
    key = slug.lower()
    return key in RESERVED_SLUGS or _API_VERSION.fullmatch(key) is not None


def validate_slug(value: object) -> str:
    """The slug as written, when it may be used; InvalidInput otherwise."""
    if not isinstance(value, str):
        raise InvalidInput("slug", SLUG_RULE)
    if is_reserved(value):
        raise InvalidInput("slug", f"The slug {value!r} is reserved; choose another.")
    if SLUG_PATTERN.fullmatch(value) is None:
        raise InvalidInput("slug", SLUG_RULE)
    return value


def bounded(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(field, f"{field} must be a whole number from {low} to {high}.")
    return value


MAX_EXPIRY = timedelta(days=3660)


def validate_expires_at(value: object) -> datetime | None:
    """An RFC 3339 time with an offset, later than now and within ten years, or None (no expiry)."""
    if value is None:
        return None
    message = "expires_at must be an RFC 3339 time with a zone (2027-01-31T12:00:00Z) later than now, or null."
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput("expires_at", message)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("expires_at", message) from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise InvalidInput("expires_at", message)
    moment = moment.astimezone(UTC)
    now = utcnow()
    if moment <= now:
        raise InvalidInput("expires_at", message)
    if moment - now > MAX_EXPIRY:
        raise InvalidInput("expires_at", "expires_at must be within ten years.")
    return moment
