"""What the app's lifespan opens, reached by handlers through request.state."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.guard.guard import Guard
from token_broker.store.database import Database


@dataclass(frozen=True)
class Resources:
    settings: Settings
    database: Database
    hasher: SecretHasher
    guard: Guard


def resources(connection: HTTPConnection) -> Resources:
    found: Resources = connection.state.resources
    return found
