"""Every page speaks people's words: a walk through the requester's, the partner's and the
staff pages, at every stage and in both languages, that refuses the codes the stores and
the workflow keep (`lead_open`, `b2b_admin`, `rep:mario`) and a second spelling."""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser

import httpx
from temporalio.client import Client

from client.personal_data import erase_personal_data
from client.requests import decide, hold
from models.lifecycle import Action, ReasonCode, Stage
from models.partners import PartnerRole
from settings import Settings
from stores import Stores, views
from tests.conftest import ADMIN, REP, MailSink, browse
from tests.scenario import finished
from tests.test_pages import applied, sign_in
from tests.test_partner_pages import activate, approval_link
from web import i18n
from web.app import create_app

# What people read of a page: its text, and the attributes a browser shows or says aloud.
SHOWN_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        self.parts.extend(value for name, value in attrs if name in SHOWN_ATTRIBUTES and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def shown_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


# A code as the stores keep it (`lead_open`, `b2b_admin`, `reason_code`).
IDENTIFIER = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
# An actor as the workflow records it (`rep:mario`, `cli:anna`, `partner:12`), not a web
# address or a time of day.
ACTOR_ID = re.compile(r"\b(?!https?:|mailto:)[a-z]+:[a-z0-9]")
# A code with its underscores made spaces, the way a generic filter would show it.
SPACED_CODES = [
    code.replace("_", " ") for code in [*Stage, *PartnerRole, *ReasonCode] if "_" in code
]
# One spelling in English: the British one the product writes everywhere else.
SECOND_SPELLING = re.compile(r"\borganiz", re.IGNORECASE)
# The staff's vocabulary, which a requester or a partner never needs to learn, and what
# an erased field holds (the staff pages show it as a record of the erasure).
STAFF_JARGON = re.compile(r"\b(?:lead|opportunity|prospect)s?\b|\[erased\]", re.IGNORECASE)


ERASED_WORDS = {
    "en": "The personal data of this request has been erased",
    "it": "I dati personali di questa richiesta sono stati cancellati",
}


def codes_in(text: str, *, for_staff: bool, language: str = "en") -> list[str]:
    found = IDENTIFIER.findall(text) + ACTOR_ID.findall(text)
    found += [code for code in SPACED_CODES if code in text]
    if language == "en":
        found += SECOND_SPELLING.findall(text)
    if not for_staff:
        found += STAFF_JARGON.findall(text)
    return found


def test_the_check_refuses_codes_and_passes_words() -> None:
    assert codes_in("Lead open since 1 Dec · mario", for_staff=True) == []
    for coded in ("lead_open", "Approved by rep:mario", "b2b admin", "Organization users"):
        assert codes_in(coded, for_staff=True), coded
    assert codes_in("In review: your lead", for_staff=False) == ["lead"]
    assert codes_in("We have sent the details to [erased].", for_staff=False) == ["[erased]"]
    assert shown_text('<p title="b2b_admin">a <script>x_y</script>b</p>') == "b2b_admin a b"


DETAIL = re.compile(
    r'href="(/(?:sales/(?:leads|opportunities|accounts|contacts)'
    r'|commerce/(?:prospects|customers))/\d+)"'
)


async def walk(
    http: httpx.AsyncClient, paths: Iterable[str], languages: Iterable[str], *, for_staff: bool
) -> dict[str, list[str]]:
    """Each page in each language, and the detail pages they link to: the codes on each."""
    found: dict[str, list[str]] = {}
    to_visit, seen = list(paths), set()
    while to_visit:
        path = to_visit.pop()
        if path in seen:
            continue
        seen.add(path)
        for language in languages:
            page = await http.get(path, params={"lang": language} if not for_staff else None)
            assert page.status_code in (200, 404, 410), (path, page.status_code)
            if codes := codes_in(shown_text(page.text), for_staff=for_staff, language=language):
                found[f"{path} ({language})"] = codes
            if for_staff:
                to_visit += DETAIL.findall(page.text)
    return found


async def test_every_page_in_both_languages_speaks_words_not_codes(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    web_settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
) -> None:
    # A request at every stage a person meets, decided as the command line does (its actor
    # is `rep:mario`), one of them on hold and one erased.
    requests: dict[str, tuple[str, str]] = {}
    for n, name in enumerate(("lead", "opportunity", "won", "cancelled", "lost", "held", "erased")):
        requests[name] = await applied(web, client, company=f"Ditta {n} Srl")
    actor = "rep:mario"
    for name in ("opportunity", "won", "lost"):
        await decide(client, requests[name][0], Action.QUALIFY, actor=actor)
    await finished(client, await decide(client, requests["won"][0], Action.WON, actor=actor))
    for name, action in (
        ("cancelled", Action.CANCEL),
        ("lost", Action.LOST),
        ("erased", Action.CANCEL),
    ):
        decided = await decide(
            client,
            requests[name][0],
            action,
            actor=actor,
            reason="Not now",
            reason_code=ReasonCode.NOT_ELIGIBLE,
            note="Called them",
        )
        await finished(client, decided)
    await hold(client, requests["held"][0], actor=actor, note="Waiting for their papers")
    await erase_personal_data(
        client, stores, requests["erased"][0], actor="cli:anna", reason="They asked"
    )

    public = [
        "/",
        "/apply",
        "/apply/already-open",
        "/signin",
        "/password/forgot",
        "/activate/" + "0" * 43,
        "/no-such-page",
        *(f"{link}/submitted" for _, link in requests.values()),
        *(link for _, link in requests.values()),
    ]
    # The partner's: choosing a first password, then signed in, and the link once used.
    activation = approval_link(mail_sink, requests["won"][0])
    public.append(activation.removeprefix("http://b2b.test"))
    found = await walk(web, public, i18n.LOCALES, for_staff=False)
    await activate(web, activation)
    partner = ["/account", "/account/users", activation.removeprefix("http://b2b.test")]
    found |= await walk(web, partner, i18n.LOCALES, for_staff=False)

    # The erased request's page says so, rather than where the details went.
    for language, words in ERASED_WORDS.items():
        page = await web.get(requests["erased"][1], params={"lang": language})
        assert words in page.text, language

    staff: dict[tuple[str, str, str], list[str]] = {
        REP: ["/sales", "/sales/leads", "/sales/leads?view=open", "/sales/opportunities"],
        ADMIN: ["/commerce", "/commerce/prospects"],
    }
    for oid, _ in requests.values():
        lead = views.lead_of_request(stores.sales, oid)
        prospect = views.prospect_of_request(stores.commerce, oid)
        assert lead and prospect
        staff[REP].append(f"/sales/leads/{lead.id}")
        staff[ADMIN].append(f"/commerce/prospects/{prospect.id}")
    for user, paths in staff.items():
        async with browse(create_app(web_settings, client=client, stores=stores)) as http:
            await sign_in(http, user)
            found |= await walk(http, paths, ["en"], for_staff=True)

    assert found == {}, "\n".join(f"{page}: {codes}" for page, codes in found.items())


async def test_a_request_awaiting_an_admin_s_approval_is_in_words_too(
    web_integration_off: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    """With the Sales integration off, the stage no lead or opportunity reaches."""
    onboarding_id, link = await applied(web_integration_off, client, company="Ditta Srl")
    found = await walk(web_integration_off, [link], i18n.LOCALES, for_staff=False)
    english = await web_integration_off.get(link, params={"lang": "en"})
    assert "Awaiting approval</span> since" in english.text

    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    await sign_in(web_integration_off, ADMIN)
    found |= await walk(
        web_integration_off, [f"/commerce/prospects/{prospect.id}"], ["en"], for_staff=True
    )
    assert found == {}, found
