"""Whatever a requester types, the request is refused naming the field, or accepted clean.

Property-based (hypothesis): unicode of every script, control characters, CR/LF,
over-long values and malformed emails, in every field of the request.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import SMTP
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import inspect

from activities.email import EmailActivities, EmailRenderer, message_id_for
from models.commerce import Prospect
from models.payloads import EmailKind, OnboardingRequest, SendEmailInput
from models.sales import Lead
from settings import Settings

VALID: dict[str, Any] = {
    "company": "Contoso Srl",
    "first_name": "Giulia",
    "last_name": "Rossi",
    "email": "giulia@contoso.example",
    "phone": "+39 02 1234 5678",
    "job_title": "Purchasing manager",
    "website": "contoso.example",
    "company_address": "Via Roma 1, Milano",
    "company_phone": "+39 02 0000 0000",
    "locale": "en",
    "comments": "We resell office furniture.",
}
FIELDS = sorted(VALID)
SINGLE_LINE = [field for field in FIELDS if field != "comments"]
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text: every Unicode category, control characters and surrogates' neighbours
# included, plus the classics of header injection and over-long values.
anything = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["\r\nBcc: victim@example.com", "a\nb", "x" * 5000, "", "   ", "\x00"]),
)


def column_length(field: str) -> int | None:
    for model in (Prospect, Lead):
        column = inspect(model).columns.get(field)
        if column is not None:
            return getattr(column.type, "length", None)
    return None


@EXAMPLES
@given(field=st.sampled_from(FIELDS), value=anything)
def test_any_text_in_any_field_is_refused_naming_it_or_accepted_clean(
    field: str, value: str
) -> None:
    try:
        request = OnboardingRequest(**{**VALID, field: value})
    except ValidationError as err:
        assert {error["loc"][0] for error in err.errors()} == {field}
        return
    accepted = getattr(request, field)
    if accepted is None:
        return
    if field in SINGLE_LINE:
        assert not CONTROL.search(accepted), "a single-line field kept a control character"
    else:
        assert "\r" not in accepted
    limit = column_length(field)
    assert limit is None or len(accepted) <= limit, "an accepted value must fit its column"


@EXAMPLES
@given(value=st.text(max_size=80).filter(lambda text: "@" not in text or " " in text.strip()))
def test_a_malformed_email_is_refused_naming_the_email(value: str) -> None:
    try:
        OnboardingRequest(**{**VALID, "email": value})
    except ValidationError as err:
        assert [error["loc"][0] for error in err.errors()] == ["email"]
    else:
        raise AssertionError(f"{value!r} was accepted as an email")


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=60,
).filter(str.strip)


@EXAMPLES
@given(company=names, first_name=names, last_name=names, kind=st.sampled_from(EmailKind))
def test_no_line_break_typed_anywhere_reaches_an_email_header(
    company: str, first_name: str, last_name: str, kind: EmailKind
) -> None:
    fields = {**VALID, "company": company, "first_name": first_name, "last_name": last_name}
    try:
        request = OnboardingRequest(**fields)
    except ValidationError:
        return
    mail_settings = Settings(_env_file=None, mail_from="Partners <no-reply@b2b.test>")  # type: ignore[call-arg]
    activities = EmailActivities(None, mail_settings, EmailRenderer("http://b2b.test"))  # type: ignore[arg-type]
    input = SendEmailInput(onboarding_id="abc123", kind=kind, request=request, reason="a\r\nb")
    email = activities.renderer.render(input)
    message = activities._mime(input, email, message_id_for(kind, "abc123", "x@b2b.test"))

    parsed = message_from_bytes(message.as_bytes(policy=SMTP), policy=SMTP)
    assert sorted(parsed.keys()) == sorted(message.keys()), "a header was injected"
    assert parsed["X-Onboarding-Id"] == "abc123"
    assert parsed["To"].addresses[0].addr_spec == "giulia@contoso.example"
