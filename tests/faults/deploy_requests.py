"""Requests carried across a deploy: opened and decided with a release's command line,
and what a finished one leaves in the stores, the mail and Temporal.

A `Request` says where it stands when the deploy comes and where it ends; the helpers
drive it with one release's `starter.py` (see `releases`), so that what they check is
what a rep, an operator and a partner would see, whichever release's code ran it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import eventually
from tests.faults.releases import Deployment, Release

DECISION_EMAIL = {"approved": "prospect-approved", "rejected": "prospect-rejected"}


@dataclass
class Request:
    """One request of the case: what each release does to it, and where it ends."""

    label: str
    # Its stage when the deploy comes (none for a request made after it), and at the end.
    at_deploy: str
    final: str
    # The decisions made on it with the old release's command line, then the new one's.
    old: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    integration: bool = True
    locale: str = "en"
    email: str = field(default_factory=lambda: f"giulia.{uuid.uuid4().hex[:10]}@deploy.example")
    onboarding_id: str = ""
    # What the command line last answered about it: the submission, or the decision
    # with the request's status after it.
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> bool:
        return "qualify" in self.old + self.new


async def open_request(deployment: Deployment, release: Release, request: Request) -> None:
    answer = await deployment.command(
        release, "submit", "--company", f"Contoso {request.label}", "--first-name", "Giulia",
        "--last-name", "Rossi", "--email", request.email, "--locale", request.locale,
    )  # fmt: skip
    request.answer = answer.json()
    assert request.answer["duplicate"] is False, f"{request.label}: {request.answer}"
    request.onboarding_id = str(request.answer["onboarding_id"])


async def decide(deployment: Deployment, release: Release, request: Request, action: str) -> None:
    args = [action, request.onboarding_id, "--actor", f"rep:{release.name}"]
    if action in ("cancel", "lost", "reject"):
        args += ["--reason", f"{action} across the deploy"]
    request.answer = (await deployment.command(release, *args)).json()


async def decide_in_turn(
    deployment: Deployment, release: Release, request: Request, actions: tuple[str, ...]
) -> None:
    for action in actions:
        await decide(deployment, release, request, action)


async def status(deployment: Deployment, release: Release, request: Request) -> dict[str, Any]:
    return (await deployment.command(release, "status", request.onboarding_id)).json()


async def each(requests: list[Request], step: Callable[[Request], Awaitable[None]]) -> None:
    """`step(request)` for every request at once, as reps working in parallel."""
    await asyncio.gather(*(step(request) for request in requests))


async def all_workflows_done(deployment: Deployment, requests: list[Request]) -> None:
    """Every request's `onboarding-<id>` workflow has completed, and no other one ran."""
    expected = {f"onboarding-{r.onboarding_id}" for r in requests}

    async def done() -> bool | None:
        states = {
            execution.id: execution.status
            async for execution in deployment.client.list_workflows()
            if execution.id.startswith("onboarding-")
        }
        assert set(states) <= expected, f"workflows of no request: {set(states) - expected}"
        complete = states == dict.fromkeys(states, WorkflowExecutionStatus.COMPLETED)
        return True if complete and set(states) == expected else None

    await eventually(done, 120, "every request's workflow completed")


def assert_finished(deployment: Deployment, request: Request, answer: dict[str, Any]) -> None:
    """The request's final stage (`answer`: its status from the new command line), its
    rows in both stores and its emails, exactly."""
    oid, final = request.onboarding_id, request.final
    assert (answer["stage"], answer["prospect_status"]) == (final, final), request.label

    def count(store: str, table: str) -> int:
        query = f"SELECT 1 FROM {table} WHERE onboarding_id = :oid"
        return len(deployment.query(store, query, oid=oid))

    approved = final == "approved"
    with_customers = request.qualified or (approved and not request.integration)
    rows = {
        "prospect": count("commerce", "prospect"),
        "lead": count("sales", "lead"),
        "opportunity": count("sales", "opportunity"),
        "contact": count("sales", "contact"),
        "account": count("sales", "account"),
        "customer": count("commerce", "customer"),
        "customer_hierarchy": count("commerce", "customer_hierarchy"),
    }
    assert rows == {
        "prospect": 1,
        "lead": int(request.integration),
        "opportunity": int(request.qualified),
        "contact": int(request.qualified),
        "account": int(request.qualified),
        "customer": 2 * with_customers,
        "customer_hierarchy": int(approved),
    }, request.label
    ((prospect_status,),) = deployment.query(
        "commerce", "SELECT status FROM prospect WHERE onboarding_id = :oid", oid=oid
    )
    assert prospect_status == final, request.label
    if request.integration:
        ((lead_status,),) = deployment.query(
            "sales", "SELECT status FROM lead WHERE onboarding_id = :oid", oid=oid
        )
        assert lead_status == ("qualified" if request.qualified else "disqualified"), request.label
    if request.qualified:
        ((opportunity_status,),) = deployment.query(
            "sales", "SELECT status FROM opportunity WHERE onboarding_id = :oid", oid=oid
        )
        assert opportunity_status == ("won" if approved else "lost"), request.label

    # One received email and one of the decision, each delivered once.
    expected = Counter({"request-received": 1, DECISION_EMAIL[final]: 1})
    emails = deployment.emails(oid)
    assert Counter(m["X-Onboarding-Event"] for m in emails) == expected, request.label
    assert len({m["Message-ID"] for m in emails}) == len(emails), f"{request.label}: resent"
    outbox = deployment.query(
        "commerce", "SELECT kind, sent_at FROM email_message WHERE onboarding_id = :oid", oid=oid
    )
    assert Counter(kind.replace("_", "-") for kind, _ in outbox) == expected, request.label
    assert all(sent_at is not None for _, sent_at in outbox), request.label
