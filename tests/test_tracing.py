"""One trace from the HTTP submission through the workflows to each activity and the
SMTP send, recorded by an in-memory exporter in place of OTLP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from client.connection import connect
from infra import tracing
from settings import Settings
from stores import Stores
from tests.conftest import REP, bearer, browse, eventually, web_settings_for
from web.app import create_app
from worker import build_worker


@pytest.fixture(scope="module")
def exporter(base_settings: Settings) -> Iterator[InMemorySpanExporter]:
    """Traces on for this module only: the tracer provider is the process's, set once."""
    spans = InMemorySpanExporter()
    tracing.configure(base_settings, "b2b-onboarding-test", exporter=spans)
    yield spans
    # Off again for the modules after this one, whose apps and clients stay untraced.
    tracing._installed = False
    spans.shutdown()


@pytest.fixture
async def traced(
    exporter: InMemorySpanExporter,
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app and a worker on a client made as the product makes it: with the plugin."""
    address = client.service_client.config.target_host
    traced_settings = settings.model_copy(update={"temporal_address": address})
    traced_client = await connect(traced_settings)
    async with build_worker(traced_client, traced_settings, stores, activity_executor):
        app = create_app(web_settings_for(traced_settings), client=traced_client, stores=stores)
        async with browse(app) as web:
            yield web


ACTIVITIES = ("record_request", "apply_decision", "send_onboarding_email")


async def test_one_trace_from_the_submission_to_the_smtp_send(
    traced: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    submitted = await traced.post(
        "/api/onboarding-requests",
        json={
            "company": "Traced Srl",
            "first_name": "Tea",
            "last_name": "Verdi",
            "email": f"tea.{uuid.uuid4().hex[:8]}@traced.example",
        },
    )
    onboarding_id = submitted.json()["onboarding_id"]
    for action in ("qualify", "won"):
        decided = await traced.post(
            f"/api/onboarding-requests/{onboarding_id}/{action}", headers=bearer(REP)
        )
        assert decided.status_code == 200

    # A workflow's span is recorded when its run ends.
    async def ended() -> bool:
        status = await traced.get(f"/api/onboarding-requests/{onboarding_id}", headers=bearer(REP))
        return bool(status.json()["workflow_status"] == "completed")

    await eventually(ended)
    assert trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]

    spans = exporter.get_finished_spans()
    (submission,) = [s for s in spans if s.name == "POST /api/onboarding-requests" and not s.parent]
    in_trace = [s for s in spans if s.context.trace_id == submission.context.trace_id]
    named = {s.name: s for s in in_trace}
    for expected in (
        "StartUpdateWithStartWorkflow:OnboardingWorkflow",
        "RunWorkflow:OnboardingWorkflow",
        *(f"RunActivity:{activity}" for activity in ACTIVITIES),
        "smtp send",
    ):
        assert expected in named, f"{expected} is not in the submission's trace"
    run = named["RunWorkflow:OnboardingWorkflow"]
    assert run.end_time is not None and run.start_time is not None
    assert run.end_time > run.start_time
    send = named["smtp send"]
    assert _parent(send, in_trace) is named["RunActivity:send_onboarding_email"]
    assert send.attributes is not None and send.attributes["b2b.email.kind"] == "prospect-approved"


def _parent(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    assert span.parent is not None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def test_without_an_otlp_endpoint_nothing_is_installed(base_settings: Settings) -> None:
    assert base_settings.otel_exporter_otlp_endpoint is None
    assert tracing.configure(base_settings, "b2b-onboarding-test") is False
