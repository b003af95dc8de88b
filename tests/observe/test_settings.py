"""The settings of several instances: Redis, LISTEN, metrics token, log level."""

from __future__ import annotations

import pytest

from token_broker.config import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url is None
    assert settings.listen_notify is True
    assert settings.metrics_token is None
    assert settings.log_level == "info"
    assert settings.pool_options() == {}  # SQLite
    assert Settings.from_env({"TOKEN_BROKER_DATABASE_URL": "postgresql://db/x"}).pool_options() == {
        "pool_size": 15,
        "max_overflow": 0,
    }


def test_values() -> None:
    settings = Settings.from_env(
        {
            "TOKEN_BROKER_REDIS_URL": "redis://cache.internal:6379/2",
            "TOKEN_BROKER_LISTEN_NOTIFY": "off",
            "TOKEN_BROKER_METRICS_TOKEN": "a-long-enough-token-123",
            "TOKEN_BROKER_LOG_LEVEL": "WARNING",
            "TOKEN_BROKER_DATABASE_URL": "postgresql://db/x",
            "TOKEN_BROKER_DB_POOL_SIZE": "20",
            "TOKEN_BROKER_DB_MAX_OVERFLOW": "0",
        }
    )
    assert settings.pool_options() == {"pool_size": 20, "max_overflow": 0}
    assert settings.redis_url == "redis://cache.internal:6379/2"
    assert settings.listen_notify is False
    assert settings.metrics_token == "a-long-enough-token-123"
    assert settings.log_level == "warning"


@pytest.mark.parametrize(
    "env",
    [
        {"TOKEN_BROKER_REDIS_URL": "cache.internal:6379"},
        {"TOKEN_BROKER_LISTEN_NOTIFY": "sometimes"},
        {"TOKEN_BROKER_METRICS_TOKEN": "short"},
        {"TOKEN_BROKER_METRICS_TOKEN": "has a space in the middle"},
        {"TOKEN_BROKER_LOG_LEVEL": "chatty"},
        {"TOKEN_BROKER_DB_POOL_SIZE": "0"},
        {"TOKEN_BROKER_DB_MAX_OVERFLOW": "-1"},
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
