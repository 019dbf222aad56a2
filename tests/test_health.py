"""What a load balancer, systemd or Kubernetes asks: is the process up, and is it ready.

Ready means Temporal, both stores and the mail relay answer; when one does not, the
answer is a 503 that names it and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from settings import PROJECT_DIR, Settings
from stores import Stores
from stores.engine import make_engine
from tests.conftest import MailSink, answering, browse, free_port, postgres_databases
from tests.faults.test_faults import set_database_down
from web.app import create_app

ALL_OK = {"temporal": "ok", "sales_store": "ok", "commerce_store": "ok", "mail_server": "ok"}


@pytest.fixture
def postgres_urls() -> Iterator[list[str]]:
    with postgres_databases("sales", "commerce") as urls:
        yield urls


@pytest.fixture
def own_stores(postgres_urls: list[str]) -> Iterator[Stores]:
    sales, commerce = postgres_urls
    stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
    stores.migrate()
    yield stores
    stores.dispose()


async def test_the_web_app_is_up_and_ready_while_everything_answers(
    web: httpx.AsyncClient,
) -> None:
    up = await web.get("/healthz")
    ready = await web.get("/readyz")

    assert (up.status_code, up.json()) == (200, {"status": "up"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": ALL_OK})


async def test_the_web_app_names_a_store_that_is_down_and_a_mail_server_that_is_not_there(
    web_settings: Settings,
    client: Client,
    own_stores: Stores,
    postgres_urls: list[str],
) -> None:
    nowhere = web_settings.model_copy(update={"smtp_port": free_port()})
    async with browse(create_app(nowhere, client=client, stores=own_stores)) as web:
        set_database_down(postgres_urls[1], down=True)
        try:
            down = await web.get("/readyz")
            up = await web.get("/healthz")
        finally:
            set_database_down(postgres_urls[1], down=False)
        back = (await web.get("/readyz")).json()["checks"]

    assert down.status_code == 503 and up.status_code == 200
    checks = down.json()["checks"]
    assert down.json()["status"] == "not ready"
    assert checks["temporal"] == checks["sales_store"] == "ok"
    assert "not currently accepting connections" in checks["commerce_store"]
    assert "Connect call failed" in checks["mail_server"]
    assert back["commerce_store"] == "ok"


@asynccontextmanager
async def worker_process(client: Client, tmp_path: Path, **env: str) -> AsyncIterator[str]:
    """`python worker.py` with its health endpoint on a port of its own: its address."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "ONBOARDING_TASK_QUEUE": f"health-{free_port()}",
            "WORKER_HEALTH_ADDRESS": address,
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await answering(f"http://{address}/healthz", process)
        yield f"http://{address}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_the_worker_answers_readiness_naming_a_down_store_and_mail_server(
    client: Client, tmp_path: Path, mail_sink: MailSink, postgres_urls: list[str]
) -> None:
    sales, commerce = postgres_urls
    stores = {"SALES_DATABASE_URL": sales, "COMMERCE_DATABASE_URL": commerce}
    mail = {"SMTP_HOST": mail_sink.host, "SMTP_PORT": str(mail_sink.port)}
    async with (
        worker_process(client, tmp_path, **stores, **mail) as worker,
        httpx.AsyncClient() as http,
    ):
        up = await http.get(f"{worker}/healthz")
        ready = await http.get(f"{worker}/readyz")
        set_database_down(sales, down=True)
        try:
            store_down = await http.get(f"{worker}/readyz")
        finally:
            set_database_down(sales, down=False)
    async with (
        worker_process(client, tmp_path, **stores, SMTP_PORT=str(free_port())) as worker,
        httpx.AsyncClient() as http,
    ):
        mail_down = await http.get(f"{worker}/readyz")

    assert (up.status_code, up.json()) == (200, {"status": "up"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": ALL_OK})
    assert store_down.status_code == 503
    assert "not currently accepting connections" in store_down.json()["checks"]["sales_store"]
    assert store_down.json()["checks"]["commerce_store"] == "ok"
    assert mail_down.status_code == 503
    assert "Connect call failed" in mail_down.json()["checks"]["mail_server"]
