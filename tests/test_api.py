"""The JSON API as a B2B site's web handlers and scripts call it: real Temporal, worker, stores."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import Client

from client.requests import status
from models.commerce import Prospect
from models.requests import ALREADY_OPEN, IDEMPOTENCY_KEY
from models.sales import Lead, Opportunity
from models.status import EmailKind
from settings import Settings
from stores import Stores, views
from stores.engine import make_engine
from tests.conftest import (
    ADMIN,
    FORGETFUL_NAMESPACE,
    REP,
    MailSink,
    bearer,
    browse,
    eventually,
    free_port,
    until_confirmed,
    web_settings_for,
)
from tests.scenario import a_request, finished, rows
from web.app import create_app

API = "/api/onboarding-requests"


def a_form(**overrides: Any) -> dict[str, Any]:
    return a_request(**overrides).model_dump(exclude_none=True)


async def submitted(web: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await web.post(API, json=a_form(**overrides))
    assert response.status_code == 202, response.text
    return dict(response.json())


async def until_stage(web: httpx.AsyncClient, onboarding_id: str, stage: str) -> dict[str, Any]:
    """Poll the API, as a script would, until the request reaches `stage`."""

    async def reached() -> dict[str, Any]:
        response = await web.get(f"{API}/{onboarding_id}", headers=bearer(REP))
        assert response.status_code == 200, response.text
        assert response.json()["stage"] == stage, (
            f"{onboarding_id} is not {stage}: {response.json()}"
        )
        return dict(response.json())

    return await eventually(reached)


async def test_a_request_goes_from_submit_to_approved_through_the_api(
    web: httpx.AsyncClient, client: Client, stores: Stores, mail_sink: MailSink
) -> None:
    accepted = await submitted(web, company="Fabrikam Spa")
    onboarding_id = accepted["onboarding_id"]
    assert accepted["workflow_id"] == f"onboarding-{onboarding_id}"
    assert accepted["status_url"].startswith(f"http://b2b.test/requests/{onboarding_id}/")
    await until_stage(web, onboarding_id, "lead_open")

    qualified = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    assert qualified.status_code == 200, qualified.text
    assert qualified.json()["stage"] == "opportunity_open"
    assert qualified.json()["allowed_actions"] == ["lost", "won"]

    won = await web.post(f"{API}/{onboarding_id}/won", headers=bearer(REP), json={})
    assert won.status_code == 200, won.text
    body = won.json()
    assert (body["stage"], body["prospect_status"]) == ("approved", "approved")
    assert [(d["action"], d["actor"]) for d in body["decisions"]] == [
        ("qualify", "mario"),
        ("won", "mario"),
    ]
    # The acting user is on the rows the decisions changed, too.
    assert rows(stores.sales, Lead, onboarding_id)[0].decided_by == "mario"
    assert rows(stores.sales, Opportunity, onboarding_id)[0].closed_by == "mario"
    assert rows(stores.commerce, Prospect, onboarding_id)[0].decided_by == "mario"
    current = await finished(client, await status(client, onboarding_id))
    assert current.notification and current.notification.state == "sent"
    assert current.received_notification and current.received_notification.state == "sent"
    events = [message["X-Onboarding-Event"] for message in mail_sink.messages(onboarding_id)]
    assert sorted(events) == ["prospect-approved", "request-received"]


async def test_the_received_email_carries_the_link_the_api_answered_and_it_opens_the_page(
    web: httpx.AsyncClient, mail_sink: MailSink
) -> None:
    accepted = await submitted(web, company="Northwind Srl")
    (received,) = await mail_sink.arrived(accepted["onboarding_id"], EmailKind.REQUEST_RECEIVED)
    text = received.get_body(("plain",))
    assert text is not None
    assert accepted["status_url"] in text.get_content().splitlines()

    page = await web.get(accepted["status_url"].removeprefix("http://b2b.test"))
    assert page.status_code == 200
    assert "Northwind Srl" in page.text


async def test_a_rejection_reason_is_recorded(web: httpx.AsyncClient, stores: Stores) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    response = await web.post(
        f"{API}/{onboarding_id}/cancel", headers=bearer(REP), json={"reason": "Not a reseller"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "rejected"
    assert rows(stores.commerce, Prospect, onboarding_id)[0].decision_reason == "Not a reseller"


async def test_an_admin_approves_when_the_sales_integration_is_off(
    web_integration_off: httpx.AsyncClient,
) -> None:
    web = web_integration_off
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "awaiting_approval")
    refused = await web.post(f"{API}/{onboarding_id}/approve", headers=bearer(REP))
    assert refused.status_code == 403
    approved = await web.post(f"{API}/{onboarding_id}/approve", headers=bearer(ADMIN))
    assert approved.status_code == 200, approved.text
    assert approved.json()["stage"] == "approved"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"company": ""}, "company"),
        ({"company": "x" * 161}, "company"),
        ({"first_name": "Giulia\r\nBcc: victim@example.com"}, "first_name"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"locale": "fr"}, "locale"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
    ],
)
async def test_bad_input_gets_422_naming_the_field_and_starts_nothing(
    web: httpx.AsyncClient, client: Client, stores: Stores, change: dict[str, str], field: str
) -> None:
    form = {**a_form(), **change}
    before = datetime.now(UTC)
    response = await web.post(API, json=form)
    assert response.status_code == 422, response.text
    assert field in {error["loc"][-1] for error in response.json()["detail"]}
    # Nothing was started: no prospect with the email, no workflow.
    assert [p for p in _prospects(stores) if p.email == str(form["email"]).lower()] == []
    started = [
        execution
        async for execution in client.list_workflows(
            f"WorkflowType = 'OnboardingWorkflow' AND StartTime > '{before.isoformat()}'"
        )
    ]
    assert started == []


def _prospects(stores: Stores) -> list[Prospect]:
    with Session(stores.commerce) as session:
        return list(session.exec(select(Prospect)))


async def test_a_missing_field_and_a_body_that_is_not_json_get_422(web: httpx.AsyncClient) -> None:
    form = a_form()
    del form["last_name"]
    missing = await web.post(API, json=form)
    assert missing.status_code == 422
    assert ["body", "last_name"] in [error["loc"] for error in missing.json()["detail"]]
    json_type = {"Content-Type": "application/json"}
    garbage = await web.post(API, content=b"{not json", headers=json_type)
    assert garbage.status_code == 422


async def test_a_decision_not_allowed_now_gets_409_naming_the_stage(
    web: httpx.AsyncClient,
) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    response = await web.post(f"{API}/{onboarding_id}/won", headers=bearer(REP))
    assert response.status_code == 409
    assert response.json()["stage"] == "lead_open"
    assert "lead_open" in response.json()["detail"] or "lead is open" in response.json()["detail"]


async def test_a_decision_after_the_request_finished_gets_409(
    web: httpx.AsyncClient, client: Client
) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    await web.post(f"{API}/{onboarding_id}/cancel", headers=bearer(REP))
    await finished(client, await status(client, onboarding_id))
    response = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    assert response.status_code == 409
    assert response.json()["stage"] == "rejected"


@pytest.mark.parametrize("onboarding_id", ["0123456789abcdef", "nope", "x" * 300])
async def test_an_unknown_request_gets_404(web: httpx.AsyncClient, onboarding_id: str) -> None:
    status = await web.get(f"{API}/{onboarding_id}", headers=bearer(REP))
    assert status.status_code == 404
    decision = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    assert decision.status_code == 404


async def test_an_unknown_action_or_a_bad_reason_gets_422(web: httpx.AsyncClient) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    action = await web.post(f"{API}/{onboarding_id}/promote", headers=bearer(REP))
    assert action.status_code == 422
    reason = await web.post(
        f"{API}/{onboarding_id}/cancel", headers=bearer(REP), json={"reason": "x" * 501}
    )
    assert reason.status_code == 422
    assert reason.json()["detail"][0]["loc"][-1] == "reason"


async def test_decisions_need_a_known_token_of_the_right_role(web: httpx.AsyncClient) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    decide = f"{API}/{onboarding_id}/qualify"

    nobody = await web.post(decide)
    assert nobody.status_code == 401
    assert nobody.headers["WWW-Authenticate"] == "Bearer"
    wrong_token = await web.post(decide, headers={"Authorization": "Bearer not-a-token"})
    assert wrong_token.status_code == 401
    wrong_role = await web.post(decide, headers=bearer(ADMIN))
    assert wrong_role.status_code == 403
    assert "commerce_admin" in wrong_role.json()["detail"]
    right_role = await web.post(decide, headers=bearer(REP))
    assert right_role.status_code == 200

    assert (await web.get(f"{API}/{onboarding_id}")).status_code == 401
    assert (await web.get(f"{API}/{onboarding_id}", headers=bearer(ADMIN))).status_code == 200


async def test_the_same_idempotency_key_makes_one_request(
    web: httpx.AsyncClient, stores: Stores
) -> None:
    form = a_form()
    key = {"Idempotency-Key": f"checkout-{uuid.uuid4()}"}
    first, second = await asyncio.gather(
        web.post(API, json=form, headers=key), web.post(API, json=form, headers=key)
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["onboarding_id"] == second.json()["onboarding_id"]
    await until_stage(web, first.json()["onboarding_id"], "lead_open")
    assert len([p for p in _prospects(stores) if p.email == form["email"]]) == 1


async def test_a_malformed_idempotency_key_gets_422(web: httpx.AsyncClient) -> None:
    response = await web.post(API, json=a_form(), headers={"Idempotency-Key": "short"})
    assert response.status_code == 422


async def test_a_company_named_like_a_script_is_shown_as_text(
    web: httpx.AsyncClient, client: Client, mail_sink: MailSink
) -> None:
    script = "<script>alert(1)</script>"
    accepted = await submitted(web, company=script, comments=f"{script} & more")
    onboarding_id = accepted["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    await web.post(f"{API}/{onboarding_id}/won", headers=bearer(REP))
    await finished(client, await status(client, onboarding_id))

    status_page = await web.get(accepted["status_url"].removeprefix("http://b2b.test"))
    assert status_page.status_code == 200
    assert script not in status_page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in status_page.text
    messages = mail_sink.messages(onboarding_id)
    assert len(messages) == 2
    for message in messages:
        html = message.get_body(("html",))
        assert html is not None
        assert script not in html.get_content()
        assert "&lt;script&gt;" in html.get_content()


async def test_public_submits_are_rate_limited_per_client(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    app = create_app(web_settings_for(settings, submit_rate_limit="3/minute"), client, stores)
    async with browse(app, "203.0.113.7") as web:
        answers = [(await web.post(API, json=a_form())).status_code for _ in range(4)]
        assert answers == [202, 202, 202, 429]
        limited = await web.post(API, json=a_form())
        assert int(limited.headers["Retry-After"]) >= 1
        assert "too many" in limited.json()["detail"]
        # Reading and deciding are not what the limit is for.
        assert (await web.get(f"{API}/0123456789abcdef", headers=bearer(REP))).status_code == 404
    async with browse(app, "203.0.113.8") as other_client:
        assert (await other_client.post(API, json=a_form())).status_code == 202


async def test_an_oversized_body_gets_413(web: httpx.AsyncClient, web_settings: Settings) -> None:
    huge = a_form(comments="x" * 1000)
    huge["padding"] = "y" * (web_settings.max_body_bytes + 1)
    declared = await web.post(API, json=huge)
    assert declared.status_code == 413

    async def chunks() -> Any:
        for _ in range(web_settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000

    streamed = await web.post(API, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


async def test_the_openapi_spec_lists_the_contract_routes(web: httpx.AsyncClient) -> None:
    spec = (await web.get("/openapi.json")).json()
    assert set(spec["paths"]) == {
        API,
        f"{API}/{{onboarding_id}}",
        f"{API}/{{onboarding_id}}/{{action}}",
        f"{API}/{{onboarding_id}}/hold",
        f"{API}/{{onboarding_id}}/resume",
        f"{API}/{{onboarding_id}}/erase",
        "/api/customers/{customer_id}/credit-limit",
        "/api/partner/sessions",
        "/api/partner/account",
        "/api/partner/users",
        "/api/partner/users/{user_id}",
        "/api/partner/users/{user_id}/invitation",
        "/api/partner/users/{user_id}/role",
        # Dual-write (docs/dual-write.md).
        "/api/customers/{customer_id}",
        "/api/sales/accounts/{account_id}",
        "/api/sales/contacts/{contact_id}",
        "/api/dual-write",
        "/api/dual-write/pause",
        "/api/dual-write/resume",
        "/api/dual-write/errors",
        "/api/dual-write/errors/{direction}/{change_id}/retry",
        "/api/dual-write/errors/{direction}/{change_id}/skip",
        "/api/dual-write/conflicts",
        "/api/dual-write/field-map",
    }
    assert "202" in spec["paths"][API]["post"]["responses"]
    assert "409" in spec["paths"][f"{API}/{{onboarding_id}}/{{action}}"]["post"]["responses"]
    # A submission the re-apply policy refuses gets the duplicate's 202: no 409 tells it apart.
    assert "409" not in spec["paths"][API]["post"]["responses"]
    assert (await web.get("/docs")).status_code == 200


async def test_the_openapi_spec_declares_the_not_yet_confirmed_answers(
    web: httpx.AsyncClient,
) -> None:
    spec = (await web.get("/openapi.json")).json()
    submit = spec["paths"][API]["post"]["responses"]["202"]
    decide = spec["paths"][f"{API}/{{onboarding_id}}/{{action}}"]["post"]["responses"]["202"]
    shapes = {ref["$ref"] for ref in submit["content"]["application/json"]["schema"]["anyOf"]}
    assert shapes == {
        "#/components/schemas/SubmitAccepted",
        "#/components/schemas/AlreadyOpen",
        "#/components/schemas/NotConfirmed",
    }
    assert decide["content"]["application/json"]["schema"]["$ref"].endswith("/NotConfirmed")
    assert "Idempotency-Key" in submit["headers"] and "Idempotency-Key" in decide["headers"]


def forgetful(client: Client) -> Client:
    """A client of a namespace that has none of the requests: Temporal after retention."""
    return Client(
        client.service_client,
        namespace=FORGETFUL_NAMESPACE,
        data_converter=client.data_converter,
    )


@pytest.mark.parametrize("decisions", [["qualify", "won"], ["qualify", "lost"], ["cancel"]])
async def test_the_stores_tell_the_same_status_as_temporal(
    web: httpx.AsyncClient, client: Client, stores: Stores, decisions: list[str]
) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    for action in decisions:
        body = (
            {"reason": "Checked by phone", "reason_code": "cannot_contact", "note": "No answer"}
            if action in ("lost", "cancel")
            else None
        )
        await web.post(f"{API}/{onboarding_id}/{action}", headers=bearer(REP), json=body)
    from_temporal = await finished(client, await status(client, onboarding_id))
    from_stores = views.request_status(stores, onboarding_id)
    assert from_stores is not None
    same = {
        *("stage", "records", "decisions", "notification", "company_name", "email", "locale"),
        *("reason_code", "held", "reminders"),
    }
    assert from_stores.model_dump(include=same) == from_temporal.model_dump(include=same)


async def test_a_request_past_temporal_retention_is_read_from_the_stores(
    web: httpx.AsyncClient, web_settings: Settings, client: Client, stores: Stores
) -> None:
    accepted = await submitted(web)
    onboarding_id = accepted["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    await web.post(f"{API}/{onboarding_id}/won", headers=bearer(REP))
    await finished(client, await status(client, onboarding_id))
    async with browse(create_app(web_settings, forgetful(client), stores)) as web:
        current = await web.get(f"{API}/{onboarding_id}", headers=bearer(REP))
        assert current.status_code == 200, current.text
        assert (current.json()["stage"], current.json()["workflow_status"]) == (
            "approved",
            "past_retention",
        )
        late = await web.post(f"{API}/{onboarding_id}/lost", headers=bearer(REP))
        assert late.status_code == 409
        assert late.json()["stage"] == "approved"
        page = await web.get(accepted["status_url"].removeprefix("http://b2b.test"))
        assert "Welcome aboard" in page.text


async def test_a_duplicate_reveals_nothing_and_the_link_goes_to_the_address_on_record(
    web: httpx.AsyncClient, mail_sink: MailSink
) -> None:
    form = a_form()
    first = await submitted(web, **form)
    onboarding_id = first["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")

    # The owner trying again, and someone else who knows the address: the same answer,
    # which names no request.
    again = await web.post(API, json={**form, "company": "Someone Else Srl"})
    other = await web.post(API, json={**form, "first_name": "Mallory", "locale": "it"})

    assert again.status_code == other.status_code == 202
    assert again.json() == other.json() == {"duplicate": True, "detail": ALREADY_OPEN}
    # A decision is applied after both requests for the link: it answers with them handled.
    qualified = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    assert [r["kind"] for r in qualified.json()["status_link_reminders"]] == [
        "status_link_reminder"
    ]
    (reminder,) = await mail_sink.arrived(onboarding_id, EmailKind.STATUS_LINK_REMINDER)
    assert reminder["To"].addresses[0].addr_spec == form["email"]
    text = reminder.get_body(("plain",))
    assert text is not None
    assert first["status_url"] in text.get_content().splitlines()
    assert "Contoso Srl" in text.get_content() and "Someone Else" not in text.get_content()
    assert "Gentile" not in text.get_content(), "in the language of the request on record"


async def test_an_idempotency_key_reused_for_another_action_is_another_decision(
    web: httpx.AsyncClient,
) -> None:
    onboarding_id = (await submitted(web))["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    key = {**bearer(REP), "Idempotency-Key": f"rep-click-{uuid.uuid4()}"}
    qualified = await web.post(f"{API}/{onboarding_id}/qualify", headers=key)
    again = await web.post(f"{API}/{onboarding_id}/qualify", headers=key)
    assert qualified.json()["stage"] == again.json()["stage"] == "opportunity_open"
    won = await web.post(f"{API}/{onboarding_id}/won", headers=key)
    assert won.json()["stage"] == "approved"


async def test_the_demo_users_answer_only_on_this_machine(
    settings: Settings, client: Client, stores: Stores
) -> None:
    demo = web_settings_for(settings).model_copy(update={"api_tokens": None})
    app = create_app(demo, client, stores)
    admin = {"Authorization": "Bearer demo-admin-token"}
    for address, expected in (("127.0.0.1", 404), ("::1", 404), ("203.0.113.9", 401)):
        async with browse(app, address) as web:
            answer = await web.get(f"{API}/0123456789abcdef", headers=admin)
            assert answer.status_code == expected, address
    with pytest.raises(ValueError, match="loopback only"):
        create_app(demo.model_copy(update={"web_host": "0.0.0.0"}), client, stores)


async def test_the_status_is_read_from_the_stores_while_temporal_is_down(
    web: httpx.AsyncClient, web_settings: Settings, stores: Stores
) -> None:
    accepted = await submitted(web)
    await until_stage(web, accepted["onboarding_id"], "lead_open")
    nowhere = web_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with browse(create_app(nowhere, stores=stores)) as down:
        status = await down.get(f"{API}/{accepted['onboarding_id']}", headers=bearer(REP))
        assert status.status_code == 200, status.text
        assert (status.json()["stage"], status.json()["workflow_status"]) == (
            "lead_open",
            "temporal_unreachable",
        )
        page = await down.get(accepted["status_url"].removeprefix("http://b2b.test"))
        assert "Our sales team is reviewing your request." in page.text
        submit = await down.post(API, json=a_form())
        assert submit.status_code == 503
        assert submit.headers["Retry-After"]
        unknown = await down.get(f"{API}/0123456789abcdef", headers=bearer(REP))
        assert unknown.status_code == 503


async def test_a_store_that_cannot_be_reached_answers_503_to_try_again(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    """A store down or restarting: the route says so (503, Retry-After), no traceback."""
    down = make_engine(f"postgresql+psycopg://test@127.0.0.1:{free_port()}/test")
    app = create_app(web_settings, client, Stores(sales=stores.sales, commerce=down))
    async with browse(app) as web:
        answer = await web.get("/api/customers/1/credit-limit", headers=bearer(REP))
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert "Traceback" not in answer.text


async def test_an_address_no_mail_server_can_take_gets_422_naming_the_email(
    web: httpx.AsyncClient,
) -> None:
    response = await web.post(API, json=a_form() | {"email": "giülia@utf8.example"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "email"]
    assert "no mail server can deliver to it" in error["msg"]


async def test_with_the_worker_stopped_the_status_is_read_from_the_stores_at_once(
    web_settings: Settings,
    client: Client,
    stores: Stores,
    stoppable_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The app's query gives up after 1 s here, not 3: a loaded machine has 7 s more.
    monkeypatch.setattr("client.connection.QUERY_TIMEOUT", timedelta(seconds=1))
    async with browse(create_app(web_settings, client, stores)) as web:
        async with stoppable_worker():
            accepted = await submitted(web)
            onboarding_id = accepted["onboarding_id"]
            await until_stage(web, onboarding_id, "lead_open")
        # Each answered before the 9 to 10 s a query waits for a stopped worker.
        started = time.monotonic()
        status = await web.get(f"{API}/{onboarding_id}", headers=bearer(REP))
        assert time.monotonic() - started < 8
        assert status.status_code == 200, status.text
        assert (status.json()["stage"], status.json()["workflow_status"]) == (
            "lead_open",
            "worker_unavailable",
        )
        started = time.monotonic()
        page = await web.get(accepted["status_url"].removeprefix("http://b2b.test"))
        assert time.monotonic() - started < 8
        assert page.status_code == 200
        assert "Our sales team is reviewing your request." in page.text


@pytest.mark.usefixtures("short_accept_wait")
async def test_with_the_worker_stopped_a_decision_and_a_submission_are_recorded_not_lost(
    web_settings: Settings, client: Client, stores: Stores, stoppable_worker: Any
) -> None:
    async with browse(create_app(web_settings, client, stores)) as web:
        async with stoppable_worker():
            onboarding_id = (await submitted(web))["onboarding_id"]
            await until_stage(web, onboarding_id, "lead_open")

        decision = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
        form = a_form()
        submission = await web.post(API, json=form)
        for answer in (decision, submission):
            assert answer.status_code == 202, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.headers["Idempotency-Key"] == answer.json()["idempotency_key"]
            assert "not yet confirmed" in answer.json()["detail"]
        assert "onboarding_id" not in submission.json()

        async with stoppable_worker():
            retried = await until_confirmed(
                lambda: web.post(
                    f"{API}/{onboarding_id}/qualify",
                    headers={**bearer(REP), "Idempotency-Key": decision.json()["idempotency_key"]},
                ),
                lambda answer: "onboarding_id" not in answer.json(),
            )
            assert retried.status_code == 200, retried.text
            assert retried.json()["stage"] == "opportunity_open"
            assert [d["action"] for d in retried.json()["decisions"]] == ["qualify"]
            resubmitted = await until_confirmed(
                lambda: web.post(
                    API,
                    json=form,
                    headers={"Idempotency-Key": submission.json()["idempotency_key"]},
                ),
                lambda answer: "onboarding_id" not in answer.json(),
            )
            assert resubmitted.status_code == 202, resubmitted.text
            assert resubmitted.json()["duplicate"] is False
            assert resubmitted.json()["status_url"]
            await until_stage(web, resubmitted.json()["onboarding_id"], "lead_open")
    assert len([p for p in _prospects(stores) if p.email == form["email"]]) == 1


async def test_an_answer_carries_the_idempotency_key_made_for_it(web: httpx.AsyncClient) -> None:
    accepted = await web.post(API, json=a_form())
    assert accepted.status_code == 202
    assert re.fullmatch(IDEMPOTENCY_KEY, accepted.json()["idempotency_key"])
    assert accepted.headers["Idempotency-Key"] == accepted.json()["idempotency_key"]
    onboarding_id = accepted.json()["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    decided = await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    assert decided.headers["Idempotency-Key"] == decided.json()["idempotency_key"]
    again = await web.post(
        f"{API}/{onboarding_id}/qualify",
        headers={**bearer(REP), "Idempotency-Key": decided.json()["idempotency_key"]},
    )
    assert again.status_code == 200
    assert [d["action"] for d in again.json()["decisions"]] == ["qualify"]


SECURITY_HEADERS = ("Content-Security-Policy", "Permissions-Policy", "X-Frame-Options")


async def test_every_answer_errors_included_carries_the_headers_and_the_documented_body(
    web_settings: Settings, client: Client, stores: Stores, worker: None
) -> None:
    app = create_app(web_settings, client, stores)

    @app.get("/api/onboarding-requests/boom/now", include_in_schema=False)
    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("a bug")

    too_large = b"x" * (web_settings.max_body_bytes + 1)
    json_type = {"Content-Type": "application/json"}
    async with browse(app) as web:
        api_answers = [
            await web.get(f"{API}/boom/now"),
            await web.post(API, content=too_large, headers=json_type),
            await web.get(f"{API}/0123456789abcdef"),
            await web.delete(API),
        ]
        page_answers = [
            await web.get("/boom"),
            await web.post("/apply", content=too_large, headers={"Content-Type": "text/plain"}),
            await web.get("/no-such-page"),
        ]
    assert [a.status_code for a in api_answers] == [500, 413, 401, 405]
    assert [a.status_code for a in page_answers] == [500, 413, 404]
    for answer in api_answers + page_answers:
        for header in SECURITY_HEADERS:
            assert header in answer.headers, (answer.request.url, header)
        assert "a bug" not in answer.text and "Traceback" not in answer.text
    for answer in api_answers:
        assert set(answer.json()) == {"detail"}, answer.text
    for answer in page_answers:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "Back to the home page" in answer.text


async def test_hsts_only_when_the_site_is_served_over_https(
    web_settings: Settings, client: Client, stores: Stores
) -> None:
    for site_url, expected in (("https://b2b.example", True), ("http://b2b.test", False)):
        app = create_app(web_settings.model_copy(update={"b2b_site_url": site_url}), client, stores)
        async with browse(app) as web:
            answer = await web.get("/")
        assert ("Strict-Transport-Security" in answer.headers) is expected, site_url


async def test_the_pages_allow_no_inline_script_and_the_docs_only_what_swagger_needs(
    web: httpx.AsyncClient,
) -> None:
    page_policy = (await web.get("/apply")).headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page_policy
    assert "frame-ancestors 'none'" in page_policy
    docs = await web.get("/docs")
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["Content-Security-Policy"]
