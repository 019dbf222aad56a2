"""Where a request stands: the decisions on it, its emails, the rows written for it.

What the workflow's `status` query and result, the command line's `status` and the API
answer; rebuilt from the stores' rows once Temporal no longer has the workflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from models.lifecycle import (
    ALLOWED_ACTIONS,
    STAGES,
    TRANSITIONS,
    Action,
    EmailKind,
    ProspectStatus,
    ReasonCode,
    Stage,
)
from models.requests import Actor, Locale, Note, Reason

# Each email as the staff pages name it.
EMAIL_WORDS: dict[EmailKind, str] = {
    EmailKind.REQUEST_RECEIVED: "We received your request (with its status link)",
    EmailKind.STATUS_LINK_REMINDER: "Your request's status link, again",
    EmailKind.TEAM_REMINDER: "A reminder to the team whose move it is",
    EmailKind.PROSPECT_APPROVED: "Approved: welcome, and how to sign in",
    EmailKind.PROSPECT_REJECTED: "Rejected, with the reason",
    EmailKind.APPLIED_AGAIN: "Applied again: sign in, or when it may apply again",
}


def email_words(kind: str) -> str:
    """An `email_message.kind` as the staff pages name it; a kind this version does not
    know, as it is."""
    known = kind in EmailKind.__members__.values()
    return EMAIL_WORDS[EmailKind(kind)] if known else kind.replace("_", " ").capitalize()


class Decision(BaseModel):
    """A rep's or admin's decision on a request, as an Update or a signal.

    `reason` is the message the requester reads in the rejection email; `reason_code`
    says why for staff and reports (`other` when a rejecting decision gives none), and
    `note` is staff's own, never emailed nor shown to the requester.
    """

    action: Action
    reason: Reason | None = None
    actor: Actor = "unknown"
    reason_code: ReasonCode | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _code_only_where_a_reason_is_taken(self) -> Decision:
        if self.reason_code is not None and not TRANSITIONS[self.action].takes_reason:
            raise ValueError(f"{self.action.value} takes no reason code")
        return self


class DecisionRecord(Decision):
    at: datetime


class Hold(BaseModel):
    """Put an undecided request on hold: its reminders and expiry clock stop until resumed."""

    note: Note = Field(min_length=1)
    actor: Actor = "unknown"


class Resume(BaseModel):
    """Take a request off hold: its clocks run again, the time it was held added back."""

    actor: Actor = "unknown"


class HoldState(BaseModel):
    """Why and since when a request is on hold (staff's note: never shown to the requester)."""

    since: datetime
    by: str
    note: str


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
    # On hold: no reminders, no expiry, until resumed.
    held: HoldState | None = None
    # While undecided and not on hold: when the team is next reminded, and when the
    # request expires (rejected by the system, reason code `expired`). None for a request
    # started before reminders existed.
    next_reminder_at: datetime | None = None
    expires_at: datetime | None = None
    # The reminders to the team whose move it is, in order.
    reminders: list[Notification] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reason_code(self) -> ReasonCode | None:
        """Why it was rejected, once it is."""
        if self.stage is not Stage.REJECTED or not self.decisions:
            return None
        return self.decisions[-1].reason_code

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


class DecisionAnswer(BaseModel):
    """What the `decide` Update answers: where the decision left the request, what a
    page, the bulk page and the metrics need of it. A caller that shows the whole
    status (the API, the command line) reads it with the `status` query.

    Its fields are a subset of `OnboardingStatus`'s, so it also decodes from the whole
    status that a request still running an earlier build answers with (the rest ignored).
    """

    onboarding_id: str
    stage: Stage
    stage_since: datetime
    submitted_at: datetime
    pending_action: Action | None = None
    records: RecordIds = Field(default_factory=RecordIds)
    workflow_status: str | None = None


class HoldAnswer(BaseModel):
    """What the `hold` and `resume` Updates answer: the request's hold, and its clocks
    stopped or moved on. A subset of `OnboardingStatus`, as `DecisionAnswer` is."""

    onboarding_id: str
    stage: Stage
    held: HoldState | None = None
    next_reminder_at: datetime | None = None
    expires_at: datetime | None = None
    workflow_status: str | None = None
