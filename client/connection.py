"""The connection to Temporal, and how a call to it fails.

Failures a caller must tell apart come out as the exceptions below, whichever call
met them; `rpc`, `admitting` and `worker_answer` turn the SDK's into them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import NoReturn, TypeVar

from sqlalchemy import Engine
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    PollWorkflowExecutionUpdateRequest,
)
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from client.converter import data_converter
from infra import encryption, tracing
from settings import Settings

RPC_TIMEOUT = timedelta(seconds=10)
# How long a submission or a decision waits for a worker to take it up; past it, the
# answer is "recorded, not yet confirmed".
ACCEPT_WAIT = timedelta(seconds=10)
# A worker answers a status query in milliseconds; a reader should not wait out a
# stopped one for the whole RPC timeout (or the server's "no poller seen").
QUERY_TIMEOUT = timedelta(seconds=3)
T = TypeVar("T")


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


async def worker_answer(call: Awaitable[T]) -> T:
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


async def admitting(client: Client, workflow_id: str, update_id: str, call: Awaitable[T]) -> T:
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


async def rpc(call: Awaitable[T]) -> T:
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
