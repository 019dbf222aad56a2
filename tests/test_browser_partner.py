"""The partner's account in a real browser: activation, a user added, removed, the credit limit.

Screenshots of every page go to `test-output/browser/` with the onboarding story's.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, expect
from temporalio.client import Client

from settings import Settings
from stores import Stores, accounts
from tests.conftest import ADMIN, MailSink, eventually
from tests.test_browser import browser, sign_in, snap  # noqa: F401 - the fixture
from tests.test_partner_accounts import approved_partner, links_in
from tests.test_partner_pages import approval_link


async def set_password(page: Page, link: str, site: str, password: str) -> None:
    await page.goto(link.replace("http://b2b.test", site))
    await page.fill("#password", password)
    await page.fill("#confirm", password)
    await page.click("button[type=submit]")


async def invitations_to(mail_sink: MailSink, address: str) -> list:
    return [
        m
        for m in mail_sink.messages()
        if m["X-Onboarding-Event"] == "user-invitation"
        and m["To"].addresses[0].addr_spec == address
    ]


async def test_a_partner_activates_adds_a_user_removes_them_and_sees_the_credit_limit(
    site: str,
    browser: Browser,  # noqa: F811
    client: Client,
    settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
) -> None:
    onboarding_id, admin_email = await approved_partner(client, settings)
    partner = await (await browser.new_context()).new_page()
    await partner.goto(approval_link(mail_sink, onboarding_id).replace("http://b2b.test", site))
    await expect(partner.locator("h1")).to_have_text("Activate your account")
    await snap(partner, "partner-01-activate")
    await set_password(
        partner, approval_link(mail_sink, onboarding_id), site, "a quiet harbour at dusk"
    )
    await expect(partner.locator(".flash")).to_contain_text("Your password is set")
    await expect(partner.locator("#credit-limit")).to_contain_text("No credit limit")
    await snap(partner, "partner-02-my-account")

    await partner.click("nav >> text=Organisation users")
    invitee = f"luca.{onboarding_id}@contoso.example"
    await partner.fill("#first_name", "Luca")
    await partner.fill("#last_name", "Bianchi")
    await partner.fill("#email", invitee)
    await partner.fill("#job_title", "Buyer")
    await partner.click("text=Add and invite")
    await expect(partner.locator(".flash")).to_contain_text("Luca Bianchi is invited")
    await expect(partner.locator("tr", has_text=invitee)).to_contain_text("invited")
    await snap(partner, "partner-03-organization-users")

    await eventually(lambda: invitations_to(mail_sink, invitee))
    await asyncio.sleep(0.5)
    (invitation,) = await invitations_to(mail_sink, invitee)

    luca = await (await browser.new_context()).new_page()
    await set_password(luca, links_in(invitation)[0], site, "lanterns over the river")
    await expect(luca.locator("h1")).to_have_text("My account")
    await expect(luca.locator("main")).to_contain_text("Contoso Srl")
    await snap(luca, "partner-04-invited-user-signed-in")

    await partner.reload()
    await partner.locator("tr", has_text=invitee).locator("button:has-text('Remove')").click()
    await expect(partner.locator(".flash")).to_contain_text("can no longer sign in")
    await expect(partner.locator("tr", has_text=invitee)).to_contain_text("removed")
    await snap(partner, "partner-05-user-removed")
    # His open session is refused on his next click.
    await luca.reload()
    await expect(luca.locator("h1")).to_have_text("Sign in")

    me = accounts.partner_account_by_email(stores.commerce, admin_email)
    assert me is not None
    commerce = await (await browser.new_context()).new_page()
    await sign_in(commerce, site, ADMIN)
    await commerce.goto(f"{site}/commerce/customers/{me.organization_customer_id}")
    await commerce.fill("#amount", "25000")
    await commerce.fill("#currency", "EUR")
    await commerce.select_option("#limit_type", "balance")
    await commerce.click("text=Save the credit limit")
    await expect(commerce.locator("#credit-limit-history")).to_contain_text("anna")
    await snap(commerce, "partner-06-commerce-sets-the-credit-limit")

    await partner.goto(f"{site}/account")
    await expect(partner.locator("#credit-limit")).to_contain_text("25,000.00 EUR")
    await snap(partner, "partner-07-my-account-with-credit-limit")
