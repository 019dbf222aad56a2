"""The B2B site: landing page, onboarding form, confirmation, and the requester's status page."""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

import client as onboarding
from links import status_path, status_token_valid
from models.payloads import ALREADY_OPEN, OnboardingRequest, Stage
from web.dependencies import ClientDep, SecretDep, SettingsDep, StoresDep, TemporalDep
from web.identifiers import IDEMPOTENCY_KEY, ONBOARDING_ID
from web.protection import SubmitLimited
from web.status import current_status
from web.templating import render

router = APIRouter(include_in_schema=False)

FIELDS = tuple(OnboardingRequest.model_fields)
# What the requester reads on the status page, for each stage.
STAGE_WORDS = {
    Stage.SUBMITTED: "We have received your request and are recording it.",
    Stage.LEAD_OPEN: "Our sales team is reviewing your request.",
    Stage.OPPORTUNITY_OPEN: "Our sales team is working with you on the partnership.",
    Stage.AWAITING_APPROVAL: "Your request is waiting for our approval.",
    Stage.APPROVED: "Welcome aboard: your company is approved as a business partner.",
    Stage.REJECTED: "We are sorry: we cannot take your company on as a partner at this time.",
}


@router.get("/")
async def landing(request: Request) -> Response:
    """The B2B site's home page."""
    return render(request, "landing.html")


@router.get("/apply")
async def application_form(request: Request) -> Response:
    """The onboarding form, with a fresh submission id against double submits."""
    return render(request, "apply.html", values={}, errors={}, submission_id=uuid.uuid4().hex)


@router.post("/apply", dependencies=[SubmitLimited])
async def apply(
    request: Request, client: ClientDep, settings: SettingsDep, secret: SecretDep
) -> Response:
    """Submit the form: the same submission id (a double click, a resubmit) makes one request."""
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in FIELDS}
    submission_id = str(form.get("submission_id") or "")
    if not re.match(IDEMPOTENCY_KEY, submission_id):
        submission_id = uuid.uuid4().hex
    try:
        application = OnboardingRequest(
            **{name: value for name, value in values.items() if value.strip()}
        )
    except ValidationError as err:
        errors = _field_errors(err)
        return render(
            request,
            "apply.html",
            status_code=422,
            values=values,
            errors=errors,
            submission_id=submission_id,
        )
    submitted = await onboarding.submit(
        client, application, settings, idempotency_key=f"form:{submission_id}"
    )
    if submitted.duplicate:
        # Neither the link nor the reference: whoever knows an email must not find its
        # request. The link is emailed to the address on record instead.
        return RedirectResponse("/apply/already-open", status_code=303)
    path = status_path(secret, submitted.onboarding_id)
    return RedirectResponse(f"{path}/submitted", status_code=303)


@router.get("/apply/already-open")
async def already_open(request: Request) -> Response:
    """The email already has an undecided request: the API's words, and nothing more."""
    return render(request, "already_open.html", detail=ALREADY_OPEN)


def _field_errors(err: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in err.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].upper() + message[1:]
        if error["type"] == "missing":
            message = "Please fill this in."
        errors.setdefault(field if field in FIELDS else "form", message)
    return errors


@router.get("/requests/{onboarding_id}/{token}/submitted")
async def confirmation(
    request: Request,
    onboarding_id: str,
    token: str,
    secret: SecretDep,
) -> Response:
    """Thank-you page: the reference, and the link to follow the request."""
    _check_link(secret, onboarding_id, token)
    return render(
        request,
        "confirmation.html",
        onboarding_id=onboarding_id,
        status_url=status_path(secret, onboarding_id),
    )


@router.get("/requests/{onboarding_id}/{token}")
async def request_status(
    request: Request,
    onboarding_id: str,
    token: str,
    secret: SecretDep,
    temporal: TemporalDep,
    stores: StoresDep,
) -> Response:
    """The requester's view: where the request stands and since when."""
    _check_link(secret, onboarding_id, token)
    current = await current_status(temporal, stores, onboarding_id)
    return render(
        request,
        "request_status.html",
        status=current,
        words=STAGE_WORDS[current.stage],
    )


def _check_link(secret: bytes, onboarding_id: str, token: str) -> None:
    if not ONBOARDING_ID.match(onboarding_id) or not status_token_valid(
        secret, onboarding_id, token
    ):
        raise HTTPException(404, "There is no such request. Check the link you were given.")
