"""Bad input on the partner's forms and routes: a 422 naming the field, never a 500, and
nothing written or started for it (hypothesis, like tests/test_bad_input_properties.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, select
from temporalio.client import Client

from models.commerce import PartnerUser
from models.partners import NewPartnerUser
from settings import Settings
from stores import Stores
from tests.conftest import MailSink, browse, web_settings_for
from tests.test_bad_input_properties import CallsRecorded, any_json, anything, valid
from tests.test_pages import CSRF
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import PASSWORD, activate, approval_link
from web.app import create_app

# Each example is an HTTP call (and, for a valid user, an invitation): fewer than the
# request's property tests, which cover the same field types.
CALLS = examples(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
USER_FIELDS = sorted(NewPartnerUser.model_fields)
A_USER = {"first_name": "Luca", "last_name": "Bianchi", "locale": "it", "job_title": "Buyer"}


def users(stores: Stores) -> int:
    with Session(stores.commerce) as session:
        return session.exec(select(func.count()).select_from(PartnerUser)).one()


def a_user() -> dict[str, Any]:
    return {**A_USER, "email": f"luca.{uuid.uuid4().hex[:10]}@contoso.example"}


class Administrator:
    """An activated partner administrator, signed in on the pages and through the API."""

    def __init__(self, http: httpx.AsyncClient, calls: list[str], token: str) -> None:
        self.http, self.calls = http, calls
        self.auth = {"Authorization": f"Bearer {token}"}

    async def csrf(self, path: str) -> str:
        found = CSRF.search((await self.http.get(path)).text)
        assert found
        return found[1]


@pytest.fixture
async def administrator(
    settings: Settings, client: Client, stores: Stores, mail_sink: MailSink, worker: None
) -> AsyncIterator[Administrator]:
    onboarding_id, email = await approved_partner(client, settings)
    recorded = CallsRecorded()
    config = client.config()
    config["interceptors"] = [recorded]
    app = create_app(web_settings_for(settings), client=Client(**config), stores=stores)
    async with browse(app) as http:
        await activate(http, approval_link(mail_sink, onboarding_id))
        signed_in = await http.post(
            "/api/partner/sessions", json={"email": email, "password": PASSWORD}
        )
        yield Administrator(http, recorded.calls, signed_in.json()["token"])


@CALLS
@given(field=st.sampled_from(USER_FIELDS), value=any_json)
async def test_adding_a_user_through_the_api_refuses_any_bad_value_naming_it(
    administrator: Administrator, stores: Stores, field: str, value: Any
) -> None:
    body = {**a_user(), field: value}
    before, calls = users(stores), len(administrator.calls)
    response = await administrator.http.post(
        "/api/partner/users",
        content=json.dumps(body),
        headers={**administrator.auth, "Content-Type": "application/json"},
    )
    if valid(NewPartnerUser, body):
        assert response.status_code in (201, 409), response.text
    else:
        assert response.status_code == 422, response.text
        assert {tuple(error["loc"]) for error in response.json()["detail"]} == {("body", field)}
        assert users(stores) == before and len(administrator.calls) == calls


@CALLS
@given(field=st.sampled_from(USER_FIELDS), value=anything)
async def test_the_add_user_form_refuses_any_bad_text_naming_the_field(
    administrator: Administrator, stores: Stores, field: str, value: str
) -> None:
    form = {**a_user(), field: value}
    before, calls = users(stores), len(administrator.calls)
    token = await administrator.csrf("/account/users")
    response = await administrator.http.post("/account/users", data={**form, "csrf_token": token})
    if valid(NewPartnerUser, {name: text for name, text in form.items() if text.strip()}):
        assert response.status_code in (303, 409), response.text
    else:
        assert response.status_code == 422, response.text
        assert f'id="{field}-error"' in response.text
        assert users(stores) == before and len(administrator.calls) == calls


@CALLS
@given(email=any_json, password=any_json, role=any_json)
async def test_sign_in_and_roles_answer_any_json_without_a_500(
    administrator: Administrator, email: Any, password: Any, role: Any
) -> None:
    signing_in = await administrator.http.post(
        "/api/partner/sessions",
        content=json.dumps({"email": email, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    assert signing_in.status_code in (401, 422, 429), signing_in.text
    changing = await administrator.http.put(
        "/api/partner/users/1/role",
        content=json.dumps({"role": role}),
        headers={**administrator.auth, "Content-Type": "application/json"},
    )
    assert changing.status_code in (200, 404, 409, 422), changing.text
    if changing.status_code == 422:
        assert {tuple(error["loc"]) for error in changing.json()["detail"]} == {("body", "role")}


@CALLS
@given(token=anything, password=anything)
async def test_a_link_with_any_token_or_password_is_refused_plainly(
    administrator: Administrator, stores: Stores, token: str, password: str
) -> None:
    before = users(stores)
    # "." and ".." are path segments a client resolves before sending (httpx does), not
    # tokens: they would ask for /activate or /.
    path = f"/activate/{quote(token, safe='')}" if token not in ("", ".", "..") else "/activate/x"
    shown = await administrator.http.get(path)
    # A token that decodes to a slash ("%2F") names no link: the router redirects it away.
    assert shown.status_code in (307, 404, 410), shown.text
    csrf = await administrator.csrf("/account")
    posted = await administrator.http.post(
        path, data={"password": password, "confirm": password, "csrf_token": csrf}
    )
    # A password longer than any allowed is refused before the link is looked at.
    assert posted.status_code in (307, 404, 410, 413, 422), posted.text
    assert users(stores) == before
