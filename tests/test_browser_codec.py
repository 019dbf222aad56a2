"""The Temporal UI shows a request's input in clear to a signed-in staff member, in Chromium.

A dev server of its own with its UI pointed at the web app's codec endpoint, as `make
dev` starts it (`--ui-codec-endpoint`); the server holds ciphertext only. A rep signs in
to the web app, the UI is told to include credentials (its codec setting, kept in the
browser), and the request's workflow page shows the requester's email. Without a
staff session the same page shows none of it. Screenshots in `test-output/browser/`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, expect
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from client.converter import data_converter
from client.deployment import make_current_if_none
from client.requests import submit, wait_until_recorded
from models import search_attributes
from models.ids import onboarding_workflow_id
from settings import Settings
from stores import Stores
from tests.conftest import REP, VENV_BIN, eventually, free_port, web_settings_for
from tests.scenario import a_request
from tests.test_browser import SCREENSHOTS, browser, sign_in, snap  # noqa: F401
from web.app import create_app
from worker import build_worker

# How long the UI may take to load, decode and draw a workflow's page.
DRAWN = 30_000


@dataclass
class Product:
    client: Client
    settings: Settings
    web: str
    ui: str


@pytest.fixture
async def product(
    settings: Settings, stores: Stores, activity_executor: ThreadPoolExecutor
) -> AsyncIterator[Product]:
    web_port, ui_port = free_port(), free_port()
    web, ui = f"http://localhost:{web_port}", f"http://localhost:{ui_port}"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=data_converter(settings, stores.commerce),
        dev_server_log_level="error",
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--ui-codec-endpoint", f"{web}/codec"],
    )
    app_settings = web_settings_for(settings, temporal_ui_url=ui, b2b_site_url=web)
    app = create_app(app_settings, client=env.client, stores=stores)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=web_port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with build_worker(env.client, settings, stores, activity_executor):
            # A server of its own: this build becomes its deployment's current version, as
            # the worker's first start makes it (conftest's `client` does it for the rest).
            await make_current_if_none(env.client, settings)
            await eventually(lambda: server.started)
            yield Product(env.client, settings, web, ui)
    finally:
        server.should_exit = True
        await serving
        await env.shutdown()


async def codec_with_credentials(context: BrowserContext, web: str) -> None:
    """The UI's codec setting ("include cross-origin credentials"), as a person ticks it."""
    settings = {
        "endpoint": f"{web}/codec",
        "includeCredentials": True,
        "overrideRemoteCodecConfiguration": True,
    }
    await context.add_init_script(
        "".join(
            f"window.localStorage.setItem({json.dumps(name)}, {json.dumps(json.dumps(value))});"
            for name, value in settings.items()
        )
    )


async def test_the_temporal_ui_shows_a_requests_input_to_signed_in_staff(
    product: Product,
    browser: Browser,  # noqa: F811
) -> None:
    request = a_request()
    submitted = await submit(product.client, request, product.settings)
    await wait_until_recorded(product.client, submitted.onboarding_id)
    page_url = (
        f"{product.ui}/namespaces/default/workflows/"
        f"{onboarding_workflow_id(submitted.onboarding_id)}"
    )

    staff = await browser.new_context()
    await codec_with_credentials(staff, product.web)
    page = await staff.new_page()
    await sign_in(page, product.web, REP)
    await page.goto(page_url)
    await expect(page.locator("body")).to_contain_text(request.email, timeout=DRAWN)
    await snap(page, "temporal-ui-decoded")

    stranger = await browser.new_context()
    await codec_with_credentials(stranger, product.web)
    anonymous = await stranger.new_page()
    await anonymous.goto(page_url)
    await expect(anonymous.locator("body")).to_contain_text(submitted.onboarding_id, timeout=DRAWN)
    await anonymous.wait_for_timeout(2_000)
    await expect(anonymous.locator("body")).not_to_contain_text(request.email)
    await snap(anonymous, "temporal-ui-not-signed-in")
