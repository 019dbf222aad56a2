"""Protections every answer gets (security headers, a body limit) and rate limits."""

from __future__ import annotations

import hashlib
import ipaddress
import time
from datetime import timedelta

from fastapi import Depends, HTTPException, Request
from limits import parse, parse_many
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
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
    """At most `limit` events of one kind per key (an address, a recipient), in moving
    windows (`10/minute`, or several: `3/hour;10/day`).

    `take` counts and refuses in one atomic step, so concurrent events cannot all slip
    in. The counts live in a `limits` storage: this process's memory, or one that every
    web process shares (RATE_LIMIT_STORAGE_URI, say Redis). Its calls block on that
    storage: call them from a sync dependency or a thread.
    """

    def __init__(self, kind: str, limit: str, storage: Storage, what: str) -> None:
        self.kind = kind
        self.items = parse_many(limit)
        self.limiter = MovingWindowRateLimiter(storage)
        self.what = what

    def take(self, key: str) -> None:
        """Count one event for `key`, or refuse it (429, with Retry-After) when `key` has
        used up its limit."""
        for item in self.items:
            if not self.limiter.hit(item, self.kind, key):
                reset_at, _ = self.limiter.get_window_stats(item, self.kind, key)
                raise _too_many(f"{self.what}: at most {item}", reset_at)


class Attempt:
    """One attempt at a secret, begun by `SecretGuard.begin`: it ends as `succeeded` or
    `failed` (a reserved attempt that raises stays counted as a failure)."""

    def __init__(self, guard: SecretGuard, address: str, account: str | None) -> None:
        self.guard, self.address, self.account = guard, address, account

    def succeeded(self) -> None:
        self.guard.succeeded(self)

    def failed(self) -> None:
        self.guard.failed(self)


class SecretGuard:
    """Failed attempts at a secret (a sign-in form, a bearer token), limited per client
    address and, for an account, per address that fails at it.

    Per address: at most `limit` failures. Where a check is slow and the secret a person
    chose (a password, `reserve`), each attempt counts as a failure from the moment it
    begins, atomically in the shared storage, and is given back once it succeeds:
    concurrent attempts cannot all slip in before the first failure is counted, and a
    person who signs in often is never slowed down. A random token is checked at once
    and cannot be guessed in any number of tries, so only its failures are counted, and
    a script's concurrent calls with a good one are never refused.

    Per account: one address guessing one account's secret is held by the limit per
    address, so its failures never lock the account for anybody else. Many addresses
    guessing one account are held by `account_addresses`, the number of distinct
    addresses that may fail at it in an hour; past that, an address new to the account
    is refused, while one that has signed in to it within `KNOWN_FOR` (its owner's) and
    one already counted still get in.
    """

    KNOWN_FOR = timedelta(days=30)

    def __init__(
        self,
        kind: str,
        limit: str,
        storage: Storage,
        account_addresses: str | None = None,
        reserve: bool = True,
    ) -> None:
        self.kind, self.storage, self.reserve = kind, storage, reserve
        self.by_address = parse(limit)
        self.per_address = FixedWindowRateLimiter(storage)
        self.account_addresses = parse(account_addresses) if account_addresses else None
        self.per_account = MovingWindowRateLimiter(storage)

    def begin(self, address: str, account: str | None = None) -> Attempt:
        """Count the attempt as a failure, or refuse it (429, with Retry-After)."""
        subject = account_key(account) if account is not None else None
        if subject is not None and not self._may_fail_at(subject, address):
            assert self.account_addresses is not None
            raise _too_many(
                f"addresses failing to sign in to this account: at most {self.account_addresses}",
                self.per_account.get_window_stats(self.account_addresses, self.kind, subject)[0],
            )
        counted = self.per_address.hit if self.reserve else self.per_address.test
        if not counted(self.by_address, self.kind, address):
            raise _too_many(
                f"failed attempts from your address: at most {self.by_address}",
                self.per_address.get_window_stats(self.by_address, self.kind, address)[0],
            )
        return Attempt(self, address, subject)

    def succeeded(self, attempt: Attempt) -> None:
        key = self.by_address.key_for(self.kind, attempt.address)
        if self.reserve and self.storage.get(key) > 0:
            self.storage.incr(key, self.by_address.get_expiry(), -1)
        if attempt.account is not None:
            # Known for KNOWN_FOR from the latest sign-in: counted afresh each time.
            known = self._key("known", attempt.account, attempt.address)
            self.storage.clear(known)
            self.storage.incr(known, int(self.KNOWN_FOR.total_seconds()))

    def failed(self, attempt: Attempt) -> None:
        if not self.reserve:
            self.per_address.hit(self.by_address, self.kind, attempt.address)
        if attempt.account is None or self.account_addresses is None:
            return
        counted = self._key("failing", attempt.account, attempt.address)
        if self.storage.incr(counted, self.account_addresses.get_expiry()) == 1:
            self.per_account.hit(self.account_addresses, self.kind, attempt.account)

    def _may_fail_at(self, subject: str, address: str) -> bool:
        if self.account_addresses is None or self.per_account.test(
            self.account_addresses, self.kind, subject
        ):
            return True
        return any(
            self.storage.get(self._key(why, subject, address)) > 0 for why in ("known", "failing")
        )

    def _key(self, why: str, subject: str, address: str) -> str:
        return f"{self.kind}/{why}/{subject}/{address}"


def account_key(account: str) -> str:
    """How the limits name an account or a recipient: the limits' storage (say Redis)
    keeps keys, not emails or staff names."""
    return hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]


def _too_many(what: str, reset_at: float) -> HTTPException:
    retry_after = max(1, int(reset_at - time.time()) + 1)
    return HTTPException(
        429, f"too many {what}; try again later", {"Retry-After": str(retry_after)}
    )


# Failed sign-ins (or API tokens) per address: plenty for a person, slow for guessing;
# and how many addresses may fail at one account before new ones are refused.
SIGN_IN_LIMIT = "10/minute"
SIGN_IN_ADDRESSES_PER_ACCOUNT = "20/hour"
# Sign-in link emails to one address: invitations an administrator sends (added or
# resent), and links anyone may ask for (forgot password, a fresh link), counted apart so
# that strangers asking cannot stop an administrator's invitation.
INVITATIONS_PER_RECIPIENT = "3/hour;10/day"
LINKS_ASKED_PER_RECIPIENT = "3/hour;10/day"


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
        self.sign_in = SecretGuard("sign-in", SIGN_IN_LIMIT, storage, SIGN_IN_ADDRESSES_PER_ACCOUNT)
        self.bearer = SecretGuard("bearer", SIGN_IN_LIMIT, storage, reserve=False)
        self.partner_sign_in = SecretGuard(
            "partner-sign-in", SIGN_IN_LIMIT, storage, SIGN_IN_ADDRESSES_PER_ACCOUNT
        )
        self.invitations = RateLimit(
            "invitations", INVITATIONS_PER_RECIPIENT, storage, "invitations to this address"
        )
        self.links_asked = RateLimit(
            "links-asked", LINKS_ASKED_PER_RECIPIENT, storage, "links emailed to this address"
        )


def limits(request: Request) -> Limits:
    found: Limits = request.app.state.limits
    return found


def _submit_limit(request: Request) -> None:
    limits(request).submit.take(client_key(request))


SubmitLimited = Depends(_submit_limit)
