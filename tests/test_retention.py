"""A rejected requester's personal data is kept for PERSONAL_DATA_RETENTION, then
anonymised by a durable timer; an erasure before then ends that wait (time-skipping
server: months pass in a moment)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from client.personal_data import erase_personal_data, shred_keys
from client.requests import decide
from models.ids import personal_data_workflow_id
from models.lifecycle import Action, Stage
from models.workflow_io import ErasePersonalData
from settings import Settings
from stores import Stores, data_keys, views
from tests.conftest import PATIENCE, eventually, free_port
from tests.scenario import finished, keep_history, submitted
from tests.test_partner_link_expiry import skipping  # noqa: F401  (the fixture)
from tests.test_personal_data import Person, rows_holding
from tests.test_request_time import settled, start
from worker import build_worker
from workflows.onboarding import OnboardingWorkflow

DAY = timedelta(days=1)


async def running_timer(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait (in real time) until the workflow has started its timer."""

    async def started() -> bool:
        events = (await handle.fetch_history()).events
        return any(event.HasField("timer_started_event_attributes") for event in events)

    await eventually(started)


async def closed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait (in real time) until the workflow has closed."""

    async def ended() -> bool:
        return (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING

    await eventually(ended)


@pytest.fixture
def kept(settings: Settings) -> Settings:
    return settings.model_copy(update={"personal_data_retention": 60 * DAY})


@pytest.fixture
async def env(
    skipping: WorkflowEnvironment,  # noqa: F811
    kept: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[WorkflowEnvironment]:
    async with build_worker(skipping.client, kept, stores, activity_executor):
        yield skipping


async def test_a_rejected_request_keeps_its_data_on_a_timer_of_the_retention(
    env: WorkflowEnvironment, kept: Settings, stores: Stores
) -> None:
    person = Person()
    handle = await start(env.client, kept, **person.request())
    oid = (await settled(handle)).onboarding_id
    rejected = await decide(env.client, oid, Action.CANCEL, "mario", reason="Not a reseller")
    # Waited for in real time: the test server skips time while a client awaits a result,
    # and would fire the retention's timer.
    await closed(handle)
    await keep_history(env.client, handle.id, "retained")

    retention = env.client.get_workflow_handle(personal_data_workflow_id(oid), result_type=bool)
    await running_timer(retention)
    timers = [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for event in (await retention.fetch_history()).events
        if event.HasField("timer_started_event_attributes")
    ]
    # Sixty days from the decision, counted from the moment the timer started.
    assert len(timers) == 1 and 60 * DAY - timedelta(minutes=1) < timers[0] <= 60 * DAY
    assert rejected.stage is Stage.REJECTED
    assert rows_holding(stores, oid, person), "kept until the retention has passed"


async def test_once_the_retention_has_passed_both_stores_are_anonymised(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> None:
    """On the dev server, a retention of two seconds, in real time."""
    brief = settings.model_copy(update={"personal_data_retention": timedelta(seconds=2)})
    async with build_worker(client, brief, stores, activity_executor):
        person = Person()
        current = await submitted(client, brief, **person.request())
        oid = current.onboarding_id
        await decide(client, oid, Action.CANCEL, "mario", reason="Not a reseller")
        await finished(client, current)
        assert rows_holding(stores, oid, person)
        retention = client.get_workflow_handle(personal_data_workflow_id(oid), result_type=bool)
        assert await asyncio.wait_for(retention.result(), PATIENCE) is True

    assert rows_holding(stores, oid, person) == []
    record = views.anonymisation(stores, oid)
    assert record is not None and (record.kind, record.anonymised_by) == ("retention", "system")
    # The request's key goes with the worker's next sweep: its workflow has closed.
    while await shred_keys(client):
        pass
    key = data_keys.read(stores.commerce, oid)
    assert key is not None and key.wrapped_key is None


async def test_an_erasure_before_the_retention_ends_its_wait(
    env: WorkflowEnvironment, kept: Settings, stores: Stores
) -> None:
    person = Person()
    handle = await start(env.client, kept, **person.request())
    oid = (await settled(handle)).onboarding_id
    await decide(env.client, oid, Action.CANCEL, "mario")
    await closed(handle)
    retention = env.client.get_workflow_handle(personal_data_workflow_id(oid), result_type=bool)
    await running_timer(retention)
    # Kept while it waits: once the request is erased its summary is unreadable (the
    # request's workflow wrote it, under the request's key).
    await keep_history(env.client, retention.id, "personal_data")

    erased = await erase_personal_data(env.client, stores, oid, "anna", "The requester asked")
    await closed(retention)

    assert erased.kind == "erasure" and erased.history == "key_destroyed"
    assert (await retention.describe()).status is WorkflowExecutionStatus.COMPLETED
    assert await retention.result() is False
    assert rows_holding(stores, oid, person) == []
    record = views.anonymisation(stores, oid)
    assert record is not None and record.kind == "erasure"


async def test_an_approved_or_still_sending_request_starts_no_retention(
    env: WorkflowEnvironment, kept: Settings, stores: Stores
) -> None:
    handle = await start(env.client, kept)
    oid = (await settled(handle)).onboarding_id
    await decide(env.client, oid, Action.QUALIFY, "mario")
    await decide(env.client, oid, Action.WON, "mario")
    await handle.result()
    retention = env.client.get_workflow_handle(personal_data_workflow_id(oid))
    with pytest.raises(RPCError, match="not found"):
        await retention.describe()


async def test_a_request_still_emailing_is_erased_by_its_erase_update_and_stops_sending(
    skipping: WorkflowEnvironment,  # noqa: F811
    kept: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> None:
    """With no mail server, its emails retry: the workflow is still running when the
    admin erases; the Update anonymises, stops the emails, and the workflow ends."""
    no_mail = kept.model_copy(update={"smtp_port": free_port()})
    async with build_worker(skipping.client, no_mail, stores, activity_executor):
        person = Person()
        handle = await start(skipping.client, no_mail, **person.request())
        oid = (await handle.query(OnboardingWorkflow.status)).onboarding_id
        await decide(skipping.client, oid, Action.CANCEL, "mario")
        current = await handle.query(OnboardingWorkflow.status)
        assert current.notification is not None and current.notification.state == "sending"

        # The client's erasure sends this Update to a running request, waits for it to
        # end, then destroys its key: here in two steps, to keep its history readable.
        await handle.execute_update(
            OnboardingWorkflow.erase, ErasePersonalData(actor="anna", reason="Asked by phone")
        )
        final = await handle.result()
        assert final.notification is not None and final.notification.state == "failed"
        assert final.notification.error == "not sent: the personal data was erased"
        assert final.email == ""
        await keep_history(skipping.client, handle.id, "erased")
        erased = await erase_personal_data(skipping.client, stores, oid, "anna", "Asked by phone")

        assert erased.kind == "erasure" and erased.history == "key_destroyed"
        assert erased.anonymised_by == "anna" and erased.reason == "Asked by phone"
        assert rows_holding(stores, oid, person) == []
        describe = await handle.describe()
        assert describe.status is WorkflowExecutionStatus.COMPLETED
        # No retention: nothing is left to anonymise.
        with pytest.raises(RPCError, match="not found"):
            await skipping.client.get_workflow_handle(personal_data_workflow_id(oid)).describe()
