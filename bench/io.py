"""The bench's I/O phase: the product's own I/O functions alone, no Temporal.

    python -m bench.io [--backend sqlite|postgresql] [--count N] [--out FILE]

Each won onboarding's I/O, called directly as the worker calls it, one onboarding at a
time: the request's data key (made by the submitting client, read by the worker), the
request recorded (prospect, lead, note), the received email, qualify, won, the approval
email. Every part's CPU (this process's, so SQLite's work counts and PostgreSQL's
server does not; the SMTP sink is its own process) is summed per part and divided by
the onboardings. Then every call is made once more, as a retried activity would: the
phase fails if that writes a second row or sends a second email.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from temporalio.testing import ActivityEnvironment

from activities.commerce import CommerceActivities
from activities.email import EmailActivities, EmailRenderer
from activities.requests import RequestActivities, request_timing
from activities.sales import SalesActivities
from bench.drive import a_request
from bench.services import PROJECT, Services, store_urls
from infra import encryption
from models.activity_io import ApplyDecisionInput, CreateProspectInput, SendEmailInput
from models.commerce import (
    AccessLink,
    Customer,
    CustomerHierarchy,
    CustomerHierarchyMember,
    DataKey,
    EmailMessage,
    PartnerUser,
    Prospect,
)
from models.lifecycle import Action
from models.sales import Account, Contact, Lead, Opportunity, TimelineNote
from models.status import EmailKind
from settings import Settings
from stores import Stores
from stores.engine import make_engine

PARTS = ("data_key", "record", "received_email", "qualify", "won", "approval_email")
# The rows one won onboarding leaves, per table.
ROWS = {
    "sales": {Lead: 1, TimelineNote: 3, Account: 1, Contact: 1, Opportunity: 1},
    "commerce": {
        DataKey: 1,
        Prospect: 1,
        Customer: 2,
        CustomerHierarchy: 1,
        CustomerHierarchyMember: 2,
        PartnerUser: 1,
        AccessLink: 1,
        EmailMessage: 2,
    },
}
ACTOR = "bench-rep"


class IoPhase:
    """The worker's activity objects and the client's codec, on one backend's stores."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.stores = stores
        commerce = CommerceActivities(stores.commerce, settings.sales_integration_enabled)
        sales = SalesActivities(stores.sales)
        self.requests = RequestActivities(commerce, sales, request_timing(settings))
        self.email = EmailActivities(
            stores.commerce, settings, EmailRenderer(settings.b2b_site_url, b"bench-secret")
        )
        master = encryption.MasterKeys(encryption.master_keys(settings))
        # Two processes: the client that submits makes the key, the worker reads it.
        self.client_keys = encryption.DataKeys(lambda: stores.commerce, master)
        self.worker_keys = encryption.DataKeys(lambda: stores.commerce, master)
        self.env = ActivityEnvironment()

    async def onboarding(self, index: int, spent: dict[str, float]) -> list[Callable[[], Any]]:
        """One won onboarding's I/O, each part's CPU added to `spent`; answers the calls,
        to be made again."""
        oid = uuid.uuid4().hex[:16]
        request = a_request(index)
        at = datetime.now(UTC)

        async def data_key() -> None:
            await self.client_keys.for_encoding(oid)
            await self.worker_keys.for_decoding(oid)

        def decide(action: Action) -> Callable[[], Any]:
            decision = ApplyDecisionInput(
                onboarding_id=oid, action=action, request=request, actor=ACTOR, at=at
            )
            return lambda: self.requests.apply_decision(decision)

        def send(kind: EmailKind) -> Callable[[], Awaitable[Any]]:
            mail = SendEmailInput(onboarding_id=oid, kind=kind, request=request)
            return lambda: self.env.run(self.email.send_onboarding_email, mail)

        record = CreateProspectInput(onboarding_id=oid, request=request, at=at)
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("data_key", data_key),
            ("record", lambda: self.requests.record_request(record)),
            ("received_email", send(EmailKind.REQUEST_RECEIVED)),
            ("qualify", decide(Action.QUALIFY)),
            ("won", decide(Action.WON)),
            ("approval_email", send(EmailKind.PROSPECT_APPROVED)),
        ]
        for part, call in calls:
            began = time.process_time()
            result = call()
            if asyncio.iscoroutine(result):
                await result
            spent[part] += time.process_time() - began
        return [call for _, call in calls]

    def rows(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for store, tables in ROWS.items():
            engine: Engine = getattr(self.stores, store)
            with engine.connect() as connection:
                for model in tables:
                    table = model.__table__  # type: ignore[attr-defined]
                    counted[table.name] = connection.execute(
                        select(func.count()).select_from(table)
                    ).scalar_one()
        return counted


async def measure(settings: Settings, stores: Stores, count: int, spool: Path) -> dict[str, Any]:
    phase = IoPhase(settings, stores)
    spent = dict.fromkeys(PARTS, 0.0)
    # Warm: templates compiled, statements cached, connections open.
    for index in range(3):
        await phase.onboarding(index, dict.fromkeys(PARTS, 0.0))
    before = phase.rows()
    sent_before = len(list(spool.glob("*.eml")))
    again: list[Callable[[], Any]] = []
    for index in range(count):
        again += await phase.onboarding(index, spent)
    for call in again:
        result = call()
        if asyncio.iscoroutine(result):
            await result
    await phase.email.aclose()
    rows = phase.rows()
    expected = {
        model.__table__.name: n * count  # type: ignore[attr-defined]
        for tables in ROWS.values()
        for model, n in tables.items()
    }
    written = {name: rows[name] - before[name] for name in rows}
    emails = await _settled(lambda: len(list(spool.glob("*.eml"))) - sent_before, 2 * count)
    if written != expected or emails != 2 * count:
        raise RuntimeError(
            f"the I/O wrote other than one onboarding's rows and emails each: rows {written},"
            f" expected {expected}; emails {emails}, expected {2 * count}"
        )
    per_part = {part: round(1000 * spent[part] / count, 2) for part in PARTS}
    return {
        "count": count,
        "cpu_ms_each": round(sum(per_part.values()), 2),
        "cpu_ms_each_by_part": per_part,
        "rows_each": {name: n // count for name, n in written.items()},
        "emails_each": emails // count,
    }


async def _settled(count: Callable[[], int], expected: int) -> int:
    """The sink writes a message's file a moment after it answers: wait for them (up to 10 s)."""
    deadline = time.monotonic() + 10
    while count() < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count()


def bench_settings(sales_url: str, commerce_url: str, smtp_port: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        sales_database_url=sales_url,
        commerce_database_url=commerce_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        mail_from="B2B Partner Onboarding <no-reply@bench.example>",
        payload_encryption_keys=f"bench:{base64.b64encode(b'k' * 32).decode()}",
    )


@contextmanager
def stores_for(backend: str, workdir: Path) -> Iterator[tuple[str, str, Stores]]:
    workdir.mkdir(parents=True, exist_ok=True)
    with store_urls(backend, workdir) as (sales_url, commerce_url):
        stores = Stores(sales=make_engine(sales_url), commerce=make_engine(commerce_url))
        stores.migrate()
        try:
            yield sales_url, commerce_url, stores
        finally:
            stores.dispose()


async def phase(
    backend: str, count: int, workdir: Path, smtp_port: int, spool: Path
) -> dict[str, Any]:
    """The I/O phase on one backend's fresh stores, with a mail sink already listening on
    `smtp_port` and keeping its messages in `spool`."""
    with stores_for(backend, workdir / f"io-{backend}") as (sales_url, commerce_url, stores):
        settings = bench_settings(sales_url, commerce_url, smtp_port)
        return await measure(settings, stores, count, spool)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    workdir = PROJECT / "var" / "bench" / f"io-{datetime.now():%Y%m%dT%H%M%S}"
    workdir.mkdir(parents=True)
    services = Services(workdir)
    try:
        spool = workdir / "mail"
        _, port = services.mail_sink(spool)
        measured = asyncio.run(phase(args.backend, args.count, workdir, port, spool))
        result = {"backend": args.backend, **measured}
    finally:
        services.stop_all()
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
