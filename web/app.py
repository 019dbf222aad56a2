"""The FastAPI app: pages and JSON API over the client module and the stores' read side.

`web.app:app` is the app for any ASGI server; `create_app` builds one with the
settings, Temporal client and stores a test passes in.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from client.connection import Connection, NotYetConfirmed, TemporalUnavailable
from client.converter import codec_of
from client.requests import DecisionFailed, RequestNotFound
from infra import encryption, tracing
from infra.links import site_secret
from models.lifecycle import Refused
from settings import Settings, get_settings
from stores import Stores
from stores.credit_limits import NoSuchCustomer, NotAnOrganization
from web import api, api_customers, api_dual_write, api_partner, codec, i18n, operations
from web.auth import (
    AdministratorRequired,
    CsrfFailed,
    PartnerSignInRequired,
    RoleRequired,
    SignInRequired,
    Users,
)
from web.i18n import N_, LanguageSwitch
from web.metrics import HttpMetrics, WebMetrics
from web.pages import account, commerce, partner, public, sales
from web.pages import dual_write as dual_write_pages
from web.pages.decisions import NotConfirmedPage
from web.partners import PartnerActionRefused
from web.protection import RETRY_AFTER, BodyLimit, Limits, SecurityHeaders
from web.redaction import redact_secrets
from web.templating import render, templates

log = logging.getLogger("web")

WEB_DIR = Path(__file__).resolve().parent
SESSION_MAX_AGE = 8 * 60 * 60
# Its name in traces.
SERVICE = "b2b-onboarding-web"


def create_app(
    settings: Settings | None = None,
    client: Client | None = None,
    stores: Stores | None = None,
) -> FastAPI:
    """Build the app; what is not passed in comes from the settings."""
    settings = settings or get_settings()
    users = Users.from_settings(settings)
    secret = site_secret(settings)
    # Whichever server runs the app, tokens in paths stay out of its access log.
    redact_secrets()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if users.demo:
            log.warning("API_TOKENS is not set: the demo users are signed in with demo tokens")
        if stores is not None:
            yield
            return
        app.state.stores = Stores.from_settings(settings)
        # The web app may start before the worker has brought the schemas up to date.
        app.state.stores.migrate()
        app.state.metrics.watch_stages(app.state.stores)
        yield
        app.state.stores.dispose()

    # Swagger UI served from the package, not a CDN: /docs works on a closed network.
    app = FastAPIOffline(
        title="B2B partner onboarding",
        summary="Partners apply; sales reps and Commerce admins decide.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.users = users
    app.state.secret = secret
    # One codec for the app's client and its codec endpoint, so an erasure through one is
    # seen at once by the other; the requests' data keys are kept in the app's Commerce.
    app.state.codec = (
        codec_of(client)
        if client is not None
        else encryption.codec(settings, lambda: app.state.stores.commerce)
    )
    app.state.temporal = Connection(settings, client, codec=app.state.codec)
    app.state.limits = Limits(settings)
    app.state.metrics = WebMetrics()
    if stores is not None:
        app.state.metrics.watch_stages(stores)
    i18n.require_catalogues()
    app.state.templates = templates()

    # Outermost last: the session and the headers wrap every answer, errors included.
    app.add_middleware(Unexpected)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret.hex(),
        session_cookie="onboarding_session",
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.b2b_site_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeaders, https=settings.b2b_site_url.startswith("https://"))
    if settings.trusted_proxies:
        # Only these may say, in X-Forwarded-For, who the client is; from anyone else
        # the header is ignored, so it cannot dodge the limits per address.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(LanguageSwitch)
    # The Temporal UI calls the codec endpoint from its own origin, with credentials.
    app.add_middleware(codec.CodecCors, ui_origin=codec.origin_of(settings.temporal_ui_url))
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    if tracing.installed():
        # Probes and scrapes come every few seconds: no trace for each.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(operations.router)
    app.include_router(codec.router)
    app.include_router(api.router)
    app.include_router(api_customers.router)
    app.include_router(api_dual_write.router)
    app.include_router(api_partner.router)
    for pages in (public, account, partner, dual_write_pages, sales, commerce):
        app.include_router(pages.router)
    _handle_errors(app)
    return app


# What Python's json raises, besides a JSONDecodeError, on a body it cannot read; FastAPI
# answers those with a 400, but they are bad JSON like any other.
UNREADABLE: tuple[tuple[type[Exception], str], ...] = (
    (UnicodeDecodeError, "the body is not UTF-8"),
    (ValueError, "a number in the body has too many digits"),
    (ArithmeticError, "a number in the body is out of range"),
    (RecursionError, "the body is nested too deeply"),
)


def _unreadable(cause: BaseException | None) -> dict[str, Any] | None:
    reason = next((why for kind, why in UNREADABLE if isinstance(cause, kind)), None)
    if reason is None:
        return None
    return {
        "type": "json_invalid",
        "loc": ("body",),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": reason},
    }


class ErrorJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error that echoes a lone surrogate sent as
    `"\\ud800"` must still encode, not become a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


ECHOABLE: dict[Any, Callable[[Any], Any]] = {
    bytes: lambda raw: raw.decode("utf-8", "replace"),
    float: lambda number: number if math.isfinite(number) else str(number),
    # Credit limit bodies read numbers as Decimal; JSON would round a long one to a float.
    Decimal: str,
}


# Staff pages stay English, their error pages too.
STAFF_PAGES = (sales.router.prefix, commerce.router.prefix)


def problem(request: Request, status: int, detail: Any, **extra: Any) -> Response:
    """An error as documented: JSON `{"detail": ...}` on /api/ (and the codec endpoint),
    the error page elsewhere."""
    if request.url.path.startswith(("/api/", codec.PREFIX + "/")):
        return ErrorJSONResponse({"detail": detail, **extra}, status_code=status)
    locale = None if request.url.path.startswith(STAFF_PAGES) else i18n.page_locale(request)
    if detail == HTTPStatus(status).phrase:
        # Starlette's own detail ("Not Found") only repeats the page's heading.
        detail = ""
    elif locale and detail:
        # Translated if it was marked with N_ where it was raised.
        detail = i18n.translator(locale)(detail)
    return render(
        request, "error.html", status_code=status, locale=locale, status=status, detail=detail
    )


class Unexpected:
    """An exception no handler expected: logged here, and a 500 as documented.

    Starlette's own last resort sits outside every middleware, so its 500 would carry
    neither the security headers nor the documented body; this one is inside them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception:
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if started:
                raise
            request = Request(scope, receive)
            await problem(request, 500, "Something went wrong on our side; try again later.")(
                scope, receive, send
            )


def _handle_errors(app: FastAPI) -> None:
    """JSON for the API, a page for people, in their language; never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            # What was sent is echoed back: bytes (a text/plain body) need not be UTF-8,
            # and Python's JSON reads NaN and Infinity, which JSON cannot write.
            errors = jsonable_encoder(err.errors(), custom_encoder=ECHOABLE)
            return problem(request, 422, errors)
        errors = err.errors()
        if any(error["loc"][:1] == ("body",) for error in errors):
            field = ".".join(str(part) for part in errors[0]["loc"][1:])
            return problem(request, 422, f"The form's {field} is not right: {errors[0]['msg']}.")
        return problem(request, 404, N_("There is no such page."))

    # Starlette's class, which FastAPI's subclasses: routing raises it for a 404, a 405 or
    # a body it cannot read.
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        unreadable = _unreadable(err.__cause__)
        if unreadable is not None:
            return await invalid(request, RequestValidationError([unreadable]))
        response = problem(request, err.status_code, str(err.detail))
        response.headers.update(err.headers or {})
        if err.status_code == 405:
            # Starlette names the methods of the first route with the path; a path served by
            # more than one (GET and PUT of a credit limit) has all of theirs.
            response.headers["Allow"] = ", ".join(_methods_at(app, request.scope))
        return response

    @app.exception_handler(RequestNotFound)
    async def not_found(request: Request, err: RequestNotFound) -> Response:
        return problem(request, 404, str(err))

    @app.exception_handler(Refused)
    async def not_allowed(request: Request, err: Refused) -> Response:
        return problem(request, 409, str(err), stage=err.stage.value)

    @app.exception_handler(NoSuchCustomer)
    async def no_customer(request: Request, err: NoSuchCustomer) -> Response:
        return problem(request, 404, str(err))

    @app.exception_handler(NotAnOrganization)
    async def not_organization(request: Request, err: NotAnOrganization) -> Response:
        return problem(request, 409, str(err), customer_type=err.customer_type)

    def unavailable(request: Request) -> Response:
        response = problem(
            request, 503, N_("The onboarding service is unavailable; try again soon.")
        )
        response.headers["Retry-After"] = RETRY_AFTER
        return response

    @app.exception_handler(TemporalUnavailable)
    async def temporal_unavailable(request: Request, err: TemporalUnavailable) -> Response:
        log.error("%s", err)
        return unavailable(request)

    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, err: OperationalError) -> Response:
        # A store down or restarting (a pooled connection it closed fails its statement
        # once; the pool is dropped and the next request connects afresh): try again.
        log.error("A store is unavailable: %s", err.orig)
        return unavailable(request)

    @app.exception_handler(NotYetConfirmed)
    async def held(request: Request, err: NotYetConfirmed) -> Response:
        # A change no route answers with its own key (a resend, a removal): Temporal
        # holds it and applies it once a worker is back, so this is no "try again".
        response = problem(
            request,
            202,
            N_("Recorded, and not yet confirmed: it is applied once a worker is back."),
        )
        response.headers["Retry-After"] = RETRY_AFTER
        return response

    @app.exception_handler(NotConfirmedPage)
    async def not_confirmed(request: Request, err: NotConfirmedPage) -> Response:
        return err.response

    @app.exception_handler(DecisionFailed)
    async def failed(request: Request, err: DecisionFailed) -> Response:
        log.error("%s", err)
        return problem(request, 500, str(err))

    @app.exception_handler(PartnerActionRefused)
    async def partner_refused(request: Request, refused: PartnerActionRefused) -> Response:
        # The pages show a refusal on the page it came from; the API answers it here.
        response = problem(request, refused.status, str(refused))
        response.headers.update(refused.headers)
        return response

    @app.exception_handler(PartnerSignInRequired)
    async def partner_sign_in(request: Request, _: PartnerSignInRequired) -> Response:
        if request.method != "GET":
            return problem(request, 401, "Your session has ended; sign in again.")
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?{urlencode({'next': back})}", status_code=303)

    @app.exception_handler(AdministratorRequired)
    async def not_administrator(request: Request, _: AdministratorRequired) -> Response:
        return problem(request, 403, "Sorry, this page is for your organisation's administrators.")

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, _: SignInRequired) -> Response:
        if request.method != "GET":
            return problem(request, 401, N_("Your session has ended; sign in again."))
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/staff/signin?{urlencode({'next': back})}", status_code=303)

    @app.exception_handler(RoleRequired)
    async def wrong_role(request: Request, err: RoleRequired) -> Response:
        return problem(request, 403, f"Sorry, {err}.")

    @app.exception_handler(CsrfFailed)
    async def forged(request: Request, _: CsrfFailed) -> Response:
        return problem(
            request, 403, N_("This form has expired. Go back, reload the page and retry.")
        )


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _methods_at(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers at the request's path, asked the way routing asks."""
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.routes)
    ]


def __getattr__(name: str) -> FastAPI:
    """`web.app:app`, built on first use so importing this module starts nothing."""
    if name == "app":
        return _default_app()
    raise AttributeError(name)


@lru_cache
def _default_app() -> FastAPI:
    tracing.configure(get_settings(), SERVICE)
    return create_app()
