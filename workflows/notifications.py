"""A request's failed notification, sent again at a Commerce admin's asking.

The request's own workflow gives each notification its attempts and ends once every one
is sent or refused for good, so a refused email has no workflow left to ask. This one
is started for the resend, `notification-<onboarding_id>-<kind>[-<period>]`, runs the
same email activity on the same notification (its outbox row, its Message-ID: the email
is still sent at most once, and a double click meets the running workflow), retried
like the first until the mail server takes it or refuses it for good, and ends.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from models.markdown import escape
    from models.status import Notification
    from models.workflow_io import ResendNotificationInput
    from workflows.options import EMAIL_OPTIONS


# Pinned: it lives for one email's sending, minutes at most.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class NotificationResendWorkflow:
    @workflow.run
    async def run(self, input: ResendNotificationInput) -> Notification:
        event = input.kind.event
        workflow.set_current_details(
            f"Sending the {event} email of request {input.onboarding_id} again, as "
            f"{escape(input.actor)} asked (retried until the mail server takes it)."
        )
        try:
            sent = await workflow.execute_activity_method(
                EmailActivities.resend_onboarding_email,
                input,
                summary=f"Email: send {event} to the requester again",
                **EMAIL_OPTIONS,
            )
        except ActivityError as err:
            reason = err.cause.message if isinstance(err.cause, FailureError) else str(err)
            workflow.set_current_details(f"The {event} email was **not sent**: {escape(reason)}")
            return Notification(kind=input.kind, state="failed", error=reason)
        workflow.set_current_details(f"The {event} email is sent.")
        return Notification(kind=input.kind, state="sent", email_message_id=sent)
