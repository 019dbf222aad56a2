"""The JSON API: the CONTRACT's routes, for the web handlers of a B2B site and for scripts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client

from client.connection import Connection, NotYetConfirmed
from client.personal_data import erase_personal_data
from client.requests import (
    RequestNotFound,
    current_status,
    decide,
    hold,
    resume,
    submission_id,
    submit,
    tell_applied_again,
)
from infra.links import status_url
from models.decision_words import HOLD_NOTE_WORDS, NOTE_WORDS, REASON_WORDS, StaffReasonCode
from models.lifecycle import TRANSITIONS, Action, Refused, Role, Stage, actions_of
from models.personal_data import Erasure
from models.requests import ALREADY_OPEN, IDEMPOTENCY_KEY, Note, OnboardingRequest, Reason
from models.status import HoldAnswer, OnboardingStatus
from models.workflow_io import SubmitResult
from stores import Stores
from stores.reapply import ApplyRefused, check_may_apply
from web.auth import ApiCommerceAdmin, ApiUser
from web.dependencies import (
    ClientDep,
    MetricsDep,
    SecretDep,
    SettingsDep,
    StoresDep,
    TemporalDep,
    read,
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


class HoldChanged(OnboardingStatus):
    """The request's status once it is put on hold or resumed."""

    idempotency_key: str


class NotConfirmed(Problem):
    """Temporal holds the submission or decision, and no worker has confirmed it yet.

    It is applied when the worker is back; the same call with this Idempotency-Key
    attaches to it and answers its outcome once known.
    """

    idempotency_key: str


class AlreadyOpen(BaseModel):
    """The email has a request already: undecided, approved, or rejected less than
    REAPPLY_COOLDOWN ago. Whoever asks, the answer is the same and names no request:
    knowing an email must not be enough to learn whether it applied, was turned down or
    is a partner. The address on record is told by email instead (the open request's
    link; where to sign in; from when it may apply again)."""

    duplicate: Literal[True] = True
    detail: str = ALREADY_OPEN


class DecisionBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "We only take on resellers with a shop of their own.",
                    "reason_code": "not_eligible",
                    "note": "Checked their website: online only.",
                }
            ]
        },
    )

    reason: Annotated[Reason | None, Field(description=REASON_WORDS)] = None
    # Only for the decisions that turn a request down (cancel, lost, reject).
    reason_code: StaffReasonCode | None = None
    note: Annotated[Note | None, Field(description=NOTE_WORDS)] = None


class HoldBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "Waiting for their VAT certificate."}]},
    )

    note: Annotated[Note, Field(min_length=1, description=HOLD_NOTE_WORDS)]


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
DECIDE_DESCRIPTION = (
    "A rep's ({}) or an admin's ({}) decision. Those that turn a request down ({}) take"
    " `reason`, the message the requester reads in the rejection email, `reason_code`"
    " (staff's, never shown to the requester; `other` when left out) and `note`, staff's"
    " internal note, never emailed."
).format(
    *(", ".join(actions_of(role)) for role in (Role.SALES_REP, Role.COMMERCE_ADMIN)),
    ", ".join(t.action for t in TRANSITIONS.values() if t.takes_reason),
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
    stores: StoresDep,
    settings: SettingsDep,
    secret: SecretDep,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> SubmitAccepted | AlreadyOpen | JSONResponse:
    """Submit an onboarding request; the same Idempotency-Key answers with the same request.

    Without one, the answer carries the key made for it (header and body). An email with
    an undecided request, one whose last request was turned down less than
    REAPPLY_COOLDOWN ago and one whose request was approved all get the same answer
    (AlreadyOpen), and nothing is created; the address is told by email what it may do.
    """
    key = idempotency_key or uuid.uuid4().hex
    try:
        await read(
            check_may_apply,
            stores.commerce,
            request.email,
            settings.reapply_cooldown,
            settings.b2b_site_url,
            submission=submission_id(f"api:{key}", request.email),
        )
    except ApplyRefused as refused:
        await tell_applied_again(client, settings, refused.onboarding_id, refused.may_apply_from)
        response.headers["Idempotency-Key"] = key
        return AlreadyOpen()
    try:
        submitted = await submit(client, request, settings, idempotency_key=f"api:{key}")
    except NotYetConfirmed:
        return not_confirmed(key)
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


HOLD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"description": "Applied", "headers": KEY_HEADER},
    202: {
        "model": NotConfirmed,
        "description": "Recorded and not yet confirmed while no worker runs; see Retry-After",
        "headers": KEY_HEADER,
    },
    409: {
        "model": NotAllowed,
        "description": "Not allowed now: already on hold, not on hold, or decided",
    },
}


@router.post(
    "/{onboarding_id}/hold",
    summary="Put a request on hold",
    response_model=HoldChanged,
    responses=HOLD_RESPONSES,
)
async def hold_request(
    onboarding_id: str,
    body: HoldBody,
    user: ApiUser,
    response: Response,
    temporal: TemporalDep,
    stores: StoresDep,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> HoldChanged | JSONResponse:
    """A rep or an admin puts an undecided request on hold: no reminders, no expiry."""
    return await _hold_change(
        "hold",
        lambda client, oid, key: hold(
            client, oid, actor=user.name, note=body.note, hold_id=f"api:hold:{key}"
        ),
        onboarding_id,
        response,
        temporal,
        stores,
        idempotency_key,
    )


@router.post(
    "/{onboarding_id}/resume",
    summary="Resume a request on hold",
    response_model=HoldChanged,
    responses=HOLD_RESPONSES,
)
async def resume_request(
    onboarding_id: str,
    user: ApiUser,
    response: Response,
    temporal: TemporalDep,
    stores: StoresDep,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> HoldChanged | JSONResponse:
    """A rep or an admin takes a request off hold: its reminders and expiry run again."""
    return await _hold_change(
        "resume",
        lambda client, oid, key: resume(
            client, oid, actor=user.name, resume_id=f"api:resume:{key}"
        ),
        onboarding_id,
        response,
        temporal,
        stores,
        idempotency_key,
    )


async def _hold_change(
    what: str,
    change: Callable[[Client, str, str], Awaitable[HoldAnswer]],
    onboarding_id: str,
    response: Response,
    temporal: TemporalDep,
    stores: StoresDep,
    idempotency_key: str | None,
) -> HoldChanged | JSONResponse:
    """A hold or a resume, keyed by the caller's Idempotency-Key (a retry is the same
    Update); 202 while no worker confirms it, 409 naming the stage once decided."""
    key = idempotency_key or uuid.uuid4().hex
    try:
        changed = await change(await temporal.get(), _known(onboarding_id), key)
    except NotYetConfirmed:
        return not_confirmed(key)
    except RequestNotFound:
        raise await _finished(temporal, stores, onboarding_id, what) from None
    response.headers["Idempotency-Key"] = key
    current = await current_status(temporal, stores, changed.onboarding_id)
    return HoldChanged(**_fields(current), idempotency_key=key)


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
    body = body or DecisionBody()
    if body.reason_code is not None and not TRANSITIONS[action].takes_reason:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "reason_code"),
                    "msg": f"{action.value} takes no reason code",
                    "input": body.reason_code.value,
                }
            ]
        )
    key = idempotency_key or uuid.uuid4().hex
    try:
        decided = await decide(
            await temporal.get(),
            _known(onboarding_id),
            action,
            actor=user.name,
            reason=body.reason,
            # The action is part of the id: a key reused for another action is another decision.
            decision_id=f"api:{action.value}:{key}",
            reason_code=body.reason_code,
            note=body.note,
        )
    except NotYetConfirmed:
        return not_confirmed(key)
    except RequestNotFound:
        raise await _finished(temporal, stores, onboarding_id, action.value) from None
    metrics.decided(action, user.role.value, decided)
    response.headers["Idempotency-Key"] = key
    # The Update answers with where the request stands; the API shows its whole status.
    current = await current_status(temporal, stores, decided.onboarding_id)
    return Decided(**_fields(current), idempotency_key=key)


def _fields(current: OnboardingStatus) -> dict[str, Any]:
    """A status's own fields, without those it computes, to build an answer from."""
    return current.model_dump(exclude=set(OnboardingStatus.model_computed_fields))


async def _finished(temporal: Connection, stores: Stores, onboarding_id: str, what: str) -> Refused:
    """Temporal no longer has the request: refused, naming the stage the stores keep."""
    kept = await current_status(temporal, stores, onboarding_id)
    why = f"{what} is not allowed: the request is {kept.stage.value}"
    return Refused(why, kept.stage)


def not_confirmed(key: str) -> JSONResponse:
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
