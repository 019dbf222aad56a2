"""What operators and their tools read: `/healthz`, `/readyz`, `/metrics`; not in the API's
document."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from infra import health
from web.dependencies import SettingsDep, StoresDep, TemporalDep

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up (whatever its dependencies say)."""
    return Response(health.UP, media_type="application/json")


@router.get("/readyz")
async def readyz(settings: SettingsDep, temporal: TemporalDep, stores: StoresDep) -> Response:
    """Temporal, both stores and the mail relay answer; a 503 names those that do not."""
    state = await health.readiness(settings, temporal, stores)
    return Response(
        state.model_dump_json(),
        status_code=200 if state.status == "ready" else 503,
        media_type="application/json",
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text; requests by stage are read from the stores now, off the event loop."""
    text = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
