"""What a request costs the engine (issue 22, item 3): the events its history records and
the size of what its Updates answer.

A won onboarding of the last unversioned release recorded 46 events: three patch markers
and seven search-attribute upserts (three of them the SDK's own, one per patch), two
timers started and two cancelled, and each Update answered with the whole status. The
first versioned build recorded 38: one patch marker, four upserts, one timer. This one
records 26: no patch, and each email sent by its first attempt, a local activity in the
step's workflow task, with no activity task or workflow task of its own.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from client.converter import data_converter
from client.requests import decide, hold, resume
from models.lifecycle import Action, Stage
from models.status import (
    DecisionAnswer,
    DecisionRecord,
    HoldAnswer,
    HoldState,
    Notification,
    OnboardingStatus,
    RecordIds,
)
from settings import Settings
from stores import Stores
from tests.scenario import finished, submitted
from tests.test_partner_link_expiry import skipping  # noqa: F401  (the fixture)
from tests.test_replay import markers
from tests.test_request_time import DAY, settled, start
from worker import build_worker


def counts(history: WorkflowHistory) -> Counter[str]:
    return Counter(EventType.Name(event.event_type) for event in history.events)


@pytest.mark.usefixtures("worker")
async def test_a_won_onboarding_records_no_patch_one_timer_an_upsert_per_change_no_email_task(
    client: Client, settings: Settings
) -> None:
    current = await submitted(client, settings)
    await decide(client, current.onboarding_id, Action.QUALIFY, "rep:mario")
    await decide(client, current.onboarding_id, Action.WON, "rep:mario")
    done = await finished(client, current)
    assert done.stage is Stage.APPROVED
    history = await client.get_workflow_handle(done.workflow_id).fetch_history()

    events = counts(history)
    assert markers(history.to_json()) == [
        "local:record_request",
        "local:send_onboarding_email",
        "local:apply_decision",
        "local:apply_decision",
        "local:send_onboarding_email",
    ]
    # The ids with the first stage, the opportunity, the approval: 3 (7 before).
    assert events["EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] == 3
    # The lead's reminder is set once; moved later by the qualification, it is kept.
    assert events["EVENT_TYPE_TIMER_STARTED"] == 1
    assert events["EVENT_TYPE_TIMER_CANCELED"] == 0
    # Both emails taken by the mail server at their first attempt.
    assert events["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"] == 0
    # A workflow task for the start, and one for each decision.
    assert events["EVENT_TYPE_WORKFLOW_TASK_COMPLETED"] == 3
    assert len(history.events) <= 26, events


@pytest.fixture
async def expiring(
    skipping: WorkflowEnvironment,  # noqa: F811
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> Any:
    """A request that expires before its first reminder: its one deadline never moves
    unless it is held."""
    timed = settings.model_copy(
        update={
            "remind_after": 20 * DAY,
            "remind_every": 20 * DAY,
            "expire_after": 15 * DAY,
            "sales_team_email": "sales-team@b2b.test",
            "commerce_team_email": "commerce-team@b2b.test",
        }
    )
    async with build_worker(skipping.client, timed, stores, activity_executor):
        yield skipping, timed


async def test_a_deadline_that_does_not_move_keeps_its_one_timer(expiring: Any) -> None:
    env, timed = expiring
    handle = await start(env.client, timed)
    oid = (await settled(handle)).onboarding_id
    await env.sleep(DAY)
    # A hold stops the clock and a resume moves it later: the alarm set for the expiry
    # rings no later than the new one, so it stays (before: cancelled and set again).
    await hold(env.client, oid, "mario", "Waiting for a document")
    await env.sleep(DAY)
    await resume(env.client, oid, "mario")
    await decide(env.client, oid, Action.QUALIFY, "mario")
    await decide(env.client, oid, Action.WON, "mario")
    await handle.result()

    events = counts(await handle.fetch_history())
    # Before: one started per wait (lead, after the resume, opportunity), each cancelled.
    assert events["EVENT_TYPE_TIMER_STARTED"] == 1, events
    assert events["EVENT_TYPE_TIMER_CANCELED"] == 0, events


def a_whole_status() -> OnboardingStatus:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    return OnboardingStatus(
        onboarding_id="0123456789abcdef",
        workflow_id="onboarding-0123456789abcdef",
        stage=Stage.OPPORTUNITY_OPEN,
        stage_since=now + timedelta(hours=2),
        submitted_at=now,
        company_name="Contoso Srl",
        email="giulia@contoso.example",
        locale="it",
        sales_integration_enabled=True,
        decisions=[DecisionRecord(action=Action.QUALIFY, actor="rep:mario", at=now)],
        records=RecordIds(prospect_id=1, lead_id=2, opportunity_id=3),
        received_notification=Notification(kind="request_received", state="sent"),
        held=HoldState(since=now, by="rep:mario", note="A document"),
        next_reminder_at=now + 3 * DAY,
        expires_at=now + 30 * DAY,
        workflow_status="running",
    )


@pytest.mark.parametrize("answer", [DecisionAnswer, HoldAnswer])
def test_each_update_answer_decodes_from_the_whole_status_an_earlier_build_answers_with(
    answer: type[DecisionAnswer] | type[HoldAnswer], base_settings: Settings, stores: Stores
) -> None:
    """During a deploy, a client of this build may ask a request still running an earlier
    one, whose Updates answer with the whole status: it decodes as the small answer."""
    whole = a_whole_status()
    # The product's own converter, as a client decodes an Update's answer with.
    converter = data_converter(base_settings, stores.commerce).payload_converter
    (decoded,) = converter.from_payloads(converter.to_payloads([whole]), [answer])
    assert isinstance(decoded, answer)
    assert decoded.model_dump() == whole.model_dump(include=set(answer.model_fields))
    # Each of its fields is the status's own, so none can be missing from an old answer.
    for name, field in answer.model_fields.items():
        assert OnboardingStatus.model_fields[name].annotation == field.annotation, name


def test_an_update_answer_is_a_fraction_of_the_whole_status() -> None:
    whole = a_whole_status()
    size = len(whole.model_dump_json())
    for answer in (DecisionAnswer, HoldAnswer):
        small = answer.model_validate(whole, from_attributes=True)
        assert len(small.model_dump_json()) < size / 2, answer.__name__
