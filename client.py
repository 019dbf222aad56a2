"""Starts onboarding requests, sends decisions and reads status.

The command line and the web app both call these functions; nothing else talks to
Temporal. Failures a caller must tell apart come out as the exceptions below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NoReturn, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from temporalio import workflow
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeNamespaceRequest,
    PollWorkflowExecutionUpdateRequest,
)
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
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.envconfig import ClientConfig
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

import encryption
import tracing
from models import search_attributes as sa
from models.ids import (
    applicant_workflow_id,
    hour_period,
    onboarding_workflow_id,
    personal_data_workflow_id,
    resend_workflow_id,
    resend_workflows_prefix,
)
from models.lifecycle import (
    DECISION_NOT_ALLOWED,
    SYSTEM_ACTOR,
    Action,
    Change,
    ReasonCode,
    RefusalKind,
    Refused,
    Stage,
    change_allowed,
)
from models.markdown import escape
from models.partners import (
    InviteInput,
    PartnerUserChanged,
    PartnerUserInput,
    RemoveInput,
    SendLinkInput,
    partner_user_workflow_id,
)
from models.personal_data import (
    AnonymisationKind,
    AnonymiseRequestInput,
    ErasedHistory,
    Erasure,
)
from models.requests import STORED, OnboardingRequest
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
    ErasePersonalData,
    OnboardingInput,
    ResendNotificationInput,
    StatusLinkRequested,
    SubmitResult,
)
from settings import Settings
from stores import Stores, data_keys, reapply, views
from stores.engine import make_engine
from stores.personal_data import ERASED, anonymise_request
from workflows.notifications import NotificationResendWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.partner_user import PartnerUserWorkflow


class _StoredJSON(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON, read back under the STORED context (see models.requests)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = type_hint if type_hint is not None else Any
        try:
            adapter = self._type_adapter(hint)
        except TypeError:
            # An unhashable hint, which the adapter cache cannot hold.
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data, context={STORED: True})


class PayloadConverter(CompositePayloadConverter):
    """The SDK's converters, with pydantic's JSON read back under the STORED context, and
    an Update the product did not send refused as it arrives."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _StoredJSON() if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        _refuse_an_update_not_sent_by_the_product(payloads)
        values = super().from_payloads(payloads, type_hints)
        for payload, value in zip(payloads, values, strict=True):
            if encryption.ARRIVED in payload.metadata:
                _remember_arrived_elsewhere(value)
        return values


# Values read from payloads the product did not send (in clear, or through the codec
# endpoint), by identity while each lives: a signal's are read before its workflow runs
# its handler, outside it, so the worker's interceptor asks here (worker.py).
_ARRIVED_ELSEWHERE: dict[int, weakref.ref[Any]] = {}


def _remember_arrived_elsewhere(value: Any) -> None:
    key = id(value)
    with contextlib.suppress(TypeError):  # a str or None: no signal of ours takes one
        _ARRIVED_ELSEWHERE[key] = weakref.ref(value, lambda _: _ARRIVED_ELSEWHERE.pop(key, None))


def arrived_elsewhere(value: Any) -> bool:
    """Whether `value` was read from a payload the product did not send."""
    held = _ARRIVED_ELSEWHERE.get(id(value))
    return held is not None and held() is value


def _refuse_an_update_not_sent_by_the_product(payloads: Sequence[Payload]) -> None:
    """An Update is a person's action through the web app or the command line, which sign
    them in, check their role and encrypt it. One written in clear (the `temporal` CLI
    without the codec) or encrypted by the codec endpoint would skip all that, with any
    actor typed in: the workflow refuses it when it arrives, before its validator. A replay
    reads what its history holds (written in clear before encryption, or accepted since)."""
    if not any(encryption.ARRIVED in payload.metadata for payload in payloads):
        return
    if not workflow.in_workflow() or workflow.current_update_info() is None:
        return
    if workflow.unsafe.is_replaying():
        return
    raise ApplicationError(
        "refused: an Update comes encrypted from the product's web app or command line, not"
        " in clear or through the codec endpoint",
        type=UPDATE_NOT_FROM_THE_PRODUCT,
        non_retryable=True,
    )


def data_converter(
    settings: Settings,
    commerce: Engine | Callable[[], Engine] | None = None,
    codec: encryption.EncryptionCodec | None = None,
) -> DataConverter:
    """How every client and worker of the product talks to Temporal.

    Pydantic's converter, but what comes back from Temporal is not judged again by the
    edge's rules (a workflow started before a rule tightened still replays); every
    payload encrypted (`encryption.py`: `codec`, or one keeping each request's key in
    this Commerce store, the settings' when none is given); failure messages and stack
    traces moved into an encrypted payload too.
    """
    if codec is None:
        codec = encryption.codec(
            settings, commerce or (lambda: _commerce_engine(settings.commerce_database_url))
        )
    return DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


@cache
def _commerce_engine(url: str) -> Engine:
    """Commerce for a client made without the stores (the command line): one per process."""
    return make_engine(url)


# The refusal of an Update that did not come from the product's own clients.
UPDATE_NOT_FROM_THE_PRODUCT = "UPDATE_NOT_FROM_THE_PRODUCT"
RPC_TIMEOUT = timedelta(seconds=10)
# How long a submission or a decision waits for a worker to take it up; past it, the
# answer is "recorded, not yet confirmed".
ACCEPT_WAIT = timedelta(seconds=10)
# A worker answers a status query in milliseconds; a reader should not wait out a
# stopped one for the whole RPC timeout (or the server's "no poller seen").
QUERY_TIMEOUT = timedelta(seconds=3)
# How often a partner user change starts again when it meets that user's workflow ending.
PARTNER_UPDATE_ATTEMPTS = 5
# How long a decision's caller waits for it to be applied before answering with the status.
APPLY_WAIT = timedelta(seconds=10)
# How long an admin's resend of a notification waits for the mail server's answer.
RESEND_WAIT = timedelta(seconds=5)
T = TypeVar("T")
U = TypeVar("U")
Answer = TypeVar("Answer", DecisionAnswer, HoldAnswer)

# `workflow_status` of a status rebuilt from the stores, and why it was.
PAST_RETENTION = "past_retention"
TEMPORAL_UNREACHABLE = "temporal_unreachable"
WORKER_UNAVAILABLE = "worker_unavailable"
# Its personal data is anonymised: the stores' decision record is the answer.
ANONYMISED = "anonymised"


# What the SDK's core says when TLS or the credentials fail, in the words an operator
# acts on.
REFUSALS = (
    (
        "InvalidCertificate",
        "its TLS certificate is not one we trust: check TEMPORAL_TLS_SERVER_CA_CERT_PATH "
        "(and TEMPORAL_TLS_SERVER_NAME)",
    ),
    (
        "CertificateRequired",
        "it wants a client certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH and "
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
    ),
    # A TLS-terminating proxy (nginx) refuses a missing or unknown client certificate
    # with an HTTP 400 where gRPC was expected.
    (
        "400 Bad Request",
        "its frontend refused the connection (HTTP 400), as a proxy refuses a missing or "
        "unknown client certificate: check TEMPORAL_TLS_CLIENT_CERT_PATH and "
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
    ),
    # The same proxy refusing an API key, and a server doing it in gRPC's own words.
    ("401 Unauthorized", "it refuses our credentials (HTTP 401): check TEMPORAL_API_KEY"),
    ("Unauthenticated", "it refuses our credentials: check TEMPORAL_API_KEY"),
)


class OnboardingError(Exception):
    """Base of the errors a caller is expected to handle."""


class RequestNotFound(OnboardingError):
    def __init__(self, onboarding_id: str) -> None:
        super().__init__(f"no onboarding request {onboarding_id}")
        self.onboarding_id = onboarding_id


class TemporalUnavailable(OnboardingError):
    """The Temporal server cannot be reached, refuses us, or did not answer in time."""


class WorkerUnavailable(TemporalUnavailable):
    """Temporal answers, but no worker does: a query, or an Update, waits for one."""


class NotYetConfirmed(OnboardingError):
    """Temporal holds the submission or decision, but it is not applied yet: no worker
    has taken it up, or (a submission) the stores have not taken the request yet.

    Temporal applies it once a worker polls again, or the store is back. Sent again with
    the same key, it attaches to the same Update and answers its outcome once known.
    """


class DecisionFailed(OnboardingError):
    """A decision was accepted but its request failed while applying it."""


class PersonalDataErased(OnboardingError):
    """The request's data key is destroyed: what Temporal keeps of it cannot be read."""


class Connection:
    """A client made on first use and kept, so a caller may start before Temporal does."""

    def __init__(
        self,
        settings: Settings,
        client: Client | None = None,
        codec: encryption.EncryptionCodec | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.codec = codec
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self.client is None:
            async with self._lock:
                if self.client is None:
                    self.client = await connect(self.settings, codec=self.codec)
        return self.client


async def connect(
    settings: Settings,
    commerce: Engine | Callable[[], Engine] | None = None,
    codec: encryption.EncryptionCodec | None = None,
) -> Client:
    """A client for the configured server; TLS and API key come from Temporal's own env vars.

    Its payloads are encrypted (`data_converter`): with `codec`, or keeping the requests'
    data keys in `commerce` (the settings' Commerce store when not given).
    """
    try:
        config = ClientConfig.load_client_connect_config()
    except Exception as err:  # its TOML file, or a file a TEMPORAL_TLS_* variable names
        raise TemporalUnavailable(f"cannot read Temporal's client configuration: {err}") from err
    # TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE win (environment, .env), then a
    # TEMPORAL_PROFILE's, then our defaults.
    if "temporal_address" in settings.model_fields_set or "target_host" not in config:
        config["target_host"] = settings.temporal_address
    if "temporal_namespace" in settings.model_fields_set or "namespace" not in config:
        config["namespace"] = settings.temporal_namespace
    where = f"{config['target_host']}, namespace {config['namespace']!r}"
    try:
        client = await Client.connect(
            **config,
            data_converter=data_converter(settings, commerce, codec),
            plugins=tracing.plugins(),
        )
        # Connecting does not look at the namespace; a wrong one would read as "not found".
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace), timeout=RPC_TIMEOUT
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"no namespace at {where}") from err
        raise TemporalUnavailable(f"Temporal at {where} refuses us: {err.message}") from err
    except Exception as err:
        hint = next((words for said, words in REFUSALS if said in str(err)), None)
        if hint is not None:
            raise TemporalUnavailable(f"Temporal at {where}: {hint}") from err
        raise TemporalUnavailable(f"cannot reach Temporal at {where}: {err}") from err
    return client


def exit_process(code: int) -> NoReturn:
    """End a process that held a client, skipping the interpreter's teardown.

    The SDK's native threads can outlive the event loop and abort the teardown
    (SIGABRT, "PyGILState_Release … must be current"; temporalio/sdk-python#300), so a
    process that ran its cleanup itself sends what its exit handlers would (spans, logs)
    and leaves with `code`.
    """
    tracing.flush()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
            return await _rpc(
                _admitting(
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
        await _rpc(
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
        started = await _rpc(
            _admitting(
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
        await _rpc(
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
    handle = await _rpc(
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
            return await _rpc(handle.result())
    except TimeoutError:
        return Notification(kind=input.kind, state="sending")


async def tell_applied_again(
    client: Client, settings: Settings, onboarding_id: str, may_apply_from: datetime | None
) -> None:
    """The email of a decided request applied again: its address (not whoever applied) is
    told what it may do (sign in; apply again from `may_apply_from`), at most once an hour
    (its own small workflow, as a resend)."""
    kind, period = EmailKind.APPLIED_AGAIN, hour_period(datetime.now(UTC))
    await _rpc(
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
        description = await _rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
        if description.status is WorkflowExecutionStatus.COMPLETED:
            current = await _rpc(handle.result(rpc_timeout=RPC_TIMEOUT))
            if current.records.prospect_id is None:
                # A duplicate submission's workflow: it answered with the open request
                # and ended; it never was a request.
                raise RequestNotFound(onboarding_id)
        else:
            current = await _worker(
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


# --- personal data ----------------------------------------------------------------------

# The request's workflow's Update that erases its personal data (ErasePersonalData).
ERASE_UPDATE = "erase"
# How long an erasure waits for a running request's workflow to end after that Update.
CLOSE_WAIT = timedelta(seconds=30)
# Data keys the worker's sweep looks at each round.
SHRED_BATCH = 100


async def erase_personal_data(
    client: Client, stores: Stores, onboarding_id: str, actor: str, reason: str
) -> Erasure:
    """Erase a decided request's personal data, on a Commerce admin's word.

    Both stores are anonymised (`stores.personal_data`: the decision record stays, with
    who erased it, when and why), and then Temporal's copy is made unreadable: the
    request's data key is destroyed, or, for a request whose history began before data
    keys, its closed workflow is deleted. A closed workflow's stores are anonymised here;
    a running one (a rejected request waiting out its retention) does it itself, by its
    `erase` Update, and ends; its key goes once it has. Erasing again changes nothing.
    """
    erase = ErasePersonalData(actor=actor, reason=reason)
    kept = await asyncio.to_thread(views.request_status, stores, onboarding_id)
    if kept is None:
        raise RequestNotFound(onboarding_id)
    if not change_allowed(Change.ERASE, kept.stage):
        raise Refused(
            f"erasure is not allowed while the request is {kept.stage.value}: it is undecided",
            kept.stage,
        )
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
    if await _running(handle):
        try:
            await _rpc(handle.execute_update(ERASE_UPDATE, erase, rpc_timeout=RPC_TIMEOUT))
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            why = cause.message if isinstance(cause, FailureError) else str(err)
            kind = RefusalKind.STAGE
            if isinstance(cause, ApplicationError) and cause.type == DECISION_NOT_ALLOWED:
                kind = Refused.of(cause).kind
            raise Refused(
                f"erasure is not possible yet: the request's workflow is still running and"
                f" refused it ({why}); try again once it has ended",
                kept.stage,
                kind,
            ) from err
        closed = await _until_closed(handle, CLOSE_WAIT)
        done = await asyncio.to_thread(views.anonymisation, stores, onboarding_id)
        if done is None:
            raise DecisionFailed(f"the erasure of request {onboarding_id} left no record")
    else:
        done = await asyncio.to_thread(
            anonymise_request,
            stores,
            AnonymiseRequestInput(
                onboarding_id=onboarding_id,
                at=datetime.now(UTC),
                actor=erase.actor,
                reason=erase.reason,
                kind=AnonymisationKind.ERASURE,
            ),
        )
        closed = True
    await _end_retention(client, onboarding_id)
    history = await _shred(client, onboarding_id) if closed else "pending"
    await _shred_duplicates(client, onboarding_id)
    await _forget_person(client, onboarding_id, kept.email)
    return Erasure(**done.model_dump(), history=history)


async def _shred_duplicates(client: Client, onboarding_id: str) -> None:
    """The duplicate submissions that met the request kept what they were typed with under
    keys of their own: those go too (one still running is left to the sweep)."""
    keys = codec_of(client).data_keys
    for duplicate in await asyncio.to_thread(data_keys.duplicates_of, keys.engine(), onboarding_id):
        if not await _running(client.get_workflow_handle(onboarding_workflow_id(duplicate))):
            await _shred(client, duplicate)


async def _forget_person(client: Client, onboarding_id: str, email: str) -> None:
    """Delete every run of the workflows under a master key (which no erasure destroys)
    that may hold the person's data: their partner user workflow (running or not), an
    earlier release's applicant workflow, and the request's resends (a mail server's
    refusal may quote the address)."""
    runs = await _runs(client, f"WorkflowId STARTS_WITH '{resend_workflows_prefix(onboarding_id)}'")
    if email and email != ERASED:
        for workflow_id in (partner_user_workflow_id(email), applicant_workflow_id(email)):
            if await _exists(client.get_workflow_handle(workflow_id)):
                runs.add((workflow_id, ""))
            runs |= await _runs(client, f"WorkflowId = '{workflow_id}'")
    for workflow_id, run_id in runs:
        try:
            await _rpc(
                client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=client.namespace,
                        workflow_execution=WorkflowExecution(
                            workflow_id=workflow_id, run_id=run_id
                        ),
                    ),
                    timeout=RPC_TIMEOUT,
                )
            )
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise


async def _runs(client: Client, query: str) -> set[tuple[str, str]]:
    """The runs visibility lists for `query`, as (workflow id, run id); none from a server
    without visibility (the time-skipping test server: the current run is described)."""
    runs = set()
    try:
        async for execution in client.list_workflows(query, rpc_timeout=RPC_TIMEOUT):
            runs.add((execution.id, execution.run_id))
    except RPCError as err:
        if err.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
    return runs


async def _end_retention(client: Client, onboarding_id: str) -> None:
    """A rejected request's retention has nothing left to anonymise once it is erased."""
    handle = client.get_workflow_handle(personal_data_workflow_id(onboarding_id))
    if await _running(handle):
        with contextlib.suppress(RPCError):
            await _rpc(handle.cancel(rpc_timeout=RPC_TIMEOUT))


async def shred_keys(client: Client) -> int:
    """Destroy the data keys that may go, now that their workflows have closed: requests
    anonymised while their workflow ran (retention, or an erasure that did not wait for
    its end), and a day on, workflows that never became a request (a duplicate
    submission's). The worker runs it every few minutes; answers how many went."""
    keys = codec_of(client).data_keys
    orphaned_before = datetime.now(UTC) - data_keys.ORPHAN_GRACE
    candidates = await asyncio.to_thread(
        data_keys.to_shred, keys.engine(), orphaned_before, SHRED_BATCH
    )
    shredded = 0
    for onboarding_id in candidates:
        handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
        if not await _running(handle):
            await _shred(client, onboarding_id)
            shredded += 1
    return shredded


def codec_of(client: Client) -> encryption.EncryptionCodec:
    codec = client.data_converter.payload_codec
    if not isinstance(codec, encryption.EncryptionCodec):
        raise TypeError("this client does not encrypt its payloads (see client.data_converter)")
    return codec


async def _stage_kept(handle: WorkflowHandle[Any, Any]) -> Stage:
    """The stage Temporal's search attribute holds (in clear: it needs no key)."""
    description = await _rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
    return Stage(description.typed_search_attributes.get(sa.ONBOARDING_STAGE, Stage.REJECTED))


async def _exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await _rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        description = await _rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status is WorkflowExecutionStatus.RUNNING


async def _until_closed(handle: WorkflowHandle[Any, Any], wait: timedelta) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait.total_seconds()
    delay = 0.05
    while await _running(handle):
        if loop.time() + delay > deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    return True


async def _shred(client: Client, onboarding_id: str) -> ErasedHistory:
    """Make a closed request's history unreadable: destroy its data key, or, when its
    history began in clear (before data keys), delete the workflow from Temporal."""
    keys = codec_of(client).data_keys
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))
    try:
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=RPC_TIMEOUT):
            started = event.workflow_execution_started_event_attributes.input.payloads
            break
        else:
            started = None
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"Temporal did not answer: {err.message}") from err
        started = None
    key_id = encryption.REQUEST_KEY + onboarding_id
    if started is None:
        # Past the namespace's retention: Temporal keeps nothing of it.
        await asyncio.to_thread(keys.destroy, onboarding_id)
        return "history_gone"
    if all(payload.metadata.get(encryption.KEY_ID) == key_id.encode() for payload in started):
        await asyncio.to_thread(keys.destroy, onboarding_id)
        return "key_destroyed"
    await _rpc(
        client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
            ),
            timeout=RPC_TIMEOUT,
        )
    )
    await asyncio.to_thread(keys.destroy, onboarding_id)
    return "history_deleted"


async def _worker(call: Awaitable[T]) -> T:
    """Await what only a worker answers (a query), once Temporal itself has answered."""
    try:
        # The SDK retries a query the server timed out, each try with a fresh timeout:
        # bound them all.
        async with asyncio.timeout(QUERY_TIMEOUT.total_seconds()):
            return await call
    except TimeoutError as err:
        raise WorkerUnavailable("no worker answers in time") from err
    except RPCError as err:
        # Its own timeout comes back as CANCELLED; a worker long gone, as the server's
        # "no poller seen for task queue recently".
        if err.status in (
            RPCStatusCode.CANCELLED,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.FAILED_PRECONDITION,
        ):
            raise WorkerUnavailable(f"no worker answers: {err.message}") from err
        raise


async def _admitting(client: Client, workflow_id: str, update_id: str, call: Awaitable[T]) -> T:
    """Await an Update's start; if no worker takes it up in time, ask whether Temporal holds it.

    Temporal admits an Update and waits for a worker; the call's timeout ends the wait,
    not the Update, which is applied once a worker polls. So the answer is then
    "not yet confirmed", and the same Update id, sent again, attaches to it.
    """
    try:
        # The SDK asks again while the server answers "admitted", each time with a
        # fresh timeout: bound the whole wait.
        async with asyncio.timeout(ACCEPT_WAIT.total_seconds()):
            return await call
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as err:
        held = PollWorkflowExecutionUpdateRequest(
            namespace=client.namespace,
            update_ref=UpdateRef(
                workflow_execution=WorkflowExecution(workflow_id=workflow_id), update_id=update_id
            ),
            identity=client.identity,
            # Answered at once: the Update is known to Temporal, or it is not.
            wait_policy=WaitPolicy(
                lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
            ),
        )
        try:
            await client.workflow_service.poll_workflow_execution_update(
                held, timeout=QUERY_TIMEOUT
            )
        except RPCError:
            raise TemporalUnavailable(
                "Temporal did not answer in time; is the worker running?"
            ) from err
        raise NotYetConfirmed(
            "recorded, and not yet confirmed: no worker has applied it yet"
        ) from err


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
    except encryption.KeyStoreUnavailable as err:
        # The request's payloads cannot be encrypted or read without its key.
        raise TemporalUnavailable(str(err)) from err


# --- the partner's users ---------------------------------------------------------------


class PartnerUserRefused(OnboardingError):
    """A change to a partner user the rules refuse; `type` names the rule."""

    def __init__(self, message: str, type: str) -> None:
        super().__init__(message)
        self.type = type


# Refusals that come back from the partner user workflow's activities, by `type`.
PARTNER_REFUSALS = frozenset(
    {"AlreadyPartnerUser", "LastAdministrator", "PartnerUserRemoved", "NoSuchPartnerUser"}
)


async def invite_partner_user(
    client: Client, settings: Settings, invite: InviteInput, request_id: str | None = None
) -> PartnerUserChanged:
    """Add a user to the partner's hierarchy and email their invitation.

    The same `request_id` (a form's id, an Idempotency-Key) is the same invitation: a
    caller retrying after a timeout gets its outcome instead of a second email.
    """
    return await _partner_update(
        client, settings, invite.user.email, PartnerUserWorkflow.invite, invite, request_id
    )


async def partner_update_known(client: Client, email: str, request_id: str) -> bool:
    """Whether Temporal holds the Update `request_id` in the user's latest workflow run:
    then sending it again answers its outcome and sends nothing. A removal or an expired
    link ends that run; the same id sent later to a new run is a new change."""
    known = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=partner_user_workflow_id(email)),
            update_id=request_id,
        ),
        identity=client.identity,
        # Answered at once: the Update is known to Temporal, or it is not.
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    try:
        await _rpc(
            client.workflow_service.poll_workflow_execution_update(known, timeout=QUERY_TIMEOUT)
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def send_partner_link(
    client: Client, settings: Settings, email: str, request: SendLinkInput
) -> PartnerUserChanged:
    """Email a user a fresh link (activation, invitation, password reset)."""
    return await _partner_update(client, settings, email, PartnerUserWorkflow.send_link, request)


async def remove_partner_user(
    client: Client, settings: Settings, email: str, request: RemoveInput
) -> PartnerUserChanged:
    """Unlink a user from the partner's hierarchy; their sign-in ends at once."""
    return await _partner_update(client, settings, email, PartnerUserWorkflow.remove, request)


async def partner_link_used(client: Client, email: str) -> None:
    """Tell the user's workflow its link was used; should this fail, its timer finds out."""
    handle = client.get_workflow_handle(partner_user_workflow_id(email))
    with contextlib.suppress(RPCError, TemporalUnavailable):
        await _rpc(handle.signal(PartnerUserWorkflow.link_used, rpc_timeout=RPC_TIMEOUT))


async def _partner_update(
    client: Client,
    settings: Settings,
    email: str,
    update: UpdateMethodMultiParam[[PartnerUserWorkflow, U], PartnerUserChanged],
    arg: U,
    request_id: str | None = None,
) -> PartnerUserChanged:
    """One change to a partner user, as an Update of their workflow (started if need be).

    Like a submission: if no worker takes it up in time, Temporal holds it and applies
    it once one does (NotYetConfirmed); the same `request_id` sent again attaches to it.
    """
    workflow_id = partner_user_workflow_id(email)
    update_id = request_id or uuid.uuid4().hex
    # The user's workflow may be ending (its link just expired or was used) as we
    # arrive; a fresh attempt then starts a new run.
    delay = 0.02
    for attempt in range(1, PARTNER_UPDATE_ATTEMPTS + 1):
        # One operation per attempt: an operation is spent by its call.
        start = WithStartWorkflowOperation(
            PartnerUserWorkflow.run,
            PartnerUserInput(email=email),
            id=workflow_id,
            task_queue=settings.onboarding_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="Partner user: sign-in links and changes",
        )
        try:
            return await _rpc(
                _admitting(
                    client,
                    workflow_id,
                    update_id,
                    client.execute_update_with_start_workflow(
                        update,
                        arg,
                        start_workflow_operation=start,
                        id=update_id,
                        rpc_timeout=ACCEPT_WAIT,
                    ),
                )
            )
        except OnboardingError:
            # The start operation keeps the same failure; read it, or asyncio logs it as
            # never retrieved (as in `submit`).
            read = asyncio.ensure_future(start.workflow_handle())
            read.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        except WorkflowUpdateFailedError as err:
            refusal = _refusal(err)
            if refusal is not None:
                raise PartnerUserRefused(refusal.message, refusal.type or "") from err
            if attempt == PARTNER_UPDATE_ATTEMPTS:
                raise
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND or attempt == PARTNER_UPDATE_ATTEMPTS:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


def _refusal(err: BaseException) -> ApplicationError | None:
    """The rule that refused a partner user change, wherever it is in the failure's causes."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type in PARTNER_REFUSALS:
            return cause
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None
