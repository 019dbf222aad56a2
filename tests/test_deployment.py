"""Worker Versioning on the tests' server: a request is pinned to the build that started
it, a new build becomes current only when the operator says so, and `deploy` reports,
switches and moves. Each test has a deployment of its own, beside the tests' own one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, Worker

import starter
from client.deployment import make_current_if_none
from client.requests import decide, hold, resume, status
from models.ids import onboarding_workflow_id
from models.lifecycle import Action
from settings import Settings
from stores import Stores
from tests.conftest import eventually
from tests.scenario import finished, submitted
from worker import build_worker
from workflows.registry import workflow_runner


@pytest.fixture
def builds(settings: Settings) -> Callable[[str], Settings]:
    """The settings of one build of a deployment of this test's own."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    return lambda build_id: settings.model_copy(
        update={"worker_deployment_name": name, "worker_build_id": build_id}
    )


@pytest.fixture
def worker_of(
    client: Client, stores: Stores, activity_executor: ThreadPoolExecutor
) -> Callable[[Settings], AbstractAsyncContextManager[Worker]]:
    @asynccontextmanager
    async def running(settings: Settings) -> AsyncIterator[Worker]:
        async with build_worker(client, settings, stores, activity_executor) as worker:
            yield worker

    return running


async def deploy(
    client: Client, settings: Settings, capsys: pytest.CaptureFixture[str], *args: str
) -> Any:
    capsys.readouterr()
    code = await starter.run(["deploy", *args], client, settings)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


async def pinned_to(client: Client, onboarding_id: str) -> tuple[str, str]:
    described = await client.get_workflow_handle(onboarding_workflow_id(onboarding_id)).describe()
    info = described.raw_description.workflow_execution_info.versioning_info
    override = info.versioning_override.pinned.version.build_id
    return info.deployment_version.build_id, override


def states(report: dict[str, Any]) -> dict[str, str]:
    return {version["build_id"]: version["state"] for version in report["versions"]}


async def test_a_request_finishes_on_its_build_and_a_new_build_is_current_when_the_operator_says(
    client: Client,
    builds: Callable[[str], Settings],
    worker_of: Callable[[Settings], AbstractAsyncContextManager[Worker]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = builds("a"), builds("b")
    async with worker_of(a):
        assert await make_current_if_none(client, a) == "a"
        old = await submitted(client, a)
        assert await pinned_to(client, old.onboarding_id) == ("a", "")
        async with worker_of(b):
            # A worker of a new build does not take over.
            assert await make_current_if_none(client, b) == "a"
            report = await deploy(client, b, capsys, "status")
            assert (report["current"], report["this_build"]) == ("a", "b")
            assert states(report) == {"a": "current", "b": "drained"}
            (on_a,) = report["versions"][0]["open"]
            assert on_a | {"oldest_started_at": None} == {
                "workflow_type": "OnboardingWorkflow",
                "stage": "lead_open",
                "behavior": "pinned",
                "count": 1,
                "oldest_started_at": None,
            }

            report = await deploy(client, b, capsys, "current", "b")
            assert states(report) == {"a": "draining", "b": "current"}
            new = await submitted(client, b)
            assert await pinned_to(client, new.onboarding_id) == ("b", "")
            # The old request is decided and finishes on its own build.
            await decide(client, old.onboarding_id, Action.CANCEL, "rep:test", reason="gone")
            assert (await finished(client, old)).stage == "rejected"
            assert await pinned_to(client, old.onboarding_id) == ("a", "")

            async def drained() -> dict[str, Any] | None:
                report = await deploy(client, b, capsys, "status")
                # The retention workflow shows once visibility has caught up with its start.
                listed = report["versions"][0]["open"]
                return report if states(report)["a"] == "drained" and listed else None

            # Drained though the rejection's retention runs on: it moves to b when it wakes.
            (left,) = (await eventually(drained, what="a drained"))["versions"][0]["open"]
            assert (left["workflow_type"], left["behavior"]) == (
                "PersonalDataWorkflow",
                "auto_upgrade",
            )


async def test_a_held_request_moves_to_the_new_build_once_its_history_replays_there(
    client: Client,
    builds: Callable[[str], Settings],
    worker_of: Callable[[Settings], AbstractAsyncContextManager[Worker]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = builds("a"), builds("b")
    async with worker_of(b):
        async with worker_of(a):
            assert await make_current_if_none(client, a) == "a"
            held = await submitted(client, a)
            await hold(client, held.onboarding_id, "admin:test", "waiting for their papers")
            # Ramped first: a share of new requests would start on b.
            report = await deploy(client, b, capsys, "ramp", "b", "30")
            assert [
                (v["build_id"], v["state"], v["ramp_percentage"]) for v in report["versions"]
            ] == [
                ("a", "current", None),
                ("b", "ramping", 30.0),
            ]
            await deploy(client, b, capsys, "current", "b")
            report = await deploy(client, b, capsys, "status")
            assert states(report) == {"a": "draining", "b": "current"}

            moved = await deploy(client, b, capsys, "move", "a")
            assert moved["workflows"] == [
                {
                    "workflow_id": onboarding_workflow_id(held.onboarding_id),
                    "workflow_type": "OnboardingWorkflow",
                    "moved": True,
                    "refused": None,
                }
            ]
        # Build a's workers are gone: the request goes on with b's.
        await resume(client, held.onboarding_id, "admin:test")
        await decide(client, held.onboarding_id, Action.CANCEL, "rep:test", reason="gone")
        assert (
            await finished(client, await status(client, held.onboarding_id))
        ).stage == "rejected"
        assert (await pinned_to(client, held.onboarding_id))[1] == "b"


async def test_a_request_that_ends_while_its_history_replays_is_left_out_of_the_move(
    client: Client,
    builds: Callable[[str], Settings],
    worker_of: Callable[[Settings], AbstractAsyncContextManager[Worker]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = builds("a"), builds("b")
    replay = Replayer.replay_workflow

    async def ending_meanwhile(self: Replayer, history: WorkflowHistory, **kwargs: Any) -> Any:
        # Listed as running, then ended before the override: the race an operator meets
        # when `deploy move` runs while requests finish.
        await client.get_workflow_handle(history.workflow_id).terminate("ended meanwhile")
        return await replay(self, history, **kwargs)

    async with worker_of(b), worker_of(a):
        assert await make_current_if_none(client, a) == "a"
        ending = await submitted(client, a)
        await deploy(client, b, capsys, "current", "b")
        monkeypatch.setattr(Replayer, "replay_workflow", ending_meanwhile)
        moved = await deploy(
            client,
            b,
            capsys,
            "move",
            "a",
            "--workflow-id",
            onboarding_workflow_id(ending.onboarding_id),
        )
    assert moved["workflows"] == []
    assert await pinned_to(client, ending.onboarding_id) == ("a", "")


async def test_a_move_asks_again_while_the_server_is_busy_with_the_deployment(
    client: Client,
    builds: Callable[[str], Settings],
    worker_of: Callable[[Settings], AbstractAsyncContextManager[Worker]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = builds("a"), builds("b")
    service = client.workflow_service
    override = service.update_workflow_execution_options
    refused: list[str] = []

    async def busy_twice(request: Any, **kwargs: Any) -> Any:
        # What the server answers a move of many requests at once.
        if len(refused) < 2:
            refused.append(request.workflow_execution.workflow_id)
            raise RPCError(
                "too many requests issued to Worker Deployment",
                RPCStatusCode.RESOURCE_EXHAUSTED,
                b"",
            )
        return await override(request, **kwargs)

    async with worker_of(b), worker_of(a):
        assert await make_current_if_none(client, a) == "a"
        waiting = await submitted(client, a)
        await deploy(client, b, capsys, "current", "b")
        monkeypatch.setattr(service, "update_workflow_execution_options", busy_twice)
        moved = await deploy(client, b, capsys, "move", "a")
    assert len(refused) == 2
    assert [(w["workflow_id"], w["moved"]) for w in moved["workflows"]] == [
        (onboarding_workflow_id(waiting.onboarding_id), True)
    ]
    assert (await pinned_to(client, waiting.onboarding_id))[1] == "b"


async def test_deploy_refuses_a_build_with_no_workers_and_a_share_beyond_100(
    client: Client, builds: Callable[[str], Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    a = builds("a")
    assert await starter.run(["deploy", "current", "nobody"], client, a) == starter.EXIT_FAILED
    assert "has no version 'nobody'" in capsys.readouterr().err
    assert await starter.run(["deploy", "ramp", "a", "150"], client, a) == starter.EXIT_BAD_INPUT
    assert "a percentage from 0 to 100" in capsys.readouterr().err


@workflow.defn(name="OnboardingWorkflow")
class UnversionedRequest:
    """A request of a release before Worker Versioning, waiting for a rep: its worker had
    no version, so it is pinned to none until `deploy move unversioned` pins it."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="ApplicantWorkflow")
class UnversionedApplicant:
    """An email's applicant workflow of a release before one workflow per request, waiting
    for its request: a type this build no longer has."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_no_build_is_made_current_while_requests_of_the_unversioned_releases_are_unpinned(
    client: Client,
    builds: Callable[[str], Settings],
    worker_of: Callable[[Settings], AbstractAsyncContextManager[Worker]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = builds("a"), builds("b")
    # The unversioned releases' workers started a request and an applicant workflow,
    # which wait.
    async with Worker(
        client,
        task_queue=a.onboarding_task_queue,
        workflows=[UnversionedRequest, UnversionedApplicant],
        workflow_runner=workflow_runner(),
    ):
        waiting = [
            await client.start_workflow(
                stand_in.run,
                id=f"{prefix}-{uuid.uuid4().hex}",
                task_queue=a.onboarding_task_queue,
            )
            for stand_in, prefix in (
                (UnversionedRequest, "onboarding"),
                (UnversionedApplicant, "applicant"),
            )
        ]

        async def wait() -> bool:
            done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            histories = [await handle.fetch_history() for handle in waiting]
            return all(any(e.event_type == done for e in h.events) for h in histories)

        await eventually(wait, what="the unversioned workflows waiting")
    # The first versioned release made its build current; the next one's workers start.
    async with worker_of(b):
        async with worker_of(a):
            assert await make_current_if_none(client, a) == "a"
        # A request submitted while a's workers restart waits for its first task: it has
        # run no code, so whichever build takes it up may start it.
        just_submitted = await client.start_workflow(
            "OnboardingWorkflow",
            id=f"onboarding-{uuid.uuid4().hex}",
            task_queue=a.onboarding_task_queue,
        )
        for args in (["current", "b"], ["ramp", "b", "10"]):
            capsys.readouterr()
            assert await starter.run(["deploy", *args], client, b) == starter.EXIT_FAILED
            refusal = capsys.readouterr().err
            assert "2 open workflows of the releases before Worker Versioning" in refusal
            assert "(ApplicantWorkflow 1, OnboardingWorkflow 1)" in refusal
            assert "Run `deploy move unversioned` with the previous release's" in refusal
        report = await deploy(client, b, capsys, "status")
        assert states(report) == {"a": "current", "b": "drained"}
        listed = {group["workflow_type"]: group["count"] for group in report["unversioned"]}
        assert listed == {"ApplicantWorkflow": 1, "OnboardingWorkflow": 2}

        # Once none is left unpinned, the operator's command goes through.
        await just_submitted.terminate("a stand-in, with no input for b's workers")
        for handle in waiting:
            await handle.terminate("finished on the first versioned release")
        report = await eventually(lambda: deploy(client, b, capsys, "current", "b"))
        assert states(report) == {"a": "drained", "b": "current"}
