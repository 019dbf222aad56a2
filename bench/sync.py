"""The bench's sync phase: dual-write's sustained rate, and its lag at half that rate.

On fresh stores of one backend, with a worker of the product's own (`worker.py`) running
the two sync workflows: 100 partners linked as approval links them; the sync paused,
`changes` edits of random mapped fields of random partners on random sides made, the
sync resumed and timed until nothing waits (the rate it sustains, changes per second);
then edits at half that rate for `seconds`, half of them on Sales accounts and half on
Commerce organisations, each change's lag read from its outbox row (committed → applied
in the other store and marked). Every change must end applied, once: the phase fails
otherwise. The driver shares the machine with the worker and the server, as a store's
other writers would; `other_cpu_share` is how much of its CPUs went to processes not this
run's (the figures are only as clean as it is low).

`python -m bench.run --profile sync` runs this phase alone, on both backends.

The storm fault case (tests/faults/test_dual_write_faults.py, case 5) drives the same
code on its own site; its other cases use the edits and the counts.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench import report
from bench.io import stores_for
from bench.services import Service, Services, machine_busy_cpu_s
from client import dual_write as dual_write_client
from client.connection import connect
from models.commerce import Customer
from models.dual_write import Direction, Entity, Side
from models.sales import Account, Contact
from settings import Settings
from stores import Stores, dual_write

# Fields edited on both sides, with a value of each side's for the i-th edit.
EDITED = {
    Entity.ORGANIZATION: ("name", "phone", "website", "address"),
    Entity.PERSON: ("first_name", "job_title", "phone"),
}
# Each side's name of the two rows a partner is linked by.
KEYS = {
    (Entity.ORGANIZATION, Side.SALES): "account",
    (Entity.ORGANIZATION, Side.COMMERCE): "organization",
    (Entity.PERSON, Side.SALES): "contact",
    (Entity.PERSON, Side.COMMERCE): "person",
}
PARTNERS = 100
# A backlog that does not drain in this long is a sync that stopped.
SETTLE_TIMEOUT = 300.0


def a_linked_partner(stores: Stores, at: datetime | None = None) -> dict[str, int]:
    """An account and its contact in Sales, their customers in Commerce, linked as approval
    links them."""
    at = at or datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    with Session(stores.sales) as session:
        account = Account(name=f"Contoso {tag}", phone="+39 02 1", created_at=at)
        session.add(account)
        session.flush()
        contact = Contact(
            first_name="Ada",
            last_name="Rossi",
            email=f"ada.{tag}@contoso.example",
            account_id=account.id,
            created_at=at,
        )
        session.add(contact)
        session.commit()
        ids = {"account": account.id, "contact": contact.id}
    with Session(stores.commerce) as session:
        organization = Customer(
            customer_type="organization",
            name=f"Contoso {tag}",
            phone="+39 02 1",
            sales_account_id=ids["account"],
            created_at=at,
        )
        person = Customer(
            customer_type="person",
            name="Ada Rossi",
            first_name="Ada",
            last_name="Rossi",
            email=f"ada.{tag}@contoso.example",
            sales_contact_id=ids["contact"],
            created_at=at,
        )
        session.add_all([organization, person])
        session.commit()
        ids |= {"organization": organization.id, "person": person.id}
    return {key: value for key, value in ids.items() if value is not None}


def value(field: str, n: int, side: Side, seed: int = 0) -> str:
    """A value no other edit of a run writes, so that every edit is a change."""
    if field == "phone":
        return f"+39 0{1 if side is Side.SALES else 2} {seed:02d}{n:06d}"
    if field == "website":
        return f"https://{side.value}-{seed}-{n}.example"
    return f"{side.value.title()} {seed} {n}"


def edit_one(
    stores: Stores, ids: dict[str, int], entity: Entity, side: Side, field: str, n: int, seed: int
) -> None:
    """One edit as a page or the API makes it: the row and its outbox change, committed."""
    dual_write.edit(
        stores.sales if side is Side.SALES else stores.commerce,
        side,
        entity,
        ids[KEYS[entity, side]],
        {field: value(field, n, side, seed)},
        "bench",
        datetime.now(UTC),
    )


def edits(stores: Stores, partners: list[dict[str, int]], count: int, seed: int) -> int:
    """`count` edits of random mapped fields of random partners, on random sides."""
    rng = random.Random(seed)
    for n in range(count):
        ids = rng.choice(partners)
        entity = rng.choice(list(Entity))
        side = rng.choice(list(Side))
        edit_one(stores, ids, entity, side, rng.choice(EDITED[entity]), n, seed)
    return count


def paced(
    stores: Stores, partners: list[dict[str, int]], side: Side, rate: float, seconds: float
) -> int:
    """Edits of these partners' phones on `side` at `rate` a second for `seconds`: the
    offered load."""
    started = time.monotonic()
    made = 0
    while (elapsed := time.monotonic() - started) < seconds:
        if made < elapsed * rate:
            ids = partners[made % len(partners)]
            edit_one(stores, ids, Entity.ORGANIZATION, side, "phone", made, 99)
            made += 1
        else:
            time.sleep(0.001)
    return made


async def paced_both_ways(
    stores: Stores, partners: list[dict[str, int]], rate: float, seconds: float
) -> int:
    """`rate` edits a second in all: half of them on Sales accounts, half on Commerce
    organisations, each side from its own thread (one alone could not offer the rate a
    sync on SQLite sustains) and on partners of its own (no conflicts slow the lag)."""
    made = await asyncio.gather(
        *(
            asyncio.to_thread(paced, stores, partners[n :: len(Side)], side, rate / 2, seconds)
            for n, side in enumerate(Side)
        )
    )
    return sum(made)


def changes(stores: Stores, since: datetime | None = None) -> list[Any]:
    """Both outboxes' rows (made at or after `since`)."""
    found: list[Any] = []
    for side, engine in dual_write.engines_of(stores.sales, stores.commerce).items():
        Outbox = dual_write.CHANGES[side]
        query = select(Outbox)
        if since is not None:
            query = query.where(Outbox.created_at >= since)
        with Session(engine) as session:
            found += session.exec(query).all()
    return found


def outcome(stores: Stores) -> dict[str, int]:
    """Every change, those not applied (lost) and those marked more than once."""
    every = changes(stores)
    return {
        "changes": len(every),
        "lost": sum(1 for c in every if c.state != "applied"),
        "applied_twice": sum(1 for c in every if c.attempts != 1),
    }


async def settled(stores: Stores, timeout: float = SETTLE_TIMEOUT) -> float:
    """Until nothing waits in either direction; how long it took."""
    started = time.monotonic()
    engines = dual_write.engines_of(stores.sales, stores.commerce)
    while any(b.waiting for b in dual_write.backlog(engines)):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the sync did not drain in {timeout:.0f} s: {backlog(stores)}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def backlog(stores: Stores) -> list[dual_write.Backlog]:
    return dual_write.backlog(dual_write.engines_of(stores.sales, stores.commerce))


async def rate_and_lag(
    client: Client,
    task_queue: str,
    stores: Stores,
    partners: list[dict[str, int]],
    changes_made: int,
    seconds: float,
) -> dict[str, Any]:
    """The sync's sustained rate (`changes_made` edits caught up after a pause), then the
    lag from commit to applied at half that rate, for `seconds`."""
    await dual_write_client.ensure_running(client, task_queue)
    await dual_write_client.pause(client, "bench")
    burst = await asyncio.to_thread(edits, stores, partners, changes_made, 5)
    await dual_write_client.resume(client, "bench")
    took = await settled(stores)
    rate = burst / took
    since = datetime.now(UTC)
    made = await paced_both_ways(stores, partners, rate / 2, seconds)
    await settled(stores)
    lags = [
        1000 * (row.applied_at - row.created_at).total_seconds()
        for row in changes(stores, since)
        if row.applied_at is not None
    ]
    conflicts = dual_write.conflicts(
        dual_write.engines_of(stores.sales, stores.commerce), limit=100_000
    )
    return {
        "burst": burst,
        "caught_up_s": round(took, 2),
        "sustained_per_second": round(rate, 1),
        "half_per_second": round(rate / 2, 1),
        "offered_per_second": round(made / seconds, 1),
        "paced": made,
        "lag_ms": report.percentiles(lags),
        "conflicts": len(conflicts),
        **outcome(stores),
    }


async def own_sync(client: Client, task_queue: str) -> None:
    """The two sync workflows on `task_queue`: a run another worker left (the bench's
    product phase starts both on its own queue) is ended first, since `ensure_running`
    keeps a running one."""
    await end_sync(client, "the bench's sync phase starts its own")
    await dual_write_client.ensure_running(client, task_queue)


async def end_sync(client: Client, reason: str) -> None:
    for direction in Direction:
        try:
            await client.get_workflow_handle(dual_write_client.workflow_id(direction)).terminate(
                reason=reason
            )
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise


def _ours_cpu_s(services: Services) -> float:
    """CPU seconds of this process (the driver) and of every process the run started."""
    own = os.times()
    running = [s for s in services.started if s.process.poll() is None]
    return own.user + own.system + sum(s.usage().cpu_s for s in running)


def polling(worker: Service, timeout: float = 60) -> None:
    """Until the worker says it polls its task queue."""
    deadline = time.monotonic() + timeout
    while "worker polling" not in worker.log.read_text(errors="replace"):
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{worker.name} did not start: {worker.log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.1)


async def phase(
    backend: str,
    settings: Settings,
    env: dict[str, str],
    services: Services,
    workdir: Path,
    changes_made: int,
    seconds: float,
) -> dict[str, Any]:
    """The sync phase on fresh stores of `backend`, with its own `worker.py` (started with
    `env`, the product worker's, on these stores and a task queue of its own)."""
    with stores_for(backend, workdir / f"sync-{backend}") as (sales_url, commerce_url, stores):
        task_queue = f"sync-{backend}-{uuid.uuid4().hex[:8]}"
        settings = settings.model_copy(
            update={
                "sales_database_url": sales_url,
                "commerce_database_url": commerce_url,
                "onboarding_task_queue": task_queue,
            }
        )
        client = await connect(settings, stores.commerce)
        await own_sync(client, task_queue)
        worker = services.start(
            f"sync-worker-{backend}",
            [sys.executable, "worker.py"],
            env={
                **env,
                "SALES_DATABASE_URL": sales_url,
                "COMMERCE_DATABASE_URL": commerce_url,
                "ONBOARDING_TASK_QUEUE": task_queue,
            },
        )
        try:
            await asyncio.to_thread(polling, worker)
            partners = [a_linked_partner(stores) for _ in range(PARTNERS)]
            started, machine, ours = time.monotonic(), machine_busy_cpu_s(), _ours_cpu_s(services)
            result = await rate_and_lag(client, task_queue, stores, partners, changes_made, seconds)
            others = (machine_busy_cpu_s() - machine) - (_ours_cpu_s(services) - ours)
            result["other_cpu_share"] = round(
                max(0.0, others) / ((time.monotonic() - started) * (os.cpu_count() or 1)), 2
            )
        finally:
            await end_sync(client, "the bench's sync phase is over")
            services.stop(worker)
    if (
        result["lost"]
        or result["applied_twice"]
        or result["changes"] != result["burst"] + result["paced"]
    ):
        raise RuntimeError(f"the sync lost or repeated changes: {result}")
    return result
