"""Protections every answer gets (security headers) and limits per client address."""

from __future__ import annotations

import time

from fastapi import Depends, HTTPException, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """Headers every answer carries: no framing, no MIME sniffing, no referrer elsewhere,
    and no caching of pages that show a request or a signed-in user's data.

    The requester's status link holds its token in the path; `same-origin` keeps it
    from leaking to another site through the Referer header.
    """

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        extra: tuple[tuple[bytes, bytes], ...] = self.HEADERS
        if not scope["path"].startswith("/static/"):
            extra = (*extra, (b"cache-control", b"no-store"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class RateLimit:
    """Requests of one kind per client address, in a moving window (`10/minute`)."""

    def __init__(self, kind: str, limit: str) -> None:
        self.kind = kind
        self.item = parse(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def __call__(self, request: Request) -> None:
        self.hit(request.client.host if request.client else "unknown")

    def hit(self, key: str) -> None:
        """Count one attempt for `key`; 429 once it is over the limit."""
        if not self.limiter.hit(self.item, self.kind, key):
            reset_at, _ = self.limiter.get_window_stats(self.item, self.kind, key)
            retry_after = max(1, int(reset_at - time.time()) + 1)
            raise HTTPException(
                429,
                f"too many requests from your address: at most {self.item}; try again later",
                {"Retry-After": str(retry_after)},
            )


# Sign-in attempts per address: plenty for a person, slow for guessing tokens.
SIGN_IN_LIMIT = "10/minute"


def _submit_limit(request: Request) -> None:
    request.app.state.submit_rate_limit(request)


def _sign_in_limit(request: Request) -> None:
    request.app.state.sign_in_rate_limit(request)


class AccountFailures:
    """Failed partner sign-ins per account: guessing one account's password from many
    addresses is slowed down too. Only failures count, so its owner is not locked out by
    signing in often; a guesser is, for the window, which the reset link gets round."""

    def __init__(self, limit: str) -> None:
        self.limit = RateLimit("partner-account", limit)

    def check(self, email: str) -> None:
        """429 while the account has had too many failures."""
        limit = self.limit
        if not limit.limiter.test(limit.item, limit.kind, email):
            raise HTTPException(
                429,
                "too many failed sign-ins for this account; try again later or reset the password",
                {"Retry-After": "60"},
            )

    def hit_account(self, request: Request, email: str) -> None:
        self.limit.limiter.hit(self.limit.item, self.limit.kind, email)


async def _partner_sign_in_limit(request: Request) -> None:
    request.app.state.sign_in_rate_limit(request)
    form = await request.form()
    request.app.state.partner_sign_in_failures.check(str(form.get("email") or "").strip().lower())


SubmitLimited = Depends(_submit_limit)
SignInLimited = Depends(_sign_in_limit)
PartnerSignInLimited = Depends(_partner_sign_in_limit)
