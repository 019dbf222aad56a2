"""What Prometheus scrapes after a real onboarding: the web app's `/metrics` and the
worker's, a `python worker.py` process with WORKER_METRICS_ADDRESS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from client.converter import data_converter
from settings import PROJECT_DIR, Settings
from stores import Stores
from tests.conftest import REP, answering, bearer, browse, eventually, free_port, web_settings_for
from web.app import create_app

DECISION_ROUTE = "/api/onboarding-requests/{onboarding_id}/{action}"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series; 0 when there is none."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@pytest.fixture
def own_settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Stores of this test's own, so the gauge by stage counts only its request."""
    return base_settings.model_copy(
        update={
            "sales_database_url": f"sqlite:///{tmp_path / 'sales.db'}",
            "commerce_database_url": f"sqlite:///{tmp_path / 'commerce.db'}",
            "onboarding_task_queue": f"metrics-{free_port()}",
        }
    )


@pytest.fixture
def own_stores(own_settings: Settings) -> Iterator[Stores]:
    stores = Stores.from_settings(own_settings)
    stores.migrate()
    yield stores
    stores.dispose()


@pytest.fixture
async def worker_metrics(client: Client, own_settings: Settings) -> AsyncIterator[str]:
    """A worker process serving its metrics: their URL."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "ONBOARDING_TASK_QUEUE": own_settings.onboarding_task_queue,
        "SALES_DATABASE_URL": own_settings.sales_database_url,
        "COMMERCE_DATABASE_URL": own_settings.commerce_database_url,
        "SMTP_HOST": own_settings.smtp_host,
        "SMTP_PORT": str(own_settings.smtp_port),
        "MAIL_FROM": own_settings.mail_from,
        "WORKER_METRICS_ADDRESS": address,
    }
    process = subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=PROJECT_DIR,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{address}/metrics"
    try:
        await answering(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_both_endpoints_count_a_real_onboarding(
    client: Client, own_settings: Settings, own_stores: Stores, worker_metrics: str
) -> None:
    # The worker keeps the requests' data keys in its own Commerce: so does this client.
    own_client = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=data_converter(own_settings, own_stores.commerce),
    )
    app = create_app(web_settings_for(own_settings), client=own_client, stores=own_stores)
    async with browse(app) as web:
        submitted = await web.post(
            "/api/onboarding-requests",
            json={
                "company": "Metrics Srl",
                "first_name": "Marta",
                "last_name": "Bianchi",
                "email": f"marta.{free_port()}@metrics.example",
            },
        )
        assert submitted.status_code == 202, submitted.text
        onboarding_id = submitted.json()["onboarding_id"]
        for action in ("qualify", "won"):
            decided = await web.post(
                f"/api/onboarding-requests/{onboarding_id}/{action}", headers=bearer(REP)
            )
            assert decided.status_code == 200, decided.text

        async def approval_sent() -> bool:
            status = (
                await web.get(f"/api/onboarding-requests/{onboarding_id}", headers=bearer(REP))
            ).json()
            return (status.get("notification") or {}).get("state") == "sent"

        await eventually(approval_sent)
        scraped = await web.get("/metrics")
    async with httpx.AsyncClient() as http:
        worker = (await http.get(worker_metrics)).text

    web_text = scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    assert sample(web_text, "b2b_onboarding_requests", stage="approved") == 1
    assert sample(web_text, "b2b_onboarding_requests", stage="lead_open") == 0
    for action in ("qualify", "won"):
        assert sample(web_text, "b2b_decisions_total", action=action, role="sales_rep") == 1
    assert sample(web_text, "b2b_time_to_decision_seconds_count") == 1
    decisions = {"method": "POST", "route": DECISION_ROUTE}
    assert sample(web_text, "b2b_http_requests_total", **decisions, status="200") == 2
    assert sample(web_text, "b2b_http_request_duration_seconds_count", **decisions) == 2
    submit = {"method": "POST", "route": "/api/onboarding-requests", "status": "202"}
    assert sample(web_text, "b2b_http_requests_total", **submit) == 1

    # The SDK writes counters without `_total` (`b2b_emails`); the parser adds it.
    assert sample(worker, "b2b_emails_total", kind="prospect-approved", outcome="sent") == 1
    completed = sample(
        worker, "temporal_workflow_completed_total", workflow_type="OnboardingWorkflow"
    )
    assert completed >= 1

    # Every series the Grafana dashboard draws is one of these.
    dashboard = json.loads((PROJECT_DIR / "deploy" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    served = {name for text in (web_text, worker) for name in re.findall(r"^(\w+)", text, re.M)}
    for name in {
        name for query in queries for name in re.findall(r"\b(?:b2b|temporal)_\w+", query)
    }:
        assert name in served, name
