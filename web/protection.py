"""Protections every answer gets (security headers, a body limit) and limits per client address."""

from __future__ import annotations

import time

from fastapi import Depends, HTTPException, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """Headers every answer carries: no framing, no MIME sniffing, no referrer elsewhere,
    a Content-Security-Policy, no browser features, HSTS once served over https, and no
    caching of pages that show a request or a signed-in user's data.

    The requester's status link holds its token in the path; `same-origin` keeps it
    from leaking to another site through the Referer header.
    """

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (
            b"permissions-policy",
            b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        ),
    )
    # The pages run no script and no inline style: only the site's own stylesheet.
    PAGES_CSP = (
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'"
    )
    # Swagger UI and ReDoc start from an inline script, and ReDoc runs a blob: worker.
    DOCS_CSP = (
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
        b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    DOCS = ("/docs", "/redoc")
    HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope["path"]
        csp = self.DOCS_CSP if path.startswith(self.DOCS) else self.PAGES_CSP
        extra = [*self.HEADERS, (b"content-security-policy", csp)]
        if self.https:
            extra.append(self.HSTS)
        if not path.startswith("/static/"):
            extra.append((b"cache-control", b"no-store"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """A body over `max_bytes` is refused with a 413 by the app's own error handling.

    Raised from `receive`, that is inside the route that reads the body, so the answer
    is the documented one (JSON on /api/, the error page elsewhere) with every header,
    whether the length is declared up front or only seen while streaming.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large()
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the body is larger than {self.max_bytes} bytes")


class RateLimit:
    """Requests of one kind per client address, in a moving window (`10/minute`)."""

    def __init__(self, kind: str, limit: str) -> None:
        self.kind = kind
        self.item = parse(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def __call__(self, request: Request) -> None:
        address = request.client.host if request.client else "unknown"
        if not self.limiter.hit(self.item, self.kind, address):
            reset_at, _ = self.limiter.get_window_stats(self.item, self.kind, address)
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


SubmitLimited = Depends(_submit_limit)
SignInLimited = Depends(_sign_in_limit)
