"""What an admin reads of a request in the Temporal UI: its search attributes and current
details.

Kept out of the workflow's process, as its clocks and emails are: the workflow says when
the request enters a stage, and shows each change of its status.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from models import search_attributes as sa
    from models.lifecycle import STAGES, Stage
    from models.markdown import escape
    from models.status import OnboardingStatus

NOTIFICATION = {
    "sending": "Sending the {event} email (retried until the mail server takes it).",
    "sent": "The {event} email is sent.",
    "failed": "The {event} email was **not sent**: {error}",
}


class RequestVisibility:
    def __init__(self, onboarding_id: str, company: str) -> None:
        self._ids: list[SearchAttributeUpdate[Any]] = [
            sa.ONBOARDING_ID.value_set(onboarding_id),
            sa.COMPANY_NAME.value_set(company),
        ]
        # Each filterable value is upserted once per change, the ids with the first
        # stage: the values upserted so far, by name.
        self._filed: dict[str, object] = {}

    def entered(self, stage: Stage) -> None:
        value = sa.ONBOARDING_STAGE.value_set(stage.value)
        changed = [v for v in (*self._ids, value) if self._filed.get(v.key.name) != v.value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._filed.update((v.key.name, v.value) for v in changed)

    def show(self, status: OnboardingStatus) -> None:
        """The stage and what it waits for, its hold or its clocks, and each email."""
        details = [
            f"**Stage:** {status.stage.value} since {status.stage_since:%Y-%m-%d %H:%M:%S} UTC",
            STAGES[status.stage].waiting_for,
        ]
        if (held := status.held) is not None:
            details.append(
                f"**On hold** since {held.since:%Y-%m-%d %H:%M:%S} UTC by {escape(held.by)}: "
                "no reminders, no expiry until it is resumed."
            )
        if status.next_reminder_at is not None:
            details.append(f"**Next reminder:** {status.next_reminder_at:%Y-%m-%d %H:%M:%S} UTC")
        if status.expires_at is not None:
            details.append(f"**Expires:** {status.expires_at:%Y-%m-%d %H:%M:%S} UTC")
        if status.pending_action is not None:
            details.append(f"Applying **{status.pending_action.value}**.")
        notes = [
            status.received_notification,
            *status.status_link_reminders,
            *status.reminders,
            status.notification,
        ]
        details.extend(
            NOTIFICATION[note.state].format(event=note.kind.event, error=escape(note.error or ""))
            for note in notes
            if note is not None
        )
        workflow.set_current_details("\n\n".join(details))
