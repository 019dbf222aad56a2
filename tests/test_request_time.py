"""Requests that live for weeks: reminders, expiry and holds on durable timers.

On the time-skipping test server, so days pass in a moment; the emails go to the test's
mail sink and the rows to its stores, as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from client.requests import decide, hold, resume, status
from models.commerce import EmailMessage, Prospect
from models.ids import onboarding_workflow_id
from models.lifecycle import Action, ReasonCode, RefusalKind, Refused, Stage
from models.sales import Lead
from models.status import EmailKind, OnboardingStatus
from models.workflow_io import OnboardingInput
from settings import Settings
from stores import Stores
from tests.conftest import MailSink, browse, eventually, web_settings_for
from tests.scenario import a_request, decided, keep_history, text_of
from tests.test_api import API, a_form, until_stage
from tests.test_partner_link_expiry import skipping  # noqa: F401  (the fixture)
from web.app import create_app
from worker import build_worker
from workflows.onboarding import OnboardingWorkflow

DAY = timedelta(days=1)


@pytest.fixture
def timed(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "remind_after": 3 * DAY,
            "remind_every": 3 * DAY,
            "expire_after": 15 * DAY,
            "sales_team_email": "sales-team@b2b.test",
            "commerce_team_email": "commerce-team@b2b.test",
        }
    )


@pytest.fixture
async def env(
    skipping: WorkflowEnvironment,  # noqa: F811
    timed: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[WorkflowEnvironment]:
    async with build_worker(skipping.client, timed, stores, activity_executor):
        yield skipping


async def start(
    client: Client, settings: Settings, **overrides: Any
) -> WorkflowHandle[OnboardingWorkflow, OnboardingStatus]:
    """Start and submit a request in two calls: the test server has no Update-with-Start."""
    onboarding_id = uuid.uuid4().hex[:16]
    handle = await client.start_workflow(
        OnboardingWorkflow.run,
        OnboardingInput(onboarding_id=onboarding_id, request=a_request(**overrides)),
        id=onboarding_workflow_id(onboarding_id),
        task_queue=settings.onboarding_task_queue,
    )
    await handle.execute_update(OnboardingWorkflow.submit)
    return handle


def reminders(stores: Stores, onboarding_id: str) -> list[EmailMessage]:
    with Session(stores.commerce) as session:
        return list(
            session.exec(
                select(EmailMessage)
                .where(EmailMessage.onboarding_id == onboarding_id)
                .where(EmailMessage.kind == EmailKind.TEAM_REMINDER.value)
                .order_by(EmailMessage.id)  # type: ignore[arg-type]
            )
        )


async def settled(handle: WorkflowHandle[OnboardingWorkflow, OnboardingStatus]) -> OnboardingStatus:
    """The status once every email started so far has gone out."""

    async def sent() -> OnboardingStatus:
        current = await handle.query(OnboardingWorkflow.status)
        notes = [*current.reminders, current.notification, current.received_notification]
        assert all(note is None or note.state != "sending" for note in notes), current
        return current

    return await eventually(sent)


async def test_the_team_is_reminded_on_time_until_a_decision_stops_it(
    env: WorkflowEnvironment, timed: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    handle = await start(env.client, timed)
    current = await settled(handle)
    oid = current.onboarding_id
    assert current.stage is Stage.LEAD_OPEN
    assert current.next_reminder_at == current.stage_since + 3 * DAY
    assert current.expires_at is not None

    await env.sleep(2 * DAY)
    assert (await settled(handle)).reminders == []
    await env.sleep(5 * DAY)  # day 7: reminded on days 3 and 6
    current = await settled(handle)
    assert [r.state for r in current.reminders] == ["sent", "sent"]
    sent = reminders(stores, oid)
    assert [(r.period, r.recipient) for r in sent] == [
        ("1", "sales-team@b2b.test"),
        ("2", "sales-team@b2b.test"),
    ]
    mail = next(m for m in mail_sink.messages() if m["Message-ID"] == sent[0].message_id)
    body = text_of(mail)
    assert "Contoso Srl" in mail["Subject"] and "sales team" in mail["Subject"]
    assert f"http://b2b.test/sales/leads/{current.records.lead_id}" in body
    assert oid in body and "Stage: Lead open, since" in body

    # Qualified: the opportunity is the sales team's move again, reminded from its start.
    qualified = await decided(env.client, oid, Action.QUALIFY, "mario")
    assert qualified.next_reminder_at == qualified.stage_since + 3 * DAY
    await env.sleep(DAY)
    assert len((await settled(handle)).reminders) == 2
    await env.sleep(2 * DAY + timedelta(hours=1))  # the opportunity's first reminder
    current = await settled(handle)
    assert len(current.reminders) == 3
    assert f"/sales/opportunities/{current.records.opportunity_id}" in text_of(
        next(
            m
            for m in mail_sink.messages()
            if m["Message-ID"] == reminders(stores, oid)[2].message_id
        )
    )

    won = await decided(env.client, oid, Action.WON, "mario")
    assert won.stage is Stage.APPROVED and won.next_reminder_at is None and won.expires_at is None
    await env.sleep(20 * DAY)
    assert len(reminders(stores, oid)) == 3
    await keep_history(env.client, handle.id, "reminded")


async def test_an_undecided_request_expires_rejected_by_the_system(
    env: WorkflowEnvironment, timed: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    handle = await start(env.client, timed)
    oid = (await settled(handle)).onboarding_id

    final = await handle.result()  # the server skips time to the expiry, 15 days on

    assert final.stage is Stage.REJECTED
    assert final.reason_code is ReasonCode.EXPIRED
    assert final.decisions[-1].actor == "system"
    assert final.decisions[-1].action is Action.CANCEL
    # Reminded on days 3, 6, 9 and 12, then expired on day 15.
    assert len(final.reminders) == 4
    with Session(stores.commerce) as session:
        prospect = session.exec(select(Prospect).where(Prospect.onboarding_id == oid)).one()
        assert (prospect.status, prospect.reason_code, prospect.decided_by) == (
            "rejected",
            "expired",
            "system",
        )
        assert prospect.undecided_email is None
    with Session(stores.sales) as session:
        lead = session.exec(select(Lead).where(Lead.onboarding_id == oid)).one()
        assert (lead.status, lead.reason_code) == ("disqualified", "expired")
    rejections = [
        m
        for m in mail_sink.messages()
        if m["X-Onboarding-Id"] == oid and m["X-Onboarding-Event"] == "prospect-rejected"
    ]
    assert len(rejections) == 1
    body = text_of(rejections[0])
    assert "has expired" in body and "apply again at once" in body
    await keep_history(env.client, handle.id, "expired")


async def test_a_hold_stops_the_clocks_and_a_resume_moves_them_on(
    env: WorkflowEnvironment, timed: Settings, stores: Stores
) -> None:
    handle = await start(env.client, timed)
    current = await settled(handle)
    oid, expires = current.onboarding_id, current.expires_at
    assert expires is not None

    await env.sleep(2 * DAY)
    held = await hold(env.client, oid, "mario", "Waiting for their VAT certificate")
    assert held.held is not None and held.held.note == "Waiting for their VAT certificate"
    assert held.next_reminder_at is None and held.expires_at is None
    with Session(stores.commerce) as session:
        prospect = session.exec(select(Prospect).where(Prospect.onboarding_id == oid)).one()
        assert prospect.hold_note == "Waiting for their VAT certificate"
        assert prospect.held_by == "mario" and prospect.held_since is not None
    with pytest.raises(Refused, match="already on hold") as twice:
        await hold(env.client, oid, "anna", "again")
    # Why travels as a kind in the refusal's details, beside the stage.
    assert (twice.value.kind, twice.value.stage) == (RefusalKind.ON_HOLD, Stage.LEAD_OPEN)

    await env.sleep(20 * DAY)  # past the expiry: nothing happens while held
    current = await settled(handle)
    assert current.stage is Stage.LEAD_OPEN and current.reminders == []

    resumed = await resume(env.client, oid, "mario")
    assert resumed.held is None
    assert resumed.expires_at is not None
    held_for = resumed.expires_at - expires
    assert abs(held_for - 20 * DAY) < timedelta(minutes=5)
    assert resumed.next_reminder_at is not None
    # Two of the three days before the first reminder had passed before the hold.
    resumed_at = held.held.since + held_for
    assert abs(resumed.next_reminder_at - resumed_at - DAY) < timedelta(minutes=5)
    with Session(stores.commerce) as session:
        prospect = session.exec(select(Prospect).where(Prospect.onboarding_id == oid)).one()
        assert prospect.held_since is None and prospect.hold_note is None
    with pytest.raises(Refused, match="not on hold") as not_held:
        await resume(env.client, oid, "mario")
    assert not_held.value.kind is RefusalKind.NOT_ON_HOLD

    final = await handle.result()
    assert final.reason_code is ReasonCode.EXPIRED
    # Expired 15 days of clock after it started: 20 days held on top.
    assert final.decisions[-1].at - final.submitted_at >= 35 * DAY
    await keep_history(env.client, handle.id, "held")


async def test_a_rejection_records_its_reason_code_and_note_and_defaults_to_other(
    env: WorkflowEnvironment, timed: Settings, stores: Stores
) -> None:
    first = await settled(await start(env.client, timed))
    cancelled = await decided(
        env.client,
        first.onboarding_id,
        Action.CANCEL,
        "mario",
        reason="We only work with resellers.",
        reason_code=ReasonCode.NOT_ELIGIBLE,
        note="Checked their site: a retailer.",
    )
    assert cancelled.reason_code is ReasonCode.NOT_ELIGIBLE
    assert cancelled.decisions[-1].note == "Checked their site: a retailer."
    with Session(stores.sales) as session:
        lead = session.exec(select(Lead).where(Lead.onboarding_id == first.onboarding_id)).one()
        assert (lead.reason_code, lead.internal_note) == (
            "not_eligible",
            "Checked their site: a retailer.",
        )

    second = await settled(await start(env.client, timed))
    plain = await decided(env.client, second.onboarding_id, Action.CANCEL, "mario")
    assert plain.reason_code is ReasonCode.OTHER

    third = await settled(await start(env.client, timed))
    with pytest.raises(Refused, match="expired"):
        await decide(
            env.client, third.onboarding_id, Action.CANCEL, "mario", reason_code=ReasonCode.EXPIRED
        )
    assert (await status(env.client, third.onboarding_id)).stage is Stage.LEAD_OPEN


def test_durations_are_read_as_seconds_or_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMIND_AFTER", "30")
    monkeypatch.setenv("REMIND_EVERY", "PT12H")
    monkeypatch.setenv("EXPIRE_AFTER", "P30D")
    monkeypatch.setenv("REAPPLY_COOLDOWN", "0")
    read = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (read.remind_after, read.remind_every, read.expire_after, read.reapply_cooldown) == (
        timedelta(seconds=30),
        timedelta(hours=12),
        timedelta(days=30),
        timedelta(0),
    )
    monkeypatch.setenv("EXPIRE_AFTER", "0")
    with pytest.raises(ValueError, match="expire_after"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def web_seconds(
    settings: Settings, client: Client, stores: Stores, activity_executor: ThreadPoolExecutor
) -> AsyncIterator[httpx.AsyncClient]:
    """On the dev server: a worker whose requests are reminded after 1 s and expire after
    3 s, and the web app over it."""
    quick = settings.model_copy(
        update={
            "remind_after": timedelta(seconds=1),
            "remind_every": timedelta(seconds=1),
            "expire_after": timedelta(seconds=3),
            "sales_team_email": "sales-team@b2b.test",
        }
    )
    app = create_app(web_settings_for(quick), client=client, stores=stores)
    async with build_worker(client, quick, stores, activity_executor), browse(app) as http:
        yield http


async def test_end_to_end_a_reminder_an_expiry_and_applying_again(
    web_seconds: httpx.AsyncClient, mail_sink: MailSink
) -> None:
    form = a_form()
    first = await web_seconds.post(API, json=form)
    assert first.status_code == 202, first.text
    oid = first.json()["onboarding_id"]

    reminder = (await mail_sink.arrived(oid, EmailKind.TEAM_REMINDER))[0]
    assert reminder["To"].addresses[0].addr_spec == "sales-team@b2b.test"
    expired = await until_stage(web_seconds, oid, "rejected")
    assert expired["reason_code"] == "expired" and expired["decisions"][-1]["actor"] == "system"
    (rejection,) = await mail_sink.arrived(oid, EmailKind.PROSPECT_REJECTED)
    assert "has expired" in text_of(rejection)
    # Reminded at 1 s and 2 s; the one due at 3 s is the expiry's. (The second reminder's
    # email may still be on its way: it goes out beside the expiry.)
    assert len(expired["reminders"]) == 2
    await eventually(lambda: len(mail_sink.messages(oid, EmailKind.TEAM_REMINDER)) == 2)

    # Expired: no cool-down (the settings' is 30 days), so the same email applies at once.
    # The cool-down after a rep's rejection is tests/test_reapply.py's, on a clock it moves.
    second = await web_seconds.post(API, json=form)
    assert second.status_code == 202, second.text
    assert second.json()["onboarding_id"] != oid
