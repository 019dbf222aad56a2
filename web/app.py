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
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from temporalio.client import Client

import client as onboarding
from links import site_secret
from settings import Settings, get_settings
from stores import Stores
from web import api
from web.auth import CsrfFailed, RoleRequired, SignInRequired, Users
from web.dependencies import TemporalConnection
from web.pages import account, commerce, public, sales
from web.protection import SIGN_IN_LIMIT, RateLimit, SecurityHeaders
from web.redaction import redact_secrets
from web.templating import render, templates

log = logging.getLogger("web")

WEB_DIR = Path(__file__).resolve().parent
SESSION_MAX_AGE = 8 * 60 * 60


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
        yield
        app.state.stores.dispose()

    # Swagger UI served from the package, not a CDN: /docs works on a closed network.
    app = FastAPIOffline(
        title="B2B partner onboarding",
        summary="Partners apply; sales reps and Commerce admins decide.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.stores = stores
    app.state.users = users
    app.state.secret = secret
    app.state.temporal = TemporalConnection(settings, client)
    app.state.submit_rate_limit = RateLimit("submit", settings.submit_rate_limit)
    app.state.sign_in_rate_limit = RateLimit("sign-in", SIGN_IN_LIMIT)
    app.state.templates = templates()

    app.add_middleware(
        SessionMiddleware,
        secret_key=secret.hex(),
        session_cookie="onboarding_session",
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.b2b_site_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(api.router)
    for pages in (public, account, sales, commerce):
        app.include_router(pages.router)
    _handle_errors(app)
    return app


NOT_UTF8 = {
    "type": "json_invalid",
    "loc": ("body",),
    "msg": "JSON decode error",
    "input": {},
    "ctx": {"error": "the body is not UTF-8"},
}


class ErrorJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error that echoes a lone surrogate sent as
    `"\\ud800"` must still encode, not become a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


ECHOABLE: dict[Any, Callable[[Any], Any]] = {
    bytes: lambda raw: raw.decode("utf-8", "replace"),
    float: lambda number: number if math.isfinite(number) else str(number),
}


def _handle_errors(app: FastAPI) -> None:
    """JSON for the API, a page for people; never a traceback."""

    def problem(request: Request, status: int, detail: Any, **extra: Any) -> Response:
        if request.url.path.startswith("/api/"):
            return ErrorJSONResponse({"detail": detail, **extra}, status_code=status)
        return render(request, "error.html", status_code=status, status=status, detail=detail)

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
        return problem(request, 404, "There is no such page.")

    # Starlette's class, which FastAPI's subclasses: routing raises it for a 404, a 405 or
    # a body it cannot read.
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        if isinstance(err.__cause__, UnicodeDecodeError):
            # FastAPI answers 400 to a body that is not UTF-8: it is bad JSON like any other.
            return await invalid(request, RequestValidationError([NOT_UTF8]))
        response = problem(request, err.status_code, str(err.detail))
        response.headers.update(err.headers or {})
        return response

    @app.exception_handler(onboarding.RequestNotFound)
    async def not_found(request: Request, err: onboarding.RequestNotFound) -> Response:
        return problem(request, 404, str(err))

    @app.exception_handler(onboarding.DecisionNotAllowed)
    async def not_allowed(request: Request, err: onboarding.DecisionNotAllowed) -> Response:
        return problem(request, 409, str(err), stage=err.stage.value)

    @app.exception_handler(onboarding.TemporalUnavailable)
    async def unavailable(request: Request, err: onboarding.TemporalUnavailable) -> Response:
        log.error("%s", err)
        response = problem(request, 503, "The onboarding service is unavailable; try again soon.")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(onboarding.DecisionFailed)
    async def failed(request: Request, err: onboarding.DecisionFailed) -> Response:
        log.error("%s", err)
        return problem(request, 500, str(err))

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, _: SignInRequired) -> Response:
        if request.method != "GET":
            return problem(request, 401, "Your session has ended; sign in again.")
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?{urlencode({'next': back})}", status_code=303)

    @app.exception_handler(RoleRequired)
    async def wrong_role(request: Request, err: RoleRequired) -> Response:
        return problem(request, 403, f"Sorry, {err}.")

    @app.exception_handler(CsrfFailed)
    async def forged(request: Request, _: CsrfFailed) -> Response:
        return problem(request, 403, "This form has expired. Go back, reload the page and retry.")


def __getattr__(name: str) -> FastAPI:
    """`web.app:app`, built on first use so importing this module starts nothing."""
    if name == "app":
        return _default_app()
    raise AttributeError(name)


@lru_cache
def _default_app() -> FastAPI:
    return create_app()
