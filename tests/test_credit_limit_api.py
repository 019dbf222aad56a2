"""An organisation's credit limit through the JSON API, as a Commerce admin's script sets it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, select
from temporalio.client import Client

from client.requests import decide
from models.commerce import CreditLimitChange
from models.lifecycle import Action
from models.partners import CreditLimitType, CreditLimitValues, NewCreditLimit
from models.status import RecordIds
from settings import Settings
from stores import Stores
from stores.credit_limits import CreditLimitView, credit_limit, set_credit_limit
from tests.conftest import ADMIN, REP, bearer
from tests.scenario import submitted
from tests.test_bad_input_properties import CALLS, any_json, valid

LIMIT = "/api/customers/{}/credit-limit"
JSON = {"Content-Type": "application/json"}


async def an_approved_partner(client: Client, settings: Settings, **request: Any) -> RecordIds:
    """A request qualified and won: the ids of its rows, organisation customer among them."""
    status = await submitted(client, settings, **request)
    await decide(client, status.onboarding_id, Action.QUALIFY, actor="mario")
    won = await decide(client, status.onboarding_id, Action.WON, actor="mario")
    assert won.records.organization_customer_id and won.records.person_customer_id
    return won.records


async def put(
    web: httpx.AsyncClient, customer_id: int, body: str | dict[str, Any]
) -> httpx.Response:
    """PUT a body, given as JSON text when the test needs numbers exactly as typed."""
    content = body if isinstance(body, str) else json.dumps(body)
    return await web.put(
        LIMIT.format(customer_id), content=content, headers={**JSON, **bearer(ADMIN)}
    )


async def test_an_admin_sets_the_credit_limit_and_every_change_is_kept(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    assert organization

    before = await web.get(LIMIT.format(organization), headers=bearer(REP))
    assert before.status_code == 200, before.text
    assert before.json() == {"customer_id": organization, "credit_limit": None, "history": []}

    first = await put(web, organization, {"amount": "1234.5", "currency": "eur"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["changed"] is True
    assert body["credit_limit"] | {"updated_at": None} == {
        "organization_customer_id": organization,
        "amount": "1234.50",
        "currency": "EUR",
        "limit_type": "balance",
        "mandatory": False,
        "updated_at": None,
        "updated_by": "anna",
    }
    [change] = body["history"]
    assert (change["changed_by"], change["old"]) == ("anna", None)
    assert change["new"]["amount"] == "1234.50"

    changed = {"amount": 5000, "currency": "USD", "limit_type": "balance_all", "mandatory": True}
    second = await put(web, organization, changed)
    assert second.json()["changed"] is True
    newest, oldest = second.json()["history"]
    assert newest["old"] == oldest["new"]
    assert newest["new"] == {**changed, "amount": "5000.00"}

    again = await put(web, organization, {**changed, "amount": "5000.00", "currency": "usd"})
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert len(again.json()["history"]) == 2

    read = await web.get(LIMIT.format(organization), headers=bearer(REP))
    assert read.json() == {key: value for key, value in again.json().items() if key != "changed"}


@pytest.mark.parametrize(
    ("amount", "answered"),
    [
        ('"9999999999999999.99"', "9999999999999999.99"),
        ("9999999999999999.99", "9999999999999999.99"),
        ("1234567890123456.78", "1234567890123456.78"),
        ("0.1", "0.10"),
        ("0.30", "0.30"),
        ("100", "100.00"),
        ("1E+2", "100.00"),
        ("1.230", "1.23"),
        ('"-0"', "0.00"),
    ],
)
async def test_an_amount_sent_as_a_string_or_a_number_is_kept_exactly(
    web: httpx.AsyncClient, client: Client, settings: Settings, amount: str, answered: str
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    assert organization
    response = await put(web, organization, f'{{"amount": {amount}, "currency": "CHF"}}')
    assert response.status_code == 200, response.text
    assert response.json()["credit_limit"]["amount"] == answered
    read = await web.get(LIMIT.format(organization), headers=bearer(REP))
    assert read.json()["credit_limit"]["amount"] == answered


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"amount": 1e309, "currency": "EUR"}', "amount"),
        ('{"amount": NaN, "currency": "EUR"}', "amount"),
        ('{"amount": -Infinity, "currency": "EUR"}', "amount"),
        ('{"amount": "NaN", "currency": "EUR"}', "amount"),
        ('{"amount": "-1", "currency": "EUR"}', "amount"),
        ('{"amount": -0.01, "currency": "EUR"}', "amount"),
        ('{"amount": "1.234", "currency": "EUR"}', "amount"),
        ('{"amount": 1.234, "currency": "EUR"}', "amount"),
        ('{"amount": "99999999999999999", "currency": "EUR"}', "amount"),
        ('{"amount": "", "currency": "EUR"}', "amount"),
        ('{"amount": true, "currency": "EUR"}', "amount"),
        ('{"currency": "EUR"}', "amount"),
        ('{"amount": "10", "currency": "EURO"}', "currency"),
        ('{"amount": "10", "currency": "E1R"}', "currency"),
        ('{"amount": "10", "currency": "ße"}', "currency"),
        ('{"amount": "10", "currency": 978}', "currency"),
        ('{"amount": "10", "currency": "EUR", "limit_type": "Balance + All"}', "limit_type"),
        ('{"amount": "10", "currency": "EUR", "mandatory": "perhaps"}', "mandatory"),
        ('{"amount": "10", "currency": "EUR", "mandatory": "yes"}', "mandatory"),
        ('{"amount": "10", "currency": "EUR", "mandatory": 1}', "mandatory"),
        ('{"amount": "10", "currency": "ZZZ"}', "currency"),
        ('{"amount": "10", "currency": "QQQ"}', "currency"),
        ('{"amount": "10", "currency": "XTS"}', "currency"),
        ('{"amount": "10", "currency": "DEM"}', "currency"),
        ('{"amount": "1_000", "currency": "EUR"}', "amount"),
        ('{"amount": "\u0661\u0660\u0660", "currency": "EUR"}', "amount"),
        ('{"amount": " 10", "currency": "EUR"}', "amount"),
        ('{"amount": "1E+2", "currency": "EUR"}', "amount"),
        ('{"amount": "10", "currency": "EUR", "credit_limit": "10"}', "credit_limit"),
    ],
)
async def test_a_bad_value_is_a_422_naming_its_field_that_changes_nothing(
    web: httpx.AsyncClient, client: Client, settings: Settings, body: str, field: str
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    assert organization
    await put(web, organization, {"amount": "10", "currency": "EUR"})

    response = await put(web, organization, body)

    assert response.status_code == 422, response.text
    assert {error["loc"][-1] for error in response.json()["detail"]} == {field}
    state = (await web.get(LIMIT.format(organization), headers=bearer(REP))).json()
    assert len(state["history"]) == 1
    assert state["credit_limit"]["amount"] == "10.00"


async def test_a_key_sent_twice_is_a_422_that_changes_nothing(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    assert organization
    response = await put(web, organization, '{"amount": "10", "currency": "EUR", "amount": "99"}')
    assert response.status_code == 422, response.text
    assert "'amount' is sent twice" in response.json()["detail"][0]["ctx"]["error"]
    assert (await web.get(LIMIT.format(organization), headers=bearer(REP))).json()["history"] == []


async def test_a_limit_kept_in_a_currency_since_withdrawn_still_reads(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    assert organization
    kept = CreditLimitValues.model_validate({"amount": "10", "currency": "DEM"})
    set_credit_limit(stores.commerce, organization, kept, "anna", datetime.now(UTC))
    read = await web.get(LIMIT.format(organization), headers=bearer(REP))
    assert read.status_code == 200, read.text
    assert read.json()["credit_limit"]["currency"] == "DEM"
    changed = await put(web, organization, {"amount": "20", "currency": "EUR"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["history"][1]["new"]["currency"] == "DEM"


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"10"', b"\xff\xfe{}", b"{'amount': 1}"])
async def test_a_body_that_is_no_credit_limit_at_all_is_a_422(
    web: httpx.AsyncClient, body: bytes
) -> None:
    response = await web.put(LIMIT.format(1), content=body, headers={**JSON, **bearer(ADMIN)})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


PUT_LIMIT = "PUT /api/customers/1/credit-limit"
SUBMIT = "POST /api/onboarding-requests"
TOO_LONG = b'{"amount": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        (PUT_LIMIT, TOO_LONG, "too many digits"),
        (SUBMIT, TOO_LONG, "too many digits"),
        # Read as a Decimal, whose exponent has a limit (a float would be infinity).
        (PUT_LIMIT, b'{"amount": 1e99999999999999999999999}', "out of range"),
        (PUT_LIMIT, b"[" * 20_000, "nested too deeply"),
        (SUBMIT, b"[" * 20_000, "nested too deeply"),
    ],
)
async def test_json_that_python_cannot_read_is_a_422_not_a_400(
    web: httpx.AsyncClient, route: str, body: bytes, says: str
) -> None:
    method, path = route.split()
    response = await web.request(method, path, content=body, headers={**JSON, **bearer(ADMIN)})
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"][0]["ctx"]["error"]


async def test_only_an_organisation_customer_has_a_credit_limit(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    person = (await an_approved_partner(client, settings)).person_customer_id
    assert person
    values = {"amount": "10", "currency": "EUR"}
    for response in (
        await web.get(LIMIT.format(person), headers=bearer(REP)),
        await put(web, person, values),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["customer_type"] == "person"
        assert "organisation" in response.json()["detail"]

    unknown = 2**31 - 1
    assert (await web.get(LIMIT.format(unknown), headers=bearer(REP))).status_code == 404
    assert (await put(web, unknown, values)).status_code == 404
    for beyond in (0, 2**31, "abc"):
        assert (await web.get(LIMIT.format(beyond), headers=bearer(REP))).status_code == 422


async def test_reading_needs_a_signed_in_user_and_setting_a_commerce_admin(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    organization = (await an_approved_partner(client, settings)).organization_customer_id
    path = LIMIT.format(organization)
    values = json.dumps({"amount": "10", "currency": "EUR"})

    assert (await web.get(path)).status_code == 401
    nobody = await web.put(path, content=values, headers=JSON)
    assert nobody.status_code == 401
    assert nobody.headers["WWW-Authenticate"] == "Bearer"
    guessed = {**JSON, "Authorization": "Bearer not-a-token"}
    assert (await web.put(path, content=values, headers=guessed)).status_code == 401
    rep = await web.put(path, content=values, headers={**JSON, **bearer(REP)})
    assert rep.status_code == 403
    assert "sales_rep" in rep.json()["detail"]
    # The role is checked before the body: a rep learns nothing from a 422.
    bad = await web.put(path, content="{}", headers={**JSON, **bearer(REP)})
    assert bad.status_code == 403

    assert (await web.get(path, headers=bearer(ADMIN))).json()["credit_limit"] is None


@pytest.mark.parametrize(
    ("path", "allowed"),
    [(LIMIT.format(1), "GET, PUT"), ("/api/onboarding-requests", "POST")],
)
async def test_a_method_the_path_does_not_take_is_a_405_naming_all_it_takes(
    web: httpx.AsyncClient, path: str, allowed: str
) -> None:
    for method in ("DELETE", "OPTIONS", "PATCH"):
        response = await web.request(method, path, headers=bearer(ADMIN))
        assert response.status_code == 405
        assert response.headers["Allow"] == allowed


async def test_the_openapi_document_describes_the_credit_limit_routes(
    web: httpx.AsyncClient,
) -> None:
    spec = (await web.get("/openapi.json")).json()
    route = spec["paths"]["/api/customers/{customer_id}/credit-limit"]
    assert set(route["get"]["responses"]) >= {"200", "401", "404", "409", "422"}
    assert set(route["put"]["responses"]) >= {"200", "401", "403", "404", "409", "413", "422"}
    schemas = spec["components"]["schemas"]
    assert schemas["CreditLimitView"]["properties"]["amount"]["type"] == "string"


# --- property-based: any JSON value in any field --------------------------------------

VALID = {"amount": "2500.00", "currency": "EUR", "limit_type": "balance", "mandatory": False}
# The four fields, and one the model does not have.
FIELDS = [*sorted(VALID), "note"]
# Besides any JSON value, values near the rules, so that plenty of bodies are accepted:
# amounts as JSON numbers with more digits than a float holds, decimals as numbers and as
# strings, currency-like letters, the types' names.
near = st.one_of(
    st.decimals(min_value=10**15, max_value=Decimal("9999999999999999.99"), places=2),
    st.decimals(min_value=-1, max_value=10**17, allow_nan=False, allow_infinity=False),
    st.decimals().map(str),
    st.text(alphabet="eurEURßﬀ1 ", min_size=2, max_size=4),
    st.sampled_from([*CreditLimitType, "Balance", "true", "on", 0, 1]),
)
RAW = "\x00raw\x00"


def body_with(field: str, value: Any) -> str:
    """The valid body with `value` in `field`; a Decimal goes in as a JSON number, as typed."""
    if isinstance(value, Decimal):
        return json.dumps({**VALID, field: RAW}).replace(json.dumps(RAW), str(value))
    return json.dumps({**VALID, field: value})


@pytest.fixture
async def organization(client: Client, settings: Settings, worker: None) -> int:
    customer_id = (await an_approved_partner(client, settings)).organization_customer_id
    assert customer_id
    return customer_id


def written(stores: Stores, organization: int) -> tuple[int, CreditLimitView | None]:
    """How many changes are logged, and the limit now."""
    with Session(stores.commerce) as session:
        query = select(func.count()).select_from(CreditLimitChange)
        count = session.exec(query.filter_by(organization_customer_id=organization)).one()
    return count, credit_limit(stores.commerce, organization)


@CALLS
@given(field=st.sampled_from(FIELDS), value=any_json | near)
async def test_any_json_value_in_any_field_is_a_422_naming_it_or_a_200(
    web: httpx.AsyncClient, stores: Stores, organization: int, field: str, value: Any
) -> None:
    body = body_with(field, value)
    before = written(stores, organization)

    response = await put(web, organization, body)

    event(f"HTTP {response.status_code}")
    # As the app reads it: numbers with a fraction or an exponent as Decimal.
    sent = json.loads(body, parse_float=Decimal)
    if valid(NewCreditLimit, sent):
        assert response.status_code == 200, response.text
        kept = {name: response.json()["credit_limit"][name] for name in VALID}
        assert kept == NewCreditLimit.model_validate(sent).model_dump(mode="json")
    else:
        assert response.status_code == 422, response.text
        assert {error["loc"][1] for error in response.json()["detail"]} == {field}
        assert written(stores, organization) == before, "a refused body wrote something"
