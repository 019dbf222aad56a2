"""The inputs and results of the activities: each store write, and the email."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from models.lifecycle import Action, ReasonCode, Stage
from models.requests import OnboardingRequest
from models.status import EmailKind, HoldState, RecordIds


class CreateProspectInput(BaseModel):
    onboarding_id: str
    request: OnboardingRequest
    at: datetime


class ProspectCreated(BaseModel):
    prospect_id: int
    sales_integration_enabled: bool


class OpenRequest(BaseModel):
    """The contact email's undecided request, met when another one tried to start."""

    onboarding_id: str


class RequestRecorded(BaseModel):
    """A request in both stores (a prospect, and a lead when Sales works it), or, when
    its email already has an undecided request, nothing written and that request named."""

    prospect_id: int | None = None
    sales_integration_enabled: bool | None = None
    lead_id: int | None = None
    timeline_note_id: int | None = None
    open_request: str | None = None
    # The clocks of an undecided request, as the worker's settings had them when it was
    # recorded (a change of setting applies to requests recorded after it).
    timing: RequestTiming | None = None


class RequestTiming(BaseModel):
    remind_after: timedelta
    remind_every: timedelta
    expire_after: timedelta
    # How long a rejected request's personal data is kept (None: recorded before it was).
    personal_data_retention: timedelta | None = None


class RecordHoldInput(BaseModel):
    """A request put on hold (`held`), or taken off it (None)."""

    onboarding_id: str
    held: HoldState | None = None


class TeamReminderInput(BaseModel):
    """The `number`th reminder to the team whose move it is that a request waits."""

    onboarding_id: str
    number: int
    stage: Stage
    stage_since: datetime
    company: str
    records: RecordIds
    # When it expires if still undecided (None: it does not).
    expires_at: datetime | None = None


class Why(BaseModel):
    """Why a decision was taken, as its store rows keep it: the reason the requester
    reads, the reason code and staff's internal note."""

    reason: str | None = None
    reason_code: ReasonCode | None = None
    note: str | None = None


class ApplyDecisionInput(Why):
    """A decision's writes to both stores, in one local activity."""

    onboarding_id: str
    request: OnboardingRequest
    action: Action
    actor: str
    at: datetime


class CreateLeadInput(BaseModel):
    onboarding_id: str
    request: OnboardingRequest
    prospect_id: int
    at: datetime


class LeadCreated(BaseModel):
    lead_id: int
    timeline_note_id: int


class QualifyLeadInput(BaseModel):
    onboarding_id: str
    actor: str
    at: datetime


class LeadQualified(BaseModel):
    opportunity_id: int
    contact_id: int
    account_id: int


class DisqualifyLeadInput(Why):
    """The rep's `cancel`, which leaves the lead `disqualified`; named after its activity,
    `disqualify_lead`, as recorded histories know it."""

    onboarding_id: str
    actor: str
    at: datetime


class CloseOpportunityInput(Why):
    onboarding_id: str
    won: bool
    actor: str
    at: datetime


class WriteCustomersInput(BaseModel):
    """Dual-write of a Sales contact and account (or, integration off, the request) to Commerce."""

    onboarding_id: str
    request: OnboardingRequest
    sales_contact_id: int | None = None
    sales_account_id: int | None = None
    at: datetime


class CustomersWritten(BaseModel):
    person_customer_id: int
    organization_customer_id: int


class ApproveProspectInput(BaseModel):
    onboarding_id: str
    actor: str
    at: datetime


class RejectProspectInput(Why):
    onboarding_id: str
    actor: str
    at: datetime


class SendEmailInput(BaseModel):
    onboarding_id: str
    kind: EmailKind
    request: OnboardingRequest
    reason: str | None = None
    # For an email a request may get more than once (a reminder): which one, its hour.
    # One email per request, kind and period: retries in the same period find it sent.
    period: str = ""
    # Why a rejection was decided: `expired` tells the requester they may apply again.
    reason_code: ReasonCode | None = None
    # A rejected email that applied again: from when it may (APPLIED_AGAIN).
    may_apply_from: datetime | None = None
