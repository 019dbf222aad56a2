"""The organisation's credit limit on its Commerce page, as an admin sets it in a browser."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from html import unescape

import httpx
import pytest
from temporalio.client import Client

from models.partners import CreditLimitValues
from settings import Settings
from stores import Stores
from stores.credit_limits import credit_limit, set_credit_limit
from tests.conftest import ADMIN, REP
from tests.test_credit_limit_api import an_approved_partner
from tests.test_pages import CSRF, sign_in


async def an_admin_on_a_partner(
    web: httpx.AsyncClient, client: Client, settings: Settings, company: str = ""
) -> tuple[int, int, int]:
    """An approved partner and an admin signed in: its prospect, organisation and person."""
    records = await an_approved_partner(
        client, settings, company=company or f"Northwind {uuid.uuid4().hex[:6]}"
    )
    await sign_in(web, ADMIN)
    assert records.prospect_id and records.organization_customer_id and records.person_customer_id
    return records.prospect_id, records.organization_customer_id, records.person_customer_id


async def save(web: httpx.AsyncClient, organization: int, **form: str) -> httpx.Response:
    """Fill in the credit limit form on the organisation's page and press Save."""
    page = await web.get(f"/commerce/customers/{organization}")
    token = CSRF.search(page.text)
    assert token
    return await web.post(
        f"/commerce/customers/{organization}/credit-limit", data={"csrf_token": token[1], **form}
    )


def text_of(html: str) -> str:
    """The page as a person reads it: no tags, one space between words."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def history_rows(html: str) -> list[str]:
    table = re.search(r'id="credit-limit-history".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, "no history table"
    return [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", table[1], re.S)]


async def test_an_admin_sets_and_changes_the_credit_limit_and_sees_every_change(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    prospect, organization, person = await an_admin_on_a_partner(web, client, settings)
    page = f"/commerce/customers/{organization}"

    prospect_page = (await web.get(f"/commerce/prospects/{prospect}")).text
    assert f'<a href="{page}#credit-limit">Credit limit</a>' in prospect_page
    first = await web.get(page)
    assert "No credit limit is set." in first.text
    assert "No changes yet." in first.text

    saved = await save(
        web,
        organization,
        amount="25000",
        currency="eur",
        limit_type="balance_all",
        mandatory="true",
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{page}#credit-limit"
    shown = text_of((await web.get(page)).text)
    assert "Credit limit set: 25,000.00 EUR, Balance + All, mandatory." in shown
    assert "Amount 25,000.00 EUR Type Balance + All Mandatory Yes Last changed" in shown
    assert re.search(r"Last changed \w+ \d+, \d{4}, [\d:]+ [AP]M UTC by anna", shown)
    [set_first] = history_rows((await web.get(page)).text)
    assert set_first.endswith("anna — → 25,000.00 — → EUR — → Balance + All — → Yes")

    await save(web, organization, amount="30000.5", currency="EUR", limit_type="balance")
    changed = (await web.get(page)).text
    assert "Credit limit set: 30,000.50 EUR, Balance." in text_of(changed)
    newest, oldest = history_rows(changed)
    assert newest.endswith("anna 25,000.00 → 30,000.50 EUR Balance + All → Balance Yes → No")
    assert oldest == set_first
    # The form shows the limit as it is now.
    assert 'name="amount" type="text" value="30000.50"' in changed
    assert '<option value="balance" selected>' in changed
    assert 'name="mandatory" type="checkbox" value="true" checked' not in changed

    again = await save(web, organization, amount="30000.50", currency="eur", limit_type="balance")
    assert again.status_code == 303
    unchanged = (await web.get(page)).text
    assert "Nothing to save: the credit limit already has these values." in unchanged
    assert len(history_rows(unchanged)) == 2

    person_page = (await web.get(f"/commerce/customers/{person}")).text
    assert "Credit limit" not in person_page


async def test_a_form_with_mistakes_is_a_422_that_keeps_what_was_typed_and_saves_nothing(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    _, organization, _ = await an_admin_on_a_partner(web, client, settings)

    response = await save(
        web,
        organization,
        amount="12,50<b>",
        currency="EURO",
        limit_type="balance_packing_slip",
        mandatory="true",
    )

    assert response.status_code == 422
    assert "Not saved: please correct the fields marked below." in response.text
    assert 'value="12,50&lt;b&gt;"' in response.text
    assert 'value="EURO"' in response.text
    assert '<option value="balance_packing_slip" selected>' in response.text
    assert 'type="checkbox" value="true" checked' in response.text
    amount_error = re.search(r'id="amount-error">([^<]*)<', response.text)
    currency_error = re.search(r'id="currency-error">([^<]*)<', response.text)
    assert amount_error and "in digits, such as 25000.00" in amount_error[1]
    assert currency_error and "ISO 4217" in currency_error[1]
    assert 'id="limit_type-error"' not in response.text
    assert credit_limit(stores.commerce, organization) is None


@pytest.mark.parametrize(
    ("form", "field", "says"),
    [
        ({"amount": "", "currency": "EUR"}, "amount", "Please fill this in."),
        ({"amount": "1.234", "currency": "EUR"}, "amount", "no more than 2 decimal places"),
        ({"amount": "-1", "currency": "EUR"}, "amount", "greater than or equal to 0"),
        ({"amount": "99999999999999999", "currency": "EUR"}, "amount", "no more than 16 digits"),
        ({"amount": "NaN", "currency": "EUR"}, "amount", "in digits, such as 25000.00"),
        ({"amount": "1e309", "currency": "EUR"}, "amount", "in digits, such as 25000.00"),
        ({"amount": "1_000", "currency": "EUR"}, "amount", "in digits, such as 25000.00"),
        (
            {"amount": "\u0661\u0660\u0660", "currency": "EUR"},
            "amount",
            "in digits, such as 25000.00",
        ),
        ({"amount": "10", "currency": ""}, "currency", "Please fill this in."),
        ({"amount": "10", "currency": "ZZZ"}, "currency", "a currency in use"),
        ({"amount": "10", "currency": "EUR", "limit_type": "all"}, "limit_type", "'balance_all'"),
    ],
)
async def test_each_mistake_is_named_by_its_field(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    stores: Stores,
    form: dict[str, str],
    field: str,
    says: str,
) -> None:
    _, organization, _ = await an_admin_on_a_partner(web, client, settings)
    response = await save(web, organization, **form)
    assert response.status_code == 422
    error = re.search(rf'id="{field}-error">([^<]*)<', response.text)
    assert error and says in unescape(error[1]), response.text
    assert credit_limit(stores.commerce, organization) is None


async def test_a_company_and_an_admin_named_like_scripts_are_text_on_the_page(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    script = "<script>alert(1)</script>"
    _, organization, _ = await an_admin_on_a_partner(web, client, settings, company=script)
    values = CreditLimitValues.model_validate({"amount": "10", "currency": "EUR"})
    set_credit_limit(stores.commerce, organization, values, script, datetime.now(UTC))

    page = (await web.get(f"/commerce/customers/{organization}")).text
    assert script not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # title, heading, changes


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    _, organization, _ = await an_admin_on_a_partner(web, client, settings)
    path = f"/commerce/customers/{organization}/credit-limit"
    form = {"amount": "10", "currency": "EUR"}
    forged = await web.post(path, data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    assert (await web.post(path, data=form)).status_code == 403
    assert credit_limit(stores.commerce, organization) is None


async def test_a_sales_rep_may_neither_see_nor_set_a_credit_limit(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    _, organization, _ = await an_admin_on_a_partner(web, client, settings)
    await sign_in(web, REP)
    page = await web.get(f"/commerce/customers/{organization}")
    assert page.status_code == 403
    token = CSRF.search((await web.get("/sales/leads")).text)
    assert token
    response = await web.post(
        f"/commerce/customers/{organization}/credit-limit",
        data={"csrf_token": token[1], "amount": "10", "currency": "EUR"},
    )
    assert response.status_code == 403
    assert "for the Commerce team" in response.text
    assert credit_limit(stores.commerce, organization) is None


async def test_only_an_organisation_customer_takes_a_credit_limit(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    _, _, person = await an_admin_on_a_partner(web, client, settings)
    token = CSRF.search((await web.get(f"/commerce/customers/{person}")).text)
    assert token

    async def post_to(customer_id: int) -> httpx.Response:
        form = {"csrf_token": token[1], "amount": "10", "currency": "EUR"}
        return await web.post(f"/commerce/customers/{customer_id}/credit-limit", data=form)

    refused = await post_to(person)
    assert refused.status_code == 409
    assert "the credit limit is its organisation's" in unescape(refused.text)
    assert credit_limit(stores.commerce, person) is None
    assert (await post_to(2**31 - 1)).status_code == 404
    assert (await post_to(2**31)).status_code == 404
