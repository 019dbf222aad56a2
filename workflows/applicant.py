"""One contact email's applications: at most one undecided onboarding request at a time.

Kept for the requests earlier releases started through it: nothing starts one any more
(a request is one workflow, and its prospect holds the email; see workflows/onboarding.py).
It stays registered on the worker while any runs, each ending when its request is
decided; then this module, and the onboarding workflow's path for its children, can go
(docs/changing-the-workflow.md).

Its workflow id is derived from the email, so Temporal's one-running-workflow-per-id
rule is the lock: concurrent submissions with the same email meet in this workflow's
`submit` Update, and while a request is open every submission answers with it. Once
that request is decided (it signals `decided`) this workflow ends, and the email may
apply again.

Whoever submits with the email of an open request may not be its requester: the request
is asked to email its status link to the address on record, and the answer reveals no
more than that there is one (the web app tells the caller nothing else).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from models import search_attributes as sa
    from models.ids import onboarding_workflow_id
    from models.lifecycle import Stage
    from models.markdown import escape
    from models.workflow_io import (
        ApplicantInput,
        OnboardingInput,
        RequestDecided,
        StatusLinkRequested,
        SubmitInput,
        SubmitResult,
    )
    from workflows.onboarding import OnboardingWorkflow

from temporalio.common import SearchAttributePair, TypedSearchAttributes, VersioningBehavior
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

# Applicants that answered a duplicate before the request emailed its link keep answering
# without it.
STATUS_LINK_PATCH = "status-link-reminder"


# Pinned: only requests of the releases before one workflow per request still run one;
# it changes no more, and goes once they are done.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class ApplicantWorkflow:
    @workflow.init
    def __init__(self, input: ApplicantInput) -> None:
        self._open: SubmitResult | None = None
        self._child: ChildWorkflowHandle | None = None
        self._watchers: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, input: ApplicantInput) -> None:
        """Lives while this email has an undecided request, or a submission is under way."""
        await workflow.wait_condition(
            lambda: self._open is None and workflow.all_handlers_finished()
        )

    @workflow.update
    async def submit(self, input: SubmitInput) -> SubmitResult:
        """Start an onboarding request, or answer with the one still undecided."""
        if self._open is not None:
            # Answer only once that request's workflow exists, so callers can use it.
            await workflow.wait_condition(lambda: self._child is not None or self._open is None)
        if self._open is not None:
            open_request, child = self._open, self._child
            assert child is not None
            if workflow.patched(STATUS_LINK_PATCH):
                await self._ask_for_status_link(child, open_request.onboarding_id)
            return open_request.model_copy(update={"duplicate": True})
        onboarding_id = workflow.uuid4().hex[:16]
        request = input.request
        self._open = SubmitResult(
            onboarding_id=onboarding_id, workflow_id=onboarding_workflow_id(onboarding_id)
        )
        try:
            self._child = await workflow.start_child_workflow(
                OnboardingWorkflow.run,
                OnboardingInput(onboarding_id=onboarding_id, request=request),
                id=self._open.workflow_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.ONBOARDING_ID, onboarding_id),
                        SearchAttributePair(sa.ONBOARDING_STAGE, Stage.SUBMITTED.value),
                        SearchAttributePair(sa.COMPANY_NAME, request.company),
                    ]
                ),
                # Markdown in the Temporal UI: what the requester typed is shown as text.
                static_summary=f"{escape(request.company)}: {escape(request.contact_name)}",
                static_details=(
                    f"**Company:** {escape(request.company)}\n\n"
                    f"**Contact:** {escape(f'{request.contact_name} <{request.email}>')}\n\n"
                    f"**Language:** {request.locale}"
                ),
            )
        except BaseException:
            self._open = None
            raise
        # Should the request end without telling us it is decided (say an operator
        # terminated it), its end frees the email instead.
        watcher = asyncio.create_task(self._release_when_done(self._child, onboarding_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return self._open

    async def _ask_for_status_link(self, child: ChildWorkflowHandle, onboarding_id: str) -> None:
        try:
            await child.signal(
                OnboardingWorkflow.status_link_requested, StatusLinkRequested(at=workflow.now())
            )
        except FailureError as err:
            # Ended meanwhile (decided, or an operator ended it): its own email has the link.
            workflow.logger.warning("Request %s not asked for its link: %s", onboarding_id, err)

    @workflow.signal
    def decided(self, input: RequestDecided) -> None:
        """The open request is decided: the email may apply again."""
        self._release(input.onboarding_id)

    async def _release_when_done(self, child: ChildWorkflowHandle, onboarding_id: str) -> None:
        try:
            await child
        except ChildWorkflowError as err:
            workflow.logger.warning(
                "Onboarding %s ended without a decision: %s", onboarding_id, err
            )
        self._release(onboarding_id)

    def _release(self, onboarding_id: str) -> None:
        if self._open is not None and self._open.onboarding_id == onboarding_id:
            self._open, self._child = None, None
