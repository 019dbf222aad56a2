"""The reps' and admins' workspace in a real browser (Debian's headless Chromium, driven by
Playwright): an admin pages through a filtered All prospects and downloads it as CSV; a
rep cancels ticked leads, one of which another rep qualified meanwhile, with a double
click; an admin sends a refused email again. Screenshots under `test-output/browser/`.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from playwright.async_api import Browser, Page, expect
from sqlmodel import Session
from temporalio.client import Client

from bench.seed import seed
from client.requests import decide, status
from models.commerce import Prospect
from models.lifecycle import Action, ReasonCode, Stage
from models.status import EmailKind
from scripts.mailsink import read_spool
from settings import Settings
from stores import Stores, views
from stores.engine import make_engine
from stores.queues import PAGE_SIZE
from tests.conftest import ADMIN, REP, eventually, free_port, web_settings_for
from tests.scenario import finished, submitted
from tests.test_browser import browser, refusals, sign_in, snap
from tests.test_workspace_decisions import SwitchableHandler
from web.app import create_app
from worker import build_worker

__all__ = ["browser"]


async def serve(app: FastAPI) -> AsyncIterator[str]:
    """The app served over HTTP on a port of its own, in the test's event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    folder = tmp_path_factory.mktemp("seeded-browser")
    stores = Stores(
        sales=make_engine(f"sqlite:///{folder / 'sales.db'}"),
        commerce=make_engine(f"sqlite:///{folder / 'commerce.db'}"),
    )
    stores.migrate()
    seed(stores, 400)
    with Session(stores.commerce) as session:
        session.add(
            Prospect(
                onboarding_id="0badc0de0badc0de",
                company_name='=HYPERLINK("http://evil.example","Click me")',
                first_name="@Giulia",
                last_name="-Rossi",
                email="hostile@contoso.example",
                stage=Stage.LEAD_OPEN,
                created_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        session.commit()
    yield stores
    stores.dispose()


@pytest.fixture
async def seeded_site(
    base_settings: Settings, client: Client, seeded: Stores
) -> AsyncIterator[str]:
    async for address in serve(create_app(web_settings_for(base_settings), client, seeded)):
        yield address


async def page_rows(page: Page) -> list[str]:
    """The rows' links, in the order shown."""
    links = page.locator("table.list tbody tr a[href^='/commerce/prospects/']")
    return [await link.get_attribute("href") or "" for link in await links.all()]


async def test_an_admin_pages_through_a_filtered_view_and_downloads_it_as_csv(
    seeded_site: str, browser: Browser, seeded: Stores, tmp_path: Path
) -> None:
    refused: list[str] = []
    context = await browser.new_context(accept_downloads=True)
    admin = refusals(await context.new_page(), refused)
    await sign_in(admin, seeded_site, ADMIN)
    await admin.click("nav >> text=Overview")
    await expect(admin.locator("h1")).to_have_text("Commerce overview")
    await snap(admin, "workspace-01-commerce-overview")

    await admin.click("nav >> text=All prospects")
    await admin.select_option("#status", "rejected")
    await admin.select_option("#mode", "sales")
    await admin.select_option("#sort", "oldest")
    await admin.click("button:has-text('Filter')")
    summary = await admin.locator("#summary").inner_text()
    total = int(summary.split()[0].replace(",", ""))
    assert total > PAGE_SIZE
    for word in ("status=rejected", "mode=sales", "sort=oldest"):
        assert word in admin.url
    await snap(admin, "workspace-02-all-prospects-filtered")

    first = await page_rows(admin)
    assert len(first) == PAGE_SIZE
    await admin.click("text=Next page →")
    second = await page_rows(admin)
    assert len(first) + len(second) == min(total, 2 * PAGE_SIZE)
    assert not set(first) & set(second)
    bookmarked = admin.url
    await snap(admin, "workspace-03-all-prospects-page-2")
    # A view is an address: opened anew, it shows the same rows.
    other = await context.new_page()
    await other.goto(bookmarked)
    assert await page_rows(other) == second
    await admin.click("text=← Previous page")
    assert await page_rows(admin) == first

    async with admin.expect_download() as waiting:
        await admin.click("text=as CSV")
    download = await waiting.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name.startswith("all-prospects-") and saved.suffix == ".csv"
    with saved.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == total
    assert {row["Status"] for row in rows} == {"Rejected"}

    await admin.fill("#q", "0badc0de0badc0de")
    await admin.select_option("#status", "")
    await admin.select_option("#mode", "")
    await admin.click("button:has-text('Filter')")
    await expect(admin.locator("#summary")).to_contain_text("1 prospect")
    async with admin.expect_download() as waiting:
        await admin.click("text=as CSV")
    hostile = tmp_path / "hostile.csv"
    await (await waiting.value).save_as(hostile)
    with hostile.open(encoding="utf-8-sig", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["Company"] == '\'=HYPERLINK("http://evil.example","Click me")'
    assert (row["First name"], row["Last name"]) == ("'@Giulia", "'-Rossi")
    await snap(admin, "workspace-04-all-prospects-hostile")
    assert refused == []


async def test_a_rep_cancels_ticked_leads_with_a_double_click_one_having_moved_on(
    site: str,
    browser: Browser,
    client: Client,
    settings: Settings,
    stores: Stores,
    mail_sink: object,
) -> None:
    word = f"Browse{uuid.uuid4().hex[:6]}"
    requests = [await submitted(client, settings, company=f"{word} {n} Srl") for n in range(3)]
    refused: list[str] = []
    rep = refusals(await (await browser.new_context()).new_page(), refused)
    await sign_in(rep, site, REP)
    await rep.click("nav >> text=Overview")
    await expect(rep.locator("h1")).to_have_text("Sales overview")
    await snap(rep, "workspace-05-sales-overview")
    await rep.click("nav >> text=All Commerce B2B leads")
    await rep.fill("#q", word)
    await rep.click("button:has-text('Filter')")
    await expect(rep.locator("#summary")).to_contain_text("3 leads")
    for n in range(3):
        await rep.get_by_label(f"Tick {word} {n} Srl").check()
    await rep.select_option("#reason_code", "no_longer_interested")
    await rep.fill("#bulk-reason", "You told us you found another supplier.")
    await snap(rep, "workspace-06-leads-ticked")
    # Meanwhile, another rep qualifies one of them.
    await decide(client, requests[2].onboarding_id, Action.QUALIFY, actor="luca")

    await rep.dblclick("button:has-text('Cancel the ticked leads')")
    await expect(rep.locator("h1")).to_have_text("Cancel: what happened to each lead")
    await expect(rep.locator("#outcome-summary")).to_have_text("2 done · 1 refused")
    moved_on = rep.locator("tr", has_text=f"{word} 2 Srl")
    await expect(moved_on).to_contain_text("Cancel is not possible")
    await expect(moved_on).to_contain_text("an open opportunity now")
    await snap(rep, "workspace-07-bulk-outcome")
    await rep.click("text=Back to the list >> nth=0")
    assert f"q={word}" in rep.url
    assert refused == []

    for request in requests[:2]:
        current = await finished(client, await status(client, request.onboarding_id))
        assert current.stage is Stage.REJECTED
        assert [(d.action, d.reason_code) for d in current.decisions] == [
            (Action.CANCEL, ReasonCode.NO_LONGER_INTERESTED)
        ]
        assert len(mail_sink.messages(request.onboarding_id, EmailKind.PROSPECT_REJECTED)) == 1  # type: ignore[attr-defined]
    assert (await status(client, requests[2].onboarding_id)).stage is Stage.OPPORTUNITY_OPEN


@pytest.fixture
async def refusing_site(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    tmp_path: Path,
) -> AsyncIterator[tuple[str, Settings, SwitchableHandler, Path]]:
    """A worker and the served web app whose mail goes to a server that refuses it until told."""
    handler = SwitchableHandler(tmp_path)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    mailing = settings.model_copy(update={"smtp_port": port})
    try:
        async with build_worker(client, mailing, stores, activity_executor):
            app = create_app(web_settings_for(mailing), client=client, stores=stores)
            async for address in serve(app):
                yield address, mailing, handler, tmp_path
    finally:
        controller.stop()


async def test_an_admin_sees_a_refused_email_and_sends_it_again_once(
    refusing_site: tuple[str, Settings, SwitchableHandler, Path],
    browser: Browser,
    client: Client,
    stores: Stores,
) -> None:
    site, mailing, handler, spool = refusing_site
    request = await submitted(client, mailing)
    await decide(client, request.onboarding_id, Action.CANCEL, actor="rep", reason="Not now.")
    await finished(client, request)
    prospect = views.prospect_of_request(stores.commerce, request.onboarding_id)
    assert prospect

    refused: list[str] = []
    admin = refusals(await (await browser.new_context()).new_page(), refused)
    await sign_in(admin, site, ADMIN)
    await admin.goto(f"{site}/commerce/prospects/{prospect.id}")
    panel = admin.locator("#notifications")
    rejection = panel.locator("tr", has_text="Rejected, with the reason")
    await expect(rejection).to_contain_text("Not sent")
    await expect(rejection).to_contain_text("550 5.1.1 No such user here")
    await expect(rejection).to_contain_text("English")
    await expect(rejection).to_contain_text(f"<prospect-rejected.{request.onboarding_id}@")
    await snap(admin, "workspace-08-email-refused")

    handler.refusing = False
    # Pressed twice, as a hurried admin would: one resend, one email.
    await rejection.locator("button:has-text('Send it again')").dblclick()
    await expect(admin.locator(".flash")).to_contain_text("Sent again", timeout=30_000)
    await expect(panel.locator("tr", has_text="Rejected, with the reason")).to_contain_text("Sent")
    await expect(panel.locator("tr", has_text="Rejected, with the reason")).to_contain_text(
        f"sent again by {ADMIN[0]}"
    )
    await snap(admin, "workspace-09-email-sent-again")
    delivered = [
        message
        for message in read_spool(spool)
        if message["X-Onboarding-Event"] == EmailKind.PROSPECT_REJECTED.event
    ]
    assert len(delivered) == 1
    assert refused == []
