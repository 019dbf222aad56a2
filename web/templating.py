"""Server-rendered pages: one Jinja2 environment, autoescaped and translated, with what
every page shows."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel import Locale as BabelLocale
from babel import UnknownLocaleError
from babel.dates import format_datetime, format_timedelta
from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from models.decision_words import HOLD_NOTE_WORDS, NOTE_WORDS, REASON_WORDS
from models.lifecycle import (
    STAFF_REASON_CODES,
    STAGE_WORDS,
    Change,
    ReasonCode,
    Stage,
    actor_words,
    change_allowed,
    status_words,
    whose_move,
)
from models.partners import hierarchy_role_words
from models.requests import Locale
from models.sales import LEAD_SOURCE_WORDS
from models.status import email_words
from settings import PROJECT_DIR, Settings
from web import i18n
from web.auth import csrf_token, partner_session, session_user
from web.protection import RETRY_AFTER
from web.temporal_ui import temporal_ui_url

# The language of the template being rendered. One environment serves every request, so
# its gettext cannot be installed per request (a concurrent request would change it under
# another's feet); it reads this variable instead, which `render` sets only around one
# template's synchronous rendering. Each asyncio task and each thread has a context of its
# own and nothing awaits mid-render, so requests in en and it at the same time never see
# each other's language. Unlike gettext passed in the render context, it also reaches
# macros imported without context.
_rendering: ContextVar[Locale] = ContextVar("rendering")


def templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(PROJECT_DIR / "templates" / "web"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    # `{% trans %}` blocks may be wrapped over lines: their ids are the words, not the layout.
    environment.policies["ext.i18n.trimmed"] = True
    # Newstyle: `_("… %(name)s", name=value)` and `{% trans %}` escape the values they fill in.
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: i18n.translations(_rendering.get()).gettext(message),
        lambda singular, plural, n: i18n.translations(_rendering.get()).ngettext(
            singular, plural, n
        ),
        newstyle=True,
    )
    environment.filters["when"] = _when
    # The staff pages' words (English) for what the stores keep as codes.
    environment.filters["actor"] = actor_words
    environment.filters["hierarchy_role"] = hierarchy_role_words
    environment.filters["language"] = language_words
    environment.filters["waited"] = waited
    environment.filters["thousands"] = lambda number: f"{number:,}"
    environment.globals["status_words"] = status_words
    environment.globals["stage_words"] = STAGE_WORDS
    environment.globals["lead_source_words"] = LEAD_SOURCE_WORDS
    environment.globals["email_words"] = email_words
    environment.globals["language_names"] = i18n.LANGUAGE_NAMES
    # The words beside a decision's and a hold's fields on the staff pages.
    environment.globals["field_words"] = {
        "reason": REASON_WORDS,
        "note": NOTE_WORDS,
        "hold_note": HOLD_NOTE_WORDS,
    }
    environment.filters["money"] = money
    # A decision's reason code in words (a stored value; one no longer known, as it is).
    environment.filters["reason_code"] = lambda value: (
        ReasonCode(value).label if value in set(ReasonCode) else value
    )
    # What a rep or admin may choose when turning a request down, in the lifecycle's order.
    environment.globals["staff_reason_codes"] = STAFF_REASON_CODES
    # A decision button's id: a double click sends the same Update twice, applied once.
    environment.globals["new_id"] = lambda: uuid.uuid4().hex
    # Whether a request's stage allows a change (`hold`, `resume`, `erase`): the pages ask
    # the lifecycle which buttons to show.
    environment.globals["change_allowed"] = lambda change, stage: change_allowed(
        Change(change), Stage(stage)
    )
    # The role whose move a stage waits for (None once decided, or while recorded).
    environment.globals["whose_move"] = lambda stage: whose_move(Stage(stage))
    return Jinja2Templates(env=environment, context_processors=[_page_context])


def _when(value: datetime | None) -> str:
    return when(value, _rendering.get())


def when(value: datetime | None, locale: Locale = "en") -> str:
    """A moment as people read it, in `locale` (a staff message is English)."""
    if value is None:
        return ""
    return format_datetime(value, "long", tzinfo=UTC, locale=locale)


def language_words(code: str | None) -> str:
    """A language's name in English, for the staff pages: `it` → "Italian"."""
    if not code:
        return ""
    try:
        return BabelLocale.parse(code).get_display_name("en") or code
    except (ValueError, UnknownLocaleError):
        return code


def waited(since: datetime | None, until: datetime | None = None) -> str:
    """How long since `since`, as people say it: "3 days", "5 hours"."""
    if since is None:
        return ""
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return format_timedelta((until or datetime.now(UTC)) - since, threshold=2, locale="en")


def money(amount: Decimal, currency: str = "") -> str:
    """An amount as people read it, from the Decimal itself (never a float): 25,000.00 EUR."""
    return f"{amount:,.2f} {currency}".rstrip()


def _page_context(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "user": session_user(request),
        "partner": partner_session(request),
        "csrf_token": csrf_token(request),
        "flash": request.session.pop("flash", None),
        "temporal_ui": lambda onboarding_id: temporal_ui_url(settings, onboarding_id),
    }


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    *,
    locale: Locale | None = None,
    **context: Any,
) -> Response:
    """A page in `locale` (from `i18n.page_locale`), with the language switch; without
    one, a staff page: English, and no switch."""
    templates: Jinja2Templates = request.app.state.templates
    links = i18n.language_links(request) if locale else []
    shown = locale or i18n.DEFAULT_LOCALE
    token = _rendering.set(shown)
    try:
        return templates.TemplateResponse(
            request,
            template,
            {**context, "locale": shown, "language_links": links},
            status_code=status_code,
        )
    finally:
        _rendering.reset(token)


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message for the next page the user sees (after a redirect)."""
    request.session["flash"] = {"message": message, "kind": kind}


def not_confirmed(
    request: Request,
    message: str,
    what: str,
    fields: dict[str, str],
    locale: Locale | None = None,
) -> Response:
    """A 202 page: Temporal holds the form's submission or decision, unconfirmed so far.

    Its button posts the same fields again, ids included, which attaches to the same
    Update and answers its outcome once a worker has applied it.
    """
    response = render(
        request,
        "not_confirmed.html",
        status_code=202,
        locale=locale,
        message=i18n.translator(locale)(message) if locale else message,
        what=what,
        action=request.url.path,
        fields=fields,
    )
    response.headers["Retry-After"] = RETRY_AFTER
    return response
