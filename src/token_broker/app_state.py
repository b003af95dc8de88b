"""What the app's lifespan opens, reached by handlers through request.state.

Only what the layers below the HTTP adapters define lives here; an adapter's own handle (the authorization server, the
metrics, the reporters' keys) sits beside it in the lifespan state and is reached through that adapter's accessor, so
this module imports no adapter."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from starlette.requests import HTTPConnection

from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.guard.guard import Guard
from token_broker.guard.redirect_limit import RedirectLimit
from token_broker.guard.sign_in_throttle import SignInThrottle
from token_broker.guard.throttle import FailureThrottle
from token_broker.hashing_pool import HashingPool
from token_broker.scopes import Manifest
from token_broker.services.click_batches import ClickRecorder
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import Database


@dataclass(frozen=True)
class Resources:
    settings: Settings
    database: Database
    hasher: SecretHasher
    guard: Guard
    manifests: dict[str, Manifest]
    lifetimes: TokenLifetimes
    # Password checks (argon2id, 64 MiB each) run here, never in the thread pool the database calls share.
    password_pool: HashingPool = field(default_factory=lambda: HashingPool("verify-passwords", threads=2))
    # Failed sign-ins, per (email, address block) and per address block: guard/sign_in_throttle.py.
    sign_in_failures: SignInThrottle = field(default_factory=SignInThrottle)
    # The public redirect: visits per address block, and clicks waiting for their batch (services/click_batches.py).
    redirect_limit: RedirectLimit = field(default_factory=RedirectLimit)
    clicks: ClickRecorder = field(default_factory=ClickRecorder)
    # Verified secret-scanning reports are handled one at a time: anyone can make a scanner report many token-shaped
    # strings naming real key ids (ids are public), each costing an argon2 check (scanning/endpoint.py).
    report_slots: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    # Wrong current passwords at a password change: per user 5, then one a minute; per address 20, then one each 10 s.
    password_change_failures: FailureThrottle = field(
        default_factory=lambda: FailureThrottle(per_credential=(5, 1 / 60), per_address=(20, 1 / 10))
    )


def resources(connection: HTTPConnection) -> Resources:
    found: Resources = connection.state.resources
    return found
