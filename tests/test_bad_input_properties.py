"""Whatever a requester types, the request is refused naming the field, or accepted clean.

Property-based (hypothesis): unicode of every script, control characters, CR/LF,
over-long values and malformed emails, in every field of the request; first against the
request model, then through the JSON API and the form, where a refusal is a 422 naming
the field and starts no workflow.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.policy import SMTP
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from sqlalchemy import inspect
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from activities.email import EmailActivities, EmailRenderer, message_id_for
from models.activity_io import SendEmailInput
from models.commerce import Prospect
from models.lifecycle import Action
from models.requests import OnboardingRequest
from models.sales import Lead
from models.status import EmailKind
from settings import Settings
from stores import Stores
from tests.conftest import ADMIN, REP, bearer, browse, web_settings_for
from web.api import DecisionBody
from web.app import create_app

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
# Through the app each example is an HTTP call; the fixture (app, worker) is shared on purpose.
CALLS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

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
@given(
    company=names,
    first_name=names,
    last_name=names,
    kind=st.sampled_from([kind for kind in EmailKind if kind.to_requester]),
)
def test_no_line_break_typed_anywhere_reaches_an_email_header(
    company: str, first_name: str, last_name: str, kind: EmailKind
) -> None:
    fields = {**VALID, "company": company, "first_name": first_name, "last_name": last_name}
    try:
        request = OnboardingRequest(**fields)
    except ValidationError:
        return
    mail_settings = Settings(_env_file=None, mail_from="Partners <no-reply@b2b.test>")  # type: ignore[call-arg]
    renderer = EmailRenderer("http://b2b.test", b"secret")
    activities = EmailActivities(None, mail_settings, renderer)  # type: ignore[arg-type]
    input = SendEmailInput(onboarding_id="abc123", kind=kind, request=request, reason="a\r\nb")
    email = activities.renderer.render(input)
    mail = activities.onboarding_message(input, email, message_id_for(kind, "abc123", "x@b2b.test"))

    parsed = message_from_bytes(mail.data, policy=SMTP)
    assert parsed.keys() == [*ONBOARDING_HEADERS], "a header was injected"
    assert parsed["X-Onboarding-Id"] == "abc123"
    assert parsed["To"].addresses[0].addr_spec == "giulia@contoso.example"


ONBOARDING_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "X-Onboarding-Id",
    "X-Onboarding-Event",
    "MIME-Version",
    "Content-Type",
    "Content-Language",
)


# --- through the app ------------------------------------------------------------------


class CallsRecorded(Interceptor):
    """Records every workflow start and Update the app asks Temporal for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self.calls)


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, calls: list[str]) -> None:
        super().__init__(next)
        self.calls = calls

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle:  # type: ignore[type-arg]
        self.calls.append(f"start {input.id}")
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle:  # type: ignore[type-arg]
        self.calls.append(f"start {input.start_workflow_input.id}")
        return await super().start_update_with_start_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle:  # type: ignore[type-arg]
        self.calls.append(f"update {input.id}")
        return await super().start_workflow_update(input)


@pytest.fixture
async def app_calls(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """The web app over the test's worker, and the starts and Updates it has asked for."""
    recorded = CallsRecorded()
    config = client.config()
    config["interceptors"] = [recorded]
    app = create_app(web_settings_for(settings), client=Client(**config), stores=stores)
    async with browse(app) as http:
        yield http, recorded.calls


# JSON values of every type, for a field that wants a string.
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | anything,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def valid(model: type[BaseModel], data: dict[str, Any]) -> bool:
    """What the app must answer follows from whether the model takes the data."""
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


def a_fresh_form() -> dict[str, Any]:
    return {**VALID, "email": f"giulia.{uuid.uuid4().hex[:10]}@contoso.example"}


@CALLS
@given(field=st.sampled_from(FIELDS), value=any_json)
async def test_the_api_refuses_any_bad_value_naming_its_field_and_starts_nothing(
    app_calls: tuple[httpx.AsyncClient, list[str]], field: str, value: Any
) -> None:
    http, calls = app_calls
    form = {**a_fresh_form(), field: value}
    before = len(calls)
    # Python's json writes NaN and Infinity, as a sloppy client might.
    response = await http.post(
        "/api/onboarding-requests",
        content=json.dumps(form),
        headers={"Content-Type": "application/json"},
    )
    event(f"HTTP {response.status_code}")
    if valid(OnboardingRequest, form):
        assert response.status_code == 202, response.text
        assert len(calls) > before
    else:
        assert response.status_code == 422, response.text
        assert {error["loc"][1] for error in response.json()["detail"]} == {field}
        assert len(calls) == before, "a refused request started a workflow"


@CALLS
@given(
    body=st.one_of(
        any_json.filter(lambda value: not isinstance(value, dict)).map(json.dumps),
        st.sampled_from(
            ["{", '{"company": ', "null", "[]", "NaN", '{"company": "\\ud800", "email": -Infinity}']
        ),
    ).map(str.encode)
    | st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded"]
    ),
)
async def test_a_body_that_is_no_request_at_all_is_a_422_and_starts_nothing(
    app_calls: tuple[httpx.AsyncClient, list[str]], body: bytes, content_type: str
) -> None:
    http, calls = app_calls
    before = len(calls)
    response = await http.post(
        "/api/onboarding-requests",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"], "a 422 says what is wrong"
    assert len(calls) == before


@CALLS
@given(field=st.sampled_from(FIELDS), value=anything)
async def test_the_form_refuses_any_bad_value_marking_its_field_and_starts_nothing(
    app_calls: tuple[httpx.AsyncClient, list[str]], field: str, value: str
) -> None:
    http, calls = app_calls
    form = {**a_fresh_form(), field: value}
    before = len(calls)
    response = await http.post("/apply", data=form)
    event(f"HTTP {response.status_code}")
    # The form, like a browser, leaves out what was left blank.
    typed = {name: text for name, text in form.items() if text.strip()}
    if valid(OnboardingRequest, typed):
        assert response.status_code == 303, response.text
        assert len(calls) > before
    else:
        assert response.status_code == 422, response.text
        assert f'id="{field}-error"' in response.text
        assert len(calls) == before, "a refused form started a workflow"


ADMIN_ACTIONS = {Action.APPROVE, Action.REJECT}


@CALLS
@given(reason=any_json, action=st.sampled_from(Action))
async def test_a_decision_with_any_bad_reason_is_refused_naming_it_and_sends_nothing(
    app_calls: tuple[httpx.AsyncClient, list[str]], reason: Any, action: Action
) -> None:
    http, calls = app_calls
    before = len(calls)
    # No such request: a valid decision comes back 404, and changes nothing anywhere.
    response = await http.post(
        f"/api/onboarding-requests/{uuid.uuid4().hex[:16]}/{action.value}",
        content=json.dumps({"reason": reason}),
        headers={
            "Content-Type": "application/json",
            **bearer(ADMIN if action in ADMIN_ACTIONS else REP),
        },
    )
    event(f"HTTP {response.status_code}")
    if valid(DecisionBody, {"reason": reason}):
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 422, response.text
        assert {error["loc"][1] for error in response.json()["detail"]} == {"reason"}
        assert len(calls) == before, "a refused decision reached Temporal"
