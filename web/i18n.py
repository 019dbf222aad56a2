"""The languages of the pages partners and requesters see: which ones there are, their
message catalogues, and which one a page is shown in.

The languages are the request model's `Locale`. Each has a Babel catalogue,
`locales/<code>/LC_MESSAGES/messages.po`, that the make targets compile to `.mo`. Staff
pages (Sales, Commerce) stay English.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from typing import get_args

from babel import Locale as BabelLocale
from babel.core import negotiate_locale
from babel.support import Translations
from fastapi import Request
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.requests import Locale
from settings import PROJECT_DIR

LOCALES: tuple[Locale, ...] = get_args(Locale)
DEFAULT_LOCALE: Locale = "en"
LOCALE_DIR = PROJECT_DIR / "locales"
DOMAIN = "messages"
# `?lang=it` on any page switches the visitor to Italian; a cookie of that name keeps it.
SWITCH = "lang"
SWITCH_KEPT_FOR = 365 * 24 * 60 * 60


class CatalogueMissing(RuntimeError):
    """A supported language without its compiled catalogue: pages would fall back to
    English without anyone noticing, so the app does not start."""


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where shown."""
    return message


@cache
def translations(locale: Locale) -> Translations:
    """The compiled catalogue of `locale`."""
    try:
        return gettext.translation(DOMAIN, LOCALE_DIR, [locale], class_=Translations)
    except FileNotFoundError:
        raise CatalogueMissing(
            f"no compiled catalogue for {locale!r} in {LOCALE_DIR}: run make "
            "(pybabel compile -d locales)"
        ) from None


def require_catalogues() -> None:
    """Load every language's catalogue now: a missing one stops the app at start."""
    for locale in LOCALES:
        translations(locale)


def translator(locale: Locale) -> Callable[..., str]:
    """`_` for text that Python code produces: `_ = translator(locale)`, then
    `_("Sent to %(email)s.", email=address)`; a constant marked with `N_` is `_(CONSTANT)`."""
    catalogue = translations(locale)

    def translate(message: str, /, **variables: object) -> str:
        text = catalogue.gettext(message)
        return text % variables if variables else text

    return translate


def _own_name(locale: Locale) -> str:
    name = BabelLocale.parse(locale).get_display_name(locale) or locale
    return name[:1].upper() + name[1:]


# Each language by its own name ("English", "Italiano"), as a reader of it looks for it.
LANGUAGE_NAMES: dict[Locale, str] = {locale: _own_name(locale) for locale in LOCALES}


def _supported(code: str | None) -> Locale | None:
    return next((locale for locale in LOCALES if locale == code), None)


def page_locale(request: Request, preferred: str | None = None) -> Locale:
    """The language of a page for partners and requesters.

    The visitor's own switch (`?lang=`, then its cookie) wins; else `preferred`, the
    language of what the page shows (a request's `locale`, a partner user's language);
    else the browser's `Accept-Language`; else English.
    """
    for choice in (request.query_params.get(SWITCH), request.cookies.get(SWITCH), preferred):
        if (locale := _supported(choice)) is not None:
            return locale
    return _accepted(request.headers.get("accept-language", "")) or DEFAULT_LOCALE


def _accepted(header: str) -> Locale | None:
    """The best of our languages for an `Accept-Language` header, by its q-values."""
    ranked: list[tuple[float, str]] = []
    for entry in header.split(","):
        tag, _, parameters = entry.partition(";")
        weight = parameters.strip().removeprefix("q=") if parameters else "1"
        try:
            quality = float(weight)
        except ValueError:
            continue
        if tag.strip() and quality > 0:
            ranked.append((quality, tag.strip()))
    # sorted() is stable: tags of equal weight keep the browser's order.
    preferred = [tag for _, tag in sorted(ranked, key=lambda pair: -pair[0])]
    chosen = negotiate_locale(preferred, list(LOCALES), sep="-")
    return _supported(chosen.lower() if chosen else None)


def language_links(request: Request) -> list[tuple[Locale, str, str]]:
    """The language switch: each language's code, name, and this page's address in it.

    The address is the query alone (`?lang=it&…`), which the browser resolves against
    the current path: the path is kept without being echoed into the page.
    """
    return [
        (locale, name, f"?{request.url.include_query_params(**{SWITCH: locale}).query}")
        for locale, name in LANGUAGE_NAMES.items()
    ]


class LanguageSwitch:
    """Keeps a visitor's `?lang=` choice in a cookie, so their later pages are in it too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = None
        if scope["type"] == "http":
            chosen = _supported(HTTPConnection(scope).query_params.get(SWITCH))
        if chosen is None:
            await self.app(scope, receive, send)
            return
        cookie = f"{SWITCH}={chosen}; Max-Age={SWITCH_KEPT_FOR}; Path=/; SameSite=Lax; HttpOnly"
        if scope.get("scheme") == "https":
            cookie += "; Secure"

        async def remembering(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, remembering)
