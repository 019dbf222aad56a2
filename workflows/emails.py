"""A request's emails: each sent beside the process, followed until sent or failed for good.

Kept out of the workflow's process the way samples-python's `UpdatableTimer` keeps its
timer out of `run`: the workflow asks for an email and gets the `Notification` that the
email's outcome lands on (its outbox record's Message-ID row, or why it failed), and is
told of each outcome. It ends only once `all_settled()`; an erasure `stop()`s the emails
still being sent.

Each email's first attempt is a local activity, run in the workflow task that asks for
it (the step's, after its store write): the mail server takes most emails at once, and
then the email costs the server no activity task and no workflow task of its own. An
attempt that fails for a reason worth waiting out (the server down, slow, or saying try
later) hands the email to a regular activity with the usual retries and heartbeat, so an
outage holds no workflow task and shows as "sending" on the request; one refused for good
(a 5xx, a bad address) is failed at once, as before. Both attempts are the same activity
on the same outbox row and Message-ID, so the hand-over sends nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from models.activity_io import SendEmailInput, TeamReminderInput
    from models.lifecycle import ReasonCode
    from models.requests import OnboardingRequest
    from models.status import EmailKind, Notification
    from workflows.options import EMAIL_OPTIONS, FIRST_EMAIL_ATTEMPT

# An email's activity: a method of EmailActivities that answers with the outbox row id.
Send = Callable[[Any, Any], Awaitable[int]]
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
            EmailActivities.send_onboarding_email,
            SendEmailInput(
                onboarding_id=self._onboarding_id,
                kind=kind,
                request=self._request,
                reason=reason,
                period=period,
                reason_code=reason_code,
            ),
            f"Email: send {kind.event} to the requester",
        )

    def to_team(self, reminder: TeamReminderInput) -> Notification:
        """Remind the team whose move it is that the request waits on them."""
        return self._follow(
            EmailKind.TEAM_REMINDER,
            EmailActivities.send_team_reminder,
            reminder,
            f"Email: remind the team ({reminder.stage.value})",
        )

    def stop(self) -> None:
        """Stop every email still being sent: the requester's personal data is erased."""
        self._stop = True
        for sending in list(self._sending):
            sending.cancel()

    def all_settled(self) -> bool:
        return not self._following

    def _follow(self, kind: EmailKind, send: Send, arg: Any, summary: str) -> Notification:
        note = Notification(kind=kind)
        following = asyncio.create_task(self._outcome(note, send, arg, summary))
        self._following.add(following)
        following.add_done_callback(self._following.discard)
        return note

    async def _outcome(
        self,
        note: Notification,
        send: Send,
        arg: Any,
        summary: str,
    ) -> None:
        try:
            note.email_message_id = await self._sent(send, arg, summary)
        except FailureError as err:
            if self._stop:
                note.state, note.error = "failed", ERASED
                self._stopped()
                return
            cause = _cause(err).message
            workflow.logger.error("The %s email was not sent: %s", note.kind.event, cause)
            note.state, note.error = "failed", cause
        else:
            note.state = "sent"
        await self._settled(note)

    async def _sent(self, send: Send, arg: Any, summary: str) -> int:
        """The email's outbox row id once sent: first in this workflow task, then, should
        that attempt fail for a reason worth waiting out, as a regular activity."""
        try:
            return await self._sending_by(
                workflow.start_local_activity_method(
                    send, arg, summary=summary, **FIRST_EMAIL_ATTEMPT
                )
            )
        except FailureError as err:
            cause = _cause(err)
            if self._stop or (isinstance(cause, ApplicationError) and cause.non_retryable):
                raise
        return await self._sending_by(
            workflow.start_activity_method(send, arg, summary=summary, **EMAIL_OPTIONS)
        )

    async def _sending_by(self, sending: workflow.ActivityHandle[int]) -> int:
        """Await one attempt, which `stop()` cancels while it runs."""
        self._sending.add(sending)
        try:
            return await sending
        finally:
            self._sending.discard(sending)


def _cause(err: FailureError) -> FailureError:
    """Why an attempt failed: a regular activity's failure wraps it, a local one's is it."""
    if isinstance(err, ActivityError) and isinstance(err.cause, FailureError):
        return err.cause
    return err
