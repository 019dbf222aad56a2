"""Dual-write in the staff pages: a rep edits an account, an admin a customer, each seen in
the other store; the admin's Dual-write page pauses and resumes, lists what a store refused
with Retry and Skip, and shows the conflicts and the field map."""

from __future__ import annotations

import httpx
from sqlmodel import Session
from temporalio.client import Client

from models import commerce
from models.dual_write import Entity, Side
from settings import Settings
from stores import Stores, accounts, dual_write
from tests.conftest import ADMIN, REP, eventually
from tests.test_credit_limit_api import an_approved_partner
from tests.test_credit_limit_pages import text_of
from tests.test_dual_write import NOW, dual_write_running
from tests.test_pages import CSRF, sign_in
from tests.test_partner_pages import administrator

__all__ = ["administrator", "dual_write_running"]


async def post_form(web: httpx.AsyncClient, page: str, action: str, **form: str) -> httpx.Response:
    """Open `page`, then send one of its forms as a browser would."""
    token = CSRF.search((await web.get(page)).text)
    assert token, page
    return await web.post(action, data={"csrf_token": token[1], **form})


async def test_a_rep_edits_an_account_and_the_commerce_page_shows_it(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    stores: Stores,
    dual_write_running: None,
) -> None:
    records = await an_approved_partner(client, settings)
    account, organization = records.account_id, records.organization_customer_id
    assert account and organization
    await sign_in(web, REP)
    page = f"/sales/accounts/{account}"
    shown = text_of((await web.get(page)).text)
    assert "Credit limit (from Commerce) —" in shown

    refused = await post_form(web, page, f"{page}/edit", name="Contoso", phone="call me")
    assert refused.status_code == 422
    assert "Not saved: please correct the fields marked below." in refused.text
    assert 'id="phone-error"' in refused.text

    saved = await post_form(
        web, page, f"{page}/edit", name="Contoso Renamed", phone="+39 02 7777 7777"
    )
    assert (saved.status_code, saved.headers["location"]) == (303, page)
    assert "Saved. Commerce follows within seconds." in text_of((await web.get(page)).text)

    await sign_in(web, ADMIN)

    async def on_the_customer_page() -> bool:
        customer = text_of((await web.get(f"/commerce/customers/{organization}")).text)
        return "+39 02 7777 7777" in customer and "Contoso Renamed" in customer

    await eventually(on_the_customer_page, what="the account's edit on the customer's page")


async def test_the_dual_write_page_pauses_resumes_and_lists_what_was_refused(
    web: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    stores: Stores,
    dual_write_running: None,
) -> None:
    records = await an_approved_partner(client, settings)
    person, contact = records.person_customer_id, records.contact_id
    assert person and contact
    await sign_in(web, ADMIN)
    page = "/commerce/dual-write"
    shown = text_of((await web.get(page)).text)
    assert "Sales → Commerce Running" in shown and "Commerce → Sales Running" in shown
    assert "Company name ( name ) sales both ways" in shown

    paused = await post_form(web, page, f"{page}/pause")
    assert paused.status_code == 303
    shown = text_of((await web.get(page)).text)
    assert "The sync is paused: changes wait, in order." in shown
    assert "Paused by" in shown and "Resume the sync" in shown

    # Another program wrote Commerce a phone no Sales form takes: refused, listed.
    with Session(stores.commerce) as session:
        session.add(
            commerce.SyncChange(
                entity="person",
                record_id=person,
                counterpart_id=contact,
                fields={"phone": "call me maybe"},
                actor="import",
                created_at=NOW,
            )
        )
        session.commit()
    assert (await post_form(web, page, f"{page}/resume")).status_code == 303

    def refused() -> list[dual_write.SyncError]:
        engines = dual_write.engines_of(stores.sales, stores.commerce)
        return [e for e in dual_write.errors(engines) if e.record_id == person]

    (error,) = await eventually(refused, what="the refused change on the error list")
    shown = text_of((await web.get(page)).text)
    assert (
        f"commerce_to_sales #{error.change_id} person {person} phone refused by validation" in shown
    )

    action = f"{page}/errors/commerce_to_sales/{error.change_id}"
    assert (await post_form(web, page, f"{action}/retry")).status_code == 303
    (again,) = await eventually(refused, what="the retried change refused again")
    assert again.attempts == 2
    skipped = await post_form(web, page, f"{action}/skip", reason="typed by an import")
    assert skipped.status_code == 303
    assert "Skipped: the record's later changes cross." in text_of((await web.get(page)).text)
    assert refused() == []
    values = dual_write.record_values(stores.sales, Side.SALES, Entity.PERSON, contact)
    assert values["phone"] != "call me maybe"


async def test_a_partner_administrator_edits_their_organisation_and_sales_sees_it(
    administrator: tuple[str, str],
    stores: Stores,
    web: httpx.AsyncClient,
    dual_write_running: None,
) -> None:
    _, email = administrator
    me = accounts.partner_account_by_email(stores.commerce, email)
    assert me is not None
    refused = await post_form(web, "/account", "/account/organization", phone="call me")
    assert refused.status_code == 422 and 'id="phone-error"' in refused.text
    saved = await post_form(
        web,
        "/account",
        "/account/organization",
        address="Via Dante 2, Milano",
        phone="+39 02 8888 8888",
    )
    assert (saved.status_code, saved.headers["location"]) == (303, "/account#organization")
    assert "Your organisation's address and phone are saved." in text_of(
        (await web.get("/account")).text
    )
    with Session(stores.commerce) as session:
        organization = session.get(commerce.Customer, me.organization_customer_id)
        assert organization is not None and organization.sales_account_id
        account = organization.sales_account_id

    def in_sales() -> bool:
        now = dual_write.record_values(stores.sales, Side.SALES, Entity.ORGANIZATION, account)
        return (now["address"], now["phone"]) == ("Via Dante 2, Milano", "+39 02 8888 8888")

    await eventually(in_sales, what="the organisation's address and phone on the Sales account")
