"""The partner's users: invitations, sign-in links and removals, each an Update of the
user's own workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from client.connection import (
    ACCEPT_WAIT,
    QUERY_TIMEOUT,
    RPC_TIMEOUT,
    OnboardingError,
    TemporalUnavailable,
    admitting,
    rpc,
)
from models.partners import (
    InviteInput,
    PartnerUserChanged,
    PartnerUserInput,
    RemoveInput,
    SendLinkInput,
    partner_user_workflow_id,
)
from settings import Settings
from workflows.partner_user import PartnerUserWorkflow

# How often a partner user change starts again when it meets that user's workflow ending.
PARTNER_UPDATE_ATTEMPTS = 5
U = TypeVar("U")


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
        await rpc(
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
        await rpc(handle.signal(PartnerUserWorkflow.link_used, rpc_timeout=RPC_TIMEOUT))


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
            return await rpc(
                admitting(
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
            # never retrieved (as in `requests.submit`).
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
