"""Where a request stands: the decisions on it, its emails, the rows written for it.

What the workflow's `status` query and result, the command line's `status` and the API
answer; rebuilt from the stores' rows once Temporal no longer has the workflow.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from models.lifecycle import ALLOWED_ACTIONS, STAGES, Action, ProspectStatus, Stage
from models.requests import Actor, Locale, Reason


class EmailKind(StrEnum):
    REQUEST_RECEIVED = "request_received"
    STATUS_LINK_REMINDER = "status_link_reminder"
    PROSPECT_APPROVED = "prospect_approved"
    PROSPECT_REJECTED = "prospect_rejected"

    @property
    def event(self) -> str:
        """The `X-Onboarding-Event` header value."""
        return self.value.replace("_", "-")


# Each email as the staff pages name it.
EMAIL_WORDS: dict[EmailKind, str] = {
    EmailKind.REQUEST_RECEIVED: "We received your request (with its status link)",
    EmailKind.STATUS_LINK_REMINDER: "Your request's status link, again",
    EmailKind.PROSPECT_APPROVED: "Approved: welcome, and how to sign in",
    EmailKind.PROSPECT_REJECTED: "Rejected, with the reason",
}


def email_words(kind: str) -> str:
    """An `email_message.kind` as the staff pages name it; a kind this version does not
    know, as it is."""
    known = kind in EmailKind.__members__.values()
    return EMAIL_WORDS[EmailKind(kind)] if known else kind.replace("_", " ").capitalize()


class Decision(BaseModel):
    """A rep's or admin's decision on a request, as an Update or a signal."""

    action: Action
    reason: Reason | None = None
    actor: Actor = "unknown"


class DecisionRecord(Decision):
    at: datetime


class RecordIds(BaseModel):
    """Ids of every row written for a request so far, in both stores."""

    prospect_id: int | None = None
    lead_id: int | None = None
    timeline_note_id: int | None = None
    opportunity_id: int | None = None
    contact_id: int | None = None
    account_id: int | None = None
    person_customer_id: int | None = None
    organization_customer_id: int | None = None
    customer_hierarchy_id: int | None = None
    email_message_id: int | None = None


class Notification(BaseModel):
    """One email to the requester: sent beside the process, retried until the server takes it."""

    kind: EmailKind
    state: Literal["sending", "sent", "failed"] = "sending"
    email_message_id: int | None = None
    error: str | None = None


class OnboardingStatus(BaseModel):
    """Where a request stands: what `status`, the API and the workflow's query return."""

    onboarding_id: str
    workflow_id: str
    stage: Stage
    stage_since: datetime
    submitted_at: datetime
    company_name: str
    email: str
    locale: Locale
    # Known once the prospect is recorded: Commerce's setting decides it.
    sales_integration_enabled: bool | None = None
    pending_action: Action | None = None
    decisions: list[DecisionRecord] = Field(default_factory=list)
    records: RecordIds = Field(default_factory=RecordIds)
    # The decision's email (approval or rejection); its outbox row is `records.email_message_id`.
    notification: Notification | None = None
    # "We received your request", with the status link; None for a request submitted
    # before that email existed.
    received_notification: Notification | None = None
    # The status link emailed again, at most once an hour, when the email applies again.
    status_link_reminders: list[Notification] = Field(default_factory=list)
    # Filled in by the client from Temporal: running, completed, failed, terminated, ...
    workflow_status: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prospect_status(self) -> ProspectStatus | None:
        if self.records.prospect_id is None:
            return None
        return STAGES[self.stage].prospect_status

    @computed_field  # type: ignore[prop-decorator]
    @property
    def allowed_actions(self) -> list[Action]:
        if self.pending_action is not None:
            return []
        return sorted(ALLOWED_ACTIONS[self.stage])
