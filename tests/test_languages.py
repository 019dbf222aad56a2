"""The pages partners and requesters see, in English or Italian: chosen by their switch, the
request's language or their browser, never mixed between concurrent requests; and
catalogues that hold, and translate, every message the pages have."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from babel.dates import format_datetime
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from temporalio.client import Client

from client.requests import status
from settings import PROJECT_DIR, Settings
from stores import Stores
from tests.conftest import REP, MailSink
from tests.test_pages import a_filled_form, applied, apply, sign_in
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import activate, approval_link, csrf
from web import i18n
from web.app import create_app

# One sentence of the landing page in each language.
LANDING = {"en": "Grow with Contoso", "it": "Crescete con Contoso"}
# The status page of a request whose lead is open.
REVIEWING = {
    "en": "Our sales team is reviewing your request.",
    "it": "Il nostro team commerciale sta esaminando la sua richiesta.",
}


def html_lang(page: httpx.Response) -> str:
    found = re.search(r'<html lang="(\w+)">', page.text)
    assert found, page.text[:200]
    return found[1]


async def test_every_requester_page_is_in_italian_when_the_visitor_switches(
    web: httpx.AsyncClient, client: Client
) -> None:
    pages = {
        "/": ["Crescete con Contoso", "Diventa partner commerciale", "adesione dei partner"],
        "/apply": ["Ragione sociale", "Lingua delle nostre email", "Invia la richiesta"],
        "/apply/already-open": ["Abbiamo già una richiesta da questo indirizzo email"],
        f"/requests/{'0' * 16}/{'0' * 32}": ["Pagina non trovata", "Questa richiesta non esiste."],
        "/no-such-page": ["Pagina non trovata", "Torna alla pagina iniziale"],
    }
    assert (await web.get("/", params={"lang": "it"})).status_code == 200
    for path, sentences in pages.items():
        page = await web.get(path)
        assert html_lang(page) == "it", path
        for sentence in sentences:
            assert sentence in page.text, (path, sentence)

    onboarding_id, status_link = await applied(web, client)
    confirmation = await web.get(f"{status_link}/submitted")
    assert html_lang(confirmation) == "it"
    assert f'Il suo codice di riferimento è <strong class="ref">{onboarding_id}</strong>.' in (
        confirmation.text
    )
    status = await web.get(status_link)
    assert html_lang(status) == "it"
    assert REVIEWING["it"] in status.text
    assert "In esame</span> dal " in status.text


async def test_a_request_made_in_italian_is_followed_in_italian_without_a_switch(
    web: httpx.AsyncClient, client: Client
) -> None:
    web.headers["Accept-Language"] = "en-GB,en;q=0.9"
    company = "Ferramenta Bianchi Srl"
    onboarding_id, status_link = await applied(web, client, company=company, locale="it")
    assert i18n.SWITCH not in web.cookies

    confirmation = await web.get(f"{status_link}/submitted")
    assert html_lang(confirmation) == "it"
    assert "Grazie!" in confirmation.text
    page = await web.get(status_link)
    assert html_lang(page) == "it"
    assert f"Richiesta {onboarding_id} di {company}" in page.text
    assert REVIEWING["it"] in page.text
    # Dates in Italian words and order: "dal 24 novembre 2026 09:30:00 UTC".
    current = await status(client, onboarding_id)
    since = format_datetime(current.stage_since, "long", tzinfo=UTC, locale="it")
    assert f"dal {since}" in page.text
    assert re.search(r"dal \d{1,2} [a-z]+ \d{4} \d\d:\d\d", page.text)

    # The requester's own switch still wins over the request's language.
    english = await web.get(status_link, params={"lang": "en"})
    assert html_lang(english) == "en"
    assert REVIEWING["en"] in english.text
    # The stage in the requester's words, never the sales team's "lead open".
    assert "In review</span> since " in english.text
    assert html_lang(await web.get(status_link)) == "en"


async def test_the_switch_is_remembered_until_switched_back(web: httpx.AsyncClient) -> None:
    switched = await web.get("/apply", params={"lang": "it", "from": "ad"})
    assert "lang=it" in switched.headers["set-cookie"]
    assert '<a href="?from=ad&amp;lang=en" hreflang="en" lang="en">English</a>' in switched.text
    assert (
        '<a href="?from=ad&amp;lang=it" hreflang="it" lang="it" aria-current="true">Italiano</a>'
        in switched.text
    )

    web.headers["Accept-Language"] = "en"
    later = await web.get("/")
    assert html_lang(later) == "it"
    assert LANDING["it"] in later.text

    back = await web.get("/", params={"lang": "en"})
    assert LANDING["en"] in back.text
    assert html_lang(await web.get("/apply")) == "en"


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
    page = await web.get("/", headers={"Accept-Language": accept_language})
    assert html_lang(page) == shown
    assert LANDING[shown] in page.text


async def test_the_form_offers_the_page_s_language_and_says_what_is_wrong_in_it(
    web: httpx.AsyncClient,
) -> None:
    form = await web.get("/apply", params={"lang": "it"})
    assert '<option value="it" lang="it" selected>Italiano</option>' in form.text
    assert '<option value="en" lang="en">English</option>' in form.text

    wrong = a_filled_form(email="giulia@", website="ftp://x", phone="call me", company="x" * 161)
    del wrong["last_name"]
    del wrong["locale"]
    refused = await apply(web, wrong)
    assert refused.status_code == 422
    assert html_lang(refused) == "it"
    assert "Correggere i campi evidenziati qui sotto." in refused.text
    for field, message in {
        "last_name": "Compilare questo campo.",
        "email": "Inserire un indirizzo email valido",
        "website": "Inserire un indirizzo web",
        "phone": "Inserire un numero di telefono",
        "company": "Usare al massimo 160 caratteri.",
    }.items():
        assert re.search(rf'id="{field}-error">{re.escape(message)}', refused.text), field
    # What was typed stays, and so does the page's language as the emails' language.
    assert '<option value="it" lang="it" selected>Italiano</option>' in refused.text


async def test_a_used_link_and_the_fresh_one_it_asks_for_speak_its_owner_s_language(
    web: httpx.AsyncClient, client: Client, settings: Settings, mail_sink: MailSink
) -> None:
    onboarding_id, _ = await approved_partner(client, settings, locale="it")
    link = approval_link(mail_sink, onboarding_id).removeprefix("http://b2b.test")
    await activate(web, link)

    used = await web.get(link)
    assert used.status_code == 410 and html_lang(used) == "it"
    fresh = await web.post(
        link.replace("/activate/", "/links/") + "/fresh", data={"csrf_token": await csrf(web, link)}
    )
    assert fresh.status_code == 200 and html_lang(fresh) == "it"
    assert "Controlli la sua email" in fresh.text


async def test_the_new_user_s_language_starts_as_the_page_s(
    web: httpx.AsyncClient, client: Client, settings: Settings, mail_sink: MailSink
) -> None:
    onboarding_id, _ = await approved_partner(client, settings, locale="it")
    await activate(web, approval_link(mail_sink, onboarding_id))

    italian = await web.get("/account/users")
    assert html_lang(italian) == "it"
    assert '<option value="it" lang="it" selected>Italiano</option>' in italian.text
    english = await web.get("/account/users", params={"lang": "en"})
    assert html_lang(english) == "en"
    assert '<option value="en" lang="en" selected>English</option>' in english.text
    assert '<option value="it" lang="it">Italiano</option>' in english.text


async def test_a_company_named_like_a_script_is_text_on_the_italian_pages(
    web: httpx.AsyncClient, client: Client
) -> None:
    script = "<script>alert(1)</script>"
    onboarding_id, status_link = await applied(web, client, company=script, locale="it")
    page = await web.get(status_link)
    assert html_lang(page) == "it"
    assert script not in page.text
    assert f"Richiesta {onboarding_id} di &lt;script&gt;alert(1)&lt;/script&gt;" in page.text

    await web.get("/", params={"lang": "it"})
    refused = await apply(web, a_filled_form(company=script, email="not an email"))
    assert html_lang(refused) == "it"
    assert script not in refused.text
    assert "&lt;script&gt;" in refused.text


async def test_requests_in_english_and_italian_at_once_each_get_their_own_language(
    web: httpx.AsyncClient, client: Client
) -> None:
    _, status_link = await applied(web, client, locale="it")
    languages = ["en", "it"] * 20

    async def page(n: int, language: str) -> tuple[str, httpx.Response]:
        path = status_link if n % 4 < 2 else "/"
        return language, await web.get(path, params={"lang": language})

    answers = await asyncio.gather(*(page(n, lang) for n, lang in enumerate(languages)))
    for language, answer in answers:
        other = "it" if language == "en" else "en"
        assert html_lang(answer) == language
        expected = REVIEWING if answer.url.path != "/" else LANDING
        assert expected[language] in answer.text
        assert expected[other] not in answer.text


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
