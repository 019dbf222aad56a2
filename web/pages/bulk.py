"""One decision on many requests at once, from a queue's ticked rows.

Each request gets its own Update with its own id, made of the form's batch id and the
row: pressing the button twice (or reloading the answer) sends the same Updates again,
which Temporal answers with their first outcome instead of deciding twice, even once a
request's workflow has finished. The page
answers with what happened to each request, in plain words: done, refused because its
stage had moved on (and what it allows now), or still being applied.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from temporalio.client import Client

from client.connection import NotYetConfirmed, TemporalUnavailable
from client.requests import DecisionFailed, RequestNotFound, decide
from models.lifecycle import STAGES, TRANSITIONS, Action, ReasonCode, Refused, refusal
from models.requests import IDEMPOTENCY_KEY
from models.status import DecisionAnswer
from stores.queues import PAGE_SIZE
from web.auth import User
from web.dependencies import get_metrics
from web.pages.decisions import Invalid, checked
from web.templating import flash, render

# Decisions sent to Temporal at once: enough to answer 50 rows in a few seconds, few
# enough to leave room for everyone else's.
AT_ONCE = 8
RowIdValue = Annotated[int, Field(ge=1, le=2**31 - 1)]


class BulkForm(BaseModel):
    """The ticked rows of a queue's page, the decision, its reason, and the form's id."""

    ids: list[RowIdValue] = Field(default_factory=list, max_length=PAGE_SIZE)
    action: Action
    # Checked when deciding, as a single decision's are, so a bad one is explained.
    reason: str = Field(default="", max_length=10_000)
    reason_code: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=10_000)
    batch_id: str = Field(pattern=IDEMPOTENCY_KEY)
    # The queue's view the rows were ticked in (its query), to go back to.
    back: str = Field(default="", max_length=4000)

    def back_to(self, path: str) -> str:
        """The queue's page with its view as it was: only ever this queue's own address."""
        query = urlencode(parse_qsl(self.back.lstrip("?")))
        return f"{path}?{query}" if query else path


@dataclass(frozen=True)
class Target:
    """A ticked row: its request, and how its page names and links it."""

    row_id: int
    onboarding_id: str | None
    name: str
    detail: str
    href: str


# What can happen to each request, in the order the summary counts them.
OUTCOMES = ("done", "refused", "pending", "failed")


@dataclass(frozen=True)
class Outcome:
    target: Target
    # One of OUTCOMES: pending is still being applied.
    kind: str
    words: str
    # A record the decision made (the opportunity a qualification opened).
    made: tuple[str, str] | None = None


async def decide_all(
    request: Request,
    client: Client,
    user: User,
    form: BulkForm,
    targets: Sequence[Target],
) -> list[Outcome] | str:
    """Send each target its decision; the outcomes in the targets' order, or why none
    was sent (a reason, reason code or note that is not right)."""
    if not targets:
        return []
    try:
        reason, reason_code, note = checked(form.action, form.reason, form.reason_code, form.note)
    except Invalid as err:
        return str(err)
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(target: Target) -> Outcome:
        if target.onboarding_id is None:
            return Outcome(target, "refused", "Not from an onboarding request: decide it in Sales.")
        async with gate:
            return await _decide(request, client, user, form, (reason, reason_code, note), target)

    return list(await asyncio.gather(*(one(target) for target in targets)))


async def _decide(
    request: Request,
    client: Client,
    user: User,
    form: BulkForm,
    why: tuple[str | None, ReasonCode | None, str | None],
    target: Target,
) -> Outcome:
    action, transition = form.action, TRANSITIONS[form.action]
    reason, reason_code, note = why
    assert target.onboarding_id is not None
    try:
        current = await decide(
            client,
            target.onboarding_id,
            action,
            actor=user.name,
            reason=reason,
            decision_id=f"bulk:{action.value}:{form.batch_id}:{target.row_id}",
            reason_code=reason_code,
            note=note,
        )
    except Refused as err:
        return Outcome(target, "refused", refusal(action, err.stage, err.kind))
    except NotYetConfirmed:
        return Outcome(
            target,
            "pending",
            "Recorded, not yet applied: no worker has taken it up yet. Press the same"
            " button again later to see it applied.",
        )
    except RequestNotFound:
        return Outcome(target, "failed", "The onboarding service knows no such request.")
    except TemporalUnavailable:
        return Outcome(target, "failed", "The onboarding service is unavailable; try again soon.")
    except DecisionFailed as err:
        return Outcome(target, "failed", f"Something went wrong while applying it: {err}.")
    get_metrics(request).decided(action, user.role.value, current)
    if current.pending_action is not None:
        return Outcome(target, "pending", "Accepted, and still being applied.")
    return Outcome(target, "done", transition.done, _made(target, current))


def _made(target: Target, current: DecisionAnswer) -> tuple[str, str] | None:
    """The record a decision opened, as a link: the page of the stage it led to (a
    qualified lead's opportunity), when that is not the ticked row's own."""
    page = STAGES[current.stage].staff_page
    record_id = getattr(current.records, page.record)
    path = page.path.format(id=record_id)
    if current.stage.decided or record_id is None or path == target.href:
        return None
    return (f"Its {page.name}", path)


def answer(
    request: Request,
    back: str,
    noun: str,
    form: BulkForm,
    outcomes: list[Outcome] | str,
) -> Response:
    """The outcome of each request, or, when nothing could be sent, the queue again."""
    if isinstance(outcomes, str):
        flash(request, outcomes, "error")
        return RedirectResponse(back, status_code=303)
    if not outcomes:
        flash(request, f"Tick at least one {noun} first.", "error")
        return RedirectResponse(back, status_code=303)
    counted = Counter(outcome.kind for outcome in outcomes)
    tally = {kind: counted[kind] for kind in OUTCOMES if counted[kind]}
    return render(
        request,
        "bulk_outcome.html",
        transition=TRANSITIONS[form.action],
        outcomes=outcomes,
        tally=tally,
        noun=noun,
        back=back,
    )
