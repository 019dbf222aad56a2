"""Protections every answer gets (security headers, a body limit) and rate limits."""

from __future__ import annotations

import ipaddress
import time

from fastapi import Depends, HTTPException, Request
from limits import parse
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from settings import Settings

# While Temporal or a worker is away, a caller asks again this much later (Retry-After).
RETRY_AFTER = "5"


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


def client_key(request: Request) -> str:
    """The client's address as the limits count it: IPv4 as it is, IPv6 by its /64.

    One host on IPv6 usually holds a whole /64, and can write one address many ways
    (`2001:DB8::1`, `2001:db8::1`): by the /64 it is one client. Forwarded headers are
    read only from TRUSTED_PROXIES (see `create_app`), before this sees the address.
    """
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimit:
    """At most `limit` events of one kind per key (an address, an account), in a moving
    window (`10/minute`).

    `check` only looks and `hit` only counts, so a caller may count every attempt
    (check, then hit) or only failed ones (check before, hit after a failure). The
    counts live in a `limits` storage: this process's memory, or one that every web
    process shares (RATE_LIMIT_STORAGE_URI, say Redis). Its calls block on that
    storage: call them from a sync dependency or a thread.
    """

    def __init__(self, kind: str, limit: str, storage: Storage, what: str) -> None:
        self.kind = kind
        self.item = parse(limit)
        self.limiter = MovingWindowRateLimiter(storage)
        self.what = what

    def check(self, key: str) -> None:
        """Refuse (429, with Retry-After) when `key` has used up its limit."""
        if not self.limiter.test(self.item, self.kind, key):
            reset_at, _ = self.limiter.get_window_stats(self.item, self.kind, key)
            retry_after = max(1, int(reset_at - time.time()) + 1)
            raise HTTPException(
                429,
                f"too many {self.what}: at most {self.item}; try again later",
                {"Retry-After": str(retry_after)},
            )

    def hit(self, key: str) -> None:
        """Count one event for `key`."""
        self.limiter.hit(self.item, self.kind, key)


class FailureLimit:
    """Failed attempts at a secret (a sign-in form, a bearer token), counted per client
    address and per account tried; successful ones are not counted.

    Per address slows guessing from one place, per account guessing one user's secret
    from many; both are checked before an attempt. Any sign-in form can use one.
    """

    def __init__(self, kind: str, limit: str, storage: Storage) -> None:
        self.by_address = RateLimit(
            f"{kind}-failed-by-address", limit, storage, "failed attempts from your address"
        )
        self.by_account = RateLimit(
            f"{kind}-failed-by-account", limit, storage, "failed attempts for this account"
        )

    def check(self, address: str, account: str | None = None) -> None:
        self.by_address.check(address)
        if account is not None:
            self.by_account.check(account)

    def failed(self, address: str, account: str | None = None) -> None:
        self.by_address.hit(address)
        if account is not None:
            self.by_account.hit(account)


# Failed sign-ins (or API tokens) per address and per account: plenty for a person,
# slow for guessing.
SIGN_IN_LIMIT = "10/minute"


class Limits:
    """The web app's limits, all in one storage."""

    def __init__(self, settings: Settings) -> None:
        uri = settings.rate_limit_storage_uri
        try:
            storage = storage_from_string(uri)
        except ConfigurationError as err:
            raise ValueError(f"RATE_LIMIT_STORAGE_URI {uri!r}: {err}") from None
        if not isinstance(storage, Storage):
            raise ValueError(f"RATE_LIMIT_STORAGE_URI {uri!r}: name a storage without async+")
        self.submit = RateLimit(
            "submit", settings.submit_rate_limit, storage, "requests from your address"
        )
        # Counted apart: a script with a wrong token does not lock people out of the pages.
        self.sign_in = FailureLimit("sign-in", SIGN_IN_LIMIT, storage)
        self.bearer = FailureLimit("bearer", SIGN_IN_LIMIT, storage)
        self.partner_sign_in = FailureLimit("partner-sign-in", SIGN_IN_LIMIT, storage)


def limits(request: Request) -> Limits:
    found: Limits = request.app.state.limits
    return found


def _submit_limit(request: Request) -> None:
    submit = limits(request).submit
    address = client_key(request)
    submit.check(address)
    submit.hit(address)


SubmitLimited = Depends(_submit_limit)
