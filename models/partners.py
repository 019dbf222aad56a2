"""The partner's side after approval: its users, their sign-in links, its credit limit.

Payload models only (what crosses workflow boundaries and the API); the tables are in
`models.commerce`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from babel.core import get_global
from babel.numbers import get_territory_currencies
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)
from pydantic_core import PydanticCustomError
from zxcvbn import zxcvbn

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


class PasswordWeakness(StrEnum):
    """Why a password of a good length is still refused: each is said to the person."""

    REPEATS = "repeats"
    PATTERN = "pattern"
    COMMON = "common"
    PERSONAL = "personal"
    GUESSABLE = "guessable"


# zxcvbn's scores run 0 to 4; from 3 a password resists an offline attack on a slow hash.
STRONG_ENOUGH = 3
# What zxcvbn reads of a password (its own limit): the rest only makes it stronger.
ESTIMATED_MAX = 72
# The shortest part of a person's email or company that a password may not contain.
PERSONAL_PART_MIN = 4


def password_weakness(password: str, email: str, company: str) -> PasswordWeakness | None:
    """Why `password` is too easy to guess for the person with this email at this
    company, or None when it is not: the estimate is zxcvbn's (common passwords, words
    and names, repeats, sequences, keyboard rows, dates), with the person's own details
    among the words it knows."""
    local, _, domain = email.casefold().partition("@")
    parts = {local, domain.split(".")[0], company.casefold(), company.casefold().replace(" ", "")}
    parts |= set(re.split(r"[\W_]+", f"{local} {company.casefold()}"))
    personal = sorted(part for part in parts if len(part) >= PERSONAL_PART_MIN)
    if any(part in password.casefold() for part in personal):
        return PasswordWeakness.PERSONAL
    estimate = zxcvbn(password[:ESTIMATED_MAX], user_inputs=personal)
    if estimate["score"] >= STRONG_ENOUGH:
        return None
    # Said by the longest part zxcvbn found: what makes most of the password.
    most = max(estimate["sequence"], key=lambda match: len(match["token"]))
    if most["pattern"] == "repeat":
        return PasswordWeakness.REPEATS
    if most.get("dictionary_name") == "passwords":
        return PasswordWeakness.COMMON
    if most["pattern"] in ("sequence", "spatial"):
        return PasswordWeakness.PATTERN
    return PasswordWeakness.GUESSABLE


def _currencies_in_use(on: date) -> frozenset[str]:
    """ISO 4217 codes that are legal tender somewhere on `on`, from Babel's CLDR data
    (which a Babel upgrade keeps current): no test code (XTS), no gold (XAU), no
    withdrawn currency (DEM)."""
    return frozenset(
        code
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, on, tender=True)
    )


CURRENCIES = _currencies_in_use(date.today())


def _currency(value: str) -> str:
    # Checked before upper-casing: "ße" must not become "SSE".
    if len(value) != CURRENCY_LEN or not value.isascii() or not value.isalpha():
        raise ValueError("must be an ISO 4217 code of three letters, such as EUR")
    return value.upper()


def _in_use(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError("must be the ISO 4217 code of a currency in use, such as EUR")
    return value


Currency = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_currency)]
CurrencyInUse = Annotated[Currency, AfterValidator(_in_use)]

# The smallest step of an amount: 0.01.
AMOUNT_STEP = Decimal(1).scaleb(-CREDIT_LIMIT_PLACES)
# An amount sent as text: ASCII digits and one optional point. Python's Decimal also
# reads "1_000", Arabic-Indic digits, " 10 " and "1E+2", which nobody types
# for an amount and which a spreadsheet or a report would read otherwise.
PLAIN_AMOUNT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _plain(value: object) -> object:
    if isinstance(value, str) and not PLAIN_AMOUNT.fullmatch(value):
        # Decimal's own type for text it cannot read, which the pages have words for.
        raise PydanticCustomError(
            "decimal_parsing", "Input should be a plain decimal number, such as 2500.00"
        )
    return value


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
        BeforeValidator(_plain),
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
    # true or false only: not "yes", "on" or 1.
    mandatory: StrictBool = False


class NewCreditLimit(CreditLimitValues):
    """A credit limit as a Commerce admin sets it now: in a currency in use today. A limit
    kept in a currency since withdrawn still reads as it was kept."""

    currency: CurrencyInUse


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
    # The organisation the actor removes the user from, checked again where the removal
    # is written: the user may have moved to their own approved company since the web
    # app checked (None: a removal sent before this field, unchecked).
    organization_customer_id: int | None = None


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
    organization_customer_id: int | None = None


class PendingLinkInput(BaseModel):
    email: str


class PendingLink(BaseModel):
    notification_id: str
    expires_at: datetime
