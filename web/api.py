"""The JSON API: the CONTRACT's routes, for the web handlers of a B2B site and for scripts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from client import (
    DecisionNotAllowed,
    NotYetConfirmed,
    RequestNotFound,
    current_status,
    decide,
    erase_personal_data,
    submit,
)
from links import status_url
from models.lifecycle import Action, Role, Stage, actions_of
from models.personal_data import Erasure
from models.requests import ALREADY_OPEN, IDEMPOTENCY_KEY, OnboardingRequest, Reason
from models.status import OnboardingStatus
from models.workflow_io import SubmitResult
from web.auth import ApiCommerceAdmin, ApiUser
from web.dependencies import (
    ClientDep,
    MetricsDep,
    SecretDep,
    SettingsDep,
    StoresDep,
    TemporalDep,
)
from web.identifiers import ONBOARDING_ID
from web.protection import RETRY_AFTER, SubmitLimited

router = APIRouter(prefix="/api/onboarding-requests", tags=["onboarding requests"])


class Problem(BaseModel):
    detail: str


class NotAllowed(Problem):
    stage: Stage


class SubmitAccepted(SubmitResult):
    """The request's reference, and the link where its requester can follow it."""

    duplicate: Literal[False] = False
    status_url: str
    idempotency_key: str


class Decided(OnboardingStatus):
    """The request's status once the decision is applied (or still being applied)."""

    idempotency_key: str


class NotConfirmed(Problem):
    """Temporal holds the submission or decision, and no worker has confirmed it yet.

    It is applied when the worker is back; the same call with this Idempotency-Key
    attaches to it and answers its outcome once known.
    """

    idempotency_key: str


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


class ErasureBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "The requester asked by email on 2026-12-01"}]},
    )

    # Why, for the record; never the person's data itself.
    reason: Reason = Field(min_length=1)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown one"},
    403: {"model": Problem, "description": "The user's role may not do this"},
    404: {"model": Problem, "description": "No such request"},
    413: {"model": Problem, "description": "The body is larger than MAX_BODY_BYTES"},
    429: {"model": Problem, "description": "Too many attempts from this address; see Retry-After"},
    503: {"model": Problem, "description": "Temporal cannot be reached"},
}
KEY_HEADER = {
    "Idempotency-Key": {
        "description": "The key this answer is for: the caller's, or one made for the call",
        "schema": {"type": "string"},
    }
}
# The decisions in the OpenAPI document's words, as the lifecycle declares them.
*_FIRST_ACTIONS, _LAST_ACTION = Action
ACTION_NAMES = f"{', '.join(_FIRST_ACTIONS)} or {_LAST_ACTION}"
DECIDE_DESCRIPTION = "A rep's ({}) or an admin's ({}) decision.".format(
    *(", ".join(actions_of(role)) for role in (Role.SALES_REP, Role.COMMERCE_ADMIN))
)
NOT_CONFIRMED_ANSWER = (
    "Recorded and not yet confirmed: no worker has taken it up. Send the same call with"
    " the same Idempotency-Key (see Retry-After) to learn its outcome."
)


@router.post(
    "",
    summary="Submit an onboarding request",
    status_code=202,
    response_model=SubmitAccepted | AlreadyOpen | NotConfirmed,
    responses={
        202: {
            "description": "Submitted (SubmitAccepted), or recorded and not yet confirmed"
            " while no worker runs (NotConfirmed, with Retry-After)",
            "headers": KEY_HEADER,
        },
        **{k: ERRORS[k] for k in (413, 429, 503)},
    },
    dependencies=[SubmitLimited],
)
async def submit_request(
    request: OnboardingRequest,
    response: Response,
    client: ClientDep,
    settings: SettingsDep,
    secret: SecretDep,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> SubmitAccepted | AlreadyOpen | JSONResponse:
    """Submit an onboarding request; the same Idempotency-Key answers with the same request.

    Without one, the answer carries the key made for it (header and body).
    """
    key = idempotency_key or uuid.uuid4().hex
    try:
        submitted = await submit(client, request, settings, idempotency_key=f"api:{key}")
    except NotYetConfirmed:
        return _not_confirmed(key)
    response.headers["Idempotency-Key"] = key
    if submitted.duplicate:
        return AlreadyOpen()
    return SubmitAccepted(
        onboarding_id=submitted.onboarding_id,
        workflow_id=submitted.workflow_id,
        status_url=status_url(settings.b2b_site_url, secret, submitted.onboarding_id),
        idempotency_key=key,
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


# Before the decisions' route, whose `{action}` would take the word.
@router.post(
    "/{onboarding_id}/erase",
    summary="Erase a decided request's personal data",
    responses={
        **{k: ERRORS[k] for k in (401, 403, 404, 429, 503)},
        409: {"model": NotAllowed, "description": "The request is undecided"},
    },
)
async def erase_request(
    onboarding_id: str,
    body: ErasureBody,
    user: ApiCommerceAdmin,
    client: ClientDep,
    stores: StoresDep,
) -> Erasure:
    """A Commerce admin erases the requester's personal data from both stores and makes
    Temporal's copy unreadable; the decision record stays, with who erased it, when and
    why. Erasing again changes nothing."""
    return await erase_personal_data(
        client, stores, _known(onboarding_id), actor=user.name, reason=body.reason
    )


@router.post(
    "/{onboarding_id}/{action}",
    summary="Decide a request",
    description=DECIDE_DESCRIPTION,
    response_model=Decided,
    responses={
        **ERRORS,
        200: {"description": "Applied, or still being applied", "headers": KEY_HEADER},
        202: {
            "model": NotConfirmed,
            "description": "Recorded and not yet confirmed while no worker runs; see Retry-After",
            "headers": KEY_HEADER,
        },
        409: {"model": NotAllowed, "description": "Not allowed in the current stage"},
    },
)
async def decide_request(
    onboarding_id: str,
    action: Annotated[Action, Path(description=ACTION_NAMES)],
    user: ApiUser,
    response: Response,
    temporal: TemporalDep,
    stores: StoresDep,
    metrics: MetricsDep,
    body: Annotated[DecisionBody | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> Decided | JSONResponse:
    """A rep's or an admin's decision: the lifecycle says which may take which."""
    if not user.may(action):
        raise HTTPException(403, f"{user.name} is a {user.role.value} and may not {action.value}")
    key = idempotency_key or uuid.uuid4().hex
    try:
        decided = await decide(
            await temporal.get(),
            _known(onboarding_id),
            action,
            actor=user.name,
            reason=body.reason if body else None,
            # The action is part of the id: a key reused for another action is another decision.
            decision_id=f"api:{action.value}:{key}",
        )
    except NotYetConfirmed:
        return _not_confirmed(key)
    except RequestNotFound:
        # Temporal no longer has it: refused, naming the stage the stores keep.
        kept = await current_status(temporal, stores, onboarding_id)
        why = f"{action.value} is not allowed: the request is {kept.stage.value}"
        raise DecisionNotAllowed(why, kept.stage) from None
    metrics.decided(action, user.role.value, decided)
    response.headers["Idempotency-Key"] = key
    return Decided(
        **decided.model_dump(exclude={"prospect_status", "allowed_actions"}), idempotency_key=key
    )


def _not_confirmed(key: str) -> JSONResponse:
    body = NotConfirmed(detail=NOT_CONFIRMED_ANSWER, idempotency_key=key)
    return JSONResponse(
        body.model_dump(),
        status_code=202,
        headers={"Idempotency-Key": key, "Retry-After": RETRY_AFTER},
    )


def _known(onboarding_id: str) -> str:
    if not ONBOARDING_ID.match(onboarding_id):
        raise RequestNotFound(onboarding_id)
    return onboarding_id
