"""Worker Versioning: which version of the deployment this build is, and the deploy.

The workers of one release are one version of the deployment `WORKER_DEPLOYMENT_NAME`
(its build id: the package version and the commit, or `WORKER_BUILD_ID`). A request is
pinned to the version that started it and finishes on that version's code, so a release
ships its workflow code as it is; the old version's workers run until their requests are
done (`report` says when). A worker that finds no current version makes its own current
(`make_current_if_none`); a new build becomes current only when an operator says so
(`make_current`, `ramp`), and not while requests of the releases before Worker
Versioning are open and pinned to no build (`_none_unversioned`). A request that waits
with no end date (held) is moved to this build once its history replays on this build's
code (`move`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import subprocess
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Literal

from google.protobuf.field_mask_pb2 import FieldMask
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentResponse,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client
from temporalio.client import WorkflowExecution as Execution
from temporalio.common import SearchAttributeKey, VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from models import search_attributes as sa
from settings import PROJECT_DIR, Settings
from workflows.interceptors import INTERCEPTORS
from workflows.registry import WORKFLOWS, workflow_runner

PACKAGE = "b2b-onboarding"
# The code a workflow replays through: what makes two builds the same version or not.
REPLAYED_CODE = ("workflows", "activities", "models")
# Temporal's own search attributes of a workflow under Worker Versioning.
ON_VERSION = SearchAttributeKey.for_keyword("TemporalWorkerDeploymentVersion")
BEHAVIOR = SearchAttributeKey.for_keyword("TemporalWorkflowVersioningBehavior")
UNVERSIONED = "unversioned"
# How long a worker waits for the server to list its version (it does once the worker
# polls, within a second or two) before it gives up making it current.
VERSION_APPEARS_WITHIN = 60.0
# How long `deploy move` asks again for one request while the server says it is busy
# with the deployment ("too many requests issued to Worker Deployment").
SERVER_BUSY_FOR = 60.0


class DeploymentError(Exception):
    """The deploy cannot do what was asked; the message says why."""


def _types(behavior: VersioningBehavior) -> set[str]:
    """The workflow types this build runs with `behavior`."""
    return {
        definition.name
        for definition in map(workflow._Definition.must_from_class, WORKFLOWS)
        if definition.name is not None and definition.versioning_behavior is behavior
    }


@cache
def release_build_id() -> str:
    """The package version and the commit of a checkout; in an installed package (no
    git), the version and a digest of the code a workflow replays through."""
    version = importlib.metadata.version(PACKAGE)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit and (PROJECT_DIR / ".git").exists():
        return f"{version}+{commit}"
    digest = hashlib.sha256()
    for package in REPLAYED_CODE:
        for source in sorted((PROJECT_DIR / package).rglob("*.py")):
            digest.update(source.relative_to(PROJECT_DIR).as_posix().encode())
            digest.update(source.read_bytes())
    return f"{version}+code.{digest.hexdigest()[:12]}"


def this_version(settings: Settings) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(
        settings.worker_deployment_name, settings.worker_build_id or release_build_id()
    )


async def _describe(client: Client, settings: Settings) -> DescribeWorkerDeploymentResponse | None:
    try:
        return await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(
                namespace=client.namespace, deployment_name=settings.worker_deployment_name
            )
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


def _build_ids(described: DescribeWorkerDeploymentResponse | None) -> set[str]:
    if described is None:
        return set()
    info = described.worker_deployment_info
    return {summary.deployment_version.build_id for summary in info.version_summaries}


def _current(described: DescribeWorkerDeploymentResponse | None) -> str | None:
    if described is None:
        return None
    return (
        described.worker_deployment_info.routing_config.current_deployment_version.build_id or None
    )


def _ramping(described: DescribeWorkerDeploymentResponse | None) -> tuple[str, float] | None:
    if described is None:
        return None
    routing = described.worker_deployment_info.routing_config
    build_id = routing.ramping_deployment_version.build_id
    return (build_id, routing.ramping_version_percentage) if build_id else None


async def make_current_if_none(client: Client, settings: Settings) -> str:
    """This build's version made current if the deployment has none (a first start, or
    the first versioned release after unversioned ones), once its worker polls; the
    build id that is current afterwards. Another current build is left as it is."""
    version = this_version(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VERSION_APPEARS_WITHIN
    while True:
        described = await _describe(client, settings)
        if version.build_id in _build_ids(described):
            assert described is not None
            if current := _current(described):
                return current
            try:
                await client.workflow_service.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        namespace=client.namespace,
                        deployment_name=version.deployment_name,
                        build_id=version.build_id,
                        # Two first workers at once: one wins, the other reads it.
                        conflict_token=described.conflict_token,
                        identity=f"worker {version.build_id}",
                    )
                )
                return version.build_id
            except RPCError as err:
                if err.status not in (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ABORTED):
                    raise
        if loop.time() > deadline:
            raise DeploymentError(
                f"the server lists no version {version.build_id} of deployment"
                f" {version.deployment_name!r} after {VERSION_APPEARS_WITHIN:.0f} s of polling"
            )
        await asyncio.sleep(0.2)


# --- the deploy ---------------------------------------------------------------------


class OpenWorkflows(BaseModel):
    """Workflows still open on one version, of one type (and stage, for a request)."""

    workflow_type: str
    stage: str | None
    # pinned: finishes on this version; auto_upgrade: moves to the current one on its next
    # task; unversioned: started before Worker Versioning, moves to the current one.
    behavior: Literal["pinned", "auto_upgrade", "unversioned"]
    count: int
    oldest_started_at: datetime


class VersionReport(BaseModel):
    build_id: str
    # current or ramping: gets new workflows; draining: only its pinned ones; drained:
    # nothing left pinned to it, its workers may stop.
    state: Literal["current", "ramping", "draining", "drained"]
    ramp_percentage: float | None = None
    open: list[OpenWorkflows]


class DeploymentReport(BaseModel):
    deployment: str
    task_queue: str
    this_build: str
    current: str | None
    versions: list[VersionReport]
    # Workflows of the releases before Worker Versioning (they run on the current version).
    unversioned: list[OpenWorkflows]


async def report(client: Client, settings: Settings) -> DeploymentReport:
    """Per version of the deployment: what is still open on it, at which stage, since when."""
    described = await _describe(client, settings)
    groups: dict[tuple[str, str, str | None, str], list[datetime]] = {}
    query = f"TaskQueue = '{settings.onboarding_task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        on, behavior = _placement(execution, settings.worker_deployment_name)
        stage = execution.typed_search_attributes.get(sa.ONBOARDING_STAGE)
        key = (on, execution.workflow_type, stage, behavior)
        groups.setdefault(key, []).append(execution.start_time)
    by_version: dict[str, list[OpenWorkflows]] = {}
    for (on, workflow_type, stage, behavior), starts in sorted(groups.items(), key=str):
        by_version.setdefault(on, []).append(
            OpenWorkflows(
                workflow_type=workflow_type,
                stage=stage,
                behavior=behavior,  # type: ignore[arg-type]
                count=len(starts),
                oldest_started_at=min(starts),
            )
        )
    current, ramping = _current(described), _ramping(described)
    versions = []
    for build_id in sorted(_build_ids(described) | (set(by_version) - {UNVERSIONED})):
        open_here = by_version.get(build_id, [])
        pinned = any(group.behavior == "pinned" for group in open_here)
        state: Literal["current", "ramping", "draining", "drained"]
        if build_id == current:
            state = "current"
        elif ramping is not None and build_id == ramping[0]:
            state = "ramping"
        else:
            state = "draining" if pinned else "drained"
        versions.append(
            VersionReport(
                build_id=build_id,
                state=state,
                ramp_percentage=ramping[1] if state == "ramping" and ramping else None,
                open=open_here,
            )
        )
    return DeploymentReport(
        deployment=settings.worker_deployment_name,
        task_queue=settings.onboarding_task_queue,
        this_build=this_version(settings).build_id,
        current=current,
        versions=versions,
        unversioned=by_version.get(UNVERSIONED, []),
    )


def _placement(execution: Execution, deployment_name: str) -> tuple[str, str]:
    """The build id a workflow is on (or `unversioned`), and its behavior."""
    version = execution.typed_search_attributes.get(ON_VERSION)
    behavior = (execution.typed_search_attributes.get(BEHAVIOR) or "").lower()
    prefix = f"{deployment_name}:"
    if not version or not version.startswith(prefix):
        return UNVERSIONED, UNVERSIONED
    return version.removeprefix(prefix), "pinned" if behavior == "pinned" else "auto_upgrade"


async def make_current(client: Client, settings: Settings, build_id: str, actor: str) -> None:
    """`build_id` gets every new workflow (and every auto-upgrade one on its next task)."""
    await _may_take_new_workflows(client, settings, build_id)
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=settings.worker_deployment_name,
            build_id=build_id,
            identity=actor,
        )
    )


async def ramp(
    client: Client, settings: Settings, build_id: str, percentage: float, actor: str
) -> None:
    """`percentage` of new workflows start on `build_id`, the rest on the current build."""
    await _may_take_new_workflows(client, settings, build_id)
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=client.namespace,
            deployment_name=settings.worker_deployment_name,
            build_id=build_id,
            percentage=percentage,
            identity=actor,
        )
    )


async def _may_take_new_workflows(client: Client, settings: Settings, build_id: str) -> None:
    """What `deploy current` and `deploy ramp` check first: the build has workers, and no
    unversioned workflow would take its next task there."""
    await _known(client, settings, build_id)
    await _none_unversioned(client, settings, build_id)


async def _known(client: Client, settings: Settings, build_id: str) -> None:
    known = _build_ids(await _describe(client, settings))
    if build_id not in known:
        raise DeploymentError(
            f"deployment {settings.worker_deployment_name!r} has no version {build_id!r}"
            f" (versions: {', '.join(sorted(known)) or 'none'}): start its workers first"
        )


async def _none_unversioned(client: Client, settings: Settings, build_id: str) -> None:
    """Refuses while workflows of the releases before Worker Versioning are open and pinned
    to no build: made current (or ramped), `build_id` would take their next task, and only
    the first versioned release's code replays them. Counted are the types this build does
    not let move to the current build (auto-upgrade ones), so also those it no longer runs
    at all (`ApplicantWorkflow`)."""
    query = (
        f"TaskQueue = '{settings.onboarding_task_queue}' AND ExecutionStatus = 'Running'"
        " AND TemporalWorkerDeploymentVersion IS NULL"
    )
    upgrading = _types(VersioningBehavior.AUTO_UPGRADE)
    by_type: Counter[str] = Counter()
    async for execution in client.list_workflows(query):
        if execution.workflow_type not in upgrading and await _ran_unversioned(client, execution):
            by_type[execution.workflow_type] += 1
    if by_type:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(by_type.items()))
        raise DeploymentError(
            f"{by_type.total()} open workflows of the releases before Worker Versioning"
            f" ({counts}) are pinned to no build: {build_id!r} would take their next task"
            " and cannot replay them. Run `deploy move unversioned` with the previous"
            " release's command line (it pins them to that release's build), then this again"
        )


async def _ran_unversioned(client: Client, execution: Execution) -> bool:
    """Whether a workflow that visibility lists on no version ran on an unversioned worker.
    Visibility also lists so one whose first task a versioned worker has just completed
    (it lags behind), and one no worker has taken up yet (a request just submitted): the
    first is on a version, the second has run no code, so whichever build takes it starts
    it afresh."""
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    versioning = described.raw_description.workflow_execution_info.versioning_info
    pinned_by_move = versioning.versioning_override.pinned.version.build_id
    if versioning.deployment_version.build_id or pinned_by_move:
        return False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


class Moved(BaseModel):
    workflow_id: str
    workflow_type: str
    moved: bool
    # Why not: its history does not replay on this build's code.
    refused: str | None = None


class MoveReport(BaseModel):
    from_build: str
    to_build: str
    workflows: list[Moved]


async def move(
    client: Client,
    settings: Settings,
    from_build: str,
    only: Sequence[str] = (),
) -> MoveReport:
    """Each workflow pinned to `from_build` (or only those whose ids are given) whose history
    replays on this build's workflows, pinned to this build instead; those that do not
    replay stay, and say why. `from_build` may be `unversioned`: the workflows of the
    releases before Worker Versioning, of the types this build pins (the others move to
    the current build by themselves), pinned here so that later builds need none of
    their code."""
    to = this_version(settings)
    await _known(client, settings, to.build_id)
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=client.data_converter,
        workflow_runner=workflow_runner(),
        # As the worker runs them: a signal the product did not send is ignored there.
        interceptors=INTERCEPTORS,
        # A history that does not replay is an answer here, not a warning on the console.
        runtime=Runtime(telemetry=TelemetryConfig(logging=None)),
    )
    query = f"TaskQueue = '{settings.onboarding_task_queue}' AND ExecutionStatus = 'Running'"
    if from_build == UNVERSIONED:
        query += " AND TemporalWorkerDeploymentVersion IS NULL"
    else:
        query += (
            f" AND TemporalWorkerDeploymentVersion = '{to.deployment_name}:{from_build}'"
            " AND TemporalWorkflowVersioningBehavior = 'Pinned'"
        )
    pinned_here = _types(VersioningBehavior.PINNED)
    moved = []
    async for execution in client.list_workflows(query):
        if (only and execution.id not in only) or execution.workflow_type not in pinned_here:
            continue
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        replayed = await replayer.replay_workflow(
            await handle.fetch_history(), raise_on_replay_failure=False
        )
        if replayed.replay_failure is not None:
            failure = replayed.replay_failure
            reason = f"{type(failure).__name__}: {str(failure).strip()[:300]}"
            moved.append(Moved(workflow_id=execution.id, workflow_type=execution.workflow_type,
                               moved=False, refused=reason))  # fmt: skip
            continue
        try:
            await _pin(client, execution, to)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                continue  # it ended while its history replayed: nothing left to move
            raise
        moved.append(Moved(workflow_id=execution.id, workflow_type=execution.workflow_type,
                           moved=True))  # fmt: skip
    return MoveReport(from_build=from_build, to_build=to.build_id, workflows=moved)


async def _pin(client: Client, execution: Execution, to: WorkerDeploymentVersion) -> None:
    """Pinned to `to` by an override; asked again, a little later each time, while the
    server says it has too many requests for the deployment (it limits them: a move of
    many requests meets that)."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + SERVER_BUSY_FOR, 0.1
    while True:
        try:
            return await _override(client, execution, to)
        except RPCError as err:
            if err.status is not RPCStatusCode.RESOURCE_EXHAUSTED or loop.time() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


async def _override(client: Client, execution: Execution, to: WorkerDeploymentVersion) -> None:
    await client.workflow_service.update_workflow_execution_options(
        UpdateWorkflowExecutionOptionsRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=execution.id, run_id=execution.run_id),
            workflow_execution_options=WorkflowExecutionOptions(
                versioning_override=VersioningOverride(
                    pinned=VersioningOverride.PinnedOverride(
                        behavior=VersioningOverride.PINNED_OVERRIDE_BEHAVIOR_PINNED,
                        version=VersionProto(
                            deployment_name=to.deployment_name, build_id=to.build_id
                        ),
                    )
                )
            ),
            update_mask=FieldMask(paths=["versioning_override"]),
        )
    )
