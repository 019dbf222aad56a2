"""Erasure: a decided request's personal data made unreadable in both stores and in
Temporal (its data key destroyed, or its history deleted), and the sweep that destroys
the keys that may go.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from client.connection import RPC_TIMEOUT, TemporalUnavailable, rpc
from client.converter import codec_of
from client.requests import DecisionFailed, RequestNotFound
from infra import encryption
from models.ids import (
    applicant_workflow_id,
    onboarding_workflow_id,
    personal_data_workflow_id,
    resend_workflows_prefix,
)
from models.lifecycle import DECISION_NOT_ALLOWED, Change, RefusalKind, Refused, change_allowed
from models.partners import partner_user_workflow_id
from models.personal_data import AnonymisationKind, AnonymiseRequestInput, ErasedHistory, Erasure
from models.workflow_io import ErasePersonalData
from stores import Stores, data_keys, views
from stores.personal_data import ERASED, anonymise_request

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
            await rpc(handle.execute_update(ERASE_UPDATE, erase, rpc_timeout=RPC_TIMEOUT))
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
            await rpc(
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
            await rpc(handle.cancel(rpc_timeout=RPC_TIMEOUT))


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


async def _exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        description = await rpc(handle.describe(rpc_timeout=RPC_TIMEOUT))
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
    await rpc(
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
