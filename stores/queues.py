"""The queues reps and admins work from: leads, opportunities and All prospects, at any size.

A view is what the page's address says (`View`): the search words, one option per
filter, the sort, and where the page starts. Paging is by keyset: the next page starts
after the last row's sort key and id, so a page costs the same at row 50 and at row
50,000 (no OFFSET scan), and a row added meanwhile never shifts a page.

The counts per filter are facet counts: how many rows each option would show with the
other filters as they are. Without search words they come from the tallies the
database keeps (`models.tallies`: rows per status, mode and reason code) and, for the
age filter, from the last 30 days' rows in an index that holds all they group by: a
few thousand index entries, whatever the table's size. With search words, from one
grouped scan of the rows found.

Search looks for each word in the row's folded words (`models.search`): every word in
some field. A word of three letters or more is found through the trigram index
(`WordIndex`); a shorter one by reading the rows, which a search then scans once rather
than walk an index to every row and fetch each alone (`_unindexed`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    case,
    column,
    func,
    literal_column,
    select,
    table,
    true,
    tuple_,
)
from sqlalchemy.orm import Mapped
from sqlmodel import Session, SQLModel, col

from models.commerce import Prospect, ProspectTally
from models.lifecycle import STATUS_WORDS, ReasonCode
from models.sales import (
    LEAD_SOURCE_COMMERCE_B2B,
    Lead,
    LeadTally,
    Opportunity,
    OpportunityTally,
)
from models.search import LEAD_WORDS, PROSPECT_WORDS, TRIGRAM, WordIndex, query_words

R = TypeVar("R")
# How a query reads a column: as it is, or `_unindexed`.
Wrap = Callable[[Any], Any]
# Rows on one page of a queue.
PAGE_SIZE = 50
# Rows read at a time for an export.
EXPORT_BATCH = 1000


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    COMPANY = "company"
    COMPANY_DESC = "company_desc"

    @property
    def words(self) -> str:
        return SORT_WORDS[self]

    @property
    def by_company(self) -> bool:
        return self in (Sort.COMPANY, Sort.COMPANY_DESC)

    @property
    def descending(self) -> bool:
        return self in (Sort.NEWEST, Sort.COMPANY_DESC)


SORT_WORDS = {
    Sort.NEWEST: "Newest first",
    Sort.OLDEST: "Oldest first",
    Sort.COMPANY: "Company, A to Z",
    Sort.COMPANY_DESC: "Company, Z to A",
}


class Age(StrEnum):
    """How long a row has waited since it was created, in the steps people think in."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    OLDER = "older"


# Each age, the time it lasts up to, and its words: younger than a day is DAY, and so on.
AGE_STEPS: tuple[tuple[Age, timedelta | None, str], ...] = (
    (Age.DAY, timedelta(days=1), "Under a day"),
    (Age.WEEK, timedelta(days=7), "1 to 7 days"),
    (Age.MONTH, timedelta(days=30), "7 to 30 days"),
    (Age.OLDER, None, "Over 30 days"),
)
# Rows younger than this are counted by age one by one; older ones are all OLDER.
RECENT = timedelta(days=30)
REASON_OPTIONS = tuple((code.value, code.label) for code in ReasonCode)
MODE_OPTIONS = (
    ("sales", "Sales (lead and opportunity)"),
    ("commerce", "Commerce (approval)"),
)


class BadView(ValueError):
    """A view's address that names no view: a broken cursor, an unknown option."""


@dataclass(frozen=True)
class View:
    """What the page's address asks for; `parse_view` checks it against the queue."""

    q: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    sort: Sort = Sort.NEWEST
    after: str | None = None
    before: str | None = None

    def restarted(self, after: str | None = None) -> View:
        """The same view from its first page (or after the row `after` names)."""
        return View(self.q, self.filters, self.sort, after=after)


@dataclass(frozen=True)
class Facet:
    """A filter: its URL parameter, its options in the page's words, and what it reads."""

    name: str
    label: str
    options: tuple[tuple[str, str], ...]
    # The rows one option keeps, its columns read through `Wrap` (see `_unindexed`).
    keeps: Callable[[str, datetime, Wrap], ColumnElement[bool]]
    # What a grouped scan groups by, and how a grouped value reads as an option.
    grouped: Callable[[datetime], Any]
    option_of: Callable[[Any], str | None]
    # The tally's column this facet is counted by; None for the age.
    tallied: str | None

    @property
    def values(self) -> frozenset[str]:
        return frozenset(value for value, _ in self.options)


def _column_facet(
    name: str,
    label: str,
    options: tuple[tuple[str, str], ...],
    column: Mapped[Any],
    tallied: str,
    option_of: Callable[[Any], str | None] = lambda value: value or None,
    value_of: Callable[[str], Any] = lambda option: option,
) -> Facet:
    return Facet(
        name=name,
        label=label,
        options=options,
        keeps=lambda option, _now, wrap: wrap(column) == value_of(option),
        grouped=lambda _now: column,
        option_of=option_of,
        tallied=tallied,
    )


def status_facet(table: str, column: Mapped[str]) -> Facet:
    options = tuple(
        (status, words) for (kind, status), words in STATUS_WORDS.items() if kind == table
    )
    return _column_facet("status", "Status", options, column, "status")


def reason_facet(column: Mapped[str | None]) -> Facet:
    return _column_facet("reason", "Reason code", REASON_OPTIONS, column, "reason_code")


def mode_facet(column: Mapped[bool]) -> Facet:
    return _column_facet(
        "mode",
        "Decided in",
        MODE_OPTIONS,
        column,
        "sales_integration_enabled",
        option_of=lambda value: "sales" if value else "commerce",
        value_of=lambda option: option == "sales",
    )


def age_facet(created: Mapped[datetime]) -> Facet:
    def grouped(now: datetime) -> Any:
        return case(
            *((created >= now - bound, age.value) for age, bound, _ in AGE_STEPS if bound),
            else_=Age.OLDER.value,
        )

    def keeps(option: str, now: datetime, wrap: Wrap) -> ColumnElement[bool]:
        younger: timedelta | None = None
        for age, bound, _ in AGE_STEPS:
            if age == option:
                conditions = [wrap(created) >= now - bound] if bound is not None else []
                if younger is not None:
                    conditions.append(wrap(created) < now - younger)
                return and_(true(), *conditions)
            younger = bound
        raise BadView(f"no age {option!r}")

    return Facet(
        name="age",
        label="Waiting",
        options=tuple((age.value, words) for age, _, words in AGE_STEPS),
        keeps=keeps,
        grouped=grouped,
        option_of=lambda value: value,
        tallied=None,
    )


def _first(row: Any) -> Any:
    return row[0]


def _itself(column: Any) -> Any:
    return column


@dataclass(frozen=True)
class Queue(Generic[R]):
    """One list: which rows, what they are found and sorted by, its filters and tally."""

    name: str
    title: str
    # The counted table, and the rows as the page shows them (it and what it is joined to).
    table: type[SQLModel]
    rows: Callable[[], Any]
    # The same rows for a grouped count: `select(...)` made to read from them.
    joined: Callable[[Any], Any]
    created: Mapped[datetime]
    company_key: Mapped[str]
    search_text: Mapped[str]
    id: Mapped[int | None]
    facets: tuple[Facet, ...]
    # The index of the words searched, and the id of the rows it names.
    words: WordIndex
    words_id: Mapped[int | None]
    tally: type[SQLModel]
    # Conditions every row of the queue meets (its columns read through `Wrap`), and the
    # same on its tally.
    base: Callable[[Wrap], tuple[ColumnElement[bool], ...]] = lambda _wrap: ()
    tally_base: tuple[ColumnElement[bool], ...] = ()
    # The rows whose words match every one of these conditions.
    found: Callable[[Sequence[ColumnElement[bool]]], ColumnElement[bool]] = lambda words: and_(
        *words
    )
    # The id that breaks ties between rows of one company, when it is not `id`.
    company_id: Mapped[int | None] | None = None
    # How a selected row comes out (an entity, or a tuple of them), and the records in it
    # that hold its creation time and id, and its company key and id.
    shape: Callable[[Any], R] = _first
    dated: Callable[[Any], Any] = _first
    named: Callable[[Any], Any] = _first

    def facet(self, name: str) -> Facet | None:
        return next((facet for facet in self.facets if facet.name == name), None)

    def sort_key(self, sort: Sort) -> tuple[Mapped[Any], Any]:
        """What the rows are ordered by in `sort`, and the id that breaks ties."""
        if sort.by_company:
            return self.company_key, self.company_id or self.id
        return self.created, self.id


LEADS: Queue[Lead] = Queue(
    name="leads",
    title="All Commerce B2B leads",
    table=Lead,
    rows=lambda: select(Lead),
    joined=lambda query: query.select_from(Lead),
    created=col(Lead.created_at),
    company_key=col(Lead.company_key),
    search_text=col(Lead.search_text),
    id=col(Lead.id),
    words=LEAD_WORDS,
    words_id=col(Lead.id),
    facets=(
        status_facet("lead", col(Lead.status)),
        age_facet(col(Lead.created_at)),
        reason_facet(col(Lead.reason_code)),
    ),
    tally=LeadTally,
    base=lambda wrap: (wrap(col(Lead.source)) == LEAD_SOURCE_COMMERCE_B2B,),
    tally_base=(col(LeadTally.source) == LEAD_SOURCE_COMMERCE_B2B,),
)
# The ordinary view: open leads entered by hand, which this product leaves to Sales.
OPEN_LEADS: Queue[Lead] = Queue(
    name="open-leads",
    title="Open leads",
    table=Lead,
    rows=LEADS.rows,
    joined=LEADS.joined,
    created=LEADS.created,
    company_key=LEADS.company_key,
    search_text=LEADS.search_text,
    id=LEADS.id,
    words=LEAD_WORDS,
    words_id=col(Lead.id),
    facets=(age_facet(col(Lead.created_at)),),
    tally=LeadTally,
    base=lambda wrap: (
        wrap(col(Lead.source)) != LEAD_SOURCE_COMMERCE_B2B,
        wrap(col(Lead.status)) == "open",
    ),
    tally_base=(col(LeadTally.source) != LEAD_SOURCE_COMMERCE_B2B, col(LeadTally.status) == "open"),
)
OPPORTUNITIES: Queue[tuple[Opportunity, Lead]] = Queue(
    name="opportunities",
    title="Opportunities",
    table=Opportunity,
    # An opportunity is found and sorted by its lead's words: the company and contact
    # it came from.
    rows=lambda: select(Opportunity, Lead).join(Lead, col(Lead.id) == col(Opportunity.lead_id)),
    joined=lambda query: query.select_from(Opportunity).join(
        Lead, col(Lead.id) == col(Opportunity.lead_id)
    ),
    created=col(Opportunity.created_at),
    company_key=col(Lead.company_key),
    search_text=col(Lead.search_text),
    id=col(Opportunity.id),
    words=LEAD_WORDS,
    words_id=col(Lead.id),
    # Found through the leads it came from: one scan of them, then each one's opportunity.
    found=lambda words: col(Opportunity.lead_id).in_(select(col(Lead.id)).where(*words)),
    # One lead, one opportunity: sorted by company, the lead's own index orders them.
    company_id=col(Lead.id),
    facets=(
        status_facet("opportunity", col(Opportunity.status)),
        age_facet(col(Opportunity.created_at)),
        reason_facet(col(Opportunity.reason_code)),
    ),
    tally=OpportunityTally,
    shape=lambda row: (row[0], row[1]),
    named=lambda row: row[1],
)
PROSPECTS: Queue[Prospect] = Queue(
    name="prospects",
    title="All prospects",
    table=Prospect,
    rows=lambda: select(Prospect),
    joined=lambda query: query.select_from(Prospect),
    created=col(Prospect.created_at),
    company_key=col(Prospect.company_key),
    search_text=col(Prospect.search_text),
    id=col(Prospect.id),
    words=PROSPECT_WORDS,
    words_id=col(Prospect.id),
    facets=(
        status_facet("prospect", col(Prospect.status)),
        mode_facet(col(Prospect.sales_integration_enabled)),
        age_facet(col(Prospect.created_at)),
        reason_facet(col(Prospect.reason_code)),
    ),
    tally=ProspectTally,
)


@dataclass(frozen=True)
class Option:
    value: str
    words: str
    count: int


@dataclass(frozen=True)
class Counts:
    """How many rows the view shows, and how many each filter option would show."""

    total: int
    facets: dict[str, list[Option]]


@dataclass(frozen=True)
class Page(Generic[R]):
    rows: list[R]
    # Cursors of the next and previous pages (`after=`, `before=`); None at either end.
    next: str | None
    previous: str | None
    counts: Counts


def parse_view(queue: Queue[Any], params: dict[str, str]) -> View:
    """The view a page's address names, checked against the queue.

    Raises BadView for an option the queue does not have, a cursor it did not make, or
    both `after` and `before`.
    """
    filters: dict[str, str] = {}
    for facet in queue.facets:
        chosen = params.get(facet.name, "")
        if chosen and chosen not in facet.values:
            raise BadView(f"{facet.label} has no option {chosen!r}")
        if chosen:
            filters[facet.name] = chosen
    try:
        sort = Sort(params.get("sort") or Sort.NEWEST)
    except ValueError:
        raise BadView("no such sort") from None
    after, before = params.get("after") or None, params.get("before") or None
    if after and before:
        raise BadView("a page starts after a row or before one, not both")
    for cursor in (after, before):
        if cursor is not None:
            decode_cursor(cursor, sort)
    return View(q=params.get("q", ""), filters=filters, sort=sort, after=after, before=before)


def page(
    engine: Engine, queue: Queue[R], view: View, now: datetime, size: int = PAGE_SIZE
) -> Page[R]:
    """One page of the queue's view, with the counts of its filters."""
    with Session(engine) as session:
        _one_snapshot(session)
        found, more = _rows(session, queue, view, now, size)
        counts = _counts(session, queue, view, now)
    previous = following = None
    if found:
        # Read backwards, `more` says rows come before the page; forwards, after it.
        backwards = view.before is not None
        if more if backwards else view.after:
            previous = _cursor(queue, view.sort, found[0])
        if backwards or more:
            following = _cursor(queue, view.sort, found[-1])
    return Page(
        rows=[queue.shape(row) for row in found],
        next=following,
        previous=previous,
        counts=counts,
    )


def counts(engine: Engine, queue: Queue[Any], view: View, now: datetime) -> Counts:
    with Session(engine) as session:
        _one_snapshot(session)
        return _counts(session, queue, view, now)


def export(engine: Engine, queue: Queue[R], view: View, now: datetime) -> Iterator[list[R]]:
    """Every row of the view from its start, a batch at a time, each batch its own short
    read: an export holds no transaction open while it is downloaded."""
    after: str | None = None
    while True:
        with Session(engine) as session:
            found, more = _rows(session, queue, view.restarted(after), now, EXPORT_BATCH)
        yield [queue.shape(row) for row in found]
        if not more:
            return
        after = _cursor(queue, view.sort, found[-1])


def _one_snapshot(session: Session) -> None:
    """One snapshot for the page and its counts (SQLite's transaction is one already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _rows(
    session: Session, queue: Queue[Any], view: View, now: datetime, size: int
) -> tuple[list[Any], bool]:
    """The page's rows in the order shown, and whether more follow in its direction."""
    searching = bool(query_words(view.q))
    key, row_id = queue.sort_key(view.sort)
    if searching:
        key, row_id = _unindexed(key), _unindexed(row_id)
    dialect = session.get_bind().dialect.name
    conditions = _conditions(queue, view, now, dialect, _unindexed if searching else _itself)
    backwards = view.before is not None
    if view.after or view.before:
        value, after_id = decode_cursor(view.after or view.before or "", view.sort)
        # After a row of a list in descending order (or before one in ascending order)
        # come the rows with smaller keys.
        smaller = view.sort.descending != backwards
        keyset = tuple_(key, row_id)
        conditions.append(keyset < (value, after_id) if smaller else keyset > (value, after_id))
    descending = view.sort.descending != backwards
    order = (key.desc(), row_id.desc()) if descending else (key.asc(), row_id.asc())
    query = queue.rows().where(*conditions).order_by(*order).limit(size + 1)
    found = list(session.execute(query).all())
    more = len(found) > size
    found = found[:size]
    if backwards:
        found.reverse()
    return found, more


def _conditions(
    queue: Queue[Any], view: View, now: datetime, dialect: str, wrap: Wrap = _itself
) -> list[ColumnElement[bool]]:
    conditions = [*queue.base(wrap), *_searched(queue, view.q, dialect)]
    for name, option in view.filters.items():
        facet = queue.facet(name)
        if facet is None:
            raise BadView(f"no filter {name!r}")
        conditions.append(facet.keeps(option, now, wrap))
    return conditions


def _searched(queue: Queue[Any], q: str, dialect: str) -> list[ColumnElement[bool]]:
    """Rows holding every word: through the word index for words of three letters or
    more (on SQLite its FTS5 table; on PostgreSQL, LIKE, which its trigram index serves),
    by reading the rows for shorter ones."""
    words = query_words(q)
    if not words:
        return []
    conditions: list[ColumnElement[bool]] = []
    if dialect == "sqlite":
        matching = queue.words.matching(words)
        if matching is not None:
            index = table(queue.words.name, column("rowid"))
            found = select(index.c.rowid).where(literal_column(index.name).op("MATCH")(matching))
            conditions.append(queue.words_id.in_(found))
        conditions += [
            _holds(queue.search_text, word, dialect) for word in words if len(word) < TRIGRAM
        ]
    else:
        conditions += [_holds(queue.search_text, word, dialect) for word in words]
    return [queue.found(conditions)]


def _holds(words: Mapped[str], word: str, dialect: str) -> ColumnElement[bool]:
    """`words` (folded text) hold `word` (folded): on SQLite, GLOB, which compares as it
    is, twice as quick as its LIKE, which folds ASCII case again; elsewhere LIKE."""
    if dialect == "sqlite":
        pattern = "".join(f"[{char}]" if char in "*?[" else char for char in word)
        return words.op("GLOB", is_comparison=True)(f"*{pattern}*")  # type: ignore[no-any-return]
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return words.like(f"%{escaped}%", escape="\\")


def _unindexed(column: Any) -> Any:
    """The column as neither database will look up in an index: a search scans the table
    once rather than walk an index to every row and fetch each alone."""
    return func.coalesce(column, column)


# --- counts ---------------------------------------------------------------------------------

# The options of each of a queue's facets, in the queue's order: one group of rows.
Group = tuple[str | None, ...]


def _counts(session: Session, queue: Queue[Any], view: View, now: datetime) -> Counts:
    """Each filter's counts: an option's count is the rows of its groups that the other
    filters keep."""
    if query_words(view.q):
        groups = _scanned(session, queue, view, now)
    else:
        groups = _tallied(session, queue, now)

    def kept(group: Group, but: str | None = None) -> bool:
        return all(
            group[index] == view.filters[facet.name]
            for index, facet in enumerate(queue.facets)
            if facet.name in view.filters and facet.name != but
        )

    facets: dict[str, list[Option]] = {}
    for index, facet in enumerate(queue.facets):
        tally: Counter[str | None] = Counter()
        for group, count in groups.items():
            if kept(group, but=facet.name):
                tally[group[index]] += count
        facets[facet.name] = [Option(value, words, tally[value]) for value, words in facet.options]
    total = sum(count for group, count in groups.items() if kept(group))
    return Counts(total=total, facets=facets)


def _scanned(session: Session, queue: Queue[Any], view: View, now: datetime) -> Counter[Group]:
    """The rows the search finds, counted by every facet at once in one scan."""
    grouped = [_group_key(facet, now) for facet in queue.facets]
    query = queue.joined(select(*grouped, func.count()))
    searched = _searched(queue, view.q, session.get_bind().dialect.name)
    query = query.where(*queue.base(_unindexed), *searched).group_by(*grouped)
    groups: Counter[Group] = Counter()
    for row in session.execute(query).all():
        options = tuple(
            facet.option_of(value) for facet, value in zip(queue.facets, row, strict=False)
        )
        groups[options] += row[-1]
    return groups


def _tallied(session: Session, queue: Queue[Any], now: datetime) -> Counter[Group]:
    """Every row counted from the tally, split by age from the recent rows alone.

    The tally has each group's rows of any age; the last 30 days' rows, read from an
    index that holds what they are grouped by, say how many of them are younger than a
    day, a week and 30 days: the rest are older.
    """
    tallied = [facet for facet in queue.facets if facet.tallied is not None]
    columns = [getattr(queue.tally, facet.tallied or "") for facet in tallied]
    totals = session.execute(
        select(*columns, queue.tally.row_count).where(*queue.tally_base)  # type: ignore[attr-defined]
    ).all()
    by_age = [
        func.sum(case((queue.created >= now - bound, 1), else_=0))
        for _, bound, _ in AGE_STEPS
        if bound is not None
    ]
    keys = [_group_key(facet, now) for facet in tallied]
    recent = session.execute(
        select(*keys, *by_age)
        .select_from(queue.table)
        .where(*queue.base(_itself), queue.created >= now - RECENT)
        .group_by(*keys)
    ).all()
    ages: dict[tuple[str | None, ...], list[int]] = {}
    for row in recent:
        key = tuple(facet.option_of(value) for facet, value in zip(tallied, row, strict=False))
        ages[key] = [int(count or 0) for count in row[len(tallied) :]]
    groups: Counter[Group] = Counter()
    for row in totals:
        key = tuple(facet.option_of(value) for facet, value in zip(tallied, row, strict=False))
        total = row[-1]
        younger = [0, *ages.get(key, [0] * len(by_age))]
        ranges = [younger[i + 1] - younger[i] for i in range(len(by_age))]
        ranges.append(total - younger[-1])
        for (age, _, _), count in zip(AGE_STEPS, ranges, strict=True):
            if count > 0:
                groups[_with_age(queue, key, age)] += count
    return groups


def _group_key(facet: Facet, now: datetime) -> Any:
    """What a facet is grouped by, read in no index's order: the scan or the range on the
    creation time is the read to make, not an index that yields the groups in order and
    fetches each row alone."""
    grouped = facet.grouped(now)
    return _unindexed(grouped) if facet.tallied is not None else grouped


def _with_age(queue: Queue[Any], key: tuple[str | None, ...], age: Age) -> Group:
    """A tally's group, with the age put in the age facet's place."""
    values = iter(key)
    return tuple(age.value if facet.tallied is None else next(values) for facet in queue.facets)


# --- cursors --------------------------------------------------------------------------------


def _cursor(queue: Queue[Any], sort: Sort, row: Any) -> str:
    """The cursor of the page that starts after (or before) `row`."""
    if sort.by_company:
        named = queue.named(row)
        return encode_cursor(sort, named.company_key, named.id)
    dated = queue.dated(row)
    return encode_cursor(sort, dated.created_at, dated.id)


def encode_cursor(sort: Sort, value: str | datetime, row_id: int) -> str:
    shown = _utc(value).isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort.value, shown, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[str | datetime, int]:
    """The sort key and id a cursor holds; BadView if it is not one of ours for `sort`."""
    broken = BadView("this page's link is broken: start again from the first page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise broken from None
    if (
        made_for != sort.value
        or not isinstance(value, str)
        or type(row_id) is not int
        or not 0 < row_id < 2**63
    ):
        raise broken
    if sort.by_company:
        return value, row_id
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise broken from None
    if when.tzinfo is None:
        raise broken
    return when.astimezone(UTC), row_id


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the stores write UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
