"""Starts onboarding requests, sends decisions and holds, and reads their status.

The command line and the web app both call these functions.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from client.connection import (
    ACCEPT_WAIT,
    QUERY_TIMEOUT,
    RPC_TIMEOUT,
    Connection,
    NotYetConfirmed,
    OnboardingError,
    TemporalUnavailable,
    WorkerUnavailable,
    admitting,
    rpc,
    worker_answer,
)
from client.converter import codec_of
from infra import encryption
from models import search_attributes as sa
from models.ids import hour_period, onboarding_workflow_id, resend_workflow_id
from models.lifecycle import (
    DECISION_NOT_ALLOWED,
    SYSTEM_ACTOR,
    Action,
    ReasonCode,
    RefusalKind,
    Refused,
    Stage,
)
from models.markdown import escape
from models.requests import OnboardingRequest
from models.status import (
    Decision,
    DecisionAnswer,
    EmailKind,
    Hold,
    HoldAnswer,
    Notification,
    OnboardingStatus,
    Resume,
)
from models.workflow_io import (
    OnboardingInput,
    ResendNotificationInput,
    StatusLinkRequested,
    SubmitResult,
)
from settings import Settings
from stores import Stores, reapply, views
from workflows.notifications import NotificationResendWorkflow
from workflows.onboarding import OnboardingWorkflow

# How long a decision's caller waits for it to be applied before answering with the status.
APPLY_WAIT = timedelta(seconds=10)
# How long an admin's resend of a notification waits for the mail server's answer.
RESEND_WAIT = timedelta(seconds=5)
U = TypeVar("U")
Answer = TypeVar("Answer", DecisionAnswer, HoldAnswer)

# `workflow_status` of a status rebuilt from the stores, and why it was.
PAST_RETENTION = "past_retention"
TEMPORAL_UNREACHABLE = "temporal_unreachable"
WORKER_UNAVAILABLE = "worker_unavailable"
# Its personal data is anonymised: the stores' decision record is the answer.
ANONYMISED = "anonymised"


class RequestNotFound(OnboardingError):
    def __init__(self, onboarding_id: str) -> None:
        super().__init__(f"no onboarding request {onboarding_id}")
        self.onboarding_id = onboarding_id


class DecisionFailed(OnboardingError):
    """A decision was accepted but its request failed while applying it."""


class PersonalDataErased(OnboardingError):
    """The request's data key is destroyed: what Temporal keeps of it cannot be read."""


async def submit(
    client: Client,
    request: OnboardingRequest,
    settings: Settings,
    idempotency_key: str | None = None,
) -> SubmitResult:
    """Start a request, or answer with the contact email's request that is still undecided.

    An email with an undecided request in Commerce starts nothing: that request is asked
    to email its status link, and is the answer. Otherwise one Update-with-Start on the
    new request's own workflow, answered once the request is in both stores (or, should
    another submission with the email have been recorded meanwhile, with that one: the
    store decides the race, see `RequestActivities.record_request`). The same
    `idempotency_key` is the same submission: its workflow id and Update id come from
    it, so a caller retrying after a timeout gets the first answer.
    """
    update_id = idempotency_key or uuid.uuid4().hex
    onboarding_id = submission_id(idempotency_key, request.email)
    held_by = await _open_request(client, request.email)
    if (
        held_by is not None
        and held_by != onboarding_id
        and await _ask_for_status_link(client, held_by)
    ):
        return SubmitResult(
            onboarding_id=held_by, workflow_id=onboarding_workflow_id(held_by), duplicate=True
        )
    for attempt in range(2):
        start = WithStartWorkflowOperation(
            OnboardingWorkflow.run,
            OnboardingInput(onboarding_id=onboarding_id, request=request),
            id=onboarding_workflow_id(onboarding_id),
            task_queue=settings.onboarding_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished request's id is never started again.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # Markdown in the Temporal UI: what the requester typed is shown as text. The
            # company only: no personal data where a codec may not be configured.
            static_summary=escape(request.company),
            static_details=(
                f"**Company:** {escape(request.company)}\n\n**Language:** {request.locale}"
            ),
        )
        try:
            return await rpc(
                admitting(
                    client,
                    onboarding_workflow_id(onboarding_id),
                    update_id,
                    client.execute_update_with_start_workflow(
                        OnboardingWorkflow.submit,
                        start_workflow_operation=start,
                        id=update_id,
                        rpc_timeout=ACCEPT_WAIT,
                    ),
                )
            )
        except OnboardingError as err:
            # The start operation keeps the same failure (a cancellation, when the wait
            # ran out); read it, or asyncio logs it as never retrieved, once per call. A
            # payload that could not be encrypted was never sent: the operation has none.
            if not isinstance(err.__cause__, encryption.EncryptionError):
                read = asyncio.ensure_future(start.workflow_handle())
                read.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        except (WorkflowAlreadyStartedError, encryption.RequestErased):
            # A closed workflow has the key's id but not its Update (Temporal answers a
            # key sent again with the Update's kept outcome, so only a workflow started
            # otherwise), or its request's key is destroyed (erased, or a duplicate's
            # short workflow a day on): a submission of its own, under a fresh id.
            if attempt:
                raise
            onboarding_id = submission_id(None, request.email)
    raise AssertionError("unreachable")


async def _open_request(client: Client, email: str) -> str | None:
    """The email's undecided request, read from the Commerce store this client's keys are in."""
    try:
        return await asyncio.to_thread(
            reapply.open_request, codec_of(client).data_keys.engine(), email
        )
    except SQLAlchemyError as err:
        raise TemporalUnavailable(f"Commerce cannot be read: {err.__class__.__name__}") from err


async def _ask_for_status_link(client: Client, onboarding_id: str) -> bool:
    """Ask an open request to email its status link; False if its workflow has ended (an
    operator ended it undecided: a new submission's workflow frees the email)."""
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
    try:
        await rpc(
            handle.signal(
                OnboardingWorkflow.status_link_requested,
                StatusLinkRequested(at=datetime.now(UTC)),
                rpc_timeout=RPC_TIMEOUT,
            )
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def submission_id(idempotency_key: str | None, email: str) -> str:
    """A new request's onboarding id: from the caller's key, so a retry finds the same
    workflow, else random."""
    if idempotency_key is None:
        return uuid.uuid4().hex[:16]
    return hashlib.sha256(f"{idempotency_key}\n{email}".encode()).hexdigest()[:16]


async def decide(
    client: Client,
    onboarding_id: str,
    action: Action,
    actor: str,
    reason: str | None = None,
    decision_id: str | None = None,
    wait: timedelta = APPLY_WAIT,
    reason_code: ReasonCode | None = None,
    note: str | None = None,
) -> DecisionAnswer:
    """Apply a rep's or admin's decision and answer with where the request stands.

    A refused decision raises at once. An accepted one is answered when applied, or
    after `wait` with where it stands so far (`pending_action` names what is still being
    applied, say while the mail server is down and the email is being retried). One
    that no worker has taken up raises NotYetConfirmed: Temporal applies it later.
    """
    decision = Decision(
        action=action, reason=reason, actor=actor, reason_code=reason_code, note=note
    )
    return await _change(
        client,
        onboarding_id,
        OnboardingWorkflow.decide,
        decision,
        action.value,
        decision_id,
        DecisionAnswer,
        wait,
    )


async def hold(
    client: Client, onboarding_id: str, actor: str, note: str, hold_id: str | None = None
) -> HoldAnswer:
    """Put an undecided request on hold: no reminders, no expiry, until it is resumed."""
    return await _change(
        client,
        onboarding_id,
        OnboardingWorkflow.hold,
        Hold(actor=actor, note=note),
        "hold",
        hold_id,
        HoldAnswer,
    )


async def resume(
    client: Client, onboarding_id: str, actor: str, resume_id: str | None = None
) -> HoldAnswer:
    """Take a request off hold: its reminders and expiry clock run again."""
    return await _change(
        client,
        onboarding_id,
        OnboardingWorkflow.resume,
        Resume(actor=actor),
        "resume",
        resume_id,
        HoldAnswer,
    )


async def _change(
    client: Client,
    onboarding_id: str,
    update: UpdateMethodMultiParam[[OnboardingWorkflow, U], Answer],
    change: U,
    what: str,
    update_id: str | None,
    answer: type[Answer],
    wait: timedelta = APPLY_WAIT,
) -> Answer:
    """A change of an undecided request (a decision, a hold) as an Update of its workflow.

    Answered with the Update's own small answer; a request still running an earlier
    build answers with its whole status, which decodes as that answer all the same.
    """
    workflow_id = onboarding_workflow_id(onboarding_id)
    handle = client.get_workflow_handle_for(OnboardingWorkflow.run, workflow_id)
    update_id = update_id or uuid.uuid4().hex
    try:
        started = await rpc(
            admitting(
                client,
                workflow_id,
                update_id,
                handle.start_update(
                    update,
                    change,
                    id=update_id,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    rpc_timeout=ACCEPT_WAIT,
                ),
            )
        )
        # A refused update comes back as a handle whose result raises the refusal.
        applied = await started.result(rpc_timeout=wait)
        # An update only completes on a running workflow.
        return applied.model_copy(update={"workflow_status": "running"})
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        try:
            current = await status(client, onboarding_id)
            return answer.model_validate(current, from_attributes=True)
        except WorkerUnavailable as err:
            # Accepted, so in the workflow's history: it will be applied.
            raise NotYetConfirmed(f"{what} is accepted and not yet applied") from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == DECISION_NOT_ALLOWED:
            raise Refused.of(cause) from err
        reason = cause.message if isinstance(cause, FailureError) else str(err)
        raise DecisionFailed(f"{what} failed: {reason}") from err
    except encryption.RequestErased as err:
        # Its decision cannot even be encrypted: the request is decided, and erased.
        stage = await _stage_kept(handle)
        raise Refused(
            f"{what} is not allowed: the request is {stage.value} and its personal data erased",
            stage,
            RefusalKind.ERASED,
        ) from err
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # Not found is also what a finished workflow answers: name its stage instead.
        current = await status(client, onboarding_id)
        why = f"the request is {current.stage.value}"
        if not current.stage.decided:
            why += f" and its workflow has {current.workflow_status}; an operator must look at it"
        raise Refused(f"{what} is not allowed: {why}", current.stage) from err


async def signal_decision(
    client: Client, onboarding_id: str, action: Action, actor: str, reason: str | None = None
) -> None:
    """Send a decision as a signal: fire-and-forget; a refused one is logged and ignored."""
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
    decision = Decision(action=action, reason=reason, actor=actor)
    try:
        await rpc(
            handle.signal(OnboardingWorkflow.decision_signal, decision, rpc_timeout=RPC_TIMEOUT)
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise RequestNotFound(onboarding_id) from err
        raise


async def resend_notification(
    client: Client,
    settings: Settings,
    input: ResendNotificationInput,
    wait: timedelta = RESEND_WAIT,
) -> Notification:
    """Send a request's failed notification again (its own small workflow, see
    `workflows.notifications`): its outcome, or `sending` while the mail server has not
    answered within `wait` (it goes on being retried).

    One resend of a notification runs at a time: asking again meanwhile meets it, and
    once it is sent, another resend sends nothing.
    """
    handle = await rpc(
        client.start_workflow(
            NotificationResendWorkflow.run,
            input,
            id=resend_workflow_id(input.onboarding_id, input.kind.value, input.period),
            task_queue=settings.onboarding_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Send the {input.kind.event} email again",
            rpc_timeout=RPC_TIMEOUT,
        )
    )
    try:
        async with asyncio.timeout(wait.total_seconds()):
            return await rpc(handle.result())
    except TimeoutError:
        return Notification(kind=input.kind, state="sending")


async def tell_applied_again(
    client: Client, settings: Settings, onboarding_id: str, may_apply_from: datetime | None
) -> None:
    """The email of a decided request applied again: its address (not whoever applied) is
    told what it may do (sign in; apply again from `may_apply_from`), at most once an hour
    (its own small workflow, as a resend)."""
    kind, period = EmailKind.APPLIED_AGAIN, hour_period(datetime.now(UTC))
    await rpc(
        client.start_workflow(
            NotificationResendWorkflow.run,
            ResendNotificationInput(
                onboarding_id=onboarding_id,
                kind=kind,
                period=period,
                actor=SYSTEM_ACTOR,
                may_apply_from=may_apply_from,
            ),
            id=resend_workflow_id(onboarding_id, kind.value, period),
            task_queue=settings.onboarding_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # Once sent, a run again sends nothing: the outbox row of the hour is sent.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Send the {kind.event} email",
            rpc_timeout=RPC_TIMEOUT,
        )
    )


async def current_status(
    temporal: Connection, stores: Stores, onboarding_id: str
) -> OnboardingStatus:
    """Where a request stands, for people and scripts: from Temporal, else the stores.

    Temporal keeps a finished workflow only for the namespace's retention, may be out of
    reach, or have no worker to answer; both stores keep the rows, so a request stays
    readable, with `workflow_status` saying why it was rebuilt from them. A request whose
    personal data is anonymised answers from the stores first: Temporal's copy (a
    workflow still ending, or one whose key is not destroyed yet) must not show it.
    """
    try:
        anonymised = await asyncio.to_thread(views.anonymised, stores, onboarding_id)
    except SQLAlchemyError:
        # Should the stores be down, Temporal's answer stands; an erased request's
        # history can no longer be read there (PersonalDataErased).
        anonymised = False
    if anonymised:
        kept = await asyncio.to_thread(views.request_status, stores, onboarding_id)
        if kept is not None:
            return kept.model_copy(update={"workflow_status": ANONYMISED})
    try:
        return await status(await temporal.get(), onboarding_id)
    except (RequestNotFound, PersonalDataErased) as err:
        missing: OnboardingError = err
        why = PAST_RETENTION if isinstance(err, RequestNotFound) else ANONYMISED
    except WorkerUnavailable as err:
        missing, why = err, WORKER_UNAVAILABLE
    except TemporalUnavailable as err:
        missing, why = err, TEMPORAL_UNREACHABLE
    try:
        kept = await asyncio.to_thread(views.request_status, stores, onboarding_id)
    except SQLAlchemyError as err:
        # The stores cannot say either: Temporal's answer stands.
        raise missing from err
    if kept is None:
        raise missing
    return kept.model_copy(update={"workflow_status": why})


async def status(client: Client, onboarding_id: str) -> OnboardingStatus:
    """Where a request stands in Temporal; a finished request answers from its result."""
    handle = client.get_workflow_handle_for(
        OnboardingWorkflow.run, onboarding_workflow_id(onboarding_id)
    )
    try:
        description = await rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
        if description.status is WorkflowExecutionStatus.COMPLETED:
            current = await rpc(handle.result(rpc_timeout=RPC_TIMEOUT))
            if current.records.prospect_id is None:
                # A duplicate submission's workflow: it answered with the open request
                # and ended; it never was a request.
                raise RequestNotFound(onboarding_id)
        else:
            current = await worker_answer(
                handle.query(OnboardingWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
            )
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise RequestNotFound(onboarding_id) from err
        raise
    except encryption.RequestErased as err:
        raise PersonalDataErased(str(err)) from err
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


async def _stage_kept(handle: WorkflowHandle[Any, Any]) -> Stage:
    """The stage Temporal's search attribute holds (in clear: it needs no key)."""
    description = await rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
    return Stage(description.typed_search_attributes.get(sa.ONBOARDING_STAGE, Stage.REJECTED))
