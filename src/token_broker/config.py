"""Settings, read once at the edge from a mapping (normally the environment). The only module that reads os.environ."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///./token-broker.db"
GITHUB_SECRET_SCANNING_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning"  # noqa: S105 - a URL
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
LOG_LEVELS = ("debug", "info", "warning", "error")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TOKEN_RATE_LIMIT = "60000/minute"  # noqa: S105 - a rate, not a secret
DEFAULT_CLIENT_AUTH_FAILURE_LIMIT = "30/minute"


class SettingsError(ValueError):
    """A setting has a value the broker cannot use; the message names the variable."""


@dataclass(frozen=True)
class HashingCost:
    """argon2id parameters. The defaults are argon2-cffi's (RFC 9106 low-memory profile)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None
    issuer: str | None = None
    redis_url: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    webhook_allow_hosts: tuple[str, ...] = ()
    webhook_worker: bool = True
    hashing: HashingCost = field(default_factory=HashingCost)
    connectors_dir: Path | None = None
    access_token_seconds: tuple[tuple[str, int], ...] = (("zapier", 3600), ("make", 3600), ("n8n", 3600))
    refresh_token_days: int = 90
    # A platform-wide client with a million connections refreshing hourly averages ~16,700 a minute: 60,000 leaves
    # 3.6x for bursts and retries (README: sizing the token endpoint's budget).
    token_rate_limit: str = DEFAULT_TOKEN_RATE_LIMIT
    client_auth_failure_limit: str = DEFAULT_CLIENT_AUTH_FAILURE_LIMIT
    listen_notify: bool = True
    # Every connection a process opened stays in its pool: an overflow connection (closed as soon as it is handed
    # back while the pool is full) made PostgreSQL start a backend every few requests under load (docs/performance.md).
    db_pool_size: int = 15
    db_max_overflow: int = 0
    metrics_token: str | None = None
    log_level: str = "info"
    secret_scanning_key_urls: tuple[str, ...] = (GITHUB_SECRET_SCANNING_KEYS_URL,)
    activity_retention_days: int = 90

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            database_url=env.get("TOKEN_BROKER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            secret_key=env.get("TOKEN_BROKER_SECRET_KEY") or None,
            issuer=_issuer(env.get("TOKEN_BROKER_ISSUER")),
            redis_url=_redis_url(env.get("TOKEN_BROKER_REDIS_URL")),
            trusted_proxies=_parse_networks("TOKEN_BROKER_TRUSTED_PROXIES", env.get("TOKEN_BROKER_TRUSTED_PROXIES")),
            webhook_allow_hosts=_split("TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS", env.get("TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS")),
            webhook_worker=_switch(env, "TOKEN_BROKER_WEBHOOK_WORKER", default=True),
            hashing=HashingCost(
                time_cost=_positive_int(env, "TOKEN_BROKER_ARGON2_TIME_COST", HashingCost.time_cost),
                memory_kib=_positive_int(env, "TOKEN_BROKER_ARGON2_MEMORY_KIB", HashingCost.memory_kib),
                parallelism=_positive_int(env, "TOKEN_BROKER_ARGON2_PARALLELISM", HashingCost.parallelism),
            ),
            connectors_dir=Path(env["TOKEN_BROKER_CONNECTORS_DIR"]) if env.get("TOKEN_BROKER_CONNECTORS_DIR") else None,
            access_token_seconds=_access_token_seconds(env),
            refresh_token_days=_positive_int(env, "TOKEN_BROKER_REFRESH_TOKEN_DAYS", 90),
            token_rate_limit=_rate_limit(env, "TOKEN_BROKER_TOKEN_RATE_LIMIT", DEFAULT_TOKEN_RATE_LIMIT),
            client_auth_failure_limit=_rate_limit(
                env, "TOKEN_BROKER_CLIENT_AUTH_FAILURE_LIMIT", DEFAULT_CLIENT_AUTH_FAILURE_LIMIT
            ),
            listen_notify=_switch(env, "TOKEN_BROKER_LISTEN_NOTIFY", default=True),
            db_pool_size=_positive_int(env, "TOKEN_BROKER_DB_POOL_SIZE", cls.db_pool_size),
            db_max_overflow=_whole_number(env, "TOKEN_BROKER_DB_MAX_OVERFLOW", cls.db_max_overflow),
            metrics_token=_metrics_token(env.get("TOKEN_BROKER_METRICS_TOKEN")),
            log_level=_log_level(env.get("TOKEN_BROKER_LOG_LEVEL")),
            secret_scanning_key_urls=_key_set_urls(env.get("TOKEN_BROKER_SECRET_SCANNING_KEY_URLS")),
            activity_retention_days=_positive_int(env, "TOKEN_BROKER_ACTIVITY_RETENTION_DAYS", 90),
        )
        return replace(settings, **overrides) if overrides else settings

    def access_seconds(self) -> dict[str, int]:
        return dict(self.access_token_seconds)

    def pool_options(self) -> dict[str, int]:
        """Connection pool sizes for a server's store (PostgreSQL; SQLite keeps SQLAlchemy's own)."""
        return {} if self.is_sqlite else {"pool_size": self.db_pool_size, "max_overflow": self.db_max_overflow}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def require_issuer(self) -> str:
        """The configured issuer: the broker never takes it from a request's Host header, so it must be set."""
        if not self.issuer:
            raise SettingsError(
                "TOKEN_BROKER_ISSUER is required: set it to the broker's public base URL, e.g. https://broker.example"
            )
        return self.issuer

    def with_secret_key(self) -> Settings:
        """These settings with a secret key: the configured one, or with SQLite one kept beside the database."""
        if self.secret_key:
            return self
        if not self.is_sqlite:
            raise SettingsError("TOKEN_BROKER_SECRET_KEY is required with PostgreSQL: every instance must share it")
        return replace(self, secret_key=_secret_key_beside(self.database_url))


def _secret_key_beside(database_url: str) -> str:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        return secrets.token_urlsafe(32)
    path = Path(database + ".secret-key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="ascii").strip()
        if len(key) < 32:
            raise SettingsError(f"the secret key file {path} is damaged; delete it to make a new one") from None
        return key
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def _issuer(value: str | None) -> str | None:
    """RFC 8414 2: an https URL (http only on a loopback host) with no query or fragment, kept without a final /."""
    raw = (value or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback) or not parts.hostname:
        raise SettingsError(f"TOKEN_BROKER_ISSUER must be an https:// URL (http only for localhost), not {raw!r}")
    if parts.query or parts.fragment or "?" in raw or "#" in raw or any(ch.isspace() for ch in raw):
        raise SettingsError(f"TOKEN_BROKER_ISSUER must have no query, fragment or spaces, not {raw!r}")
    return raw.rstrip("/")


def _access_token_seconds(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """The default lifetime (TOKEN_BROKER_ACCESS_TOKEN_SECONDS), overridden per platform by ..._<PLATFORM>."""
    default = _positive_int(env, "TOKEN_BROKER_ACCESS_TOKEN_SECONDS", 3600)
    return tuple(
        (platform, _positive_int(env, f"TOKEN_BROKER_ACCESS_TOKEN_SECONDS_{platform.upper()}", default))
        for platform in ("zapier", "make", "n8n")
    )


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, not {raw!r}")


def _redis_url(value: str | None) -> str | None:
    url = (value or "").strip()
    if not url:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("TOKEN_BROKER_REDIS_URL must start with redis://, rediss:// or unix://")
    return url


def _metrics_token(value: str | None) -> str | None:
    token = (value or "").strip()
    if not token:
        return None
    if len(token) < 16 or any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in token):
        raise SettingsError("TOKEN_BROKER_METRICS_TOKEN must be at least 16 printable ASCII characters, no spaces")
    return token


def _log_level(value: str | None) -> str:
    level = (value or "info").strip().lower()
    if level not in LOG_LEVELS:
        raise SettingsError(f"TOKEN_BROKER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


def _key_set_urls(value: str | None) -> tuple[str, ...]:
    """Where trusted secret-scanning reporters publish their public keys: https, or http to a loopback address (an
    internal scanner beside the broker, and tests). The operator names them, so they are trusted as given."""
    name = "TOKEN_BROKER_SECRET_SCANNING_KEY_URLS"
    urls = _split(name, value)
    if not urls:
        return (GITHUB_SECRET_SCANNING_KEYS_URL,)
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        loopback_http = parts.scheme == "http" and host in LOOPBACK_HOSTS
        if not host or parts.username or parts.password or not (parts.scheme == "https" or loopback_http):
            raise SettingsError(f"{name}: {url!r} must be an https URL (http only to 127.0.0.1, ::1 or localhost)")
    return urls


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    count, _, period = value.partition("/")
    if not count.strip().isdigit() or int(count) < 1 or period.strip() not in ("second", "minute", "hour", "day"):
        raise SettingsError(f"{name} must read N/second, N/minute, N/hour or N/day, not {value!r}")
    return f"{int(count)}/{period.strip()}"


def _split(name: str, value: str | None) -> tuple[str, ...]:
    items = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for item in items:
        if any(ch.isspace() for ch in item):
            raise SettingsError(f"{name}: {item!r} is not a host name or address")
    return items


def _parse_networks(name: str, value: str | None) -> tuple[IPNetwork, ...]:
    networks = []
    for item in _split(name, value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {item!r} is not an IPv4 or IPv6 network") from None
    return tuple(networks)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1")
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit():
        raise SettingsError(f"{name} must be a whole number, 0 or more, not {raw!r}")
    return int(raw)
