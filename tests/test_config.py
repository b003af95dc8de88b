"""Settings from the environment, and the SQLite secret key kept beside the database."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest

from token_broker.config import DEFAULT_DATABASE_URL, Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.secret_key is None
    assert settings.trusted_proxies == ()
    assert settings.webhook_allow_hosts == ()


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "TOKEN_BROKER_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32",
            "TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1,receiver.test",
            "TOKEN_BROKER_ISSUER": "https://broker.example/",
            "TOKEN_BROKER_ARGON2_TIME_COST": "2",
        }
    )
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert settings.webhook_allow_hosts == ("127.0.0.1", "receiver.test")
    assert settings.issuer == "https://broker.example"
    assert settings.hashing.time_cost == 2


@pytest.mark.parametrize(
    "env",
    [
        {"TOKEN_BROKER_TRUSTED_PROXIES": "not-a-network"},
        {"TOKEN_BROKER_ARGON2_TIME_COST": "fast"},
        {"TOKEN_BROKER_ARGON2_MEMORY_KIB": "0"},
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_sqlite_secret_key_is_made_once_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = Settings.from_env({"TOKEN_BROKER_DATABASE_URL": url}).with_secret_key()
    second = Settings.from_env({"TOKEN_BROKER_DATABASE_URL": url}).with_secret_key()
    assert first.secret_key and first.secret_key == second.secret_key
    key_file = tmp_path / "store.db.secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_postgres_requires_a_secret_key() -> None:
    settings = Settings.from_env({"TOKEN_BROKER_DATABASE_URL": "postgresql://db.example/broker"})
    with pytest.raises(SettingsError, match="TOKEN_BROKER_SECRET_KEY"):
        settings.with_secret_key()
    configured = Settings.from_env(
        {"TOKEN_BROKER_DATABASE_URL": "postgresql://db.example/broker", "TOKEN_BROKER_SECRET_KEY": "k" * 40}
    )
    assert configured.with_secret_key().secret_key == "k" * 40


def test_secret_scanning_key_urls() -> None:
    github = "https://api.github.com/meta/public_keys/secret_scanning"
    assert Settings.from_env({}).secret_scanning_key_urls == (github,)
    assert Settings.from_env({"TOKEN_BROKER_SECRET_SCANNING_KEY_URLS": " "}).secret_scanning_key_urls == (github,)
    both = f"{github}, http://127.0.0.1:9000/keys,http://[::1]:9/k,http://localhost/k"
    assert Settings.from_env({"TOKEN_BROKER_SECRET_SCANNING_KEY_URLS": both}).secret_scanning_key_urls == (
        github, "http://127.0.0.1:9000/keys", "http://[::1]:9/k", "http://localhost/k",
    )  # fmt: skip
    for bad in ("http://scanner.internal/keys", "ftp://127.0.0.1/k", "https://user:pw@host/k", "not a url", "https://"):
        with pytest.raises(SettingsError, match="TOKEN_BROKER_SECRET_SCANNING_KEY_URLS"):
            Settings.from_env({"TOKEN_BROKER_SECRET_SCANNING_KEY_URLS": bad})
