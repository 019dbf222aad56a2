"""The pages as people use them: a partner applies, a rep works the lead, an admin looks on."""

from __future__ import annotations

import asyncio
import html
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from babel.dates import format_datetime
from fastapi import FastAPI
from temporalio.client import Client

from activities.email import EmailRenderer
from client.requests import decide, status, wait_until_recorded
from infra.links import site_secret
from models.activity_io import SendEmailInput
from models.lifecycle import Action, Stage
from models.requests import ALREADY_OPEN
from models.status import EmailKind
from settings import PROJECT_DIR, Settings, get_settings
from stores import Stores, views
from tests.conftest import (
    ADMIN,
    REDIS_URL,
    REP,
    MailSink,
    bearer,
    browse,
    until_confirmed,
    web_settings_for,
)
from tests.scenario import a_request, finished, text_of
from web import __main__ as web_command
from web.app import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_id" value="([^"]+)"')


def a_filled_form(**overrides: str) -> dict[str, str]:
    fields = a_request().model_dump(exclude_none=True)
    return {**{name: str(value) for name, value in fields.items()}, **overrides}


async def apply(web: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    page = await web.get("/apply")
    submission_id = SUBMISSION.search(page.text)
    assert submission_id
    return await web.post("/apply", data={**form, "submission_id": submission_id[1]})


async def applied(web: httpx.AsyncClient, client: Client, **overrides: str) -> tuple[str, str]:
    """Apply through the form; the request's id and its status link, once it is recorded."""
    response = await apply(web, a_filled_form(**overrides))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    found = re.match(r"^(/requests/([0-9a-f]{16})/[0-9a-f]+)/submitted", location)
    assert found, location
    await wait_until_recorded(client, found[2])
    return found[2], found[1]


async def sign_in(web: httpx.AsyncClient, user: tuple[str, str, str], next: str = "") -> str:
    page = await web.get("/staff/signin")
    token = CSRF.search(page.text)
    assert token
    response = await web.post(
        "/staff/signin",
        data={"name": user[0], "token": user[2], "next": next, "csrf_token": token[1]},
    )
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def button_form(web: httpx.AsyncClient, page: str, action: str) -> dict[str, str]:
    """What the browser posts when the `action` button on `page` is pressed."""
    shown = await web.get(page)
    form = re.search(rf'<form method="post" action="{page}/{action}".*?</form>', shown.text, re.S)
    assert form, f"no {action} button on {page}"
    fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form[0]))
    return {**fields, "action": action}


async def a_rep_on_a_new_lead(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> tuple[str, str]:
    """A request applied through the form and a rep signed in: its id, its lead's page."""
    onboarding_id, _ = await applied(web, client)
    lead = views.lead_of_request(stores.sales, onboarding_id)
    assert lead
    await sign_in(web, REP)
    return onboarding_id, f"/sales/leads/{lead.id}"


async def press(web: httpx.AsyncClient, page: str, action: str, reason: str = "") -> httpx.Response:
    form = await button_form(web, page, action)
    return await web.post(f"{page}/{action}", data={**form, "reason": reason})


async def test_the_landing_page_invites_partners_to_apply(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    assert page.status_code == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert '<a class="button primary big" href="/apply">Become a business partner</a>' in page.text


async def test_a_form_with_mistakes_shows_them_by_field_and_keeps_what_was_typed(
    web: httpx.AsyncClient,
) -> None:
    form = a_filled_form(company="Northwind Traders", email="giulia@", website="ftp://x")
    del form["last_name"]
    response = await apply(web, form)
    assert response.status_code == 422
    assert 'value="Northwind Traders"' in response.text
    assert 'value="giulia@"' in response.text
    assert form["comments"] in response.text
    for field in ("email", "last_name", "website"):
        assert f'id="{field}-error"' in response.text
    assert 'id="company-error"' not in response.text
    assert "Please fill this in." in response.text


async def test_a_partner_applies_and_follows_the_request_by_its_link(
    web: httpx.AsyncClient, client: Client
) -> None:
    response = await apply(web, a_filled_form(company="Wide World Importers"))
    assert response.status_code == 303
    confirmation = await web.get(response.headers["location"])
    onboarding_id = re.search(r'class="ref">([0-9a-f]{16})<', confirmation.text)
    assert onboarding_id, confirmation.text
    link = re.search(r'href="(/requests/[0-9a-f]{16}/[0-9a-f]{32})"', confirmation.text)
    assert link
    await wait_until_recorded(client, onboarding_id[1])

    status = await web.get(link[1])
    assert status.status_code == 200
    assert "Our sales team is reviewing your request." in status.text
    assert "Wide World Importers" in status.text
    assert " since " in status.text

    forged = await web.get(f"/requests/{onboarding_id[1]}/{'0' * 32}")
    assert forged.status_code == 404
    assert "Our sales team" not in forged.text


async def test_a_double_clicked_form_makes_one_request(web: httpx.AsyncClient) -> None:
    page = await web.get("/apply")
    submission_id = SUBMISSION.search(page.text)
    assert submission_id
    form = {**a_filled_form(), "submission_id": submission_id[1]}
    first = await web.post("/apply", data=form)
    second = await web.post("/apply", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"].split("?")[0] == second.headers["location"].split("?")[0]


async def test_rep_and_admin_pages_need_a_signed_in_user_of_their_role(
    web: httpx.AsyncClient,
) -> None:
    anonymous = await web.get("/sales/leads", params={"view": "open"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/staff/signin?next=%2Fsales%2Fleads%3Fview%3Dopen"

    page = await web.get("/staff/signin")
    token = CSRF.search(page.text)
    assert token
    wrong = await web.post(
        "/staff/signin", data={"name": REP[0], "token": "guess-guess", "csrf_token": token[1]}
    )
    assert wrong.status_code == 401
    assert "do not match" in wrong.text

    assert await sign_in(web, REP, next="/sales/leads?view=open") == "/sales/leads?view=open"
    assert (await web.get("/sales/leads")).status_code == 200
    commerce = await web.get("/commerce/prospects")
    assert commerce.status_code == 403
    assert "for the Commerce team" in commerce.text


async def test_sign_in_only_follows_links_to_this_site(web: httpx.AsyncClient) -> None:
    assert await sign_in(web, ADMIN, next="//evil.example/") == "/commerce/prospects"


async def test_a_rep_qualifies_and_wins_a_lead_with_the_buttons(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    onboarding_id, _ = await applied(web, client, company="Adventure Works")
    lead = views.lead_of_request(stores.sales, onboarding_id)
    assert lead
    await sign_in(web, REP)

    listed = await web.get("/sales/leads")
    assert f'href="/sales/leads/{lead.id}"' in listed.text
    ordinary = await web.get("/sales/leads?view=open")
    assert f'href="/sales/leads/{lead.id}"' not in ordinary.text

    page = await web.get(f"/sales/leads/{lead.id}")
    for part in ("<h2>Contact</h2>", "<h2>Company</h2>", "<h2>Timeline</h2>", "Adventure Works"):
        assert part in page.text
    assert "dual-write" in page.text.lower()
    assert f"/workflows/onboarding-{onboarding_id}" in page.text

    qualified = await press(web, f"/sales/leads/{lead.id}", "qualify")
    assert qualified.status_code == 303
    opportunity_page = qualified.headers["location"]
    assert opportunity_page.startswith("/sales/opportunities/")
    shown = await web.get(opportunity_page)
    assert "Lead qualified" in shown.text
    assert "Close as won" in shown.text

    won = await press(web, opportunity_page, "won")
    assert won.status_code == 303
    closed = await web.get(opportunity_page)
    assert "Opportunity won" in closed.text
    assert "Closed as won by mario" in closed.text
    current = await status(client, onboarding_id)
    assert current.stage is Stage.APPROVED
    assert [record.actor for record in current.decisions] == ["mario", "mario"]


async def test_a_double_clicked_decision_button_applies_once_and_says_so_twice(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    onboarding_id, lead_page = await a_rep_on_a_new_lead(web, client, stores)
    form = await button_form(web, lead_page, "qualify")
    first, second = await asyncio.gather(
        web.post(f"{lead_page}/qualify", data=form),
        web.post(f"{lead_page}/qualify", data=form),
    )
    assert first.headers["location"] == second.headers["location"]
    assert first.headers["location"].startswith("/sales/opportunities/")
    assert "Lead qualified" in (await web.get(first.headers["location"])).text
    current = await status(client, onboarding_id)
    assert [record.action for record in current.decisions] == ["qualify"]


async def test_a_decision_not_allowed_now_is_explained_on_the_page(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    _, page = await a_rep_on_a_new_lead(web, client, stores)
    token = CSRF.search((await web.get(page)).text)
    assert token
    await web.post(
        f"{page}/cancel",
        data={"csrf_token": token[1], "reason": "Not a fit", "reason_code": "not_eligible"},
    )
    again = await web.post(f"{page}/qualify", data={"csrf_token": token[1]})
    assert again.status_code == 303
    shown = await web.get(page)
    # In the words of the page, never the lifecycle's identifiers.
    assert "Not done. Qualify is not possible: the request is rejected already." in shown.text
    assert "lead_open" not in shown.text and "not allowed" not in shown.text
    assert '<dt>Reason</dt><dd class="pre">Not a fit</dd>' in shown.text


async def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    onboarding_id, lead_page = await a_rep_on_a_new_lead(web, client, stores)
    forged = await web.post(f"{lead_page}/qualify", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    missing = await web.post(f"{lead_page}/qualify")
    assert missing.status_code == 403
    assert (await status(client, onboarding_id)).stage is Stage.LEAD_OPEN


async def test_an_admin_finds_an_approved_partner_with_its_customers_and_hierarchy(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    company = f"Tailspin Toys {uuid.uuid4().hex[:6]}"
    onboarding_id, _ = await applied(web, client, company=company)
    await decide(client, onboarding_id, Action.QUALIFY, actor="mario")
    await decide(client, onboarding_id, Action.WON, actor="mario")
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    await sign_in(web, ADMIN)

    approved = await web.get("/commerce/prospects", params={"status": "approved", "q": company})
    assert f'href="/commerce/prospects/{prospect.id}"' in approved.text
    pending = await web.get("/commerce/prospects", params={"status": "pending", "q": company})
    assert f'href="/commerce/prospects/{prospect.id}"' not in pending.text
    by_reference = await web.get("/commerce/prospects", params={"q": onboarding_id})
    assert f'href="/commerce/prospects/{prospect.id}"' in by_reference.text

    page = await web.get(f"/commerce/prospects/{prospect.id}")
    assert "Approved by mario" in page.text
    assert "<h2>Customer hierarchy</h2>" in page.text
    assert re.search(rf"{company}</a> <span class=\"muted\">Organisation", page.text)
    assert '<span class="muted">Administrator</span>' in page.text
    assert f"/workflows/onboarding-{onboarding_id}" in page.text
    person = next(c for c in views.customers_of_request(stores.commerce, onboarding_id) if c.email)
    assert (await web.get(f"/commerce/customers/{person.id}")).status_code == 200


async def test_an_admin_approves_with_the_buttons_when_the_integration_is_off(
    web_integration_off: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    web = web_integration_off
    onboarding_id, _ = await applied(web, client)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    await sign_in(web, ADMIN)
    response = await press(web, f"/commerce/prospects/{prospect.id}", "approve")
    assert response.status_code == 303
    page = await web.get(f"/commerce/prospects/{prospect.id}")
    assert "Prospect approved" in page.text
    assert (await finished(client, await status(client, onboarding_id))).stage is (Stage.APPROVED)


async def test_a_company_named_like_a_script_is_text_on_every_page(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    script = "<script>alert(1)</script>"
    onboarding_id, status_link = await applied(web, client, company=script, first_name=script)
    lead = views.lead_of_request(stores.sales, onboarding_id)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert lead and prospect
    pages = [status_link]
    await sign_in(web, REP)
    pages += ["/sales/leads", f"/sales/leads/{lead.id}"]
    for page in pages:
        text = (await web.get(page)).text
        assert script not in text, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, page
    await sign_in(web, ADMIN)
    for page in ["/commerce/prospects", f"/commerce/prospects/{prospect.id}"]:
        text = (await web.get(page)).text
        assert script not in text, page
        assert "&lt;script&gt;" in text, page


async def test_every_page_has_the_site_s_icon(web: httpx.AsyncClient) -> None:
    icon = await web.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    for path in ("/", "/staff/signin", "/no-such-page"):
        page = await web.get(path)
        linked = re.search(r'<link rel="icon" href="([^"]+)"', page.text)
        assert linked, path
        assert (await web.get(linked[1])).content == icon.content


@pytest.mark.parametrize(
    ("user", "page"),
    [
        (REP, "/sales/leads/999999999"),
        (REP, "/sales/leads/abc"),
        (REP, "/sales/leads/-1"),
        (REP, "/sales/leads/99999999999999999999"),
        (REP, "/sales/opportunities/99999999999999999999"),
        (ADMIN, "/commerce/prospects/99999999999999999999"),
        (ADMIN, "/commerce/customers/0"),
        (ADMIN, "/commerce/prospects?status=lost"),
    ],
)
async def test_an_unknown_page_is_a_404_page(
    web: httpx.AsyncClient, user: tuple[str, str, str], page: str
) -> None:
    await sign_in(web, user)
    response = await web.get(page)
    assert response.status_code == 404
    assert "Traceback" not in response.text


async def test_a_decision_form_that_is_not_right_is_a_422_page(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    onboarding_id, lead_page = await a_rep_on_a_new_lead(web, client, stores)
    form = await button_form(web, lead_page, "qualify")
    response = await web.post(f"{lead_page}/qualify", data={**form, "decision_id": "x"})
    assert response.status_code == 422
    assert "decision_id" in response.text
    assert (await status(client, onboarding_id)).stage is Stage.LEAD_OPEN


async def test_applying_again_with_an_open_request_does_not_reveal_it(
    web: httpx.AsyncClient, client: Client
) -> None:
    form = a_filled_form()
    first = await apply(web, form)
    await wait_until_recorded(client, first.headers["location"].split("/")[2])
    again = await apply(web, {**form, "company": "Someone Else Srl"})
    assert again.headers["location"] == "/apply/already-open"
    page = await web.get(again.headers["location"])
    # The API's words, whoever asks; neither the reference nor the link.
    assert ALREADY_OPEN in page.text
    assert first.headers["location"].split("/")[2] not in page.text


async def test_the_rejection_email_leads_back_to_the_form(
    web: httpx.AsyncClient, web_settings: Settings
) -> None:
    rejection = SendEmailInput(
        onboarding_id="0123456789abcdef", kind=EmailKind.PROSPECT_REJECTED, request=a_request()
    )
    renderer = EmailRenderer(web_settings.b2b_site_url, site_secret(web_settings))
    (link,) = re.findall(r'href="([^"]+)"', renderer.render(rejection).html)
    page = await web.get(link.removeprefix(web_settings.b2b_site_url))
    assert page.status_code == 200
    assert 'name="company"' in page.text


async def test_the_rejection_email_says_when_the_form_takes_a_request_again(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    email = f"giulia.{uuid.uuid4().hex[:10]}@contoso.example"
    onboarding_id, _ = await applied(web, client, email=email)
    await finished(client, await decide(client, onboarding_id, Action.CANCEL, actor="mario"))

    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect and prospect.decided_at
    from_then = format_datetime(
        prospect.decided_at.replace(tzinfo=UTC) + settings.reapply_cooldown,
        "long",
        tzinfo=UTC,
        locale="en",
    )
    (rejection,) = [
        m
        for m in mail_sink.messages(onboarding_id)
        if m["X-Onboarding-Event"] == "prospect-rejected"
    ]
    said = " ".join(text_of(rejection).split())
    assert " ".join(f"you may apply again from {from_then}:".split()) in said
    # The form tells whoever applies no more than of a duplicate; the address is told
    # the same date by email (issue 23, item 7).
    refused = await apply(web, a_filled_form(email=email))
    assert refused.status_code == 303 and refused.headers["location"] == "/apply/already-open"
    (told,) = await mail_sink.arrived(onboarding_id, EmailKind.APPLIED_AGAIN)
    said = " ".join(text_of(told).split())
    assert " ".join(f"You may apply again with this address from {from_then}:".split()) in said


async def test_prospects_are_found_whatever_the_case_of_their_accents(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    company = f"École Ünïcode {uuid.uuid4().hex[:6]}"
    onboarding_id, _ = await applied(web, client, company=company)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    await sign_in(web, ADMIN)
    for words in (company, company.upper(), company.lower(), "école ünïcode"):
        found = await web.get("/commerce/prospects", params={"q": words})
        assert f'href="/commerce/prospects/{prospect.id}"' in found.text, words
    wildcard = await web.get("/commerce/prospects", params={"q": "%"})
    assert f'href="/commerce/prospects/{prospect.id}"' not in wildcard.text


async def test_pages_with_a_request_or_a_user_are_never_cached(
    web: httpx.AsyncClient, client: Client
) -> None:
    _, status_link = await applied(web, client)
    assert (await web.get(status_link)).headers["Cache-Control"] == "no-store"
    assert "no-store" not in (await web.get("/static/style.css")).headers.get("Cache-Control", "")


async def test_signing_out_ends_the_session(web: httpx.AsyncClient) -> None:
    await sign_in(web, REP)
    page = await web.get("/sales/leads")
    token = CSRF.search(page.text)
    assert token
    assert (await web.post("/signout", data={"csrf_token": token[1]})).status_code == 303
    assert (await web.get("/sales/leads")).status_code == 303


async def test_guessing_tokens_at_the_sign_in_form_is_slowed_down(web: httpx.AsyncClient) -> None:
    page = await web.get("/staff/signin")
    token = CSRF.search(page.text)
    assert token
    guess = {"name": REP[0], "csrf_token": token[1]}
    guesses = [
        (await web.post("/staff/signin", data={**guess, "token": f"guess-{n:04}"})).status_code
        for n in range(10)
    ]
    assert guesses == [401] * 10
    right = {"name": REP[0], "token": REP[2], "csrf_token": token[1]}
    assert (await web.post("/staff/signin", data=right)).status_code == 429


async def test_the_form_shares_the_public_submit_limit(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    app = create_app(web_settings_for(settings, submit_rate_limit="2/minute"), client, stores)
    async with browse(app) as web:
        answers = [(await apply(web, a_filled_form())).status_code for _ in range(3)]
    assert answers == [303, 303, 429]


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("API_TOKENS", "mario:boss:some-token", "name:role:token"),
        (
            "WEB_SECRET_KEY",
            "short",
            "WEB_SECRET_KEY: WEB_SECRET_KEY must be at least 32 characters",
        ),
        ("WEB_HOST", "0.0.0.0", "demo users are for a web app on loopback only"),
    ],
)
def test_a_web_app_configured_wrongly_says_why_in_one_line(
    setting: str,
    value: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `python -m web`'s serve() in this process (a process each took 20 s on a busy machine;
    # the next test runs one), its settings read from the environment it would have.
    monkeypatch.delenv("API_TOKENS", raising=False)
    monkeypatch.setenv(setting, value)
    monkeypatch.setattr(web_command.uvicorn, "run", serving_is_not_expected)
    get_settings.cache_clear()
    try:
        code = web_command.serve()
    finally:
        get_settings.cache_clear()
    said = capsys.readouterr().err
    assert code == 2
    assert said.count("\n") == 1 and said.startswith("web: "), said
    assert says in said


def serving_is_not_expected(*args: object, **kwargs: object) -> None:
    raise AssertionError("the web app would serve")


def test_python_m_web_configured_wrongly_exits_2_saying_why_in_one_line() -> None:
    env = {key: val for key, val in os.environ.items() if key not in ("API_TOKENS",)}
    done = subprocess.run(
        [sys.executable, "-m", "web"],
        cwd=PROJECT_DIR,
        env={**env, "API_TOKENS": "mario:boss:some-token"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("web: "), done.stderr
    assert "name:role:token" in done.stderr


async def test_a_form_field_that_is_not_utf8_is_a_422_page_naming_it(
    web: httpx.AsyncClient,
) -> None:
    page = await web.get("/apply")
    submission_id = SUBMISSION.search(page.text)
    assert submission_id
    fields = {**a_filled_form(), "submission_id": submission_id[1]}
    body = "&".join(f"{name}={quote_plus(value)}" for name, value in fields.items())
    body = body.replace("company=Contoso", "company=Contoso%FF%FE")
    response = await web.post(
        "/apply",
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422
    assert 'id="company-error"' in response.text
    assert "not valid UTF-8" in response.text


def hidden_fields(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page)
    }


@pytest.mark.usefixtures("short_accept_wait")
async def test_with_the_worker_stopped_the_form_and_the_buttons_say_received_not_confirmed(
    web_settings: Settings, client: Client, stores: Stores, stoppable_worker: Any
) -> None:
    async with browse(create_app(web_settings, client, stores)) as web:
        async with stoppable_worker():
            onboarding_id, lead_page = await a_rep_on_a_new_lead(web, client, stores)
            button = await button_form(web, lead_page, "qualify")

        applied = await apply(web, a_filled_form(company="Northwind Traders"))
        pressed = await web.post(f"{lead_page}/qualify", data=button)
        for answer in (applied, pressed):
            assert answer.status_code == 202, answer.text
            assert "Received, not yet confirmed" in answer.text
            assert int(answer.headers["Retry-After"]) >= 1

        async with stoppable_worker():
            checked = await until_confirmed(
                lambda: web.post("/apply", data=hidden_fields(applied.text)),
                lambda answer: answer.status_code == 202,
            )
            assert checked.status_code == 303
            assert re.match(
                r"^/requests/[0-9a-f]{16}/[0-9a-f]{32}/submitted$", checked.headers["location"]
            )
            rechecked = await until_confirmed(
                lambda: web.post(f"{lead_page}/qualify", data=hidden_fields(pressed.text)),
                lambda answer: answer.status_code == 202,
            )
            assert rechecked.status_code == 303
            assert rechecked.headers["location"].startswith("/sales/opportunities/")
            current = await status(client, onboarding_id)
    assert [record.action for record in current.decisions] == [Action.QUALIFY]


async def attempt_sign_in(app: FastAPI, address: str, name: str, token: str) -> int:
    """One sign-in through the form, from `address`: its status code."""
    async with browse(app, address) as web:
        page = await web.get("/staff/signin")
        csrf = CSRF.search(page.text)
        assert csrf
        answer = await web.post(
            "/staff/signin", data={"name": name, "token": token, "csrf_token": csrf[1]}
        )
        return answer.status_code


async def test_wrong_api_tokens_do_not_lock_people_out_of_the_sign_in_form(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    app = create_app(web_settings, client, stores)
    wrong = {"Authorization": "Bearer not-a-token"}
    async with browse(app, "203.0.113.3") as script:
        answers = [
            (
                await script.get("/api/onboarding-requests/0123456789abcdef", headers=wrong)
            ).status_code
            for _ in range(11)
        ]
        assert answers == [401] * 10 + [429]
        right = await script.get("/api/onboarding-requests/0123456789abcdef", headers=bearer(REP))
        assert right.status_code == 429
    assert await attempt_sign_in(app, "203.0.113.3", *REP[::2]) == 303


async def test_ipv6_clients_are_limited_by_their_64_however_written(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    app = create_app(web_settings_for(settings, submit_rate_limit="2/minute"), client, stores)
    answers = []
    for address in ("2001:DB8::1", "2001:db8::2", "2001:db8:0:0:ffff::9", "2001:db8:0:1::1"):
        async with browse(app, address) as web:
            answers.append((await apply(web, a_filled_form())).status_code)
    assert answers == [303, 303, 429, 303]


async def test_several_web_processes_share_the_limits_through_redis(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    shared = web_settings_for(
        settings,
        submit_rate_limit="2/minute",
        rate_limit_storage_uri=REDIS_URL,
    )
    one, two = create_app(shared, client, stores), create_app(shared, client, stores)
    # An address of its own, so earlier runs' counts in Redis do not meet this one's.
    address = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::1"
    answers = []
    for app in (one, two, one, two):
        async with browse(app, address) as web:
            answers.append((await apply(web, a_filled_form())).status_code)
    assert answers == [303, 303, 429, 429]


async def test_trusted_proxies_name_the_client_and_nobody_else_does(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    behind = web_settings_for(settings, submit_rate_limit="1/minute", trusted_proxies="10.0.0.0/8")
    app = create_app(behind, client, stores)
    answers = []
    for sender, client_address in (
        ("10.1.2.3", "198.51.100.20"),
        ("10.1.2.3", "198.51.100.21"),
        ("10.1.2.3", "198.51.100.21"),
        ("203.0.113.4", "198.51.100.22"),
        ("203.0.113.4", "198.51.100.23"),
    ):
        async with browse(app, sender) as web:
            web.headers["X-Forwarded-For"] = client_address
            answers.append((await apply(web, a_filled_form())).status_code)
    assert answers == [303, 303, 429, 303, 429]
