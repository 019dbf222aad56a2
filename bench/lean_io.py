"""The lean reference with the product's I/O: the limit for the product's shape of work.

The lean shape (bench/lean.py: one workflow, submit as Update-with-Start, qualify and
won as Updates answered once their one local activity ran) doing what the product does
to the outside world: the same rows in both stores, the same two emails (request
received, approval), through the product's own I/O functions (`activities.requests`,
`activities.email`), which issue 22 made as cheap as the stores and SMTP allow (the
bench's I/O phase, bench/io.py, measures them alone), with the product's payload codec.
Beside it, the product's rate says what its workflow costs over the engine's least:
its history events and payloads (both run on the product's workflow runner).

`python -m bench.lean_io ADDRESS TASK_QUEUE` runs its worker, the stores and the mail
server taken from the product's settings (environment).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from models.activity_io import ApplyDecisionInput, CreateProspectInput, SendEmailInput
    from models.lifecycle import Action
    from models.requests import STORED, OnboardingRequest
    from models.status import EmailKind

# Stage → the decision it takes, and the stage that decision leads to.
NEXT = {"lead_open": ("qualify", "opportunity_open"), "opportunity_open": ("won", "won")}
TIMEOUT = timedelta(seconds=30)
ACTOR = "bench:rep"


class LeanIo:
    """The product's I/O functions, as the reference's activities call them."""

    def __init__(self) -> None:
        from activities.commerce import CommerceActivities
        from activities.email import EmailActivities, EmailRenderer
        from activities.requests import RequestActivities, request_timing
        from activities.sales import SalesActivities
        from infra.links import site_secret
        from settings import get_settings
        from stores import Stores

        settings = get_settings()
        stores = Stores.from_settings(settings)
        stores.migrate()
        self.requests = RequestActivities(
            CommerceActivities(stores.commerce, settings.sales_integration_enabled),
            SalesActivities(stores.sales),
            request_timing(settings),
        )
        self.email = EmailActivities(
            stores.commerce, settings, EmailRenderer(settings.b2b_site_url, site_secret(settings))
        )

    @activity.defn(name="write")
    async def write(self, step: str, onboarding_id: str, request: dict[str, Any]) -> None:
        """A step's store writes (a local activity): the request recorded, or a decision."""
        typed = _request(request)
        at = datetime.now(UTC)
        if step == "submit":
            input = CreateProspectInput(onboarding_id=onboarding_id, request=typed, at=at)
            await asyncio.to_thread(self.requests.record_request, input)
            return
        decision = ApplyDecisionInput(
            onboarding_id=onboarding_id, request=typed, action=Action(step), actor=ACTOR, at=at
        )
        await asyncio.to_thread(self.requests.apply_decision, decision)

    @activity.defn(name="email")
    async def send(self, kind: str, onboarding_id: str, request: dict[str, Any]) -> None:
        """One of the request's emails (a regular activity)."""
        await self.email.send_onboarding_email(
            SendEmailInput(
                onboarding_id=onboarding_id, kind=EmailKind(kind), request=_request(request)
            )
        )


def _request(fields: dict[str, Any]) -> OnboardingRequest:
    return OnboardingRequest.model_validate(fields, context={STORED: True})


@workflow.defn
class LeanIoWorkflow:
    def __init__(self) -> None:
        self._stage = "new"
        self._request: dict[str, Any] = {}

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._stage != "new")
        await self._email(EmailKind.REQUEST_RECEIVED)
        await workflow.wait_condition(lambda: self._stage == "won")
        await self._email(EmailKind.PROSPECT_APPROVED)
        return self._stage

    @workflow.update
    async def submit(self, request: dict[str, Any]) -> str:
        """Answers once the request's writes ran."""
        self._request = request
        await self._write("submit")
        self._stage = "lead_open"
        return self._stage

    @workflow.update
    async def decide(self, action: str) -> str:
        """Answers once the decision's writes ran."""
        then = NEXT[self._stage][1]
        self._stage = f"applying {action}"  # a second decision meanwhile is refused
        await self._write(action)
        self._stage = then
        return self._stage

    @decide.validator
    def _validate_decide(self, action: str) -> None:
        allowed = NEXT.get(self._stage)
        if allowed is None or allowed[0] != action:
            raise ValueError(f"{action} is not allowed while {self._stage}")

    async def _write(self, step: str) -> None:
        await workflow.execute_local_activity(
            "write",
            args=[step, self._onboarding_id, self._request],
            start_to_close_timeout=TIMEOUT,
        )

    async def _email(self, kind: EmailKind) -> None:
        await workflow.execute_activity(
            "email",
            args=[kind.value, self._onboarding_id, self._request],
            start_to_close_timeout=TIMEOUT,
        )

    @property
    def _onboarding_id(self) -> str:
        return workflow.info().workflow_id.removeprefix("onboarding-")


if __name__ == "__main__":
    from bench.reference_worker import serve
    from client.converter import data_converter
    from settings import get_settings
    from workflows.registry import workflow_runner

    io = LeanIo()
    serve(
        [LeanIoWorkflow],
        [io.write, io.send],
        data_converter=data_converter(get_settings(), io.email.commerce),
        runner=workflow_runner(),
    )
