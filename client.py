"""Starts onboarding requests, sends decisions and reads status.

The command line and the web app both call these functions; nothing else talks to
Temporal. Failures a caller must tell apart come out as the exceptions below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from models.payloads import (
    Action,
    ApplicantInput,
    Decision,
    OnboardingRequest,
    OnboardingStatus,
    Stage,
    SubmitInput,
    SubmitResult,
    applicant_key,
    applicant_workflow_id,
    onboarding_workflow_id,
)
from settings import Settings
from workflows.applicant import ApplicantWorkflow
from workflows.onboarding import OnboardingWorkflow

RPC_TIMEOUT = timedelta(seconds=10)
SUBMIT_ATTEMPTS = 5
# How long a decision's caller waits for it to be applied before answering with the status.
APPLY_WAIT = timedelta(seconds=10)
T = TypeVar("T")


class OnboardingError(Exception):
    """Base of the errors a caller is expected to handle."""


class RequestNotFound(OnboardingError):
    def __init__(self, onboarding_id: str) -> None:
        super().__init__(f"no onboarding request {onboarding_id}")
        self.onboarding_id = onboarding_id


class DecisionNotAllowed(OnboardingError):
    def __init__(self, message: str, stage: Stage) -> None:
        super().__init__(message)
        self.stage = stage


class TemporalUnavailable(OnboardingError):
    """The Temporal server cannot be reached, refuses us, or did not answer in time."""


class DecisionFailed(OnboardingError):
    """A decision was accepted but its request failed while applying it."""


async def connect(settings: Settings) -> Client:
    """A client for the configured server; TLS and API key come from Temporal's own env vars."""
    where = f"{settings.temporal_address}, namespace {settings.temporal_namespace!r}"
    try:
        config = ClientConfig.load_client_connect_config()
        config["target_host"] = settings.temporal_address
        config["namespace"] = settings.temporal_namespace
        client = await Client.connect(**config, data_converter=pydantic_data_converter)
        # Connecting does not look at the namespace; a wrong one would read as "not found".
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace), timeout=RPC_TIMEOUT
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"no namespace at {where}") from err
        raise TemporalUnavailable(f"Temporal at {where} refuses us: {err.message}") from err
    except Exception as err:
        raise TemporalUnavailable(f"cannot reach Temporal at {where}: {err}") from err
    return client


async def submit(
    client: Client,
    request: OnboardingRequest,
    settings: Settings,
    idempotency_key: str | None = None,
) -> SubmitResult:
    """Start a request, or answer with the contact email's request that is still undecided."""
    payload = SubmitInput(request=request)
    # The applicant workflow may be ending (its request just decided) as we arrive; a
    # fresh attempt then starts a new run.
    delay = 0.02
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            return await _rpc(
                client.execute_update_with_start_workflow(
                    ApplicantWorkflow.submit,
                    payload,
                    start_workflow_operation=_applicant_start(request, settings),
                    id=idempotency_key,
                    rpc_timeout=RPC_TIMEOUT,
                )
            )
        except (WorkflowUpdateFailedError, RPCError) as err:
            ending = isinstance(err, WorkflowUpdateFailedError) or (
                isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND
            )
            if not ending or attempt == SUBMIT_ATTEMPTS:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


def _applicant_start(
    request: OnboardingRequest, settings: Settings
) -> WithStartWorkflowOperation[ApplicantWorkflow, None]:
    return WithStartWorkflowOperation(
        ApplicantWorkflow.run,
        ApplicantInput(applicant_key=applicant_key(request.email)),
        id=applicant_workflow_id(request.email),
        task_queue=settings.onboarding_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Applications from one contact email",
    )


async def decide(
    client: Client,
    onboarding_id: str,
    action: Action,
    actor: str,
    reason: str | None = None,
    decision_id: str | None = None,
    wait: timedelta = APPLY_WAIT,
) -> OnboardingStatus:
    """Apply a rep's or admin's decision and answer with the request's new status.

    A refused decision raises at once. An accepted one is answered when applied, or
    after `wait` with the status so far (`pending_action` names what is still being
    applied, say while the mail server is down and the email is being retried).
    """
    handle = client.get_workflow_handle_for(
        OnboardingWorkflow.run, onboarding_workflow_id(onboarding_id)
    )
    decision = Decision(action=action, reason=reason, actor=actor)
    try:
        update = await _rpc(
            handle.start_update(
                OnboardingWorkflow.decide,
                decision,
                id=decision_id,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                rpc_timeout=RPC_TIMEOUT,
            )
        )
        # A refused update comes back as a handle whose result raises the refusal.
        applied = await update.result(rpc_timeout=wait)
        # An update only completes on a running workflow.
        return applied.model_copy(update={"workflow_status": "running"})
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return await status(client, onboarding_id)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "DecisionNotAllowed":
            raise DecisionNotAllowed(cause.message, Stage(cause.details[0])) from err
        reason = cause.message if isinstance(cause, FailureError) else str(err)
        raise DecisionFailed(f"{action.value} failed: {reason}") from err
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # Not found is also what a finished workflow answers: name its stage instead.
        current = await status(client, onboarding_id)
        why = f"the request is {current.stage.value}"
        if not current.stage.decided:
            why += f" and its workflow has {current.workflow_status}; an operator must look at it"
        raise DecisionNotAllowed(f"{action.value} is not allowed: {why}", current.stage) from err


async def signal_decision(
    client: Client, onboarding_id: str, action: Action, actor: str, reason: str | None = None
) -> None:
    """Send a decision as a signal: fire-and-forget; a refused one is logged and ignored."""
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
    decision = Decision(action=action, reason=reason, actor=actor)
    try:
        await _rpc(
            handle.signal(OnboardingWorkflow.decision_signal, decision, rpc_timeout=RPC_TIMEOUT)
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise RequestNotFound(onboarding_id) from err
        raise


async def status(client: Client, onboarding_id: str) -> OnboardingStatus:
    """Where a request stands; a finished request answers from its result."""
    handle = client.get_workflow_handle_for(
        OnboardingWorkflow.run, onboarding_workflow_id(onboarding_id)
    )
    try:
        description = await _rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
        if description.status is WorkflowExecutionStatus.COMPLETED:
            current = await _rpc(handle.result(rpc_timeout=RPC_TIMEOUT))
        else:
            current = await _rpc(handle.query(OnboardingWorkflow.status, rpc_timeout=RPC_TIMEOUT))
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise RequestNotFound(onboarding_id) from err
        raise
    state = description.status.name.lower() if description.status else "unknown"
    return current.model_copy(update={"workflow_status": state})


async def wait_until_recorded(
    client: Client, onboarding_id: str, timeout: timedelta = timedelta(seconds=10)
) -> OnboardingStatus:
    """Wait until the request is in both stores and ready for a decision.

    Polls the status query, which leaves nothing in the workflow's history; answers
    with the last status seen if `timeout` passes first (say, while no worker runs).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds()
    delay = 0.02
    while True:
        current = await status(client, onboarding_id)
        if current.stage is not Stage.SUBMITTED or loop.time() + delay > deadline:
            return current
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _rpc(call: Awaitable[T]) -> T:
    """Await a Temporal call, turning an unreachable or silent server into one error."""
    try:
        return await call
    except RPCError as err:
        # A call's own timeout comes back as CANCELLED ("Timeout expired"): a query, say,
        # while no worker runs to answer it.
        if err.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.CANCELLED,
        ):
            raise TemporalUnavailable(f"Temporal did not answer: {err.message}") from err
        if any(detail.Is(WorkflowNotReadyFailure.DESCRIPTOR) for detail in err.grpc_status.details):
            # The request's workflow task has failed a few times over (workers killed
            # mid-task, say): Temporal takes no Update until one completes. The same
            # decision, sent again with its id, is applied once it does.
            raise TemporalUnavailable(
                f"the request cannot take it yet, try again: {err.message}"
            ) from err
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise TemporalUnavailable(
            "Temporal did not answer in time; is the worker running?"
        ) from err
