"""The partner's side after approval: its users, their sign-in links, its credit limit.

Payload models only (what crosses workflow boundaries and the API); the tables are in
`models.commerce`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from models.ids import applicant_key
from models.requests import Actor, Email, Locale, Name

# Passwords: long enough to resist guessing, short enough that hashing stays cheap.
PASSWORD_MIN = 12
PASSWORD_MAX = 256
CURRENCY_LEN = 3
CREDIT_LIMIT_DIGITS = 18
CREDIT_LIMIT_PLACES = 2
LAST_ADMINISTRATOR = (
    "The organisation must keep at least one administrator: make someone else an"
    " administrator first."
)


# The role of the root of a partner's customer hierarchy: its organisation customer.
HIERARCHY_ROOT_ROLE = "organization"


class PartnerRole(StrEnum):
    """A person's role in the partner's customer hierarchy (Dynamics: Admin, User)."""

    ADMIN = "b2b_admin"
    USER = "b2b_user"

    @property
    def words(self) -> str:
        return "Administrator" if self is PartnerRole.ADMIN else "User"


def hierarchy_role_words(role: str) -> str:
    """A customer hierarchy member's role as the staff pages show it (a role no longer
    known, as it is)."""
    if role == HIERARCHY_ROOT_ROLE:
        return "Organisation"
    return PartnerRole(role).words if role in set(PartnerRole) else role


class PartnerUserState(StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    REMOVED = "removed"


class LinkPurpose(StrEnum):
    """Why a sign-in link was emailed; each is its own email kind."""

    ACTIVATION = "activation"
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"

    @property
    def email_kind(self) -> str:
        return {
            LinkPurpose.ACTIVATION: "account_activation",
            LinkPurpose.INVITATION: "user_invitation",
            LinkPurpose.PASSWORD_RESET: "password_reset",
        }[self]


class LinkState(StrEnum):
    VALID = "valid"
    USED = "used"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


class CreditLimitType(StrEnum):
    """Dynamics 365's credit limit types: what counts against the limit."""

    NONE = "none"
    BALANCE = "balance"
    BALANCE_PACKING_SLIP = "balance_packing_slip"
    BALANCE_ALL = "balance_all"

    @property
    def words(self) -> str:
        return {
            CreditLimitType.NONE: "None",
            CreditLimitType.BALANCE: "Balance",
            CreditLimitType.BALANCE_PACKING_SLIP: "Balance + packing slip or product receipt",
            CreditLimitType.BALANCE_ALL: "Balance + All",
        }[self]


def partner_user_workflow_id(email: str) -> str:
    """One workflow id per partner user, free of personal data (as the applicant's)."""
    return f"partner-user-{applicant_key(email)}"


# --- what people send -------------------------------------------------------------------


def _password(value: str) -> str:
    if len(value) < PASSWORD_MIN:
        raise ValueError(f"must be at least {PASSWORD_MIN} characters")
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


Password = Annotated[str, StringConstraints(max_length=PASSWORD_MAX), AfterValidator(_password)]


def _currency(value: str) -> str:
    # Checked before upper-casing: "ße" must not become "SSE".
    if len(value) != CURRENCY_LEN or not value.isascii() or not value.isalpha():
        raise ValueError("must be an ISO 4217 code of three letters, such as EUR")
    return value.upper()


Currency = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_currency)]

# The smallest step of an amount: 0.01.
AMOUNT_STEP = Decimal(1).scaleb(-CREDIT_LIMIT_PLACES)


def _one_spelling(value: Decimal) -> Decimal:
    # One spelling per amount, as the column keeps it: "1E+2" is 100.00, and "-0" (which
    # `ge=0` lets through) is 0.00.
    return value.copy_abs().quantize(AMOUNT_STEP)


class NewPartnerUser(BaseModel):
    """A person the partner's administrator adds to the B2B site."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: Name
    last_name: Name
    email: Email
    job_title: Name | None = None
    locale: Locale = "en"


class CreditLimitValues(BaseModel):
    """The organisation's credit limit as a Commerce admin sets it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": "25000.00",
                    "currency": "EUR",
                    "limit_type": "balance",
                    "mandatory": True,
                }
            ]
        },
    )

    amount: Annotated[
        Decimal,
        Field(
            ge=0,
            max_digits=CREDIT_LIMIT_DIGITS,
            decimal_places=CREDIT_LIMIT_PLACES,
            allow_inf_nan=False,
        ),
        AfterValidator(_one_spelling),
    ]
    currency: Currency
    limit_type: CreditLimitType = CreditLimitType.BALANCE
    mandatory: bool = False


# --- workflow inputs and results -------------------------------------------------------


class PartnerUserInput(BaseModel):
    """A partner user's process: started by whatever first needs it, keyed by email."""

    email: Email


class InviteInput(BaseModel):
    organization_customer_id: int
    user: NewPartnerUser
    actor: Actor


class SendLinkInput(BaseModel):
    """Email a fresh sign-in link; every earlier unused one stops working."""

    partner_user_id: int
    purpose: LinkPurpose
    actor: Actor


class RemoveInput(BaseModel):
    partner_user_id: int
    actor: Actor


class PartnerUserChanged(BaseModel):
    """What an invitation, a resend or a removal did."""

    partner_user_id: int
    link_expires_at: datetime | None = None


# --- activity inputs and results --------------------------------------------------------


class AddPartnerUserInput(BaseModel):
    organization_customer_id: int
    user: NewPartnerUser
    actor: str
    at: datetime


class AccessLinkInput(BaseModel):
    partner_user_id: int
    purpose: LinkPurpose
    # One per link the workflow sends: the email's Message-ID and the link's row key.
    notification_id: str
    actor: str


class LinkIssued(BaseModel):
    notification_id: str
    expires_at: datetime
    # The workflow times the link from its own clock, which the store's `expires_at`
    # (the worker's wall clock) matches in production and a time-skipping test does not.
    valid_for: timedelta
    email_message_id: int


class ExpireLinksInput(BaseModel):
    partner_user_id: int
    notification_ids: list[str]


class RemovePartnerUserInput(BaseModel):
    partner_user_id: int
    actor: str
    at: datetime


class PendingLinkInput(BaseModel):
    email: str


class PendingLink(BaseModel):
    notification_id: str
    expires_at: datetime
