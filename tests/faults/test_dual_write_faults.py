"""Dual-write under faults, on real processes: a worker killed during a burst of edits, a
store down for a while, 1,000 changes made while paused, the same fields edited on both
sides at once. Each ends with the two stores equal field by field on every mapped row,
every change applied (lost 0) and marked once (applied twice 0), and every conflict decided
by the field's master; the counts go to test-output/faults.txt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.sync import (
    EDITED,
    PARTNERS,
    a_linked_partner,
    edit_one,
    edits,
    outcome,
    rate_and_lag,
    settled,
)
from client import dual_write as dual_write_client
from models.dual_write import FIELD_MAP, Direction, Entity, Side, mapped
from stores import Stores, dual_write
from stores.engine import make_engine
from tests.conftest import postgres_databases
from tests.faults.harness import Site, record
from tests.faults.test_faults import set_database_down
from tests.test_dual_write import equal_on_both_sides

pytestmark = [pytest.mark.faults, pytest.mark.storm]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    urls = {store: f"sqlite:///{tmp_path / f'{store}.db'}" for store in ("sales", "commerce")}
    stores = Stores(sales=make_engine(urls["sales"]), commerce=make_engine(urls["commerce"]))
    stores.migrate()
    site = Site(tmp_path, stores, urls["sales"], urls["commerce"])
    await site.start()
    yield site
    site.stop()
    stores.dispose()


@pytest.fixture
async def postgres_site(tmp_path: Path) -> AsyncIterator[Site]:
    with postgres_databases("sales", "commerce") as (sales, commerce):
        stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
        stores.migrate()
        site = Site(tmp_path, stores, sales, commerce)
        await site.start()
        yield site
        site.stop()
        stores.dispose()


def tally(stores: Stores, partners: list[dict[str, int]], made: int) -> str:
    """The counts every case ends with; asserts them."""
    engines = dual_write.engines_of(stores.sales, stores.commerce)
    counted = outcome(stores)
    lost, twice = counted["lost"], counted["applied_twice"]
    for ids in partners:
        equal_on_both_sides(stores, ids)
    decided = dual_write.conflicts(engines, limit=100_000)
    wrong = [c for c in decided if c.winner is not mapped(c.entity, c.field).master]
    line = (
        f"{made} edits, {counted['changes']} changes, lost {lost}, applied twice {twice},"
        f" {len(decided)} conflicts, {len(wrong)} decided against the rule,"
        f" {len(partners)} partners equal field by field"
    )
    assert (lost, twice, len(wrong), counted["changes"]) == (0, 0, 0, made), line
    assert dual_write.errors(engines) == []
    return line


async def test_dual_write_1_a_worker_killed_during_a_burst_of_edits(site: Site) -> None:
    site.start_worker()
    partners = [a_linked_partner(site.stores) for _ in range(40)]
    burst = asyncio.ensure_future(asyncio.to_thread(edits, site.stores, partners, 600, 1))
    for _ in range(2):
        await asyncio.sleep(1.5)
        site.workers[-1].kill()
        site.start_worker()
    made = await burst
    await settled(site.stores)
    record("dual_write_1", tally(site.stores, partners, made))


async def test_dual_write_2_a_store_down_for_a_while_then_back(postgres_site: Site) -> None:
    site = postgres_site
    site.start_worker()
    partners = [a_linked_partner(site.stores) for _ in range(20)]
    commerce = site.worker_env["COMMERCE_DATABASE_URL"]
    set_database_down(commerce, True)
    # Sales is up: its edits commit, and wait in its outbox for Commerce.
    made = 0
    for n, ids in enumerate(partners):
        for entity in Entity:
            edit_one(site.stores, ids, entity, Side.SALES, EDITED[entity][0], n, 0)
            made += 1
    await asyncio.sleep(5)
    engines = {Side.SALES: site.stores.sales}
    waiting = dual_write.backlog(engines)[0]
    assert waiting.direction is Direction.SALES_TO_COMMERCE and waiting.waiting == made
    set_database_down(commerce, False)
    await settled(site.stores)
    record("dual_write_2", tally(site.stores, partners, made))


async def test_dual_write_3_a_thousand_changes_while_paused_then_resumed(site: Site) -> None:
    site.start_worker()
    partners = [a_linked_partner(site.stores) for _ in range(100)]
    assert site.client is not None
    await dual_write_client.ensure_running(site.client, site.task_queue)
    await dual_write_client.pause(site.client, "ops")
    made = await asyncio.to_thread(edits, site.stores, partners, 1000, 3)
    await asyncio.sleep(2)
    engines = dual_write.engines_of(site.stores.sales, site.stores.commerce)
    assert sum(b.waiting for b in dual_write.backlog(engines)) == made
    await dual_write_client.resume(site.client, "ops")
    took = await settled(site.stores)
    line = tally(site.stores, partners, made)
    record("dual_write_3", f"{line}; caught up in {took:.1f} s ({made / took:.0f} changes/s)")


async def test_dual_write_4_the_same_fields_edited_on_both_sides_at_once(site: Site) -> None:
    site.start_worker()
    partners = [a_linked_partner(site.stores) for _ in range(10)]
    # Two editors, one per side, on the same few records and fields while the sync runs.
    made = sum(
        await asyncio.gather(
            asyncio.to_thread(edits, site.stores, partners, 300, 41),
            asyncio.to_thread(edits, site.stores, partners, 300, 42),
        )
    )
    await settled(site.stores)
    line = tally(site.stores, partners, made)
    decided = dual_write.conflicts(
        dual_write.engines_of(site.stores.sales, site.stores.commerce), limit=100_000
    )
    assert decided, "concurrent edits of one field met no conflict"
    assert {c.field for c in decided} <= {f.name for fs in FIELD_MAP.values() for f in fs}
    record("dual_write_4", line)


async def test_dual_write_5_sustained_rate_and_lag_on_sqlite(site: Site) -> None:
    await rate_and_lag_on(site, "sqlite")


async def test_dual_write_5_sustained_rate_and_lag_on_postgresql(postgres_site: Site) -> None:
    await rate_and_lag_on(postgres_site, "postgresql")


async def rate_and_lag_on(site: Site, store: str) -> None:
    """The bench's sync phase (bench/sync.py) on this site: the sustained rate (2,000
    changes caught up after a pause), then the lag from commit to applied at half that
    rate, for 10 s; recorded, not asserted (the machine's load decides them)."""
    site.start_worker()
    partners = [a_linked_partner(site.stores) for _ in range(PARTNERS)]
    assert site.client is not None
    measured = await rate_and_lag(site.client, site.task_queue, site.stores, partners, 2000, 10)
    line = tally(site.stores, partners, measured["burst"] + measured["paced"])
    lag = measured["lag_ms"]
    record(
        f"dual_write_5[{store}]",
        f"{line}; sustained {measured['sustained_per_second']:.0f} changes/s; at"
        f" {measured['offered_per_second']:.0f}/s lag p50 {lag['p50'] / 1000:.2f} s,"
        f" p99 {lag['p99'] / 1000:.2f} s",
    )
