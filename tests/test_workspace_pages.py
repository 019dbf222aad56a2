"""The reps' and admins' workspace through its pages, on stores seeded with a few hundred
requests: the queues' search, filters, counts, sorts and pages, the overviews, the
account and contact pages, All prospects as CSV, and any address thrown at them."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select
from temporalio.client import Client

from bench.seed import seed
from models.commerce import Prospect
from models.sales import Lead, Opportunity
from settings import Settings
from stores import Stores
from stores.engine import make_engine
from stores.queues import PAGE_SIZE, Sort, encode_cursor
from tests.conftest import ADMIN, REP, browse, web_settings_for
from tests.test_pages import sign_in
from web.app import create_app

REQUESTS = 260
ROW = re.compile(r'<a href="/commerce/prospects/(\d+)">')
LEAD_ROW = re.compile(r'<a href="/sales/leads/(\d+)">')
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREVIOUS = re.compile(r'<a rel="prev" href="([^"]+)"')
CALLS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# What a requester may type that a spreadsheet would run: each field of the export.
HOSTILE: dict[str, Any] = {
    "company_name": '=HYPERLINK("http://evil.example","Click")',
    "first_name": "+SUM(1,2)",
    "last_name": "-2+3",
    "website": "@SUM(A1:A9)",
    "comments": "\t=cmd|' /C calc'!A0",
    "job_title": "\r=1+1",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """Both stores of this module's own, with a few hundred requests at every stage."""
    folder = tmp_path_factory.mktemp("seeded")
    stores = Stores(
        sales=make_engine(f"sqlite:///{folder / 'sales.db'}"),
        commerce=make_engine(f"sqlite:///{folder / 'commerce.db'}"),
    )
    stores.migrate()
    seed(stores, REQUESTS)
    with Session(stores.commerce) as session:
        session.add(
            Prospect(
                onboarding_id="0badc0de0badc0de",
                email="hostile@contoso.example",
                created_at=datetime.now(UTC) - timedelta(minutes=5),
                **HOSTILE,
            )
        )
        session.commit()
    yield stores
    stores.dispose()


@pytest.fixture
async def workspace(
    base_settings: Settings, client: Client, seeded: Stores
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app over the seeded stores (no worker: these pages only read)."""
    async with browse(create_app(web_settings_for(base_settings), client, seeded)) as http:
        yield http


def rows_of(model: Any, stores: Stores, **where: Any) -> list[Any]:
    engine = stores.commerce if model is Prospect else stores.sales
    with Session(engine) as session:
        query = select(model).where(*(getattr(model, k) == v for k, v in where.items()))
        return list(session.exec(query))


def total_shown(page: str) -> int:
    found = re.search(r'id="summary">\s*([\d,]+) ', page)
    assert found, page
    return int(found[1].replace(",", ""))


def option_count(page: str, select: str, value: str) -> int:
    chosen = re.search(rf'<select id="{select}".*?</select>', page, re.S)
    assert chosen
    found = re.search(rf'<option value="{value}"[^>]*>[^<]*\(([\d,]+)\)</option>', chosen[0])
    assert found, chosen[0]
    return int(found[1].replace(",", ""))


async def test_all_prospects_pages_through_a_filtered_view_and_back(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, ADMIN)
    pending = {p.id for p in rows_of(Prospect, seeded, status="pending")}
    assert len(pending) > 2 * PAGE_SIZE
    address = "/commerce/prospects?status=pending&sort=oldest"
    seen: list[int] = []
    pages: list[str] = []
    while True:
        page = await workspace.get(address)
        assert page.status_code == 200
        pages.append(address)
        assert total_shown(page.text) == len(pending)
        seen += [int(row) for row in ROW.findall(page.text)]
        following = NEXT.search(page.text)
        if following is None:
            break
        address = unescape(following[1])
        # The view stays in the address, page after page.
        assert dict(parse_qsl(urlsplit(address).query)).items() >= {
            ("status", "pending"),
            ("sort", "oldest"),
        }
    assert len(seen) == len(set(seen)) == len(pending)
    assert set(seen) == pending
    with Session(seeded.commerce) as session:
        oldest_first = session.exec(
            select(Prospect.id)
            .where(Prospect.status == "pending")
            .order_by(col(Prospect.created_at), col(Prospect.id))
        ).all()
    assert seen == list(oldest_first)

    # Back from the last page, one page at a time, to the first.
    back: list[int] = []
    page = await workspace.get(pages[-1])
    back = [int(row) for row in ROW.findall(page.text)]
    while (earlier := PREVIOUS.search(page.text)) is not None:
        page = await workspace.get(unescape(earlier[1]))
        back = [int(row) for row in ROW.findall(page.text)] + back
    assert back == seen


async def test_filters_show_their_counts_and_a_bookmarked_view_shows_the_same(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, ADMIN)
    page = (await workspace.get("/commerce/prospects")).text
    statuses = {s: len(rows_of(Prospect, seeded, status=s)) for s in ("pending", "rejected")}
    assert option_count(page, "status", "pending") == statuses["pending"]
    assert option_count(page, "status", "rejected") == statuses["rejected"]
    commerce_only = len(rows_of(Prospect, seeded, sales_integration_enabled=False))
    assert option_count(page, "mode", "commerce") == commerce_only
    # The people's words: no identifier from the lifecycle or the tables.
    for word in ("opportunity_open", "awaiting_approval", "sales_integration", ">it<", ">en<"):
        assert word not in page

    view = "/commerce/prospects?q=rossi&status=rejected&mode=sales&sort=company"
    first, again = (await workspace.get(view)).text, (await workspace.get(view)).text
    assert ROW.findall(first) == ROW.findall(again) and ROW.findall(first)
    names = [unescape(n) for n in re.findall(r'/commerce/prospects/\d+">([^<]+)</a>', first)]
    keys = [p.company_key for p in (rows_of(Prospect, seeded, company_name=n)[0] for n in names)]
    assert keys == sorted(keys)
    for row in ROW.findall(first):
        (prospect,) = rows_of(Prospect, seeded, id=int(row))
        assert prospect.status == "rejected" and prospect.sales_integration_enabled
        assert "rossi" in prospect.search_text
    assert option_count(first, "status", "rejected") == total_shown(first)


async def test_the_lead_views_search_whatever_the_case_and_accents(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, REP)
    leads = rows_of(Lead, seeded)
    accented = next(lead for lead in leads if "è" in lead.company_name or "ü" in lead.company_name)
    word = accented.company_name.split()[0]
    plain = word.upper().replace("È", "E").replace("Ü", "U")
    page = (await workspace.get("/sales/leads", params={"q": plain})).text
    found = {int(row) for row in LEAD_ROW.findall(page)}
    assert accented.id in found or total_shown(page) > PAGE_SIZE
    expected = {lead.id for lead in leads if word.lower() in lead.company_name.lower()}
    assert total_shown(page) == len(expected)
    assert found <= expected
    by_reference = (await workspace.get("/sales/leads", params={"q": accented.onboarding_id})).text
    assert [int(row) for row in LEAD_ROW.findall(by_reference)] == [accented.id]

    # The ordinary view leaves the dual-write leads out, and says where they are.
    ordinary = (await workspace.get("/sales/leads?view=open")).text
    assert "No leads match" in ordinary
    open_b2b = len(rows_of(Lead, seeded, status="open"))
    assert f"{open_b2b:,} of them are open in All Commerce B2B leads" in ordinary


async def test_opportunities_link_their_lead_account_and_contact(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, REP)
    page = (await workspace.get("/sales/opportunities?status=open")).text
    assert total_shown(page) == len(rows_of(Opportunity, seeded, status="open"))
    first = re.search(r'<a href="(/sales/opportunities/\d+)">', page)
    assert first
    shown = (await workspace.get(first[1])).text
    for path in ("/sales/accounts/", "/sales/contacts/", "/sales/leads/"):
        link = re.search(rf'href="({path}\d+)"', shown)
        assert link, path
        assert (await workspace.get(link[1])).status_code == 200
    assert "Account 1" not in shown and "Contact record" not in shown


async def test_each_role_has_an_overview_of_what_waits_and_the_oldest(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, REP)
    page = (await workspace.get("/sales")).text
    open_leads = rows_of(Lead, seeded, status="open")
    assert f'<a href="/sales/leads?status=open">{len(open_leads):,}</a>' in page
    oldest = min(open_leads, key=lambda lead: (lead.created_at, lead.id))
    assert f'Waiting longest: <a href="/sales/leads/{oldest.id}">' in page

    await sign_in(workspace, ADMIN)
    page = (await workspace.get("/commerce")).text
    awaiting = [
        p for p in rows_of(Prospect, seeded, status="pending", sales_integration_enabled=False)
    ]
    assert f'>{len(awaiting):,}</a> <span class="muted">waiting · approve or reject them' in page
    oldest_prospect = min(awaiting, key=lambda p: (p.created_at, p.id))
    assert f'<a href="/commerce/prospects/{oldest_prospect.id}">' in page
    for words in ("Lead open", "Opportunity open", "Awaiting approval", "Approved", "Rejected"):
        assert words in page


async def test_the_csv_holds_every_row_of_the_view_with_no_formula_in_it(
    workspace: httpx.AsyncClient, seeded: Stores
) -> None:
    await sign_in(workspace, ADMIN)
    async with workspace.stream("GET", "/commerce/prospects.csv?status=pending") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in response.headers["content-disposition"]
        body = (await response.aread()).decode("utf-8")
    assert body.startswith("\ufeffReference,Submitted (UTC),Company")
    rows = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))
    pending = rows_of(Prospect, seeded, status="pending")
    assert len(rows) == len(pending) > PAGE_SIZE
    assert {row["Reference"] for row in rows} == {p.onboarding_id for p in pending}
    assert {row["Status"] for row in rows} == {"Pending"}
    assert {row["Language"] for row in rows} <= {"English", "Italian"}

    hostile = (await workspace.get("/commerce/prospects.csv?q=0badc0de0badc0de")).text
    (row,) = list(csv.DictReader(io.StringIO(hostile.removeprefix("\ufeff"))))
    for column, typed in (
        ("Company", HOSTILE["company_name"]),
        ("First name", HOSTILE["first_name"]),
        ("Last name", HOSTILE["last_name"]),
        ("Website", HOSTILE["website"]),
        ("Comments", HOSTILE["comments"]),
        ("Job title", HOSTILE["job_title"]),
    ):
        assert row[column] == "'" + typed, column
    for cell in row.values():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


async def test_an_address_that_names_no_view_is_no_such_page(workspace: httpx.AsyncClient) -> None:
    await sign_in(workspace, ADMIN)
    for address in (
        "/commerce/prospects?status=lost",
        "/commerce/prospects?after=garbage",
        "/commerce/prospects?sort=company&after=" + "W1wibmV3ZXN0IiwieCIsMV0",
        "/commerce/prospects.csv?mode=both",
    ):
        response = await workspace.get(address)
        assert response.status_code == 404, address
        assert "There is no such view" in response.text
        assert "Traceback" not in response.text


def queue_params() -> st.SearchStrategy[dict[str, str]]:
    """The queues' parameters, each a known value, a near miss or anything at all."""
    text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
    cursor = st.one_of(
        text,
        st.builds(
            encode_cursor,
            st.sampled_from(list(Sort)),
            st.one_of(st.datetimes(timezones=st.just(UTC)), text),
            st.integers(min_value=-5, max_value=2**63),
        ),
    )
    values = {
        "q": st.one_of(text, st.sampled_from(["rossi", "%", "_", "*", "[", "é"])),
        "status": st.one_of(text, st.sampled_from(["pending", "open", "won", "lost", ""])),
        "mode": st.one_of(text, st.sampled_from(["sales", "commerce", ""])),
        "age": st.one_of(text, st.sampled_from(["day", "week", "month", "older"])),
        "reason": st.one_of(text, st.sampled_from(["duplicate", "expired", "other"])),
        "sort": st.one_of(text, st.sampled_from(["newest", "oldest", "company", "company_desc"])),
        "after": cursor,
        "before": cursor,
        "view": st.one_of(text, st.sampled_from(["open", "commerce-b2b"])),
        "select": st.one_of(text, st.just("all")),
    }
    return st.fixed_dictionaries({}, optional=values)


@CALLS
@given(path=st.sampled_from(["/sales/leads", "/sales/opportunities"]), params=queue_params())
async def test_any_address_of_a_sales_queue_is_a_page_or_no_such_page(
    workspace: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    await sign_in(workspace, REP)
    response = await workspace.get(path, params=params)
    assert response.status_code in (200, 404), response.text
    assert "Traceback" not in response.text


@CALLS
@given(
    path=st.sampled_from(["/commerce/prospects", "/commerce/prospects.csv"]), params=queue_params()
)
async def test_any_address_of_all_prospects_is_a_page_or_no_such_page(
    workspace: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    await sign_in(workspace, ADMIN)
    response = await workspace.get(path, params=params)
    assert response.status_code in (200, 404), response.text
    if response.status_code == 200 and path.endswith(".csv"):
        assert response.text.startswith("\ufeffReference")


async def test_a_nul_in_a_search_finds_what_the_words_find_on_every_queue_and_the_csv(
    workspace: httpx.AsyncClient,
) -> None:
    await sign_in(workspace, REP)
    for queue in ("/sales/leads", "/sales/leads?view=open", "/sales/opportunities"):
        typed = await workspace.get(f"{queue}{'&' if '?' in queue else '?'}q=%00rossi")
        assert typed.status_code == 200, queue
    await sign_in(workspace, ADMIN)
    typed = await workspace.get("/commerce/prospects?q=%00hostile%E2%80%8B")
    assert typed.status_code == 200
    assert total_shown(typed.text) == 1
    async with workspace.stream("GET", "/commerce/prospects.csv?q=%00hostile") as response:
        assert response.status_code == 200
        body = (await response.aread()).decode("utf-8")
    (row,) = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))
    assert row["Reference"] == "0badc0de0badc0de"
