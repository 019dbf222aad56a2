"""Bad input is refused at the edge with the field named; good input is normalised."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload

from client.converter import PayloadConverter
from models.requests import OnboardingRequest
from models.status import Decision, Hold
from models.workflow_io import OnboardingInput
from tests.scenario import a_request


def refused_field(**overrides: object) -> str:
    with pytest.raises(ValidationError) as refused:
        a_request(**overrides)
    (error,) = refused.value.errors()
    return ".".join(str(part) for part in error["loc"])


def test_a_complete_request_is_normalised() -> None:
    request = a_request(
        email="  Giulia.Rossi@Contoso.EXAMPLE ", website="contoso.example", company=" Contoso "
    )
    assert request.email == "giulia.rossi@contoso.example"
    assert request.website == "https://contoso.example"
    assert request.company == "Contoso"


def test_a_website_may_carry_a_port_and_a_path() -> None:
    assert (
        a_request(website="contoso.example:8080/b2b").website == "https://contoso.example:8080/b2b"
    )
    assert a_request(website="http://contoso.example").website == "http://contoso.example"


def test_only_the_required_fields_are_needed() -> None:
    request = OnboardingRequest(
        company="Fabrikam", first_name="Ana", last_name="Lopez", email="ana@fabrikam.example"
    )
    assert request.locale == "en" and request.phone is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("company", "Contoso\r\nBcc: victim@example.com"),
        ("first_name", "Giu\nlia"),
        ("last_name", "Ros\x00si"),
        ("job_title", "Bo\u2028ss"),
        ("company", ""),
        ("company", "   "),
        ("company", "x" * 161),
        ("email", "giulia"),
        ("email", "giulia@contoso.example\r\nBcc: x@y.z"),
        ("email", "a" * 250 + "@contoso.example"),
        ("phone", "call me maybe"),
        ("website", "javascript:alert(1)"),
        ("website", "ftp://contoso.example"),
        ("website", "https://contoso.example:port"),
        ("website", "https://localhost"),
        ("website", "contoso example.com"),
        ("locale", "fr"),
        ("comments", "ok\x1b[31mred"),
        ("comments", "x" * 2001),
    ],
)
def test_bad_fields_are_refused_by_name(field: str, value: str) -> None:
    assert refused_field(**{field: value}) == field


def test_unknown_fields_are_refused() -> None:
    assert refused_field(is_admin=True) == "is_admin"


def test_unicode_names_and_multi_line_comments_are_welcome() -> None:
    request = a_request(
        company="Café Ünïcødé 株式会社", first_name="Zoë", comments="line one\r\nline two"
    )
    assert request.company == "Café Ünïcødé 株式会社"
    assert request.comments == "line one\nline two"


def test_a_decision_reason_may_not_smuggle_control_characters() -> None:
    with pytest.raises(ValidationError):
        Decision(action="cancel", reason="bad\x07bell")
    with pytest.raises(ValidationError):
        Decision(action="promote")


@pytest.mark.parametrize("email", ["giülia@utf8.example", "\uff44up.user@dup.example"])
def test_an_address_with_non_ascii_before_the_at_is_refused_saying_why(email: str) -> None:
    with pytest.raises(ValidationError) as refused:
        a_request(email=email)
    (error,) = refused.value.errors()
    assert error["loc"] == ("email",)
    assert "no mail server can deliver to it" in error["msg"]


def test_an_internationalised_domain_is_kept_in_its_ascii_form() -> None:
    assert a_request(email="Giulia@Bücher.example").email == "giulia@xn--bcher-kva.example"


INVISIBLE = ["\u202e", "\u2066", "\u200f", "\u200b", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize("invisible", INVISIBLE)
@pytest.mark.parametrize("field", ["company", "first_name", "last_name", "job_title"])
def test_invisible_characters_are_refused_in_single_line_fields(field: str, invisible: str) -> None:
    with pytest.raises(ValidationError) as refused:
        a_request(**{field: f"Contoso{invisible}lrS"})
    (error,) = refused.value.errors()
    assert error["loc"] == (field,)
    assert "invisible characters" in error["msg"]


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_invisible_characters_are_refused_in_comments_reasons_and_notes(invisible: str) -> None:
    typed = f"Please call\n{invisible}after 5 pm"
    with pytest.raises(ValidationError) as refused:
        a_request(comments=typed)
    assert "invisible characters" in refused.value.errors()[0]["msg"]
    for field in ("reason", "note"):
        with pytest.raises(ValidationError) as refused:
            Decision.model_validate({"action": "reject", field: typed})
        (error,) = refused.value.errors()
        assert error["loc"] == (field,) and "invisible characters" in error["msg"]
    with pytest.raises(ValidationError) as refused:
        Hold(note=typed)
    assert "invisible characters" in refused.value.errors()[0]["msg"]


def test_a_reason_accepted_before_the_rule_still_reads_back_from_temporal() -> None:
    stored = {"action": "reject", "reason": "Sorry\u202e, no", "note": "\u200bseen"}
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(stored).encode())
    (read,) = PayloadConverter().from_payloads([payload], [Decision])
    assert (read.reason, read.note) == ("Sorry\u202e, no", "\u200bseen")


def test_a_request_accepted_before_a_rule_tightened_still_reads_back_from_temporal() -> None:
    # As a running workflow's history holds it: accepted before the edge refused these.
    stored = {
        "onboarding_id": "0123456789abcdef",
        "request": {
            "company": "Contoso\u202eSrl",
            "first_name": "Giulia",
            "last_name": "Rossi",
            "email": "giülia@utf8.example",
        },
    }
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(stored).encode())
    (read,) = PayloadConverter().from_payloads([payload], [OnboardingInput])
    assert (read.request.company, read.request.email) == ("Contoso\u202eSrl", "giülia@utf8.example")
    with pytest.raises(ValidationError):
        OnboardingInput.model_validate(stored)
