"""An organisation whose only administrator is erased keeps its users, and a Commerce
admin makes one of them its administrator on the customer's page (issue 23, item 11)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.client import Client

from client.partner_users import invite_partner_user
from client.personal_data import erase_personal_data
from models.partners import InviteInput, NewPartnerUser
from settings import Settings
from stores import Stores, accounts
from tests.conftest import ADMIN, MailSink
from tests.test_pages import CSRF, sign_in
from tests.test_partner_accounts import (
    activation_link,
    approved_partner,
    eventually_mail,
    links_in,
    token_of,
)

pytestmark = pytest.mark.usefixtures("worker")
NO_ADMINISTRATOR = "This organisation has no administrator"


async def test_a_commerce_admin_appoints_an_administrator_once_the_only_one_is_erased(
    client: Client,
    settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
    web: httpx.AsyncClient,
) -> None:
    onboarding_id, email = await approved_partner(client, settings)
    accounts.use_link(
        stores.commerce, token_of(activation_link(mail_sink, onboarding_id)), "a long password!"
    )
    admin = accounts.partner_account_by_email(stores.commerce, email)
    assert admin is not None and admin.is_admin
    colleague = f"luca.{uuid.uuid4().hex[:10]}@contoso.example"
    await invite_partner_user(
        client,
        settings,
        InviteInput(
            organization_customer_id=admin.organization_customer_id,
            user=NewPartnerUser(first_name="Luca", last_name="Bianchi", email=colleague),
            actor=f"partner:{admin.id}",
        ),
    )
    (invitation,) = await eventually_mail(
        mail_sink, lambda m: m["To"].addresses[0].addr_spec == colleague
    )
    user = accounts.use_link(stores.commerce, token_of(links_in(invitation)[0]), "luca's password")
    assert not user.is_admin

    await erase_personal_data(client, stores, onboarding_id, actor="anna", reason="asked")

    page = f"/commerce/customers/{admin.organization_customer_id}"
    await sign_in(web, ADMIN)
    shown = await web.get(page)
    assert shown.status_code == 200 and NO_ADMINISTRATOR in shown.text
    token = CSRF.search(shown.text)
    assert token
    appointed = await web.post(
        f"{page}/users/{user.id}/administrator", data={"csrf_token": token[1]}
    )
    assert appointed.status_code == 303
    now = accounts.partner_account(stores.commerce, user.id)
    assert now is not None and now.is_admin
    assert NO_ADMINISTRATOR not in (await web.get(page)).text
    # Without a Commerce admin's session, nothing changes.
    async with httpx.AsyncClient(transport=web._transport, base_url=str(web.base_url)) as other:
        refused = await other.post(
            f"{page}/users/{admin.id}/administrator", data={"csrf_token": token[1]}
        )
    assert refused.status_code in (401, 403, 303)
    assert not accounts.partner_account(stores.commerce, admin.id).is_admin  # type: ignore[union-attr]
