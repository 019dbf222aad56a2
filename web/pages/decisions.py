"""A decision made with a page's button: the same client call as the API and the CLI."""

from __future__ import annotations

import uuid

from fastapi import Request, Response
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError
from temporalio.client import Client

from client import DecisionNotAllowed, NotYetConfirmed, decide
from models.lifecycle import ALLOWED_ACTIONS, TRANSITIONS, Action, Stage, refusal
from models.requests import IDEMPOTENCY_KEY, Reason
from models.status import OnboardingStatus
from web.auth import User, csrf_token
from web.dependencies import get_metrics
from web.templating import flash, not_confirmed

_reason = TypeAdapter(Reason | None)


def allowed_in(stage: Stage) -> AfterValidator:
    """A page's action path: one that `stage` allows; any other is no such page."""

    def check(action: Action) -> Action:
        if action not in ALLOWED_ACTIONS[stage]:
            raise ValueError(f"{action.value} is not an action of {stage.value}")
        return action

    return AfterValidator(check)


def reason_problem(err: ValidationError) -> str:
    """What is wrong with a typed reason: "The reason should have at most 500 characters."."""
    said = err.errors()[0]["msg"].removeprefix("String ").removeprefix("Value error, ")
    return f"The reason {said[:1].lower()}{said[1:]}."


class NotConfirmedPage(Exception):
    """A decision Temporal holds and no worker has confirmed: the app answers `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__("not yet confirmed")
        self.response = response


class DecisionForm(BaseModel):
    """A decision button's form: the optional reason, and the id that makes it idempotent."""

    # Checked as a Reason when deciding, so a bad one is explained on the page.
    reason: str = Field(default="", max_length=10_000)
    decision_id: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)


async def decide_on_page(
    request: Request,
    client: Client,
    onboarding_id: str,
    action: Action,
    user: User,
    form: DecisionForm,
) -> OnboardingStatus | None:
    """Apply the decision and leave a message for the next page; None if it was refused."""
    decision_id = form.decision_id or uuid.uuid4().hex
    try:
        reason = _reason.validate_python(form.reason.strip() or None)
        current = await decide(
            client,
            onboarding_id,
            action,
            actor=user.name,
            reason=reason,
            decision_id=f"page:{action.value}:{decision_id}",
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
                },
            )
        ) from err
    except ValidationError as err:
        flash(request, reason_problem(err), "error")
        return None
    except DecisionNotAllowed as err:
        flash(request, f"Not done. {refusal(action, err.stage)}", "error")
        return None
    get_metrics(request).decided(action, user.role.value, current)
    if current.pending_action is not None:
        flash(request, f"{TRANSITIONS[action].button} is accepted and still being applied.")
    else:
        flash(request, TRANSITIONS[action].done, "success")
    return current
