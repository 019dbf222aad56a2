"""The whole story in a real browser (Debian's headless Chromium, driven by Playwright).

A partner applies through the form and opens the link the received email brings, a rep
signs in, qualifies and wins the lead, an admin sees the approved prospect and its
hierarchy, and the approval email arrives.
Each page is saved as a screenshot under `test-output/browser/` for a person to look at;
those the guides show are saved again under `docs/screenshots/` (`IN_THE_GUIDES`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from temporalio.client import Client

from client.requests import wait_until_recorded
from models.status import EmailKind
from settings import PROJECT_DIR
from tests.conftest import ADMIN, REP, MailSink
from tests.scenario import text_of

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_DIR / "test-output" / "browser"
# The pages the guides in docs/ show, by the name each browser test saves them under: every
# run brings the guides' screenshots up to date with the pages (commit them with the change).
GUIDES_SCREENSHOTS = PROJECT_DIR / "docs" / "screenshots"
IN_THE_GUIDES = {
    "02-form": "form",
    "07-lead": "lead",
    "11-prospect-with-hierarchy": "prospect",
    "lead-held": "lead-held",
    "partner-01-activate": "partner-activate",
    "partner-03-organization-users": "partner-users",
    "partner-07-my-account-with-credit-limit": "partner-my-account",
    "temporal-ui-decoded": "temporal-ui-decoded",
    "temporal-ui-not-signed-in": "temporal-ui-not-signed-in",
    "workspace-01-commerce-overview": "workspace-overview",
    "workspace-06-leads-ticked": "workspace-leads",
    "workspace-07-bulk-outcome": "workspace-bulk-outcome",
    "workspace-08-email-refused": "workspace-email-refused",
}
# Chromium's background services would try to reach the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run does this)")
    # Kept across the browser tests, each page under its own name.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


async def snap(page: Page, name: str) -> None:
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    if name in IN_THE_GUIDES:
        shutil.copyfile(
            SCREENSHOTS / f"{name}.png", GUIDES_SCREENSHOTS / f"{IN_THE_GUIDES[name]}.png"
        )


def refusals(page: Page, seen: list[str]) -> Page:
    """Collect what the Content-Security-Policy refuses on `page`: nothing should be."""
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return page


async def sign_in(page: Page, site: str, user: tuple[str, str, str]) -> None:
    await page.goto(f"{site}/staff/signin")
    await page.fill("#name", user[0])
    await page.fill("#token", user[2])
    await page.click("button[type=submit]")


async def test_a_partner_applies_a_rep_wins_the_lead_and_an_admin_sees_the_partner(
    site: str, browser: Browser, client: Client, mail_sink: MailSink
) -> None:
    refused: list[str] = []
    partner = refusals(await (await browser.new_context()).new_page(), refused)
    await partner.goto(site)
    await snap(partner, "01-landing")
    await partner.click("text=Become a business partner >> nth=-1")
    await expect(partner.locator("h1")).to_have_text("Become a business partner")

    email = f"giulia.{uuid.uuid4().hex[:8]}@contoso.example"
    await partner.fill("#company", "Contoso Srl")
    await partner.fill("#website", "contoso.example")
    await partner.fill("#first_name", "Giulia")
    await partner.fill("#last_name", "Rossi")
    await partner.fill("#email", email)
    await partner.fill("#phone", "+39 02 1234 5678")
    await partner.fill("#job_title", "Purchasing manager")
    await partner.select_option("#locale", "it")
    await partner.fill("#comments", "We resell office furniture in Lombardy.")
    await snap(partner, "02-form")

    # A slip in the email: the page says where, and keeps everything typed.
    await partner.fill("#email", "giulia.rossi@")
    await partner.click("text=Send my request")
    await expect(partner.locator("#email-error")).to_be_visible()
    await expect(partner.locator("#company")).to_have_value("Contoso Srl")
    await expect(partner.locator("#comments")).to_have_value(
        "We resell office furniture in Lombardy."
    )
    await snap(partner, "03-form-with-an-error")
    await partner.fill("#email", email)
    await partner.click("text=Send my request")
    # From here on, the request's pages speak the language she chose for it.
    await expect(partner.locator("html")).to_have_attribute("lang", "it")
    await expect(partner.locator("h1")).to_have_text("Grazie!")
    await snap(partner, "04-confirmation")
    onboarding_id = await partner.locator(".ref").inner_text()
    await wait_until_recorded(client, onboarding_id)
    await partner.click("text=Segui la mia richiesta")
    await expect(partner.locator("h1")).to_have_text(
        "Il nostro team commerciale sta esaminando la sua richiesta."
    )
    await snap(partner, "05-request-status")
    # The same link arrives by email, in case the partner kept nothing.
    (received,) = await mail_sink.arrived(onboarding_id, EmailKind.REQUEST_RECEIVED)
    link = next(line for line in text_of(received).splitlines() if "/requests/" in line)
    assert link.startswith("http://b2b.test/")
    await partner.goto(site + link.removeprefix("http://b2b.test"))
    await expect(partner.locator("h1")).to_have_text(
        "Il nostro team commerciale sta esaminando la sua richiesta."
    )

    rep = refusals(await (await browser.new_context()).new_page(), refused)
    await sign_in(rep, site, REP)
    await expect(rep.locator("h1")).to_have_text("All Commerce B2B leads")
    await snap(rep, "06-all-commerce-b2b-leads")
    await rep.locator("tr", has_text=email).locator("a").click()
    await expect(rep.locator("h2", has_text="Timeline")).to_be_visible()
    assert onboarding_id in await rep.locator("main").inner_text()
    await snap(rep, "07-lead")
    await rep.click("button:has-text('Qualify')")
    await expect(rep.locator(".flash")).to_contain_text("Lead qualified")
    await snap(rep, "08-opportunity")
    await rep.click("button:has-text('Close as won')")
    await expect(rep.locator(".flash")).to_contain_text("Opportunity won")
    await snap(rep, "09-opportunity-won")

    admin = refusals(await (await browser.new_context()).new_page(), refused)
    await sign_in(admin, site, ADMIN)
    await admin.select_option("#status", "approved")
    await admin.fill("#q", email)
    await admin.click("button:has-text('Filter')")
    await snap(admin, "10-all-prospects")
    await admin.click("table >> text=Contoso Srl")
    await expect(admin.locator("h1 .badge")).to_have_text("Approved")
    tree = admin.locator("ul.tree")
    await expect(tree).to_contain_text("Contoso Srl")
    await expect(tree).to_contain_text("Giulia Rossi")
    await snap(admin, "11-prospect-with-hierarchy")
    # The erase form's box to tick starts its label's line, not centred above it.
    label = await admin.locator("#personal-data label:has(input[type=checkbox])").bounding_box()
    box = await admin.locator("#personal-data input[type=checkbox]").bounding_box()
    assert label and box and box["width"] < 40, (label, box)
    assert abs(box["x"] - label["x"]) < 2 and box["y"] < label["y"] + label["height"] / 2

    await partner.reload()
    await expect(partner.locator("h1")).to_contain_text("Benvenuti")
    await snap(partner, "12-request-approved")
    await partner.click("nav.languages >> text=English")
    await expect(partner.locator("h1")).to_contain_text("Welcome aboard")
    await snap(partner, "13-request-approved-in-english")

    # The API's documentation renders from the package's own Swagger UI, with no CDN.
    await partner.goto(f"{site}/docs")
    await expect(partner.locator(".swagger-ui .info .title")).to_contain_text(
        "B2B partner onboarding"
    )
    await expect(partner.locator(".opblock-summary-path").first).to_be_visible()
    await snap(partner, "13-api-docs")
    assert refused == []

    (approval,) = await mail_sink.arrived(onboarding_id, EmailKind.PROSPECT_APPROVED)
    assert approval["To"] == f"Giulia Rossi <{email}>"
    assert "approvata come partner" in text_of(approval)
    assert len(mail_sink.messages(onboarding_id)) == 2
