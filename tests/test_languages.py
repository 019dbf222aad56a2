"""The pages partners and requesters see, in English or Italian: chosen by their switch
or their browser; and catalogues that hold, and translate, every message the pages have."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from settings import PROJECT_DIR, Settings
from stores import Stores
from tests.conftest import REP
from tests.test_pages import sign_in
from web import i18n
from web.app import create_app


def html_lang(page: httpx.Response) -> str:
    found = re.search(r'<html lang="(\w+)">', page.text)
    assert found, page.text[:200]
    return found[1]


async def test_an_error_page_is_in_the_language_the_visitor_switched_to(
    web: httpx.AsyncClient,
) -> None:
    page = await web.get("/no-such-page", params={"lang": "it"})
    assert html_lang(page) == "it"
    assert "Pagina non trovata" in page.text
    assert "lang=it" in page.headers["set-cookie"]
    assert '<a href="?lang=en" hreflang="en" lang="en">English</a>' in page.text
    assert '<a href="?lang=it" hreflang="it" lang="it" aria-current="true">Italiano</a>' in (
        page.text
    )

    web.headers["Accept-Language"] = "en"
    assert html_lang(await web.get("/still-no-page")) == "it"
    assert html_lang(await web.get("/no-such-page", params={"lang": "en"})) == "en"
    assert html_lang(await web.get("/still-no-page")) == "en"


@pytest.mark.parametrize(
    ("accept_language", "shown"),
    [
        ("it-IT,it;q=0.9,en;q=0.8", "it"),
        ("IT", "it"),
        ("de-DE,de;q=0.9,it;q=0.5,en;q=0.4", "it"),
        ("en;q=0.2, it;q=0.8", "it"),
        ("fr-FR,fr;q=0.9", "en"),
        ("it;q=0, en", "en"),
        ("it;q=nonsense, *", "en"),
        ("", "en"),
    ],
)
async def test_the_browser_s_languages_choose_when_nothing_else_does(
    web: httpx.AsyncClient, accept_language: str, shown: str
) -> None:
    page = await web.get("/no-such-page", headers={"Accept-Language": accept_language})
    assert html_lang(page) == shown
    assert {"en": "Back to the home page", "it": "Torna alla pagina iniziale"}[shown] in page.text


async def test_staff_pages_stay_english_whatever_the_visitor_chose(
    web: httpx.AsyncClient,
) -> None:
    await web.get("/", params={"lang": "it"})
    await sign_in(web, REP)
    for path in ("/sales/leads", "/sales/leads/999999999"):
        page = await web.get(path)
        assert html_lang(page) == "en", path
        assert 'class="languages"' not in page.text
        assert "Esci" not in page.text and "Sign out" in page.text


def catalogue(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


TEMPLATE = catalogue(i18n.LOCALE_DIR / "messages.pot")
MESSAGES = [message for message in TEMPLATE if message.id]


def po_file(locale: str) -> Path:
    return i18n.LOCALE_DIR / locale / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def key(message: Message) -> tuple[str | None, object]:
    return message.context, message.id


def test_the_catalogues_hold_every_message_of_the_pages() -> None:
    """`make messages` was run after the last change to a page's text."""
    with (PROJECT_DIR / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    extracted = {
        (context, message if isinstance(message, str) else tuple(message))
        for _, _, message, _, context in extract_from_dir(PROJECT_DIR, method_map, options_map)
    }
    assert extracted == {key(message) for message in MESSAGES}
    for locale in i18n.LOCALES:
        kept = catalogue(po_file(locale))
        assert {key(message) for message in kept if message.id} == extracted, locale
        assert not list(kept.check()), f"{locale}: placeholders differ from the msgid"


@pytest.mark.parametrize("locale", [code for code in i18n.LOCALES if code != "en"])
def test_every_message_is_translated(locale: str) -> None:
    """English is the messages' own language; any other leaves none untranslated."""
    translated = catalogue(po_file(locale))
    for message in MESSAGES:
        found = translated.get(message.id, context=message.context)
        assert found is not None and not found.fuzzy, message.id
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        assert all(strings), f"{locale} does not translate {message.id!r}"


def test_the_app_does_not_start_without_a_compiled_catalogue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, web_settings: Settings, stores: Stores
) -> None:
    english = Path("en") / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo"
    (tmp_path / english).parent.mkdir(parents=True)
    shutil.copy(i18n.LOCALE_DIR / english, tmp_path / english)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        with pytest.raises(i18n.CatalogueMissing, match="no compiled catalogue for 'it'"):
            create_app(web_settings, stores=stores)
    finally:
        i18n.translations.cache_clear()
