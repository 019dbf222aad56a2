"""A request's status for the API and the requester's page: from Temporal, else the stores.

Temporal keeps a finished workflow only for the namespace's retention, and may be
unreachable for a while; both stores keep the rows, so a request stays readable.
"""

from __future__ import annotations

from typing import NoReturn

import client as onboarding
from models.payloads import Action, OnboardingStatus
from stores import Stores, views
from web.dependencies import TemporalConnection, read

# `workflow_status` of a status rebuilt from the stores, and why it was.
PAST_RETENTION = "past_retention"
TEMPORAL_UNREACHABLE = "temporal_unreachable"


async def current_status(
    temporal: TemporalConnection, stores: Stores, onboarding_id: str
) -> OnboardingStatus:
    """From Temporal, or rebuilt from the stores when Temporal has it no more or is down."""
    try:
        return await onboarding.status(await temporal.get(), onboarding_id)
    except onboarding.RequestNotFound:
        return await _from_stores(stores, onboarding_id, PAST_RETENTION)
    except onboarding.TemporalUnavailable:
        return await _from_stores(stores, onboarding_id, TEMPORAL_UNREACHABLE)


async def _from_stores(stores: Stores, onboarding_id: str, why: str) -> OnboardingStatus:
    kept = await read(views.request_status, stores, onboarding_id)
    if kept is None:
        if why == TEMPORAL_UNREACHABLE:
            raise onboarding.TemporalUnavailable("Temporal cannot be reached")
        raise onboarding.RequestNotFound(onboarding_id)
    return kept.model_copy(update={"workflow_status": why})


async def refuse_when_gone(
    temporal: TemporalConnection, stores: Stores, onboarding_id: str, action: Action
) -> NoReturn:
    """A decision on a request Temporal no longer has: refused, naming its stage."""
    kept = await current_status(temporal, stores, onboarding_id)
    why = f"{action.value} is not allowed: the request is {kept.stage.value}"
    raise onboarding.DecisionNotAllowed(why, kept.stage)
