"""Nothing lost, nothing duplicated, under the faults production brings.

Each case runs real processes (Temporal dev server, workers, SMTP sink, SQLite stores),
injects its fault, and ends with the same counts (see `harness.Tally`).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from client.requests import decide, signal_decision, status
from models.lifecycle import Action, Refused, Stage
from models.sales import Lead
from stores import Stores, views
from stores.engine import make_engine
from tests.conftest import POSTGRES_ADMIN_URL, eventually, postgres_databases
from tests.faults.harness import EXPIRING, PATHS, Site

STORM = 200

# In `make test-faults` with the storms: on 2 cores `make test` stays under 10 minutes.
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


def paths_for(onboarding_ids: list[str]) -> dict[str, str]:
    """Won, lost and cancelled in turn."""
    return dict(zip(onboarding_ids, itertools.cycle(PATHS), strict=False))


async def decide_all(site: Site, paths: dict[str, str], step: int) -> None:
    """Each request's `step`-th decision, all at once, as reps working in parallel."""
    await asyncio.gather(
        *(
            site.decide(onboarding_id, PATHS[path][step])
            for onboarding_id, path in paths.items()
            if step < len(PATHS[path])
        )
    )


async def while_killing(site: Site, work: asyncio.Future[None] | asyncio.Task[None]) -> None:
    """Kill the newest worker with SIGKILL while `work` runs, then start a fresh one."""
    await asyncio.sleep(0.3)
    site.workers[-1].kill()
    await asyncio.sleep(0.5)
    site.start_worker()
    await work


async def test_1_a_worker_killed_mid_flight_and_restarted(site: Site) -> None:
    site.start_worker()
    paths = paths_for(await site.submit(12))
    await while_killing(site, asyncio.ensure_future(site.recorded(list(paths))))
    for step in (0, 1):
        await while_killing(site, asyncio.ensure_future(decide_all(site, paths, step)))

    tally = await site.tally(paths)

    # A kill in the instant between the mail server's acceptance and the outbox's mark
    # sends that email again, with its Message-ID: at most once more per kill.
    tally.assert_nothing_lost_or_duplicated(resends=3)


async def test_2_a_worker_killed_after_a_commit_before_it_reports(site: Site) -> None:
    pause, committed = site.directory / "pause", site.directory / "committed"
    site.start_worker()
    onboarding_id = ""
    for decision in (None, Action.QUALIFY, Action.WON):
        pause.touch()
        # The submission is answered once its request is in both stores: it waits,
        # and is answered by the next worker, as a decision is.
        pending: asyncio.Future[object] = asyncio.ensure_future(
            site.decide(onboarding_id, decision) if decision else site.submit(1)
        )
        await eventually(committed.exists)
        # The store has the rows and Temporal has not heard: kill the worker right there.
        site.workers[-1].kill()
        committed.unlink()
        pause.unlink()
        site.start_worker()
        answered = await pending
        if decision is None:
            assert isinstance(answered, list)
            (onboarding_id,) = answered

    tally = await site.tally({onboarding_id: "won"})

    tally.assert_nothing_lost_or_duplicated()


async def test_12_a_worker_killed_around_the_reminders_and_the_expiry(site: Site) -> None:
    """Clocks of seconds; the worker is killed just before each reminder and the expiry
    falls due, and again just after: each reminder and the rejection go out once."""
    site.worker_env.update(EXPIRING)
    site.start_worker()
    onboarding_ids = await site.submit(6)
    start = asyncio.get_running_loop().time()
    for due in (3.0, 6.0, 8.0):
        for offset in (-0.3, 0.4):
            await asyncio.sleep(max(0.0, start + due + offset - asyncio.get_running_loop().time()))
            site.workers[-1].kill()
            site.start_worker()

    tally = await site.tally(dict.fromkeys(onboarding_ids, "expired"))

    # Each kill may catch one email between the server's acceptance and the outbox's mark.
    tally.assert_nothing_lost_or_duplicated(resends=2)
    assert site.client is not None
    for onboarding_id in onboarding_ids:
        expired = await status(site.client, onboarding_id)
        assert expired.reason_code == "expired" and expired.decisions[-1].actor == "system"


async def test_3_the_temporal_server_restarted_mid_flight(site: Site) -> None:
    site.start_worker()
    paths = paths_for(await site.submit(9))
    await site.restart_server()
    await site.recorded(list(paths))
    first = asyncio.ensure_future(decide_all(site, paths, 0))
    await asyncio.sleep(0.2)
    await site.restart_server()
    await first
    await decide_all(site, paths, 1)

    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated()


async def test_4_the_mail_server_down_then_back_sends_each_email_once(site: Site) -> None:
    site.start_worker()
    paths = paths_for(await site.submit(6))
    await site.recorded(list(paths))
    site.stop_sink()
    await decide_all(site, paths, 0)
    await decide_all(site, paths, 1)
    waiting = await site.until(list(paths), lambda s: s.stage.decided)
    assert {s.notification.state for s in waiting.values() if s.notification} == {"sending"}
    site.start_sink()

    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated()
    assert tally.duplicate_deliveries == 0


async def test_5_a_mail_server_that_answers_too_late_gets_the_same_message_id_again(
    site: Site,
) -> None:
    site.stop_sink()
    site.start_sink(slow_once=4.0)  # the workers give up after 2 s
    site.start_worker()
    paths = paths_for(await site.submit(3))
    await site.recorded(list(paths))
    await decide_all(site, paths, 0)
    await decide_all(site, paths, 1)

    tally = await site.tally(paths)

    # For each email (a request's received email and its decision's), the sink kept the
    # first attempt and the retry: two deliveries, one Message-ID, one outbox row
    # (counted among the rows above).
    emails = 2 * len(paths)
    tally.assert_nothing_lost_or_duplicated(resends=1)
    assert tally.duplicate_deliveries == emails
    assert tally.distinct_messages == emails


async def test_8_repeated_decisions_and_submissions_and_late_decisions(site: Site) -> None:
    site.start_worker()
    assert site.client is not None
    client = site.client
    (onboarding_id,) = await site.submit(1)
    await site.recorded([onboarding_id])

    twice = await asyncio.gather(
        *(
            decide(client, onboarding_id, Action.QUALIFY, "faults", decision_id="q-1")
            for _ in range(2)
        )
    )
    assert {current.stage for current in twice} == {Stage.OPPORTUNITY_OPEN}
    for _ in range(2):
        await signal_decision(client, onboarding_id, Action.WON, "faults")
    await site.finished([onboarding_id])
    with pytest.raises(Refused) as late:
        await decide(client, onboarding_id, Action.LOST, "faults")
    assert late.value.stage is Stage.APPROVED

    tally = await site.tally({onboarding_id: "won"})

    tally.assert_nothing_lost_or_duplicated()
    current = await status(client, onboarding_id)
    assert [d.action for d in current.decisions] == [Action.QUALIFY, Action.WON]


async def test_a_second_worker_takes_over_when_the_first_is_killed(site: Site) -> None:
    first, _second = site.start_worker(), site.start_worker()
    paths = paths_for(await site.submit(9))
    await site.recorded(list(paths))
    decisions = asyncio.ensure_future(decide_all(site, paths, 0))
    await asyncio.sleep(0.2)
    first.kill()
    await decisions
    await decide_all(site, paths, 1)

    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated(resends=1)


@pytest.fixture
async def postgres_site(tmp_path: Path) -> AsyncIterator[Site]:
    """The same, with both stores on the local PostgreSQL server."""
    with postgres_databases("sales", "commerce") as (sales, commerce):
        stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
        stores.migrate()
        site = Site(tmp_path, stores, sales, commerce)
        await site.start()
        yield site
        site.stop()
        stores.dispose()


def set_database_down(url: str, down: bool) -> None:
    """Refuse (or allow again) new connections to one store, and cut the open ones."""
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        allow = "false" if down else "true"
        connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {allow}'))
        if down:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    admin.dispose()


async def test_6_postgresql_connections_cut_mid_flight_then_back(postgres_site: Site) -> None:
    site = postgres_site
    site.start_worker()
    paths = paths_for(await site.submit(9))
    urls = (site.worker_env["SALES_DATABASE_URL"], site.worker_env["COMMERCE_DATABASE_URL"])
    for url in urls:
        set_database_down(url, True)
    await asyncio.sleep(3)
    for url in urls:
        set_database_down(url, False)
    await site.recorded(list(paths))
    first = asyncio.ensure_future(decide_all(site, paths, 0))
    await asyncio.sleep(0.2)
    for url in urls:
        set_database_down(url, True)
    await asyncio.sleep(3)
    for url in urls:
        set_database_down(url, False)
    await first
    await decide_all(site, paths, 1)

    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated()


async def test_7_one_store_down_the_other_up_they_agree_at_the_end(postgres_site: Site) -> None:
    site = postgres_site
    site.start_worker()
    commerce = site.worker_env["COMMERCE_DATABASE_URL"]
    set_database_down(commerce, True)
    # Temporal holds the submissions; each is answered once its request is in both stores.
    submitting = asyncio.ensure_future(site.submit(6))
    await asyncio.sleep(3)
    assert not submitting.done()
    # Sales is up, but a request reaches it only through its prospect in Commerce.
    with Session(site.stores.sales) as session:
        assert session.exec(select(func.count()).select_from(Lead)).one() == 0
    set_database_down(commerce, False)
    paths = paths_for(await submitting)
    await site.recorded(list(paths))
    first = asyncio.ensure_future(decide_all(site, paths, 0))
    await asyncio.sleep(0.3)
    set_database_down(commerce, True)
    await asyncio.sleep(3)
    set_database_down(commerce, False)
    await first
    await decide_all(site, paths, 1)

    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated()
    for onboarding_id in paths:
        prospect = views.prospect_of_request(site.stores.commerce, onboarding_id)
        lead = views.lead_of_request(site.stores.sales, onboarding_id)
        assert prospect is not None and lead is not None
        assert lead.commerce_prospect_id == prospect.id, "the stores disagree"
        assert prospect.status == ("approved" if paths[onboarding_id] == "won" else "rejected")


@pytest.mark.storm
async def test_9_a_storm_with_workers_killed_and_restarted(site: Site) -> None:
    """200 onboardings at once with random decisions, while workers die and come back."""
    site.start_worker()
    site.start_worker()
    rng = random.Random(9)
    ids = await site.submit(STORM)
    paths = {oid: rng.choice(list(PATHS)) for oid in ids}

    async def chaos() -> None:
        for _ in range(3):
            await asyncio.sleep(rng.uniform(1, 3))
            victim = rng.choice([w for w in site.workers if w.popen and w.popen.poll() is None])
            victim.kill()
            site.start_worker()

    async def work() -> None:
        await site.recorded(list(paths), timeout=300)
        for step in (0, 1):
            await decide_all(site, paths, step)

    await asyncio.gather(chaos(), work())
    tally = await site.tally(paths)

    tally.assert_nothing_lost_or_duplicated(resends=3)
