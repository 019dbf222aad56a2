"""Pydantic models that cross workflow boundaries: requests, decisions, status, activity inputs.

These never hold ORM objects; the stores' table models live in `models.sales` and
`models.commerce` and stay inside activities.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    computed_field,
)


class Stage(StrEnum):
    SUBMITTED = "submitted"
    LEAD_OPEN = "lead_open"
    OPPORTUNITY_OPEN = "opportunity_open"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def decided(self) -> bool:
        return self in (Stage.APPROVED, Stage.REJECTED)


class Action(StrEnum):
    QUALIFY = "qualify"
    CANCEL = "cancel"
    WON = "won"
    LOST = "lost"
    APPROVE = "approve"
    REJECT = "reject"


ALLOWED_ACTIONS: dict[Stage, frozenset[Action]] = {
    Stage.SUBMITTED: frozenset(),
    Stage.LEAD_OPEN: frozenset({Action.QUALIFY, Action.CANCEL}),
    Stage.OPPORTUNITY_OPEN: frozenset({Action.WON, Action.LOST}),
    Stage.AWAITING_APPROVAL: frozenset({Action.APPROVE, Action.REJECT}),
    Stage.APPROVED: frozenset(),
    Stage.REJECTED: frozenset(),
}


class ProspectStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class EmailKind(StrEnum):
    REQUEST_RECEIVED = "request_received"
    STATUS_LINK_REMINDER = "status_link_reminder"
    PROSPECT_APPROVED = "prospect_approved"
    PROSPECT_REJECTED = "prospect_rejected"

    @property
    def event(self) -> str:
        """The `X-Onboarding-Event` header value."""
        return self.value.replace("_", "-")


Locale = Literal["en", "it"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# Bidirectional overrides and marks, zero-width characters: invisible, they make a name
# read otherwise than it is (in an email subject, a list of leads).
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{5,32}$")
# "javascript:…", "mailto:…": a scheme, unlike "contoso.example:8080".
_OTHER_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)


# The validation context of a payload read back from Temporal (client.DATA_CONVERTER).
STORED = "stored"


def _stored(info: ValidationInfo) -> bool:
    """Read back from a workflow's history: judged when it came in, not again.

    A running workflow replays the request it was started with; a rule tightened since
    (an address SMTP cannot carry, invisible characters) must not make it unreadable.
    """
    return isinstance(info.context, dict) and info.context.get(STORED) is True


def _single_line(value: str, info: ValidationInfo) -> str:
    if _stored(info):
        return value
    value = unicodedata.normalize("NFC", value)
    if _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    if _INVISIBLE.search(value):
        raise ValueError(
            "must not contain invisible characters (direction overrides, zero-width spaces)"
        )
    return value


def _multi_line(value: str) -> str:
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n")
    if _CONTROL_BUT_NEWLINES.search(value) or "\r" in value:
        raise ValueError("must not contain control characters")
    return value


def _phone(value: str) -> str:
    if not _PHONE.match(value):
        raise ValueError("must be a phone number: digits, spaces and + ( ) - . / only")
    return value


def _website(value: str) -> str:
    problem = "must be a web address such as https://contoso.example"
    if "://" not in value:
        if _OTHER_SCHEME.match(value):
            raise ValueError(problem)
        value = "https://" + value
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(problem) from None
    host = parts.hostname or ""
    if (
        parts.scheme.lower() not in ("http", "https")
        or "." not in host
        or any(char.isspace() for char in value)
    ):
        raise ValueError(problem)
    return value


def _deliverable(value: str, info: ValidationInfo) -> str:
    """An address any mail server takes: ASCII before the @, the domain in its IDNA form.

    Mail servers here speak plain SMTP, without SMTPUTF8, so a non-ASCII local part
    (`giülia@`, or a fullwidth letter) could never be sent; an internationalised domain can,
    once written as `xn--…`.
    """
    if _stored(info):
        return value
    try:
        address = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        why = str(err)
        raise ValueError(f"no mail server can deliver to it: {why[:1].lower()}{why[1:]}") from None
    assert address.ascii_email is not None
    return address.ascii_email.lower()


# An Idempotency-Key, a form's submission id, a button's decision id, the CLI's --key:
# printable ASCII, as part of a Temporal Update id.
IDEMPOTENCY_KEY = r"^[!-~]{8,128}$"

# Field limits, shared with the stores' columns so a valid request always fits.
NAME_MAX = 100
COMPANY_MAX = 160
PHONE_MAX = 32
WEBSITE_MAX = 255
ADDRESS_MAX = 300
COMMENTS_MAX = 2000
EMAIL_MAX = 254
REASON_MAX = 500
ACTOR_MAX = 100
FULL_NAME_MAX = 2 * NAME_MAX + 1


def _text(max_length: int) -> object:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Name = Annotated[str, _text(NAME_MAX), AfterValidator(_single_line)]
CompanyName = Annotated[str, _text(COMPANY_MAX), AfterValidator(_single_line)]
Phone = Annotated[str, _text(PHONE_MAX), AfterValidator(_single_line), AfterValidator(_phone)]
Website = Annotated[str, _text(WEBSITE_MAX), AfterValidator(_single_line), AfterValidator(_website)]
Address = Annotated[str, _text(ADDRESS_MAX), AfterValidator(_single_line)]
Comments = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=COMMENTS_MAX),
    AfterValidator(_multi_line),
]
Email = Annotated[EmailStr, StringConstraints(max_length=EMAIL_MAX), AfterValidator(_deliverable)]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=REASON_MAX),
    AfterValidator(_multi_line),
]
Actor = Annotated[str, _text(ACTOR_MAX), AfterValidator(_single_line)]


class OnboardingRequest(BaseModel):
    """What a prospective partner fills in on the onboarding form."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "company": "Contoso Srl",
                    "first_name": "Giulia",
                    "last_name": "Rossi",
                    "email": "giulia.rossi@contoso.example",
                    "phone": "+39 02 1234 5678",
                    "job_title": "Purchasing manager",
                    "website": "https://contoso.example",
                    "company_address": "Via Roma 1, 20121 Milano",
                    "locale": "it",
                    "comments": "We resell office furniture in Lombardy.",
                }
            ]
        },
    )

    company: CompanyName
    first_name: Name
    last_name: Name
    email: Email
    phone: Phone | None = None
    job_title: Name | None = None
    website: Website | None = None
    company_address: Address | None = None
    company_phone: Phone | None = None
    locale: Locale = "en"
    comments: Comments | None = None

    @property
    def contact_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def applicant_key(email: str) -> str:
    """A stable, non-reversible key for one contact email (workflow ids stay free of PII)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def onboarding_workflow_id(onboarding_id: str) -> str:
    return f"onboarding-{onboarding_id}"


def applicant_workflow_id(email: str) -> str:
    return f"applicant-{applicant_key(email)}"


def hour_period(at: datetime) -> str:
    """The UTC hour `at` falls in: a status-link reminder goes out at most once in each."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


# What anyone who submits with the email of an undecided request reads, whoever they are.
ALREADY_OPEN = (
    "A request with this email is already open; we have emailed its link to that address."
)


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
        if self.stage is Stage.APPROVED:
            return ProspectStatus.APPROVED
        if self.stage is Stage.REJECTED:
            return ProspectStatus.REJECTED
        return ProspectStatus.PENDING

    @computed_field  # type: ignore[prop-decorator]
    @property
    def allowed_actions(self) -> list[Action]:
        if self.pending_action is not None:
            return []
        return sorted(ALLOWED_ACTIONS[self.stage])


# --- workflow and update inputs -------------------------------------------------------


class OnboardingInput(BaseModel):
    onboarding_id: str
    request: OnboardingRequest


class ApplicantInput(BaseModel):
    applicant_key: str


class SubmitInput(BaseModel):
    request: OnboardingRequest


class RequestDecided(BaseModel):
    """From a request to its applicant workflow: decided, the email may apply again."""

    onboarding_id: str


class SubmitResult(BaseModel):
    onboarding_id: str
    workflow_id: str
    duplicate: bool = False


class StatusLinkRequested(BaseModel):
    """From the applicant workflow to its open request: the email applied again at `at`."""

    at: datetime


# --- activity inputs and results ------------------------------------------------------


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


class ApplyDecisionInput(BaseModel):
    """A decision's writes to both stores, in one local activity."""

    onboarding_id: str
    request: OnboardingRequest
    action: Action
    actor: str
    reason: str | None = None
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


class DisqualifyLeadInput(BaseModel):
    onboarding_id: str
    actor: str
    reason: str | None = None
    at: datetime


class CloseOpportunityInput(BaseModel):
    onboarding_id: str
    won: bool
    actor: str
    reason: str | None = None
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


class RejectProspectInput(BaseModel):
    onboarding_id: str
    actor: str
    reason: str | None = None
    at: datetime


class SendEmailInput(BaseModel):
    onboarding_id: str
    kind: EmailKind
    request: OnboardingRequest
    reason: str | None = None
    # For an email a request may get more than once (a reminder): which one, its hour.
    # One email per request, kind and period: retries in the same period find it sent.
    period: str = ""
