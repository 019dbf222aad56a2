"""Deciding on many requests from a queue, and what the partner was told, with a real
worker behind the pages: each request its own decision, a double click deciding nothing
twice, a request whose stage moved on meanwhile refused in plain words; every email of a
request on its pages, and a refused one sent again, still once."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select
from temporalio.client import Client

from client.requests import decide, status
from models.commerce import EmailMessage
from models.lifecycle import Action, ReasonCode, Stage
from models.status import EmailKind
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores, views
from tests.conftest import ADMIN, REP, browse, free_port, web_settings_for
from tests.scenario import finished, submitted
from tests.test_pages import CSRF, sign_in
from web.app import create_app
from worker import build_worker

BULK = re.compile(r'<form method="post" action="([^"]+/bulk)" id="bulk".*?</form>', re.S)
HIDDEN = re.compile(r'type="hidden" name="(\w+)" value="([^"]*)"')


def outcomes(page: str) -> dict[str, tuple[str, str]]:
    """Each row of an outcome page: its company, and what happened to it, in words."""
    rows = re.findall(
        r'<tr class="outcome-(\w+)">\s*<td><a href="[^"]+">([^<]+)</a>.*?</td>\s*<td>(.*?)</td>',
        page,
        re.S,
    )
    return {
        unescape(name): (kind, " ".join(unescape(re.sub(r"<[^>]+>", " ", words)).split()))
        for kind, name, words in rows
    }


async def bulk_form(web: httpx.AsyncClient, queue: str) -> tuple[str, dict[str, str]]:
    """Where the queue's bulk form posts, and its hidden fields, as the page gave them."""
    page = await web.get(queue)
    assert page.status_code == 200, page.text
    form = BULK.search(page.text)
    assert form, f"no bulk form on {queue}"
    return form[1], dict(HIDDEN.findall(unescape(form[0])))


async def test_cancelling_ticked_leads_decides_each_once_and_names_the_one_that_moved_on(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores, mail_sink: Any
) -> None:
    word = f"Stale{uuid.uuid4().hex[:8]}"
    requests = [await submitted(client, settings, company=f"{word} {n} Srl") for n in range(3)]
    leads = [views.lead_of_request(stores.sales, r.onboarding_id) for r in requests]
    await sign_in(web, REP)
    action, hidden = await bulk_form(web, f"/sales/leads?q={word}&status=open")
    assert action == "/sales/leads/bulk"
    # Meanwhile another rep qualifies one of them.
    moved_on = requests[1]
    await decide(client, moved_on.onboarding_id, Action.QUALIFY, actor="luca")

    form = {
        **hidden,
        "ids": [str(lead.id) for lead in leads if lead],
        "action": "cancel",
        "reason": "We could not reach you.",
        "reason_code": "cannot_contact",
    }
    first = await web.post(action, data=form)
    assert first.status_code == 200, first.text
    shown = outcomes(first.text)
    assert shown[f"{word} 0 Srl"] == ("done", "Done Lead cancelled: the prospect is rejected.")
    assert shown[f"{word} 2 Srl"][0] == "done"
    assert shown[f"{word} 1 Srl"] == (
        "refused",
        "Refused Cancel is not possible: the request is an open opportunity now (its lead was"
        " qualified). What it allows now: Close as won or Close as lost.",
    )
    assert "2 done · 1 refused" in first.text
    assert "opportunity_open" not in first.text and "not allowed" not in first.text
    assert f"?q={word}&amp;status=open" in first.text

    # A double click: the same form again decides nothing twice, and says the same.
    again = await web.post(action, data=form)
    assert outcomes(again.text) == shown
    for request in (requests[0], requests[2]):
        current = await finished(client, await status(client, request.onboarding_id))
        assert current.stage is Stage.REJECTED
        assert [(d.action, d.actor, d.reason, d.reason_code) for d in current.decisions] == [
            (Action.CANCEL, REP[0], "We could not reach you.", ReasonCode.CANNOT_CONTACT)
        ]
        assert len(mail_sink.messages(request.onboarding_id, EmailKind.PROSPECT_REJECTED)) == 1
    current = await status(client, moved_on.onboarding_id)
    assert current.stage is Stage.OPPORTUNITY_OPEN
    assert [d.action for d in current.decisions] == [Action.QUALIFY]


async def test_qualifying_ticked_leads_links_each_new_opportunity(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    word = f"Keen{uuid.uuid4().hex[:8]}"
    requests = [await submitted(client, settings, company=f"{word} {n}") for n in range(2)]
    await sign_in(web, REP)
    action, hidden = await bulk_form(web, f"/sales/leads?q={word}")
    ids = [str(views.lead_of_request(stores.sales, r.onboarding_id).id) for r in requests]  # type: ignore[union-attr]
    page = await web.post(action, data={**hidden, "ids": ids, "action": "qualify"})
    for request in requests:
        current = await status(client, request.onboarding_id)
        assert current.stage is Stage.OPPORTUNITY_OPEN
        assert f'href="/sales/opportunities/{current.records.opportunity_id}">Its opportunity' in (
            page.text
        )
    # They are in the opportunities' queue now, ready to be closed together.
    action, hidden = await bulk_form(web, f"/sales/opportunities?q={word}&status=open")
    assert action == "/sales/opportunities/bulk"
    opportunities = [
        (await status(client, r.onboarding_id)).records.opportunity_id for r in requests
    ]
    page = await web.post(
        action,
        data={
            **hidden,
            "ids": [str(o) for o in opportunities],
            "action": "lost",
            "reason_code": "no_longer_interested",
        },
    )
    assert "2 done" in page.text
    for request in requests:
        assert (await status(client, request.onboarding_id)).stage is Stage.REJECTED


async def test_nothing_ticked_or_a_reason_too_long_decides_nothing(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    word = f"Idle{uuid.uuid4().hex[:8]}"
    request = await submitted(client, settings, company=word)
    lead = views.lead_of_request(stores.sales, request.onboarding_id)
    assert lead
    await sign_in(web, REP)
    action, hidden = await bulk_form(web, f"/sales/leads?q={word}")
    nothing = await web.post(action, data={**hidden, "action": "cancel"})
    assert nothing.status_code == 303
    assert nothing.headers["location"] == f"/sales/leads?q={word}"
    assert "Tick at least one lead first." in (await web.get(nothing.headers["location"])).text
    ticked = {**hidden, "ids": str(lead.id), "action": "cancel"}
    no_code = await web.post(action, data=ticked)
    assert no_code.status_code == 303
    assert "Not done: choose a reason code." in (await web.get(no_code.headers["location"])).text
    too_long = await web.post(
        action, data={**ticked, "reason_code": "duplicate", "reason": "x" * 501}
    )
    assert too_long.status_code == 303
    assert (
        "The reason: string should have at most 500 characters."
        in (await web.get(too_long.headers["location"])).text
    )
    wrong = await web.post(action, data={**hidden, "ids": str(lead.id), "action": "won"})
    assert wrong.status_code == 404
    forged = await web.post(
        action, data={**hidden, "csrf_token": "x", "ids": str(lead.id), "action": "cancel"}
    )
    assert forged.status_code == 403
    assert (await status(client, request.onboarding_id)).stage is Stage.LEAD_OPEN


async def test_an_admin_approves_and_rejects_ticked_prospects_awaiting_approval(
    web_integration_off: httpx.AsyncClient,
    client: Client,
    settings_integration_off: Settings,
    stores: Stores,
) -> None:
    web = web_integration_off
    word = f"Await{uuid.uuid4().hex[:8]}"
    requests = [
        await submitted(client, settings_integration_off, company=f"{word} {n}") for n in range(3)
    ]
    await sign_in(web, ADMIN)
    action, hidden = await bulk_form(web, f"/commerce/prospects?q={word}&mode=commerce")
    prospects = [views.prospect_of_request(stores.commerce, r.onboarding_id) for r in requests]
    ids = [str(p.id) for p in prospects if p]
    page = await web.post(
        action,
        data={
            **hidden,
            "ids": ids[:2],
            "action": "reject",
            "reason": "Not now.",
            "reason_code": "not_eligible",
            "note": "Both from one group.",
        },
    )
    assert "2 done" in page.text
    page = await web.post(action, data={**hidden, "ids": ids, "action": "approve"})
    shown = outcomes(page.text)
    assert shown[f"{word} 2"][0] == "done"
    assert shown[f"{word} 0"] == (
        "refused",
        "Refused Approve is not possible: the request is rejected already.",
    )
    stages = [(await status(client, r.onboarding_id)).stage for r in requests]
    assert stages == [Stage.REJECTED, Stage.REJECTED, Stage.APPROVED]
    rejected = (await status(client, requests[0].onboarding_id)).decisions[-1]
    assert (rejected.reason_code, rejected.note) == (
        ReasonCode.NOT_ELIGIBLE,
        "Both from one group.",
    )


# --- what the partner was told --------------------------------------------------------------


class SwitchableHandler(SpoolHandler):
    """A mail server that refuses every recipient for good while `refusing`."""

    refusing = True

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if self.refusing:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@dataclass
class Mailing:
    web: httpx.AsyncClient
    settings: Settings
    handler: SwitchableHandler
    spool: Path


@pytest.fixture
async def refusing_mail(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    tmp_path: Path,
) -> AsyncIterator[Mailing]:
    """A worker and the web app whose mail goes to a server that refuses it until told."""
    handler = SwitchableHandler(tmp_path)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    mailing = settings.model_copy(update={"smtp_port": port})
    try:
        async with build_worker(client, mailing, stores, activity_executor):
            app = create_app(web_settings_for(mailing), client=client, stores=stores)
            async with browse(app) as http:
                yield Mailing(http, mailing, handler, tmp_path)
    finally:
        controller.stop()


def outbox(stores: Stores, onboarding_id: str) -> list[EmailMessage]:
    with Session(stores.commerce) as session:
        query = select(EmailMessage).where(EmailMessage.onboarding_id == onboarding_id)
        return list(session.exec(query))


async def test_the_pages_show_each_email_and_an_admin_sends_a_refused_one_again_once(
    refusing_mail: Mailing, client: Client, stores: Stores
) -> None:
    web = refusing_mail.web
    request = await submitted(client, refusing_mail.settings, locale="it")
    await decide(client, request.onboarding_id, Action.CANCEL, actor="rep", reason="Non ora.")
    await finished(client, request)
    prospect = views.prospect_of_request(stores.commerce, request.onboarding_id)
    lead = views.lead_of_request(stores.sales, request.onboarding_id)
    assert prospect and lead
    rows = {row.kind: row for row in outbox(stores, request.onboarding_id)}
    assert rows["prospect_rejected"].failed_at is not None
    assert "550 5.1.1 No such user here" in (rows["prospect_rejected"].failure or "")

    await sign_in(web, REP)
    on_lead = (await web.get(f"/sales/leads/{lead.id}")).text
    assert "What the partner was told" in on_lead
    assert on_lead.count("Not sent") == 2 and "550 5.1.1 No such user here" in on_lead
    assert "Italian" in on_lead and rows["prospect_rejected"].message_id in unescape(on_lead)
    assert "Send it again" not in on_lead
    assert "A Commerce admin can send it again" in on_lead

    await sign_in(web, ADMIN)
    page = f"/commerce/prospects/{prospect.id}"
    shown = (await web.get(page)).text
    assert "Rejected, with the reason" in shown and "We received your request" in shown
    kind = 'name="kind" value="prospect_rejected"'
    resend = re.search(
        rf'<form method="post" action="({page}/notifications/resend)"[^>]*>(?:(?!</form>).)*{kind}',
        shown,
        re.S,
    )
    assert resend, shown
    csrf = CSRF.search(shown)
    assert csrf
    form = {"csrf_token": csrf[1], "kind": "prospect_rejected", "period": ""}

    # Still refused: a new attempt, refused again, said so.
    refused = await web.post(resend[1], data=form)
    assert refused.status_code == 303
    again = (await web.get(page)).text
    assert "Not sent again: the mail server refuses" in again
    assert read_spool(refusing_mail.spool) == []

    refusing_mail.handler.refusing = False
    sent = await web.post(resend[1], data=form)
    assert sent.status_code == 303
    shown = (await web.get(page)).text
    assert "Sent again: the mail server took “Rejected, with the reason”." in shown
    assert f"sent again by {ADMIN[0]}" in shown
    twice = await web.post(resend[1], data=form)
    assert twice.status_code == 303
    assert "Nothing to send again: this email was sent on" in (await web.get(page)).text

    delivered = [
        message
        for message in read_spool(refusing_mail.spool)
        if message["X-Onboarding-Event"] == EmailKind.PROSPECT_REJECTED.event
    ]
    assert len(delivered) == 1
    (message,) = delivered
    assert message["Message-ID"] == rows["prospect_rejected"].message_id
    assert message["Content-Language"] == "it"
    assert "Non ora" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    row = {r.kind: r for r in outbox(stores, request.onboarding_id)}["prospect_rejected"]
    assert row.sent_at is not None and row.failed_at is None and row.resent_by == ADMIN[0]
    assert row.attempts == 3
