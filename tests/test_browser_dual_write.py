"""Dual-write in a real browser: a rep edits an account's phone and the Commerce admin's
page shows it; the partner adds a user and the rep's account page lists the contact; the
partner administrator changes their organisation's address and phone on My account and the
rep's account page shows them."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect
from temporalio.client import Client

from client.requests import status
from settings import Settings
from tests.conftest import ADMIN, REP, MailSink, eventually
from tests.test_browser import browser, sign_in, snap  # noqa: F401 - the fixture
from tests.test_browser_partner import set_password
from tests.test_dual_write import dual_write_running  # noqa: F401 - the fixture
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import approval_link


async def shows(page: Page, url: str, text: str) -> bool:
    """The page at `url`, loaded afresh, says `text`."""
    await page.goto(url)
    return text in await page.locator("main").inner_text()


async def test_a_rep_s_edit_reaches_commerce_and_a_partner_s_new_user_reaches_sales(
    site: str,
    browser: Browser,  # noqa: F811
    client: Client,
    settings: Settings,
    mail_sink: MailSink,
    dual_write_running: None,  # noqa: F811
) -> None:
    onboarding_id, _ = await approved_partner(client, settings)
    records = (await status(client, onboarding_id)).records
    account, organization = records.account_id, records.organization_customer_id

    rep = await (await browser.new_context()).new_page()
    await sign_in(rep, site, REP)
    await rep.goto(f"{site}/sales/accounts/{account}")
    await rep.fill("#phone", "+39 02 6666 6666")
    await rep.click("#edit button.primary")
    await expect(rep.locator(".flash")).to_contain_text("Commerce follows within seconds")
    await snap(rep, "dual-write-01-account-edited")

    admin = await (await browser.new_context()).new_page()
    await sign_in(admin, site, ADMIN)
    customer = f"{site}/commerce/customers/{organization}"
    await eventually(lambda: shows(admin, customer, "+39 02 6666 6666"), what="the phone")
    await snap(admin, "dual-write-02-customer-shows-it")

    partner = await (await browser.new_context()).new_page()
    await set_password(partner, approval_link(mail_sink, onboarding_id), site, "a quiet harbour")
    await partner.click("nav >> text=Organisation users")
    await partner.fill("#first_name", "Luca")
    await partner.fill("#last_name", "Bianchi")
    await partner.fill("#email", f"luca.{onboarding_id}@contoso.example")
    await partner.click("text=Add and invite")
    await expect(partner.locator(".flash")).to_contain_text("Luca Bianchi is invited")

    listed = f"{site}/sales/accounts/{account}"
    await eventually(lambda: shows(rep, listed, "Luca Bianchi (User)"), what="the contact")
    await snap(rep, "dual-write-03-account-lists-the-new-user")


async def test_a_partner_administrator_s_own_address_and_phone_reach_the_sales_account(
    site: str,
    browser: Browser,  # noqa: F811
    client: Client,
    settings: Settings,
    mail_sink: MailSink,
    dual_write_running: None,  # noqa: F811
) -> None:
    onboarding_id, _ = await approved_partner(client, settings)
    account = (await status(client, onboarding_id)).records.account_id

    partner = await (await browser.new_context()).new_page()
    await set_password(partner, approval_link(mail_sink, onboarding_id), site, "a quiet harbour")
    await partner.goto(f"{site}/account")
    await partner.fill("#address", "Via Dante 7, 20121 Milano")
    await partner.fill("#phone", "call me")
    await partner.click("#organization button.primary")
    await expect(partner.locator("#organization [role=alert]")).to_contain_text("Not saved")
    await partner.fill("#phone", "+39 02 7777 7777")
    await partner.click("#organization button.primary")
    await expect(partner.locator(".flash")).to_contain_text(
        "Your organisation's address and phone are saved."
    )
    await snap(partner, "dual-write-04-my-account-address-and-phone")

    rep = await (await browser.new_context()).new_page()
    await sign_in(rep, site, REP)
    page = f"{site}/sales/accounts/{account}"
    await eventually(lambda: shows(rep, page, "+39 02 7777 7777"), what="the phone in Sales")
    assert "Via Dante 7, 20121 Milano" in await rep.locator("main").inner_text()
    await snap(rep, "dual-write-05-account-shows-the-partner-s-edit")
