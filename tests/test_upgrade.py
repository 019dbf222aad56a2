"""Requests started by the first release's code complete after the deploy.

The worker that starts them runs the workflows with their patches off: it issues the
commands the code before them issued, which the `v1` histories prove (recorded by that
code, they replay against today's in test_replay), and they are submitted as that code
submitted them, through the email's applicant workflow. The requests then move to a
worker with today's code, as they do across a deploy: that worker replays their
histories to where they stand, keeps them on the path they took (no received email was
ever due), and takes them to the end. A submission after the deploy with the email of
one of them meets it in the store and answers with it, as a duplicate did before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import PatchActivationInput

from client.connection import WorkerUnavailable
from client.requests import decide, hold, resume, status, submit, wait_until_recorded
from models.ids import applicant_workflow_id, email_key
from models.lifecycle import Action, ReasonCode, Stage
from models.status import EmailKind, OnboardingStatus
from models.workflow_io import ApplicantInput, SubmitInput
from settings import Settings
from stores import Stores, accounts
from tests.conftest import MailSink
from tests.scenario import a_request, decided, finished, submitted
from tests.test_replay import markers
from worker import build_worker
from workflows.applicant import ApplicantWorkflow
from workflows.onboarding import (
    FEWER_EVENTS_PATCH,
    ONE_WORKFLOW_PATCH,
    PARTNER_ACCOUNT_PATCH,
    PERSONAL_DATA_PATCH,
    REQUEST_TIME_PATCH,
)


async def submit_as_before(client: Client, settings: Settings, email: str | None = None) -> str:
    """What `client.submit` did before one workflow per request: an Update-with-Start
    on the email's applicant workflow, which starts the request as its child."""
    request = a_request(**({"email": email} if email else {}))
    result = await client.execute_update_with_start_workflow(
        ApplicantWorkflow.submit,
        SubmitInput(request=request),
        start_workflow_operation=WithStartWorkflowOperation(
            ApplicantWorkflow.run,
            ApplicantInput(applicant_key=email_key(request.email)),
            id=applicant_workflow_id(request.email),
            task_queue=settings.onboarding_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ),
    )
    return result.onboarding_id


async def test_requests_open_across_the_deploy_complete_on_the_new_code(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    mail_sink: MailSink,
) -> None:
    opened: list[OnboardingStatus] = []
    async with build_worker(client, settings, stores, activity_executor, patches=lambda _: False):
        for _ in range(2):
            oid = await submit_as_before(client, settings)
            opened.append(await wait_until_recorded(client, oid))
        quiet, asked = opened
        # Answered as before the change: no link emailed, nothing new in any history.
        assert await submit_as_before(client, settings, email=asked.email) == asked.onboarding_id
    for request in opened:
        assert request.stage is Stage.LEAD_OPEN
        recorded = (await client.get_workflow_handle(request.workflow_id).fetch_history()).to_json()
        assert [m for m in markers(recorded) if m.startswith("patch:")] == []

    async with build_worker(client, settings, stores, activity_executor):
        for request in opened:
            # A new submission's workflow meets the old request's prospect, which holds
            # the email, and asks it for its link.
            again = await submit(client, a_request(email=request.email), settings)
            assert again.duplicate and again.onboarding_id == request.onboarding_id
            oid = request.onboarding_id
            await decide(client, oid, Action.QUALIFY, actor="rep:after")
            won = await decide(client, oid, Action.WON, actor="rep:after")
            assert (await finished(client, won)).stage is Stage.APPROVED
        # Decided, each request told its applicant, which ended.
        for request in opened:
            applicant = client.get_workflow_handle(applicant_workflow_id(request.email))
            await applicant.result()
        # And the email may apply again: a request of its own.
        fresh = await submit(client, a_request(email=quiet.email), settings)
        assert not fresh.duplicate and fresh.onboarding_id != quiet.onboarding_id

    emails = {
        request.onboarding_id: sorted(
            message["X-Onboarding-Event"] for message in mail_sink.messages(request.onboarding_id)
        )
        for request in opened
    }
    # The duplicates after the deploy had the link emailed; the one before, answered by
    # the old code, did not.
    reminded = sorted([EmailKind.PROSPECT_APPROVED.event, EmailKind.STATUS_LINK_REMINDER.event])
    assert emails == {quiet.onboarding_id: reminded, asked.onboarding_id: reminded}
    for request in opened:
        current = await status(client, request.onboarding_id)
        assert current.received_notification is None
        assert current.notification is not None and current.notification.state == "sent"
        # Approved on the new code, the administrator gets an account and the approval
        # email its activation link; the link expires by its date in the store, as no
        # partner user workflow was started for a request older than that patch.
        account = accounts.partner_account_by_email(stores.commerce, request.email)
        assert account is not None and account.state == "invited"
        assert account.pending_link_expires_at is not None
        history = await client.get_workflow_handle(request.workflow_id).fetch_history()
        assert f"patch:{PARTNER_ACCOUNT_PATCH}" not in markers(history.to_json())


async def until_answered(ask: Callable[[], Awaitable[OnboardingStatus]]) -> OnboardingStatus:
    for _ in range(5):
        try:
            return await ask()
        except WorkerUnavailable:
            continue
    return await ask()


async def test_requests_open_before_request_time_carry_on_without_a_clock(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    mail_sink: MailSink,
) -> None:
    """Started by the one-workflow release (no `request-time` patch), a request keeps
    waiting without reminders or expiry on today's code, may be held, and takes reason
    codes like any other."""

    def before_request_time(patch: PatchActivationInput) -> bool:
        return patch.patch_id not in (FEWER_EVENTS_PATCH, REQUEST_TIME_PATCH, PERSONAL_DATA_PATCH)

    quick = settings.model_copy(
        update={"remind_after": timedelta(seconds=1), "expire_after": timedelta(seconds=2)}
    )
    async with build_worker(client, quick, stores, activity_executor, patches=before_request_time):
        old = await submitted(client, quick)
    assert old.next_reminder_at is None and old.expires_at is None

    async with build_worker(client, quick, stores, activity_executor):
        # The first query may wait out the stopped worker's sticky queue (its task goes
        # there first): asked again until the new worker answers.
        current = await until_answered(lambda: status(client, old.onboarding_id))
        assert current.stage is Stage.LEAD_OPEN and current.reminders == []
        held = await hold(client, old.onboarding_id, "rep:after", "Waiting for a document")
        assert held.held is not None and held.expires_at is None
        await resume(client, old.onboarding_id, "rep:after")
        cancelled = await decided(
            client,
            old.onboarding_id,
            Action.CANCEL,
            "rep:after",
            reason_code=ReasonCode.NO_LONGER_INTERESTED,
        )
        assert cancelled.reason_code is ReasonCode.NO_LONGER_INTERESTED
        await finished(client, cancelled)
    history = (await client.get_workflow_handle(old.workflow_id).fetch_history()).to_json()
    assert [m for m in markers(history) if m.startswith("patch:")] == [
        f"patch:{ONE_WORKFLOW_PATCH}"
    ]
    # No clock was ever set, under either worker: the history says so, where waiting past
    # the new settings' reminder and expiry proves nothing on a machine too busy to run it.
    assert "timerStartedEventAttributes" not in history
    assert EmailKind.TEAM_REMINDER.event not in {
        m["X-Onboarding-Event"] for m in mail_sink.messages(old.onboarding_id)
    }
