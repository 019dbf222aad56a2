"""What operators and their tools read: `/healthz`, `/readyz`; not part of the API's document."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

import health
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
