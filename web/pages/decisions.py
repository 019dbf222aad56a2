"""A decision, a hold or a resume made with a page's button: the same client calls as the
API and the CLI."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

from fastapi import Request, Response
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError
from temporalio.client import Client

from client.connection import Connection, NotYetConfirmed, OnboardingError
from client.requests import current_status, decide, hold, resume
from models.decision_words import StaffReasonCode
from models.lifecycle import (
    ALLOWED_ACTIONS,
    TRANSITIONS,
    Action,
    ReasonCode,
    Refused,
    Stage,
    refusal,
)
from models.requests import IDEMPOTENCY_KEY, Note, Reason
from models.status import DecisionAnswer, HoldAnswer, OnboardingStatus
from stores import Stores
from web.auth import User, csrf_token
from web.dependencies import get_metrics
from web.templating import flash, not_confirmed

_reason = TypeAdapter(Reason | None)
_note = TypeAdapter(Note | None)
_reason_code = TypeAdapter(StaffReasonCode)
_hold_note = TypeAdapter(Annotated[Note, Field(min_length=1)])
T = TypeVar("T")


def allowed_in(stage: Stage) -> AfterValidator:
    """A page's action path: one that `stage` allows; any other is no such page."""

    def check(action: Action) -> Action:
        if action not in ALLOWED_ACTIONS[stage]:
            raise ValueError(f"{action.value} is not an action of {stage.value}")
        return action

    return AfterValidator(check)


class NotConfirmedPage(Exception):
    """A decision Temporal holds and no worker has confirmed: the app answers `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__("not yet confirmed")
        self.response = response


class DecisionForm(BaseModel):
    """A decision button's form: for one that turns the request down, its reason code
    (required), the reason the requester reads and staff's note; and the id that makes it
    idempotent."""

    # Checked when deciding, so that a bad one is explained on the page.
    reason: str = Field(default="", max_length=10_000)
    reason_code: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=10_000)
    decision_id: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)


class HoldForm(BaseModel):
    """The Put on hold form (its note is required) and the Resume button."""

    note: str = Field(default="", max_length=10_000)
    change_id: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)


class Invalid(Exception):
    """A form's field that is not right, in words for the page."""


def _checked(adapter: TypeAdapter[T], value: object, name: str) -> T:
    try:
        return adapter.validate_python(value)
    except ValidationError as err:
        message = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
        raise Invalid(f"The {name}: {message[:1].lower()}{message[1:]}.") from err


def checked(
    action: Action, reason: str, reason_code: str, note: str
) -> tuple[str | None, ReasonCode | None, str | None]:
    """A decision form's reason, reason code and note as the decision takes them; Invalid,
    in words for the page, if one is not right. One that turns the request down needs its
    reason code."""
    takes_reason = TRANSITIONS[action].takes_reason
    if takes_reason and not reason_code:
        raise Invalid("Not done: choose a reason code.")
    return (
        _checked(_reason, reason.strip() or None, "reason") if takes_reason else None,
        _checked(_reason_code, reason_code, "reason code") if takes_reason else None,
        _checked(_note, note.strip() or None, "internal note"),
    )


async def decide_on_page(
    request: Request,
    client: Client,
    onboarding_id: str,
    action: Action,
    user: User,
    form: DecisionForm,
) -> DecisionAnswer | None:
    """Apply the decision and leave a message for the next page; None if it was refused."""
    decision_id = form.decision_id or uuid.uuid4().hex
    try:
        reason, reason_code, note = checked(action, form.reason, form.reason_code, form.note)
    except Invalid as err:
        flash(request, str(err), "error")
        return None
    try:
        current = await decide(
            client,
            onboarding_id,
            action,
            actor=user.name,
            reason=reason,
            decision_id=f"page:{action.value}:{decision_id}",
            reason_code=reason_code,
            note=note,
        )
    except NotYetConfirmed as err:
        raise NotConfirmedPage(
            not_confirmed(
                request,
                f"{TRANSITIONS[action].button} is recorded, and not yet confirmed.",
                what="decision",
                fields={
                    "csrf_token": csrf_token(request),
                    "decision_id": decision_id,
                    "reason": form.reason,
                    "reason_code": form.reason_code,
                    "note": form.note,
                },
            )
        ) from err
    except Refused as err:
        flash(request, f"Not done. {refusal(action, err.stage, err.kind)}", "error")
        return None
    get_metrics(request).decided(action, user.role.value, current)
    if current.pending_action is not None:
        flash(request, f"{TRANSITIONS[action].button} is accepted and still being applied.")
    else:
        flash(request, TRANSITIONS[action].done, "success")
    return current


async def hold_on_page(
    request: Request, client: Client, onboarding_id: str, user: User, form: HoldForm
) -> HoldAnswer | None:
    """Put the request on hold and say so on the next page; None if it was refused."""
    change_id = form.change_id or uuid.uuid4().hex
    try:
        if not form.note.strip():
            raise Invalid("Not put on hold: write why it is held, in the note.")
        note = _checked(_hold_note, form.note.strip(), "note")
    except Invalid as err:
        flash(request, str(err), "error")
        return None
    try:
        current = await hold(
            client, onboarding_id, actor=user.name, note=note, hold_id=f"page:hold:{change_id}"
        )
    except NotYetConfirmed as err:
        raise _not_confirmed_change(request, "Hold", change_id, form) from err
    except Refused as err:
        flash(request, f"Not put on hold: {err.why}.", "error")
        return None
    flash(request, "On hold: no reminders and no expiry until it is resumed.", "success")
    return current


async def resume_on_page(
    request: Request, client: Client, onboarding_id: str, user: User, form: HoldForm
) -> HoldAnswer | None:
    """Take the request off hold and say so on the next page; None if it was refused."""
    change_id = form.change_id or uuid.uuid4().hex
    try:
        current = await resume(
            client, onboarding_id, actor=user.name, resume_id=f"page:resume:{change_id}"
        )
    except NotYetConfirmed as err:
        raise _not_confirmed_change(request, "Resume", change_id, form) from err
    except Refused as err:
        flash(request, f"Not resumed: {err.why}.", "error")
        return None
    flash(request, "Resumed: its reminders and expiry run again.", "success")
    return current


def _not_confirmed_change(
    request: Request, what: str, change_id: str, form: HoldForm
) -> NotConfirmedPage:
    return NotConfirmedPage(
        not_confirmed(
            request,
            f"{what} is recorded, and not yet confirmed.",
            what="change",
            fields={"csrf_token": csrf_token(request), "change_id": change_id, "note": form.note},
        )
    )


async def status_for_staff(
    temporal: Connection, stores: Stores, onboarding_id: str | None
) -> OnboardingStatus | None:
    """A request's status for its staff page (its hold, next reminder and expiry), from
    Temporal or else the stores; None when neither can say, and the page shows the rows."""
    if onboarding_id is None:
        return None
    try:
        return await current_status(temporal, stores, onboarding_id)
    except OnboardingError:
        return None
