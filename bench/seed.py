"""Fills both stores with many requests at every stage, for the queues' size bench and for
trying the reps' and admins' pages at size.

    python -m bench.seed [--requests 110000] [--sales-url URL] [--commerce-url URL]

The stores are the settings' (`SALES_DATABASE_URL`, `COMMERCE_DATABASE_URL`) unless
given; they are migrated first. 110,000 requests make 110,000 prospects and 100,000
leads (one request in eleven is decided in Commerce, with no lead), spread over 400
days: open leads, open opportunities, won, lost, cancelled, awaiting approval, approved
and rejected, with accented companies and names. Their references start `5eed`, and
they have no workflow in Temporal: their pages show them, and a decision on one is
refused as a request Temporal does not know. Run it again to add as many more.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session, col

from models.commerce import Prospect
from models.lifecycle import STAFF_REASON_CODES, Stage
from models.sales import LEAD_SOURCE_COMMERCE_B2B, Account, Contact, Lead, Opportunity
from models.search import company_key, search_text
from settings import get_settings
from stores import Stores
from stores.engine import make_engine

REQUESTS = 110_000
# One request in this many is decided in Commerce (the Sales integration off).
COMMERCE_ONLY_EVERY = 11
SPREAD = timedelta(days=400)
BATCH = 5000
REFERENCE_PREFIX = "5eed"

FIRST = (
    "Giulia", "Marco", "Chiara", "Luca", "Élodie", "François", "Jürgen", "Zoë", "Søren",
    "Łucja", "Ana", "João", "Ñaki", "Anna", "Ivan", "Agnès", "Björn", "Núria", "Ottó", "Sofia",
)  # fmt: skip
LAST = (
    "Rossi", "Bianchi", "Ferrari", "Esposito", "Müller", "Dubois", "Lefèvre", "García",
    "Núñez", "Kowalski", "Øster", "Häkkinen", "Conceição", "Smith", "Łaski", "Schäfer",
    "Barberà", "Novák", "Çelik", "Ó Briain",
)  # fmt: skip
COMPANY_WORDS = (
    "Caffè", "Élite", "Nørd", "Contoso", "Fabrikam", "Tailspin", "Wide World", "Adventure",
    "Alpine", "Società", "Müller", "Zürich", "Łódź", "Côte", "Ærø", "Litware", "Northwind",
    "Proseware", "Woodgrove", "Coho", "Mañana", "Fjällräv", "Bellows", "Trey", "Lucerne",
)  # fmt: skip
COMPANY_FORMS = ("Srl", "S.p.A.", "GmbH", "SARL", "Ltd", "S.A.", "AG", "Oy", "ApS", "Sp. z o.o.")
DOMAINS = ("example.com", "example.it", "example.de", "example.fr", "example.pl")


@dataclass(frozen=True)
class Outcome:
    """Where a seeded request stands: the prospect's status and the rows Sales keeps."""

    prospect_status: str
    lead_status: str | None
    opportunity_status: str | None
    stage: Stage

    @property
    def rejected(self) -> bool:
        return self.prospect_status == "rejected"


# Each outcome with its weight: about a third of the leads still open, and so on.
WITH_SALES = (
    (Outcome("pending", "open", None, Stage.LEAD_OPEN), 35),
    (Outcome("rejected", "disqualified", None, Stage.REJECTED), 10),
    (Outcome("pending", "qualified", "open", Stage.OPPORTUNITY_OPEN), 17),
    (Outcome("approved", "qualified", "won", Stage.APPROVED), 27),
    (Outcome("rejected", "qualified", "lost", Stage.REJECTED), 11),
)
COMMERCE_ONLY = (
    (Outcome("pending", None, None, Stage.AWAITING_APPROVAL), 40),
    (Outcome("approved", None, None, Stage.APPROVED), 40),
    (Outcome("rejected", None, None, Stage.REJECTED), 20),
)


def ascii_word(word: str) -> str:
    return "".join(char for char in search_text(word) if char.isalnum()) or "x"


def requests(count: int, start: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    """The seeded requests' fields, oldest first."""
    for number in range(start, start + count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(LAST)} {rng.choice(COMPANY_FORMS)}"
        with_sales = number % COMMERCE_ONLY_EVERY != 0
        outcomes, weights = zip(*(WITH_SALES if with_sales else COMMERCE_ONLY), strict=True)
        # Older requests are more often decided; a few undecided ones are months old.
        created = now - SPREAD * (rng.random() ** 1.5)
        yield {
            "number": number,
            "onboarding_id": f"{REFERENCE_PREFIX}{number:012x}",
            "first_name": first,
            "last_name": last,
            "email": f"{ascii_word(first)}.{ascii_word(last)}.{number}@{rng.choice(DOMAINS)}",
            "company_name": company,
            "locale": rng.choice(("en", "it")),
            "with_sales": with_sales,
            "outcome": rng.choices(outcomes, weights)[0],
            "created_at": created,
            # Never later than now, however recent the request.
            "decided_after": min(timedelta(hours=rng.uniform(1, 24 * 20)), now - created),
            "reason_code": rng.choice(STAFF_REASON_CODES).value,
        }


def seed(stores: Stores, count: int, now: datetime | None = None, seed: int = 16) -> dict[str, int]:
    """Add `count` requests to both stores; how many rows each table got."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    start = _next_number(stores.commerce)
    made = dict.fromkeys(("prospect", "lead", "opportunity", "account", "contact"), 0)
    batch: list[dict[str, Any]] = []
    for request in requests(count, start, now, rng):
        batch.append(request)
        if len(batch) == BATCH:
            _write(stores, batch, made)
            batch = []
    if batch:
        _write(stores, batch, made)
    for engine in (stores.sales, stores.commerce):
        _analyze(engine)
    return made


def _next_number(commerce: Engine) -> int:
    """Seeded references go on from the last one, so seeding again adds requests."""
    with Session(commerce) as session:
        reference = col(Prospect.onboarding_id)
        last = session.execute(
            select(func.max(reference)).where(reference.like(f"{REFERENCE_PREFIX}%"))
        ).scalar()
    return int(last[len(REFERENCE_PREFIX) :], 16) + 1 if last else 1


def _write(stores: Stores, batch: list[dict[str, Any]], made: dict[str, int]) -> None:
    prospects, leads = [], []
    for request in batch:
        outcome: Outcome = request["outcome"]
        decided_at = request["created_at"] + request["decided_after"]
        decided = outcome.prospect_status != "pending"
        prospects.append(
            {
                "onboarding_id": request["onboarding_id"],
                "status": outcome.prospect_status,
                "stage": outcome.stage,
                "company_name": request["company_name"],
                "first_name": request["first_name"],
                "last_name": request["last_name"],
                "email": request["email"],
                "locale": request["locale"],
                "sales_integration_enabled": request["with_sales"],
                "created_at": request["created_at"],
                "decided_at": decided_at if decided else None,
                "decided_by": "seed" if decided else None,
                "decision_reason": "Seeded: not a fit for now." if outcome.rejected else None,
                "reason_code": request["reason_code"] if outcome.rejected else None,
                "undecided_email": None if decided else request["email"],
                **_searchable(request),
            }
        )
        if outcome.lead_status is not None:
            leads.append(
                {
                    "onboarding_id": request["onboarding_id"],
                    "source": LEAD_SOURCE_COMMERCE_B2B,
                    "status": outcome.lead_status,
                    "topic": f"B2B partner onboarding: {request['company_name']}",
                    "first_name": request["first_name"],
                    "last_name": request["last_name"],
                    "email": request["email"],
                    "company_name": request["company_name"],
                    "locale": request["locale"],
                    "created_at": request["created_at"],
                    "decided_at": decided_at if outcome.lead_status != "open" else None,
                    "decided_by": "seed" if outcome.lead_status != "open" else None,
                    "reason_code": request["reason_code"]
                    if outcome.lead_status == "disqualified"
                    else None,
                    **_searchable(request),
                }
            )
    with stores.commerce.begin() as connection:
        connection.execute(insert(Prospect), prospects)
    with stores.sales.begin() as connection:
        connection.execute(insert(Lead), leads)
        ids = _ids(connection, Lead, [lead["onboarding_id"] for lead in leads])
        qualified = [r for r in batch if r["outcome"].opportunity_status is not None]
        _write_opportunities(connection, qualified, ids)
    made["prospect"] += len(prospects)
    made["lead"] += len(leads)
    made["opportunity"] += len(qualified)
    made["account"] += len(qualified)
    made["contact"] += len(qualified)


def _write_opportunities(
    connection: Any, qualified: list[dict[str, Any]], ids: dict[str, int]
) -> None:
    if not qualified:
        return
    qualified_at = {r["onboarding_id"]: r["created_at"] + r["decided_after"] / 2 for r in qualified}
    connection.execute(
        insert(Account),
        [
            {
                "onboarding_id": r["onboarding_id"],
                "name": r["company_name"],
                "originating_lead_id": ids[r["onboarding_id"]],
                "created_at": qualified_at[r["onboarding_id"]],
            }
            for r in qualified
        ],
    )
    references = [r["onboarding_id"] for r in qualified]
    accounts = _ids(connection, Account, references)
    connection.execute(
        insert(Contact),
        [
            {
                "onboarding_id": r["onboarding_id"],
                "first_name": r["first_name"],
                "last_name": r["last_name"],
                "email": r["email"],
                "locale": r["locale"],
                "account_id": accounts[r["onboarding_id"]],
                "originating_lead_id": ids[r["onboarding_id"]],
                "created_at": qualified_at[r["onboarding_id"]],
            }
            for r in qualified
        ],
    )
    contacts = _ids(connection, Contact, references)
    rows = []
    for r in qualified:
        outcome: Outcome = r["outcome"]
        closed = outcome.opportunity_status != "open"
        rows.append(
            {
                "onboarding_id": r["onboarding_id"],
                "name": f"B2B partner onboarding: {r['company_name']}",
                "status": outcome.opportunity_status,
                "lead_id": ids[r["onboarding_id"]],
                "account_id": accounts[r["onboarding_id"]],
                "contact_id": contacts[r["onboarding_id"]],
                "created_at": qualified_at[r["onboarding_id"]],
                "closed_at": r["created_at"] + r["decided_after"] if closed else None,
                "closed_by": "seed" if closed else None,
                "reason_code": r["reason_code"] if outcome.opportunity_status == "lost" else None,
            }
        )
    connection.execute(insert(Opportunity), rows)


def _ids(connection: Any, model: Any, references: list[str]) -> dict[str, int]:
    """The ids of the rows just written for these requests, by reference."""
    found = connection.execute(
        select(model.onboarding_id, model.id).where(model.onboarding_id.in_(references))
    )
    return {reference: row_id for reference, row_id in found}


def _searchable(request: dict[str, Any]) -> dict[str, str]:
    """What the models' write hook would give the row (bulk inserts go around it)."""
    return {
        "search_text": search_text(
            request["company_name"],
            request["first_name"],
            request["last_name"],
            request["email"],
            request["onboarding_id"],
        ),
        "company_key": company_key(request["company_name"]),
    }


def _analyze(engine: Engine) -> None:
    """Fresh statistics for the planner, as PostgreSQL's autovacuum would gather by itself."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"default {REQUESTS:,}")
    parser.add_argument("--sales-url", help="default: SALES_DATABASE_URL")
    parser.add_argument("--commerce-url", help="default: COMMERCE_DATABASE_URL")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    settings = get_settings()
    stores = Stores(
        sales=make_engine(args.sales_url or settings.sales_database_url),
        commerce=make_engine(args.commerce_url or settings.commerce_database_url),
    )
    try:
        stores.migrate()
        started = time.monotonic()
        made = seed(stores, args.requests)
    finally:
        stores.dispose()
    rows = ", ".join(f"{count:,} {table}" for table, count in made.items())
    print(f"seeded {rows} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
