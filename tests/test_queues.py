"""The queues' reads, on SQLite and PostgreSQL: search, filters, counts, keyset paging,
and the tallies the database keeps for the counts."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session, col

from bench.seed import COMMERCE_ONLY_EVERY, REFERENCE_PREFIX, seed
from models.commerce import Prospect, ProspectTally
from models.personal_data import AnonymisationKind, AnonymiseRequestInput
from models.sales import LEAD_SOURCE_COMMERCE_B2B, LEAD_SOURCE_MANUAL, Lead, LeadTally
from models.search import query_words
from stores import Stores
from stores import queues as q
from stores.engine import make_engine
from stores.personal_data import anonymise_request
from tests.conftest import postgres_databases

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Both stores empty, of this test's own, on each database."""
    if request.param == "sqlite":
        stores = Stores(
            sales=make_engine(f"sqlite:///{tmp_path / 'sales.db'}"),
            commerce=make_engine(f"sqlite:///{tmp_path / 'commerce.db'}"),
        )
        stores.migrate()
        yield stores
        stores.dispose()
        return
    with postgres_databases("sales", "commerce") as (sales, commerce):
        stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
        stores.migrate()
        yield stores
        stores.dispose()


def a_prospect(number: int, **fields: Any) -> Prospect:
    values: dict[str, Any] = {
        "onboarding_id": f"{number:016x}",
        "company_name": f"Company {number}",
        "first_name": "Giulia",
        "last_name": "Rossi",
        "email": f"giulia.{number}@contoso.example",
        "created_at": NOW - timedelta(hours=number),
        **fields,
    }
    return Prospect(**values)


def a_lead(number: int, **fields: Any) -> Lead:
    values: dict[str, Any] = {
        "onboarding_id": f"{number:016x}",
        "source": LEAD_SOURCE_COMMERCE_B2B,
        "topic": f"B2B partner onboarding: Company {number}",
        "company_name": f"Company {number}",
        "first_name": "Marco",
        "last_name": "Bianchi",
        "email": f"marco.{number}@fabrikam.example",
        "created_at": NOW - timedelta(hours=number),
        **fields,
    }
    return Lead(**values)


def add(engine: Any, *rows: Any) -> None:
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        session.commit()


def ids(page: q.Page[Any]) -> list[int]:
    return [row.id for row in page.rows]


def test_a_search_ignores_case_and_accents_in_every_field(fresh: Stores) -> None:
    add(
        fresh.commerce,
        a_prospect(1, company_name="Société Générale Ærø"),
        a_prospect(2, first_name="Zoë", last_name="Łaski"),
        a_prospect(3, email="SOMEONE@Müller.example".lower()),
        a_prospect(4),
    )
    for words, found in (
        ("societe", [1]),
        ("SOCIÉTÉ générale", [1]),
        ("aero", [1]),
        ("zoe laski", [2]),
        ("ŁASKI", [2]),
        ("muller", [3]),
        (f"{4:016x}", [4]),
        ("rossi company", [3, 4]),
        ("nobody", []),
        ("%", []),
        ("_", []),
    ):
        page = q.page(fresh.commerce, q.PROSPECTS, q.View(q=words), NOW)
        assert sorted(ids(page)) == found, words
        assert page.counts.total == len(found), words


def test_wildcards_typed_in_a_search_are_plain_characters(fresh: Stores) -> None:
    add(
        fresh.commerce,
        a_prospect(1, company_name="100% Wool [Trading] *Star* Co_op?"),
        a_prospect(2, company_name="100 Wool Trading Star Coop"),
    )
    for words in ("100%", "[trading]", "*star*", "co_op?", "co_op"):
        assert ids(q.page(fresh.commerce, q.PROSPECTS, q.View(q=words), NOW)) == [1], words


def test_pages_follow_each_other_without_gaps_or_repeats_in_every_sort(fresh: Stores) -> None:
    rng = random.Random(7)
    # Ties on the sort key: many rows share a creation time and a company.
    rows = [
        a_prospect(
            number,
            company_name=rng.choice(["Alpha", "beta", "Ärger", "Zeta"]),
            created_at=NOW - timedelta(hours=rng.randint(1, 5)),
        )
        for number in range(1, 38)
    ]
    add(fresh.commerce, *rows)
    expected = {
        q.Sort.NEWEST: sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True),
        q.Sort.OLDEST: sorted(rows, key=lambda r: (r.created_at, r.id)),
        q.Sort.COMPANY: sorted(rows, key=lambda r: (r.company_key, r.id)),
        q.Sort.COMPANY_DESC: sorted(rows, key=lambda r: (r.company_key, r.id), reverse=True),
    }
    for sort, order in expected.items():
        seen: list[int] = []
        view = q.View(sort=sort)
        pages = []
        while True:
            page = q.page(fresh.commerce, q.PROSPECTS, view, NOW, size=10)
            pages.append(page)
            seen += ids(page)
            if page.next is None:
                break
            view = q.View(sort=sort, after=page.next)
        assert seen == [row.id for row in order], sort
        assert [len(page.rows) for page in pages] == [10, 10, 10, 7]
        assert pages[0].previous is None and pages[-1].next is None
        # And back again from the last page, through `before`.
        back: list[int] = ids(pages[-1])
        page = pages[-1]
        while page.previous is not None:
            page = q.page(
                fresh.commerce, q.PROSPECTS, q.View(sort=sort, before=page.previous), NOW, size=10
            )
            back = ids(page) + back
        assert back == seen, sort
        assert page.next is not None


def test_a_row_added_meanwhile_does_not_shift_the_next_page(fresh: Stores) -> None:
    add(fresh.commerce, *(a_prospect(number) for number in range(1, 21)))
    first = q.page(fresh.commerce, q.PROSPECTS, q.View(), NOW, size=10)
    add(fresh.commerce, a_prospect(99, created_at=NOW))
    second = q.page(fresh.commerce, q.PROSPECTS, q.View(after=first.next), NOW, size=10)
    assert ids(first) == list(range(1, 11))
    assert ids(second) == list(range(11, 21))


def test_filters_and_their_counts_agree_with_the_rows_they_show(fresh: Stores) -> None:
    rng = random.Random(11)
    rows = [
        a_prospect(
            number,
            status=rng.choice(["pending", "approved", "rejected"]),
            sales_integration_enabled=rng.random() < 0.7,
            reason_code=rng.choice([None, "duplicate", "not_eligible"]),
            created_at=NOW - timedelta(hours=rng.choice([2, 30, 24 * 10, 24 * 40, 24 * 400])),
            company_name=rng.choice(["Contoso", "Fabrikam", "Caffè Nero"]),
        )
        for number in range(1, 121)
    ]
    add(fresh.commerce, *rows)

    def age(row: Prospect) -> str:
        waited = NOW - row.created_at
        return next(a.value for a, bound, _ in q.AGE_STEPS if bound is None or waited < bound)

    def facets(row: Prospect) -> dict[str, str | None]:
        return {
            "status": row.status,
            "mode": "sales" if row.sales_integration_enabled else "commerce",
            "age": age(row),
            "reason": row.reason_code,
        }

    for filters, words in (
        ({}, ""),
        ({"status": "pending"}, ""),
        ({"status": "rejected", "reason": "duplicate"}, ""),
        ({"mode": "commerce", "age": "older"}, ""),
        ({"age": "day"}, ""),
        ({"age": "month", "status": "approved"}, ""),
        ({}, "caffe"),
        ({"status": "pending", "age": "week"}, "contoso"),
    ):
        view = q.View(q=words, filters=filters)
        page = q.page(fresh.commerce, q.PROSPECTS, view, NOW, size=500)
        matching = [
            row
            for row in rows
            if all(facets(row)[name] == option for name, option in filters.items())
            and (not words or words in row.search_text)
        ]
        assert sorted(ids(page)) == sorted(row.id or 0 for row in matching), filters
        assert page.counts.total == len(matching)
        for facet in q.PROSPECTS.facets:
            others = {k: v for k, v in filters.items() if k != facet.name}
            expected = Counter(
                facets(row)[facet.name]
                for row in rows
                if all(facets(row)[name] == option for name, option in others.items())
                and (not words or words in row.search_text)
            )
            shown = {option.value: option.count for option in page.counts.facets[facet.name]}
            assert shown == {value: expected[value] for value, _ in facet.options}, (
                filters,
                facet.name,
            )


def tally_of(session: Session, model: Any, table: Any, *columns: str) -> tuple[Counter, Counter]:
    kept = Counter(
        {
            tuple(getattr(row, c) for c in columns): row.row_count
            for row in session.exec(select(model)).scalars()  # type: ignore[call-overload]
            if row.row_count
        }
    )
    counted = Counter(
        {
            tuple("" if v is None else v for v in row[:-1]): row[-1]
            for row in session.execute(
                select(*(getattr(table, c) for c in columns), func.count()).group_by(
                    *(getattr(table, c) for c in columns)
                )
            )
        }
    )
    return kept, counted


def test_the_tallies_follow_every_insert_update_and_delete(fresh: Stores) -> None:
    add(fresh.commerce, *(a_prospect(n) for n in range(1, 11)))
    add(fresh.sales, *(a_lead(n) for n in range(1, 6)), a_lead(6, source=LEAD_SOURCE_MANUAL))
    with Session(fresh.commerce) as session:
        for row in session.exec(select(Prospect).where(col(Prospect.id) <= 4)).scalars():  # type: ignore[call-overload]
            row.status, row.reason_code = "rejected", "duplicate"
        session.commit()
    with fresh.commerce.begin() as connection:
        # Writes that go around the ORM count as well: the database keeps the tallies.
        connection.execute(text("UPDATE prospect SET status = 'approved' WHERE id = 5"))
        connection.execute(text("DELETE FROM prospect WHERE id = 6"))
        connection.execute(text("UPDATE prospect SET company_name = 'Renamed' WHERE id = 7"))
    with fresh.sales.begin() as connection:
        connection.execute(text("UPDATE lead SET status = 'disqualified' WHERE id IN (1, 2)"))
    with Session(fresh.commerce) as session:
        kept, counted = tally_of(
            session, ProspectTally, Prospect, "status", "sales_integration_enabled", "reason_code"
        )
    assert kept == counted
    assert counted[("pending", True, "")] == 4
    with Session(fresh.sales) as session:
        kept, counted = tally_of(session, LeadTally, Lead, "source", "status", "reason_code")
    assert kept == counted
    assert counted[(LEAD_SOURCE_COMMERCE_B2B, "disqualified", "")] == 2


def test_seeded_stores_count_the_same_from_tallies_and_from_their_rows(fresh: Stores) -> None:
    made = seed(fresh, 600, now=NOW)
    assert made["prospect"] == 600
    assert made["lead"] == sum(1 for number in range(1, 601) if number % COMMERCE_ONLY_EVERY)
    for queue, engine in (
        (q.LEADS, fresh.sales),
        (q.OPPORTUNITIES, fresh.sales),
        (q.PROSPECTS, fresh.commerce),
    ):
        tallied = q.counts(engine, queue, q.View(), NOW)
        # Searching for what every row holds counts by scanning the rows themselves.
        scanned = q.counts(engine, queue, q.View(q=REFERENCE_PREFIX), NOW)
        assert tallied == scanned, queue.name
        assert tallied.total == {"leads": made["lead"], "opportunities": made["opportunity"]}.get(
            queue.name, made["prospect"]
        )


def test_open_leads_are_the_ones_entered_by_hand(fresh: Stores) -> None:
    add(
        fresh.sales,
        a_lead(1),
        a_lead(2, source=LEAD_SOURCE_MANUAL),
        a_lead(3, source=LEAD_SOURCE_MANUAL, status="qualified"),
    )
    assert ids(q.page(fresh.sales, q.OPEN_LEADS, q.View(), NOW)) == [2]
    assert ids(q.page(fresh.sales, q.LEADS, q.View(), NOW)) == [1]
    assert q.counts(fresh.sales, q.OPEN_LEADS, q.View(), NOW).total == 1


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"mode": "both"},
        {"age": "ancient"},
        {"sort": "random"},
        {"after": "not-a-cursor"},
        {"after": "W10"},
        {"after": q.encode_cursor(q.Sort.COMPANY, "alpha", 3)},
        {"after": "x", "before": "y"},
    ],
)
def test_an_address_that_names_no_view_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(q.BadView):
        q.parse_view(q.PROSPECTS, params)


def test_a_cursor_names_the_row_a_page_starts_after() -> None:
    cursor = q.encode_cursor(q.Sort.NEWEST, NOW, 42)
    view = q.parse_view(q.PROSPECTS, {"after": cursor, "status": "pending", "q": "x"})
    assert view.filters == {"status": "pending"} and view.q == "x"
    assert q.decode_cursor(cursor, q.Sort.NEWEST) == (NOW, 42)


def test_an_anonymised_request_is_no_longer_found_by_its_persons_words(fresh: Stores) -> None:
    add(
        fresh.commerce,
        a_prospect(
            1, first_name="Zoë", last_name="Łaski", email="zoe@laski.example", status="rejected"
        ),
    )
    add(fresh.sales, a_lead(1, first_name="Zoë", last_name="Łaski", email="zoe@laski.example"))
    anonymise_request(
        fresh,
        AnonymiseRequestInput(
            onboarding_id=f"{1:016x}",
            at=NOW,
            actor="anna",
            reason="The requester asked.",
            kind=AnonymisationKind.ERASURE,
        ),
    )
    searched: list[tuple[Any, q.Queue[Any]]] = [
        (fresh.commerce, q.PROSPECTS),
        (fresh.sales, q.LEADS),
    ]
    for engine, queue in searched:
        for words in ("zoe", "laski", "zoe@laski.example"):
            assert ids(q.page(engine, queue, q.View(q=words), NOW)) == [], (queue.name, words)
        # Still found by what stays: its company and reference.
        assert len(q.page(engine, queue, q.View(q="company 1"), NOW).rows) == 1
        assert len(q.page(engine, queue, q.View(q=f"{1:016x}"), NOW).rows) == 1
    with Session(fresh.commerce) as session:
        (prospect,) = session.execute(select(Prospect)).scalars().all()
        assert "laski" not in prospect.search_text and "zoe" not in prospect.search_text


@pytest.mark.parametrize("typed", ["\x00abc", "a\x00b", "\x00", "abc\x1fdef", "\u200babc"])
def test_control_characters_in_a_search_find_what_the_words_find(fresh: Stores, typed: str) -> None:
    add(fresh.commerce, a_prospect(1, company_name="abc def"), a_prospect(2))
    add(fresh.sales, a_lead(1, company_name="abc def"), a_lead(2))
    words = query_words(typed)
    assert all(word.isprintable() for word in words), words
    queues: list[tuple[Any, q.Queue[Any]]] = [
        (fresh.commerce, q.PROSPECTS),
        (fresh.sales, q.LEADS),
        (fresh.sales, q.OPEN_LEADS),
        (fresh.sales, q.OPPORTUNITIES),
    ]
    for engine, queue in queues:
        found = q.page(engine, queue, q.View(q=typed), NOW).rows
        expected = q.page(engine, queue, q.View(q=" ".join(words)), NOW).rows
        assert [str(row) for row in found] == [str(row) for row in expected], typed
