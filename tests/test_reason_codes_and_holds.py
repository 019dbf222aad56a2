"""Reason codes, internal notes and holds at the edges: the API, the staff pages and what
the requester sees (never staff's note or code)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from models.commerce import Prospect
from models.lifecycle import ReasonCode, Stage
from models.sales import Lead
from models.status import EmailKind, HoldState
from stores import Stores, views
from tests.conftest import ADMIN, REP, MailSink, bearer
from tests.scenario import rows, text_of
from tests.test_api import API, submitted, until_stage
from tests.test_pages import a_rep_on_a_new_lead, applied, button_form, sign_in

NOTE = "INTERNAL: their website shows no shop"
REASON = "We only take on resellers with a shop of their own"


async def a_lead(web: httpx.AsyncClient) -> str:
    onboarding_id = str((await submitted(web))["onboarding_id"])
    await until_stage(web, onboarding_id, "lead_open")
    return onboarding_id


async def test_a_cancel_keeps_its_code_and_note_for_staff_and_emails_only_the_reason(
    web: httpx.AsyncClient, client: Client, stores: Stores, mail_sink: MailSink
) -> None:
    onboarding_id, status_link = await applied(web, client)
    cancelled = await web.post(
        f"{API}/{onboarding_id}/cancel",
        headers=bearer(REP),
        json={"reason": REASON, "reason_code": "not_eligible", "note": NOTE},
    )
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["stage"], body["reason_code"]) == ("rejected", "not_eligible")
    assert body["decisions"][-1]["note"] == NOTE
    (prospect,) = rows(stores.commerce, Prospect, onboarding_id)
    (lead,) = rows(stores.sales, Lead, onboarding_id)
    for row in (prospect, lead):
        assert (row.reason_code, row.internal_note) == ("not_eligible", NOTE)

    (rejection,) = await mail_sink.arrived(onboarding_id, EmailKind.PROSPECT_REJECTED)
    for part in ("plain", "html"):
        text = " ".join(text_of(rejection, part).split())
        assert REASON in text
        assert NOTE not in text and "not_eligible" not in text

    requester = await web.get(status_link)
    assert requester.status_code == 200
    for hidden in (NOTE, "not_eligible", ReasonCode.NOT_ELIGIBLE.label):
        assert hidden not in requester.text

    await sign_in(web, REP)
    lead_page = await web.get(f"/sales/leads/{lead.id}")
    assert ReasonCode.NOT_ELIGIBLE.label in lead_page.text
    assert NOTE in lead_page.text and REASON in lead_page.text
    await sign_in(web, ADMIN)
    prospect_page = await web.get(f"/commerce/prospects/{prospect.id}")
    assert ReasonCode.NOT_ELIGIBLE.label in prospect_page.text
    assert NOTE in prospect_page.text


@pytest.mark.parametrize(
    ("action", "body", "says"),
    [
        ("cancel", {"reason_code": "because"}, "reason_code"),
        ("cancel", {"reason_code": "expired"}, "system"),
        ("qualify", {"reason_code": "other"}, "takes no reason code"),
        ("cancel", {"note": "x" * 1001}, "note"),
    ],
)
async def test_a_bad_reason_code_or_note_is_a_422_and_decides_nothing(
    web: httpx.AsyncClient, action: str, body: dict[str, Any], says: str
) -> None:
    onboarding_id = await a_lead(web)
    refused = await web.post(f"{API}/{onboarding_id}/{action}", headers=bearer(REP), json=body)
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["detail"]
    assert error["loc"][-1] in ("reason_code", "note")
    assert says in f"{error['loc']} {error['msg']}"
    assert (await until_stage(web, onboarding_id, "lead_open"))["decisions"] == []


async def test_the_api_schema_says_who_reads_the_reason_and_offers_staff_s_codes(
    web: httpx.AsyncClient,
) -> None:
    schema = (await web.get("/openapi.json")).json()["components"]["schemas"]["DecisionBody"]
    assert "rejection email" in str(schema["properties"]["reason"])
    assert "never emailed" in str(schema["properties"]["note"])
    codes = schema["properties"]["reason_code"]["anyOf"][0]["enum"]
    assert codes == [code.value for code in ReasonCode if code is not ReasonCode.EXPIRED]


async def test_every_page_s_turn_down_form_asks_for_a_code_and_says_who_reads_what(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    _, lead_page = await a_rep_on_a_new_lead(web, client, stores)
    page = (await web.get(lead_page)).text
    form = re.search(rf'<form method="post" action="{lead_page}/cancel".*?</form>', page, re.S)
    assert form
    assert '<select id="reason_code-cancel" name="reason_code" required>' in form[0]
    for code in ReasonCode:
        assert (f'value="{code.value}"' in form[0]) is (code is not ReasonCode.EXPIRED)
    assert "The requester reads this in the rejection email." in form[0]
    assert "never emailed" in form[0]

    # Without a code, nothing is decided and the page says why.
    fields = await button_form(web, lead_page, "cancel")
    refused = await web.post(f"{lead_page}/cancel", data={**fields, "reason": REASON})
    assert refused.status_code == 303
    assert "choose a reason code" in (await web.get(lead_page)).text
    expired = await web.post(f"{lead_page}/cancel", data={**fields, "reason_code": "expired"})
    assert expired.status_code == 303
    assert "system&#39;s reason code" in (await web.get(lead_page)).text

    qualify = await button_form(web, lead_page, "qualify")
    qualified = await web.post(f"{lead_page}/qualify", data=qualify)
    opportunity_page = qualified.headers["location"]
    lost_form = await button_form(web, opportunity_page, "lost")
    lost = await web.post(
        f"{opportunity_page}/lost",
        data={**lost_form, "reason_code": "no_longer_interested", "note": NOTE},
    )
    assert lost.status_code == 303
    shown = (await web.get(opportunity_page)).text
    assert "Closed as lost by mario" in shown
    assert ReasonCode.NO_LONGER_INTERESTED.label in shown and NOTE in shown
    opportunity_id = int(opportunity_page.rsplit("/", 1)[1])
    found = views.opportunity(stores.sales, opportunity_id)
    assert found and (found.reason_code, found.internal_note) == ("no_longer_interested", NOTE)


async def test_an_admin_rejects_with_a_code_on_the_prospect_page(
    web_integration_off: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    web = web_integration_off
    onboarding_id, _ = await applied(web, client)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    await sign_in(web, ADMIN)
    page = f"/commerce/prospects/{prospect.id}"
    assert "The requester reads this in the rejection email." in (await web.get(page)).text
    fields = await button_form(web, page, "reject")
    await web.post(f"{page}/reject", data={**fields, "reason_code": "duplicate", "note": NOTE})
    shown = (await web.get(page)).text
    assert "Rejected by anna" in shown
    assert ReasonCode.DUPLICATE.label in shown and NOTE in shown


# --- holds ------------------------------------------------------------------------------


async def test_a_rep_holds_and_resumes_a_request_through_the_api(
    web: httpx.AsyncClient, stores: Stores
) -> None:
    onboarding_id = await a_lead(web)
    before = await until_stage(web, onboarding_id, "lead_open")
    assert before["next_reminder_at"] and before["expires_at"] and before["held"] is None

    key = {"Idempotency-Key": "hold-key-0001-for-tests"}
    held = await web.post(
        f"{API}/{onboarding_id}/hold",
        headers={**bearer(REP), **key},
        json={"note": "Waiting for their VAT certificate"},
    )
    assert held.status_code == 200, held.text
    assert held.headers["Idempotency-Key"] == key["Idempotency-Key"]
    assert held.json()["held"]["by"] == "mario"
    assert held.json()["held"]["note"] == "Waiting for their VAT certificate"
    assert held.json()["next_reminder_at"] is None and held.json()["expires_at"] is None
    # The same key again is the same hold, not a refusal.
    again = await web.post(
        f"{API}/{onboarding_id}/hold",
        headers={**bearer(REP), **key},
        json={"note": "Waiting for their VAT certificate"},
    )
    assert again.status_code == 200, again.text
    twice = await web.post(
        f"{API}/{onboarding_id}/hold", headers=bearer(ADMIN), json={"note": "Another reason"}
    )
    assert twice.status_code == 409, twice.text
    assert twice.json()["stage"] == "lead_open"
    (prospect,) = rows(stores.commerce, Prospect, onboarding_id)
    assert (prospect.held_by, prospect.hold_note) == ("mario", "Waiting for their VAT certificate")
    # Rebuilt from the stores (past Temporal's retention), the hold is the same.
    from_stores = views.request_status(stores, onboarding_id)
    assert from_stores and from_stores.held == HoldState.model_validate(held.json()["held"])

    resumed = await web.post(f"{API}/{onboarding_id}/resume", headers=bearer(ADMIN))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["held"] is None and resumed.json()["expires_at"]
    not_held = await web.post(f"{API}/{onboarding_id}/resume", headers=bearer(ADMIN))
    assert not_held.status_code == 409


async def test_a_hold_needs_a_note_a_known_request_and_an_undecided_one(
    web: httpx.AsyncClient,
) -> None:
    onboarding_id = await a_lead(web)
    for body in ({}, {"note": "   "}, {"note": "x" * 1001}, {"note": "ok", "extra": 1}):
        refused = await web.post(f"{API}/{onboarding_id}/hold", headers=bearer(REP), json=body)
        assert refused.status_code == 422, (body, refused.text)
    unknown = f"{API}/0123456789abcdef"
    held = await web.post(f"{unknown}/hold", headers=bearer(REP), json={"note": "x"})
    assert held.status_code == 404
    assert (await web.post(f"{unknown}/resume", headers=bearer(REP))).status_code == 404
    assert (await web.post(f"{API}/{onboarding_id}/hold", json={"note": "x"})).status_code == 401

    await web.post(f"{API}/{onboarding_id}/cancel", headers=bearer(REP), json={})
    decided = await web.post(f"{API}/{onboarding_id}/hold", headers=bearer(REP), json={"note": "x"})
    assert decided.status_code == 409
    assert decided.json()["stage"] == "rejected"


async def test_a_held_request_says_since_when_by_whom_and_why_and_its_requester_reads_paused(
    web: httpx.AsyncClient, client: Client, stores: Stores
) -> None:
    onboarding_id, status_link = await applied(web, client)
    lead = views.lead_of_request(stores.sales, onboarding_id)
    assert lead
    await sign_in(web, REP)
    page = f"/sales/leads/{lead.id}"
    shown = (await web.get(page)).text
    assert "Next reminder" in shown and "Expires" in shown
    assert "<dt>Reminders sent</dt><dd>0</dd>" in shown

    fields = await button_form(web, page, "hold")
    empty = await web.post(f"{page}/hold", data={**fields, "note": " "})
    assert empty.status_code == 303
    assert "write why it is held" in (await web.get(page)).text
    held = await web.post(f"{page}/hold", data={**fields, "note": NOTE})
    assert held.status_code == 303
    shown = (await web.get(page)).text
    assert "On hold since" in shown and "by mario" in shown and NOTE in shown
    assert f'action="{page}/resume"' in shown and f'action="{page}/hold"' not in shown

    requester = (await web.get(status_link)).text
    assert "paused" in requester
    assert NOTE not in requester

    await sign_in(web, ADMIN)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect
    prospect_page = f"/commerce/prospects/{prospect.id}"
    assert NOTE in (await web.get(prospect_page)).text
    resumed = await web.post(
        f"{prospect_page}/resume", data=await button_form(web, prospect_page, "resume")
    )
    assert resumed.status_code == 303
    shown = (await web.get(prospect_page)).text
    assert "Resumed" in shown and "Next reminder" in shown
    # A resume from a page left open elsewhere: refused, saying why in words.
    hold_form = await button_form(web, prospect_page, "hold")
    stale = {**hold_form, "change_id": "stale-resume-0001"}
    again = await web.post(f"{prospect_page}/resume", data=stale)
    assert again.status_code == 303
    assert "Not resumed: it is not on hold." in (await web.get(prospect_page)).text
    current = (await web.get(f"{API}/{onboarding_id}", headers=bearer(REP))).json()
    assert current["held"] is None and current["stage"] == Stage.LEAD_OPEN.value
