"""A request's emails: each sent beside the process, followed until sent or failed for good.

Kept out of the workflow's process the way samples-python's `UpdatableTimer` keeps its
timer out of `run`: the workflow asks for an email and gets the `Notification` that the
email's outcome lands on (its outbox record's Message-ID row, or why it failed), and is
told of each outcome. It ends only once `all_settled()`; an erasure `stop()`s the emails
still being sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from models.activity_io import SendEmailInput, TeamReminderInput
    from models.lifecycle import ReasonCode
    from models.requests import OnboardingRequest
    from models.status import EmailKind, Notification
    from workflows.options import EMAIL_OPTIONS

# What a stopped email says of itself.
ERASED = "not sent: the personal data was erased"


class RequestEmails:
    def __init__(
        self,
        onboarding_id: str,
        request: OnboardingRequest,
        settled: Callable[[Notification], Awaitable[None]],
        stopped: Callable[[], None],
    ) -> None:
        self._onboarding_id = onboarding_id
        self._request = request
        # Told of each email's outcome (sent or failed), and of each one stopped.
        self._settled = settled
        self._stopped = stopped
        self._following: set[asyncio.Task[None]] = set()
        self._sending: set[workflow.ActivityHandle[int]] = set()
        self._stop = False

    def to_requester(
        self,
        kind: EmailKind,
        reason: str | None = None,
        period: str = "",
        reason_code: ReasonCode | None = None,
    ) -> Notification:
        """Start one email to the requester."""
        return self._follow(
            kind,
            workflow.start_activity_method(
                EmailActivities.send_onboarding_email,
                SendEmailInput(
                    onboarding_id=self._onboarding_id,
                    kind=kind,
                    request=self._request,
                    reason=reason,
                    period=period,
                    reason_code=reason_code,
                ),
                summary=f"Email: send {kind.event} to the requester",
                **EMAIL_OPTIONS,
            ),
        )

    def to_team(self, reminder: TeamReminderInput) -> Notification:
        """Remind the team whose move it is that the request waits on them."""
        return self._follow(
            EmailKind.TEAM_REMINDER,
            workflow.start_activity_method(
                EmailActivities.send_team_reminder,
                reminder,
                summary=f"Email: remind the team ({reminder.stage.value})",
                **EMAIL_OPTIONS,
            ),
        )

    def stop(self) -> None:
        """Stop every email still being sent: the requester's personal data is erased."""
        self._stop = True
        for sending in list(self._sending):
            sending.cancel()

    def all_settled(self) -> bool:
        return not self._following

    def _follow(self, kind: EmailKind, sending: workflow.ActivityHandle[int]) -> Notification:
        note = Notification(kind=kind)
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        following = asyncio.create_task(self._outcome(note, sending))
        self._following.add(following)
        following.add_done_callback(self._following.discard)
        return note

    async def _outcome(self, note: Notification, sending: workflow.ActivityHandle[int]) -> None:
        try:
            note.email_message_id = await sending
        except ActivityError as err:
            if self._stop:
                note.state, note.error = "failed", ERASED
                self._stopped()
                return
            cause = err.cause.message if isinstance(err.cause, FailureError) else str(err)
            workflow.logger.error("The %s email was not sent: %s", note.kind.event, cause)
            note.state, note.error = "failed", cause
        else:
            note.state = "sent"
        await self._settled(note)
