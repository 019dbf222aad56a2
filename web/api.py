"""The JSON API: the CONTRACT's routes, for the web handlers of a B2B site and for scripts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path
from pydantic import BaseModel, ConfigDict

import client as onboarding
from links import status_url
from models.payloads import (
    ALREADY_OPEN,
    Action,
    OnboardingRequest,
    OnboardingStatus,
    Reason,
    Stage,
    SubmitResult,
)
from web.auth import ApiUser
from web.dependencies import ClientDep, SecretDep, SettingsDep, StoresDep, TemporalDep
from web.identifiers import IDEMPOTENCY_KEY, ONBOARDING_ID
from web.protection import SubmitLimited
from web.status import current_status, refuse_when_gone

router = APIRouter(prefix="/api/onboarding-requests", tags=["onboarding requests"])


class Problem(BaseModel):
    detail: str


class NotAllowed(Problem):
    stage: Stage


class SubmitAccepted(SubmitResult):
    """The request's reference, and the link where its requester can follow it."""

    duplicate: Literal[False] = False
    status_url: str


class AlreadyOpen(BaseModel):
    """The email has an undecided request. Whoever asks, the answer is the same and names
    no request: knowing an email must not be enough to find one. Its link is emailed to
    the address on record instead."""

    duplicate: Literal[True] = True
    detail: str = ALREADY_OPEN


class DecisionBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Not a reseller"}]}
    )

    reason: Reason | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown one"},
    403: {"model": Problem, "description": "The user's role may not do this"},
    404: {"model": Problem, "description": "No such request"},
    413: {"model": Problem, "description": "The body is larger than MAX_BODY_BYTES"},
    429: {"model": Problem, "description": "Too many attempts from this address; see Retry-After"},
    503: {"model": Problem, "description": "Temporal cannot be reached"},
}


@router.post(
    "",
    summary="Submit an onboarding request",
    status_code=202,
    responses={k: ERRORS[k] for k in (413, 429, 503)},
    dependencies=[SubmitLimited],
)
async def submit_request(
    request: OnboardingRequest,
    client: ClientDep,
    settings: SettingsDep,
    secret: SecretDep,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> SubmitAccepted | AlreadyOpen:
    """Submit an onboarding request; the same Idempotency-Key answers with the same request."""
    submitted = await onboarding.submit(
        client,
        request,
        settings,
        idempotency_key=f"api:{idempotency_key}" if idempotency_key else None,
    )
    if submitted.duplicate:
        return AlreadyOpen()
    return SubmitAccepted(
        onboarding_id=submitted.onboarding_id,
        workflow_id=submitted.workflow_id,
        status_url=status_url(settings.b2b_site_url, secret, submitted.onboarding_id),
    )


@router.get(
    "/{onboarding_id}",
    summary="Read a request's state",
    responses={k: ERRORS[k] for k in (401, 404, 429, 503)},
)
async def get_request(
    onboarding_id: str, user: ApiUser, temporal: TemporalDep, stores: StoresDep
) -> OnboardingStatus:
    """Where a request stands: its stage, decisions, email and the ids of its records."""
    return await current_status(temporal, stores, _known(onboarding_id))


@router.post(
    "/{onboarding_id}/{action}",
    summary="Decide a request",
    responses={
        **ERRORS,
        409: {"model": NotAllowed, "description": "Not allowed in the current stage"},
    },
)
async def decide_request(
    onboarding_id: str,
    action: Annotated[Action, Path(description="qualify, cancel, won, lost, approve or reject")],
    user: ApiUser,
    temporal: TemporalDep,
    stores: StoresDep,
    body: Annotated[DecisionBody | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> OnboardingStatus:
    """A rep's (qualify, cancel, won, lost) or an admin's (approve, reject) decision."""
    if not user.may(action):
        raise HTTPException(403, f"{user.name} is a {user.role.value} and may not {action.value}")
    try:
        return await onboarding.decide(
            await temporal.get(),
            _known(onboarding_id),
            action,
            actor=user.name,
            reason=body.reason if body else None,
            # The action is part of the id: a key reused for another action is another decision.
            decision_id=f"api:{action.value}:{idempotency_key}" if idempotency_key else None,
        )
    except onboarding.RequestNotFound:
        await refuse_when_gone(temporal, stores, onboarding_id, action)


def _known(onboarding_id: str) -> str:
    if not ONBOARDING_ID.match(onboarding_id):
        raise onboarding.RequestNotFound(onboarding_id)
    return onboarding_id
