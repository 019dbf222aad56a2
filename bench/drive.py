"""Load for a run: the naive ceiling's and the lean reference's workflows, and the product's
onboardings, as a rep would.

A product onboarding is submitted through `client.requests.submit` (the call the HTTP API's
handler makes), qualified once its lead is visible in Sales, then closed won or lost
(or cancelled instead of qualified), each decision through `client.requests.decide`. Times are
wall-clock (`time.time()`), so they compare with the SMTP sink's receipt stamps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, select
from sqlmodel import col
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.lean import LeanWorkflow
from bench.lean_io import LeanIoWorkflow
from bench.naive import NaiveWorkflow
from client.connection import NotYetConfirmed
from client.requests import decide, submit
from models.ids import onboarding_workflow_id
from models.lifecycle import Action, Refused
from models.requests import OnboardingRequest
from models.sales import Lead
from models.status import EmailKind
from settings import Settings

# One in ten requests is cancelled at the lead, one in ten lost; the rest are won.
OUTCOMES = ("cancel", "lost", *("won",) * 8)
ACTOR = "bench:rep"
T = TypeVar("T")


def outcome_of(index: int) -> str:
    return OUTCOMES[index % len(OUTCOMES)]


def a_request(index: int) -> OnboardingRequest:
    """A valid request with a contact email of its own."""
    return OnboardingRequest(
        company=f"Bench Partner {index} Srl",
        first_name="Giulia",
        last_name="Rossi",
        email=f"bench.{index}.{uuid.uuid4().hex[:8]}@partner.example",
        phone="+39 02 1234 5678",
        job_title="Purchasing manager",
        website="partner.example",
        company_address="Via Roma 1, 20121 Milano",
        locale="it" if index % 4 == 0 else "en",
        comments="We resell office furniture.",
    )


@dataclass
class Onboarding:
    """One onboarding's timeline, in seconds since the epoch."""

    index: int
    outcome: str
    submitted_at: float
    onboarding_id: str = ""
    answered_at: float | None = None
    lead_visible_at: float | None = None
    won_sent_at: float | None = None
    done_at: float | None = None
    email_accepted_at: float | None = None

    @property
    def submit_s(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.submitted_at

    @property
    def lead_visible_s(self) -> float | None:
        if self.lead_visible_at is None:
            return None
        return self.lead_visible_at - self.submitted_at

    @property
    def won_to_email_s(self) -> float | None:
        if self.won_sent_at is None or self.email_accepted_at is None:
            return None
        return self.email_accepted_at - self.won_sent_at


class LeadWatcher:
    """Sees leads appear in Sales the way a rep's view would: by reading the store.

    One poller reads every awaited lead at once; a lead counts as visible when the read
    that found it returns, so the figure is an upper bound by at most one poll.
    """

    def __init__(self, sales_url: str, interval: float = 0.005) -> None:
        # A plain engine: reads must not take the product engine's write lock.
        self.engine: Engine = create_engine(sales_url, pool_size=2, max_overflow=0)
        self.interval = interval
        self.awaited: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    def visible(self, onboarding_id: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self.awaited[onboarding_id] = future
        return future

    async def __aenter__(self) -> LeadWatcher:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.engine.dispose()

    async def _poll(self) -> None:
        while True:
            if self.awaited:
                found = await asyncio.to_thread(self._read, list(self.awaited))
                now = time.time()
                for onboarding_id in found:
                    future = self.awaited.pop(onboarding_id, None)
                    if future is not None and not future.done():
                        future.set_result(now)
            await asyncio.sleep(self.interval)

    def _read(self, ids: list[str]) -> list[str]:
        found: list[str] = []
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(col(Lead.onboarding_id)).where(col(Lead.onboarding_id).in_(chunk))
                found += [id_ for id_ in connection.execute(query).scalars() if id_]
        return found


@dataclass
class Product:
    """What a product onboarding needs: the client, the settings, the lead watcher."""

    client: Client
    settings: Settings
    watcher: LeadWatcher
    # Decisions refused because the lead was visible before the stage said so.
    early_decisions: int = 0
    # Submissions answered "not yet confirmed" and sent again with their key.
    not_yet_confirmed: int = 0

    async def submit(self, index: int) -> Onboarding:
        """Submit a request and wait until its lead is visible in Sales."""
        record = Onboarding(index=index, outcome=outcome_of(index), submitted_at=time.time())
        request, key = a_request(index), f"bench:{uuid.uuid4().hex}"
        while True:
            # As the form's "Check again" does when the answer is "not yet confirmed"
            # (the worker has not applied it within ACCEPT_WAIT): the same submission.
            try:
                result = await submit(self.client, request, self.settings, idempotency_key=key)
                break
            except NotYetConfirmed:
                self.not_yet_confirmed += 1
        record.answered_at = time.time()
        record.onboarding_id = result.onboarding_id
        record.lead_visible_at = await self.watcher.visible(result.onboarding_id)
        return record

    async def decide(self, record: Onboarding) -> Onboarding:
        """A rep works the lead to its outcome; answers once the request's workflow is done."""
        if record.outcome == "cancel":
            await self._decide(record, Action.CANCEL)
        else:
            await self._decide(record, Action.QUALIFY)
            record.won_sent_at = time.time() if record.outcome == "won" else None
            await self._decide(record, Action.WON if record.outcome == "won" else Action.LOST)
        handle = self.client.get_workflow_handle(f"onboarding-{record.onboarding_id}")
        await handle.result()
        record.done_at = time.time()
        return record

    async def lifecycle(self, index: int) -> Onboarding:
        return await self.decide(await self.submit(index))

    async def _decide(self, record: Onboarding, action: Action) -> None:
        # The lead row is committed a moment before the workflow records the new stage.
        for _ in range(100):
            try:
                await decide(self.client, record.onboarding_id, action, ACTOR)
                return
            except Refused as refused:
                if refused.stage.decided:
                    raise
                self.early_decisions += 1
                await asyncio.sleep(0.01)
        raise RuntimeError(f"{action} on {record.onboarding_id} refused for a second")


@dataclass
class Naive:
    client: Client
    task_queue: str

    async def lifecycle(self, index: int) -> Onboarding:
        record = Onboarding(index=index, outcome="won", submitted_at=time.time())
        handle = await self.client.start_workflow(
            NaiveWorkflow.run, id=f"naive-{uuid.uuid4().hex}", task_queue=self.task_queue
        )
        await handle.signal(NaiveWorkflow.decide)
        await handle.signal(NaiveWorkflow.decide)
        await handle.result()
        record.done_at = time.time()
        return record


@dataclass
class Lean:
    """The lean reference, driven the way the product's callers drive a request: submit as
    an Update-with-Start, qualify and won as Updates, each answered once its writes ran."""

    client: Client
    task_queue: str

    async def lifecycle(self, index: int) -> Onboarding:
        record = Onboarding(index=index, outcome="won", submitted_at=time.time())
        start = WithStartWorkflowOperation(
            LeanWorkflow.run,
            id=f"lean-{uuid.uuid4().hex}",
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await self.client.execute_update_with_start_workflow(
            LeanWorkflow.submit, start_workflow_operation=start
        )
        record.answered_at = time.time()
        handle = await start.workflow_handle()
        await handle.execute_update(LeanWorkflow.decide, "qualify")
        record.won_sent_at = time.time()
        await handle.execute_update(LeanWorkflow.decide, "won")
        await handle.result()
        record.done_at = time.time()
        return record


@dataclass
class LeanIoDriver:
    """The lean reference with the product's I/O (bench/lean_io.py), driven as `Lean`;
    `client` carries the product's data converter, so the client makes each request's
    data key as the product's does."""

    client: Client
    task_queue: str

    async def lifecycle(self, index: int) -> Onboarding:
        record = Onboarding(index=index, outcome="won", submitted_at=time.time())
        request = a_request(index).model_dump(mode="json")
        start = WithStartWorkflowOperation(
            LeanIoWorkflow.run,
            id=onboarding_workflow_id(uuid.uuid4().hex[:16]),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await self.client.execute_update_with_start_workflow(
            LeanIoWorkflow.submit, request, start_workflow_operation=start
        )
        record.answered_at = time.time()
        handle = await start.workflow_handle()
        await handle.execute_update(LeanIoWorkflow.decide, "qualify")
        record.won_sent_at = time.time()
        await handle.execute_update(LeanIoWorkflow.decide, "won")
        await handle.result()
        record.done_at = time.time()
        return record


async def closed_loop(
    count: int, concurrency: int, job: Callable[[int], Awaitable[T]], offset: int = 0
) -> list[T]:
    """`count` jobs with at most `concurrency` in flight: the most the system can take."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> T:
        async with gate:
            return await job(index)

    return _succeeded(
        await asyncio.gather(*(one(offset + i) for i in range(count)), return_exceptions=True)
    )


async def open_loop(
    rate: float, duration: float, job: Callable[[int], Coroutine[None, None, T]], offset: int = 0
) -> list[T]:
    """Jobs arriving at `rate` per second for `duration`, whether or not earlier ones are done."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[T]] = []
    for i in range(round(rate * duration)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(job(offset + i)))
    return _succeeded(await asyncio.gather(*tasks, return_exceptions=True))


FAILURES: list[str] = []


def _succeeded(outcomes: list[T | BaseException]) -> list[T]:
    """The jobs that completed; the others are counted in FAILURES, so a run goes on."""
    done: list[T] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            FAILURES.append(f"{type(outcome).__name__}: {outcome}")
        else:
            done.append(outcome)
    return done


def attach_email_receipts(spool: Path, records: Iterable[Onboarding]) -> None:
    """The SMTP sink names each message by when it accepted it: pair each request with
    its approval email (its received email went out long before)."""
    by_id = {record.onboarding_id: record for record in records}
    parser = BytesHeaderParser()
    for path in spool.glob("*.eml"):
        with path.open("rb") as file:
            headers = parser.parse(file)
        record = by_id.get(headers["X-Onboarding-Id"])
        if (
            record is not None
            and headers["X-Onboarding-Event"] == EmailKind.PROSPECT_APPROVED.event
        ):
            stamp = datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S%f")
            record.email_accepted_at = stamp.replace(tzinfo=UTC).timestamp()
