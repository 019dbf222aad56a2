"""Server-rendered pages: one Jinja2 environment, autoescaped, with what every page shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from settings import PROJECT_DIR, Settings
from web.auth import csrf_token, session_user
from web.links import temporal_ui_url
from web.protection import RETRY_AFTER


def templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(PROJECT_DIR / "templates" / "web"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    environment.filters["when"] = _when
    environment.filters["words"] = lambda value: str(value).replace("_", " ")
    # A decision button's id: a double click sends the same Update twice, applied once.
    environment.globals["new_id"] = lambda: uuid.uuid4().hex
    return Jinja2Templates(env=environment, context_processors=[_page_context])


def _when(value: datetime | None) -> str:
    return value.strftime("%d %b %Y, %H:%M UTC") if value else ""


def _page_context(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "user": session_user(request),
        "csrf_token": csrf_token(request),
        "flash": request.session.pop("flash", None),
        "temporal_ui": lambda onboarding_id: temporal_ui_url(settings, onboarding_id),
    }


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message for the next page the user sees (after a redirect)."""
    request.session["flash"] = {"message": message, "kind": kind}


def not_confirmed(request: Request, message: str, what: str, fields: dict[str, str]) -> Response:
    """A 202 page: Temporal holds the form's submission or decision, unconfirmed so far.

    Its button posts the same fields again, ids included, which attaches to the same
    Update and answers its outcome once a worker has applied it.
    """
    response = render(
        request,
        "not_confirmed.html",
        status_code=202,
        message=message,
        what=what,
        action=request.url.path,
        fields=fields,
    )
    response.headers["Retry-After"] = RETRY_AFTER
    return response
