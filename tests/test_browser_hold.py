"""A rep holds and resumes a lead in a real browser (Debian's headless Chromium), and the
forms' own rules hold there: no hold without a note, no cancel without a reason code.

The held lead's page is saved as `test-output/browser/lead-held.png`.
"""

from __future__ import annotations

from playwright.async_api import Browser, expect
from temporalio.client import Client

from client.requests import status, submit, wait_until_recorded
from settings import Settings
from stores import Stores, views
from tests.conftest import REP
from tests.scenario import a_request
from tests.test_browser import browser, refusals, sign_in, snap

__all__ = ["browser"]


async def test_a_rep_holds_a_lead_with_a_note_and_resumes_it(
    browser: Browser, site: str, client: Client, settings: Settings, stores: Stores
) -> None:
    submitted = await submit(client, a_request(company="Held Srl"), settings)
    await wait_until_recorded(client, submitted.onboarding_id)
    lead = views.lead_of_request(stores.sales, submitted.onboarding_id)
    assert lead
    refused: list[str] = []
    page = refusals(await browser.new_page(), refused)
    await sign_in(page, site, REP)
    await page.goto(f"{site}/sales/leads/{lead.id}")
    await expect(page.locator("#hold h2")).to_have_text("Time")
    await expect(page.locator("#hold")).to_contain_text("Next reminder")

    # The browser keeps both forms from being sent incomplete.
    await page.click("button:has-text('Put on hold')")
    await page.click("button:has-text('Cancel')")
    assert await page.eval_on_selector("#hold-note", "field => !field.validity.valid")
    assert await page.eval_on_selector("#reason_code-cancel", "field => !field.validity.valid")
    current = await status(client, submitted.onboarding_id)
    assert current.held is None and not current.decisions

    await page.fill("#hold-note", "Waiting for their VAT certificate")
    await page.click("button:has-text('Put on hold')")
    await expect(page.locator("#hold h2")).to_have_text("On hold")
    await expect(page.locator("#hold")).to_contain_text("by mario")
    await expect(page.locator("#hold")).to_contain_text("Waiting for their VAT certificate")
    await snap(page, "lead-held")
    # The decisions start right under their heading: Qualify, a button alone, does not
    # sink to the bottom of the taller Cancel form beside it.
    heading = await page.locator("section.actions h2").bounding_box()
    qualify = await page.locator("button:has-text('Qualify')").bounding_box()
    assert heading and qualify
    assert qualify["y"] - (heading["y"] + heading["height"]) < 40, (heading, qualify)

    await page.click("button:has-text('Resume')")
    await expect(page.locator(".flash")).to_contain_text("Resumed")
    await expect(page.locator("#hold h2")).to_have_text("Time")
    assert (await status(client, submitted.onboarding_id)).held is None
    assert refused == []
