"""What a prospective partner sends: the request's fields, their rules and limits.

The rules judge what comes in at the edge (form, API, command line); a payload read back
from a workflow's history is not judged again (`STORED`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    StringConstraints,
    ValidationInfo,
)

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
    return _visible(value)


def _multi_line(value: str, info: ValidationInfo) -> str:
    """Comments, reasons (emailed to the requester) and notes: lines of visible text."""
    if _stored(info):
        return value
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n")
    if _CONTROL_BUT_NEWLINES.search(value) or "\r" in value:
        raise ValueError("must not contain control characters")
    return _visible(value)


def _visible(value: str) -> str:
    if _INVISIBLE.search(value):
        raise ValueError(
            "must not contain invisible characters (direction overrides, zero-width spaces)"
        )
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
# Staff's internal note on a decision or a hold: never emailed, never shown to the requester.
NOTE_MAX = 1000
REASON_CODE_MAX = 32
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
# An internal note: for staff only (never emailed), free text like a reason.
Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=NOTE_MAX),
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


# What anyone who submits with the email of a request on record (undecided, approved, or
# rejected within REAPPLY_COOLDOWN) reads, whoever they are.
ALREADY_OPEN = (
    "We already have a request from this email; we have emailed that address what it may do next."
)
