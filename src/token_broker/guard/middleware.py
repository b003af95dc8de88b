"""The ASGI side of the guard: every request below it is authenticated, allowed from its address and within its
credential's rate limits before any route runs. Routes read `request.user.credential` and `request.auth.scopes`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.exc import SQLAlchemyError
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.errors import BrokerError, CredentialRefused, RateLimited, Unavailable
from token_broker.guard.guard import Guard
from token_broker.hashing_pool import HashingBusy
from token_broker.scopes import ALL_SCOPES
from token_broker.services.verification import VerifiedCredential


class CredentialUser(BaseUser):
    def __init__(self, credential: VerifiedCredential) -> None:
        self.credential = credential

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.credential.name

    @property
    def identity(self) -> str:
        return self.credential.id


BUSY_MESSAGE = "Too many new keys are being verified at once: retry after the number of seconds in Retry-After."
RATE_LIMITED_MESSAGE = "Too many requests for this key: wait for the number of seconds in Retry-After, then retry."


# How refusals reach the wire is the mounting layer's choice: the guard sits below the API and does not import it.
ErrorRenderer = Callable[[BrokerError, Mapping[str, str] | None], ASGIApp]


class GuardMiddleware:
    def __init__(self, app: ASGIApp, render_error: ErrorRenderer) -> None:
        self.app = app
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard: Guard = scope["state"]["resources"].guard
        client = scope.get("client")
        try:
            credential = await guard.authenticate(scope["headers"], client[0] if client else None)
        except CredentialRefused as refusal:
            await self.render_error(refusal, None)(scope, receive, send)
            return
        except SQLAlchemyError:
            unavailable = Unavailable("The key store is unavailable for a moment; retry shortly.")
            await self.render_error(unavailable, {"Retry-After": "1"})(scope, receive, send)
            return
        except HashingBusy as busy:
            unavailable = Unavailable(BUSY_MESSAGE)
            await self.render_error(unavailable, {"Retry-After": str(busy.retry_after)})(scope, receive, send)
            return
        scope["user"] = CredentialUser(credential)  # set before the rate limit, so a 429 is logged with its key
        decision = await guard.rate_limit(credential)
        if not decision.allowed:
            headers = {name.decode(): value.decode() for name, value in decision.headers()}
            await self.render_error(RateLimited(RATE_LIMITED_MESSAGE), headers)(scope, receive, send)
            return
        scope["auth"] = AuthCredentials(list(ALL_SCOPES if credential.scopes is None else credential.scopes))
        rate_headers = decision.headers()

        async def send_with_rate_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *rate_headers]
            await send(message)

        await self.app(scope, receive, send_with_rate_headers)
