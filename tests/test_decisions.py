"""Reps' decisions: what each stage allows, how refusals look, updates and signals."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from client.connection import NotYetConfirmed, TemporalUnavailable
from client.requests import RequestNotFound, decide, signal_decision, status, submission_id, submit
from models.activity_io import CreateProspectInput, RequestRecorded
from models.ids import onboarding_workflow_id
from models.lifecycle import ALLOWED_ACTIONS, Action, Refused, Stage
from models.status import DecisionAnswer, OnboardingStatus
from models.workflow_io import OnboardingInput
from settings import Settings
from stores import Stores
from tests.conftest import eventually
from tests.scenario import a_request, decided, finished, row_counts, submitted
from worker import deployment_config
from workflows.registry import WORKFLOWS, workflow_runner


@activity.defn(name="record_request")
async def commerce_is_down(input: CreateProspectInput) -> RequestRecorded:
    raise ConnectionError("Commerce is down")


async def in_stage(client: Client, onboarding_id: str, stage: Stage) -> OnboardingStatus:
    async def reached() -> OnboardingStatus:
        current = await status(client, onboarding_id)
        assert current.stage is stage, f"{onboarding_id} is {current.stage}, not {stage}"
        return current

    return await eventually(reached)


async def update_events(client: Client, workflow_id: str) -> list[str]:
    """Names of the decisions' Updates the workflow's history accepted (the submission's
    own Update, which started it, aside)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for event in history.events
        if event.HasField("workflow_execution_update_accepted_event_attributes")
        and event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        != "submit"
    ]


async def assert_all_refused_but(
    client: Client, status: OnboardingStatus, allowed: frozenset[Action]
) -> None:
    for action in Action:
        if action in allowed:
            continue
        with pytest.raises(Refused) as refused:
            await decide(client, status.onboarding_id, action, actor="rep:test")
        assert refused.value.stage is status.stage
        assert f"{action.value} is not allowed" in str(refused.value)
        assert status.stage.value in str(refused.value)


async def reach(client: Client, settings: Settings, stage: Stage) -> OnboardingStatus:
    """A request driven the way a rep would, up to `stage`."""
    path = {
        Stage.LEAD_OPEN: [],
        Stage.OPPORTUNITY_OPEN: [Action.QUALIFY],
        Stage.APPROVED: [Action.QUALIFY, Action.WON],
        Stage.REJECTED: [Action.CANCEL],
        Stage.AWAITING_APPROVAL: [],
    }[stage]
    status = await submitted(client, settings)
    for action in path:
        status = await decided(client, status.onboarding_id, action, actor="rep:test")
    assert status.stage is stage
    return status


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "stage", [Stage.LEAD_OPEN, Stage.OPPORTUNITY_OPEN, Stage.APPROVED, Stage.REJECTED]
)
async def test_every_decision_the_stage_does_not_allow_is_refused_naming_it(
    client: Client, settings: Settings, stage: Stage
) -> None:
    current = await reach(client, settings, stage)
    accepted_before = await update_events(client, current.workflow_id)

    await assert_all_refused_but(client, current, ALLOWED_ACTIONS[stage])

    assert await update_events(client, current.workflow_id) == accepted_before
    assert (await status(client, current.onboarding_id)).stage is stage


@pytest.mark.usefixtures("worker_integration_off")
async def test_with_integration_off_only_approve_and_reject_are_allowed(
    client: Client, settings_integration_off: Settings
) -> None:
    status = await reach(client, settings_integration_off, Stage.AWAITING_APPROVAL)
    await assert_all_refused_but(client, status, ALLOWED_ACTIONS[Stage.AWAITING_APPROVAL])
    assert await update_events(client, status.workflow_id) == []


async def test_nothing_is_allowed_while_the_request_is_still_being_recorded(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Commerce is down: the prospect is never written and the request stays `submitted`.
    monkeypatch.setattr("client.connection.ACCEPT_WAIT", timedelta(seconds=1))
    async with Worker(
        client,
        task_queue=settings.onboarding_task_queue,
        workflows=WORKFLOWS,
        activities=[commerce_is_down],
        workflow_runner=workflow_runner(),
        deployment_config=deployment_config(settings),
    ):
        request, key = a_request(), f"test:{uuid.uuid4().hex}"
        # Temporal holds it; the submitter is answered once the stores have it.
        with pytest.raises(NotYetConfirmed):
            await submit(client, request, settings, idempotency_key=key)
        current = await status(client, submission_id(key, request.email))
        assert current.stage is Stage.SUBMITTED and current.allowed_actions == []
        await assert_all_refused_but(client, current, frozenset())


@workflow.defn(name="OnboardingWorkflow")
class CrashingRelease:
    """A release whose workflow code fails: Temporal retries the task until one that works."""

    @workflow.run
    async def run(self, input: OnboardingInput) -> None:
        raise RuntimeError("a bug in this release")


async def test_a_decision_while_the_request_cannot_run_is_to_be_sent_again(
    client: Client, settings: Settings
) -> None:
    """As after a worker died mid-task: not an error of the decision, a moment to wait."""
    oid = uuid.uuid4().hex[:16]
    async with Worker(
        client,
        task_queue=settings.onboarding_task_queue,
        workflows=[CrashingRelease],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            CrashingRelease.run,
            OnboardingInput(onboarding_id=oid, request=a_request()),
            id=onboarding_workflow_id(oid),
            task_queue=settings.onboarding_task_queue,
        )

        # Temporal refuses Updates once the task has failed a few times over.
        async def failed_thrice() -> bool:
            described = await handle.describe()
            return described.raw_description.pending_workflow_task.attempt >= 3

        await eventually(failed_thrice)
        with pytest.raises(TemporalUnavailable, match="try again"):
            await decide(client, oid, Action.QUALIFY, actor="rep:a")
        await handle.terminate()


@pytest.mark.usefixtures("worker")
async def test_of_two_racing_decisions_one_is_applied_and_the_other_refused(
    client: Client, settings: Settings
) -> None:
    current = await submitted(client, settings)
    results = await asyncio.gather(
        decide(client, current.onboarding_id, Action.QUALIFY, actor="rep:a"),
        decide(client, current.onboarding_id, Action.CANCEL, actor="rep:b"),
        return_exceptions=True,
    )

    applied = [r for r in results if isinstance(r, DecisionAnswer)]
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(applied) == 1 and len(refused) == 1, results
    winner = (await status(client, current.onboarding_id)).decisions[-1].action
    assert (
        applied[0].stage
        is {Action.QUALIFY: Stage.OPPORTUNITY_OPEN, Action.CANCEL: Stage.REJECTED}[winner]
    )
    # Refused either while the winner is applied or after, in the stage it led to.
    assert "is not allowed" in str(refused[0]) and refused[0].stage in (
        Stage.LEAD_OPEN,
        applied[0].stage,
    )
    assert len((await status(client, current.onboarding_id)).decisions) == 1


@pytest.mark.usefixtures("worker")
async def test_decisions_also_arrive_as_signals_and_a_wrong_one_is_ignored(
    client: Client, settings: Settings, stores: Stores
) -> None:
    status = await submitted(client, settings)
    oid = status.onboarding_id

    await signal_decision(client, oid, Action.WON, actor="rep:wrong")
    await signal_decision(client, oid, Action.QUALIFY, actor="rep:sig")
    await in_stage(client, oid, Stage.OPPORTUNITY_OPEN)
    await signal_decision(client, oid, Action.WON, actor="rep:sig")
    await signal_decision(client, oid, Action.WON, actor="rep:sig")

    status = await finished(client, await in_stage(client, oid, Stage.APPROVED))
    assert [(d.action, d.actor) for d in status.decisions] == [
        (Action.QUALIFY, "rep:sig"),
        (Action.WON, "rep:sig"),
    ]
    # We received your request, then one approval.
    assert row_counts(stores, oid)["email_message"] == 2


@pytest.mark.usefixtures("worker")
async def test_the_same_update_sent_twice_is_applied_once(
    client: Client, settings: Settings
) -> None:
    status = await submitted(client, settings)
    decision_id = f"qualify-{uuid.uuid4()}"
    first, again = await asyncio.gather(
        *(
            decide(
                client, status.onboarding_id, Action.QUALIFY, actor="rep:a", decision_id=decision_id
            )
            for _ in range(2)
        )
    )
    assert first == again and first.stage is Stage.OPPORTUNITY_OPEN
    assert await update_events(client, status.workflow_id) == ["decide"]


@pytest.mark.usefixtures("worker")
async def test_an_unknown_request_is_not_found(client: Client) -> None:
    with pytest.raises(RequestNotFound):
        await status(client, "0000000000000000")
    with pytest.raises(RequestNotFound):
        await decide(client, "0000000000000000", Action.QUALIFY, actor="rep:a")
    with pytest.raises(RequestNotFound):
        await signal_decision(client, "0000000000000000", Action.QUALIFY, actor="rep:a")
