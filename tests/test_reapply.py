"""The re-apply policy at every edge: after a rejection the same email waits out
REAPPLY_COOLDOWN (an expired request does not), an approved email is told it is a
partner, and a refused submission creates nothing. The caller gets the duplicate's answer;
the address on record is told by email (issue 23, item 7)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.dates import format_datetime
from sqlalchemy import func
from sqlmodel import Session, select
from temporalio.client import Client

from models.commerce import EmailMessage, Prospect
from models.lifecycle import ReasonCode
from models.requests import ALREADY_OPEN
from models.sales import Lead
from models.status import EmailKind
from settings import Settings
from stores import Stores
from stores.engine import make_engine
from stores.reapply import AlreadyPartner, CoolingDown, check_may_apply
from tests.conftest import REP, MailSink, bearer, browse, web_settings_for
from tests.scenario import a_request, text_of
from tests.test_api import API, a_form, until_stage
from tests.test_pages import apply
from web.app import create_app

# Longer than any load can stall a test: the tests pass it by moving the rejection back
# in Commerce (`rejected_earlier`), never by waiting.
COOLDOWN = timedelta(hours=1)


@pytest.fixture
async def web_cooling(
    settings: Settings, client: Client, stores: Stores, worker: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app with a cool-down of an hour, over the test's worker."""
    app = create_app(
        web_settings_for(settings, reapply_cooldown=COOLDOWN), client=client, stores=stores
    )
    async with browse(app) as http:
        yield http


async def rejected(web: httpx.AsyncClient, mail_sink: MailSink, **overrides: Any) -> dict[str, Any]:
    """A request submitted and cancelled through the API, its emails out: its form."""
    form = a_form(**overrides)
    accepted = await web.post(API, json=form)
    assert accepted.status_code == 202, accepted.text
    onboarding_id = accepted.json()["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    cancel = await web.post(
        f"{API}/{onboarding_id}/cancel",
        headers=bearer(REP),
        json={"reason_code": "not_eligible", "reason": "Not a reseller"},
    )
    assert cancel.status_code == 200, cancel.text
    await until_stage(web, onboarding_id, "rejected")
    for kind in (EmailKind.REQUEST_RECEIVED, EmailKind.PROSPECT_REJECTED):
        await mail_sink.arrived(onboarding_id, kind)
    return form


def counts(stores: Stores, email: str) -> tuple[int, int, int]:
    """Prospects, leads and emails of one address, in both stores."""
    with Session(stores.commerce) as session:
        prospects = session.exec(select(func.count()).where(Prospect.email == email)).one()
        emails = session.exec(select(func.count()).where(EmailMessage.recipient == email)).one()
    with Session(stores.sales) as session:
        leads = session.exec(select(func.count()).where(Lead.email == email)).one()
    return prospects, leads, emails


async def workflows_since(client: Client, since: datetime) -> list[str]:
    return [
        execution.id
        async for execution in client.list_workflows(
            f"WorkflowType = 'OnboardingWorkflow' AND StartTime > '{since.isoformat()}'"
        )
    ]


async def test_inside_the_cool_down_the_answer_is_the_duplicate_s_and_the_date_is_emailed(
    web_cooling: httpx.AsyncClient, client: Client, stores: Stores, mail_sink: MailSink
) -> None:
    form = await rejected(web_cooling, mail_sink)
    email = form["email"]
    (first,) = _prospects(stores, email)
    assert first.decided_at is not None
    may_apply_from = first.decided_at.replace(tzinfo=UTC) + COOLDOWN
    (prospects, leads, _) = counts(stores, email)
    since = datetime.now(UTC)

    refused = await web_cooling.post(API, json={**form, "company": "Another try Srl"})

    # Whoever knows the email learns no more than of an open request (issue 23, item 7).
    assert refused.status_code == 202, refused.text
    assert refused.json() == {"duplicate": True, "detail": ALREADY_OPEN}
    assert counts(stores, email)[:2] == (prospects, leads)
    assert await workflows_since(client, since) == []
    # The address on record is told from when it may apply again.
    (told,) = await mail_sink.arrived(first.onboarding_id, EmailKind.APPLIED_AGAIN)
    assert told["To"].addresses[0].addr_spec == email
    said = " ".join(text_of(told).split())
    from_then = format_datetime(may_apply_from, "long", tzinfo=UTC, locale="en")
    assert " ".join(from_then.split()) in said

    # Once the cool-down has passed, the same email applies again.
    rejected_earlier(stores, email, COOLDOWN)
    accepted = await web_cooling.post(API, json=form)
    assert accepted.status_code == 202, accepted.text
    await until_stage(web_cooling, accepted.json()["onboarding_id"], "lead_open")


async def test_with_no_cool_down_a_rejected_email_applies_again_at_once(
    settings: Settings, client: Client, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    app = create_app(
        web_settings_for(settings, reapply_cooldown=timedelta(0)), client=client, stores=stores
    )
    async with browse(app) as web:
        form = await rejected(web, mail_sink)
        again = await web.post(API, json=form)
        assert again.status_code == 202, again.text
        assert again.json()["duplicate"] is False


async def test_an_approved_email_is_told_by_email_it_is_a_partner_and_where_to_sign_in(
    web: httpx.AsyncClient, stores: Stores, web_settings: Settings, mail_sink: MailSink
) -> None:
    form = a_form()
    onboarding_id = (await web.post(API, json=form)).json()["onboarding_id"]
    await until_stage(web, onboarding_id, "lead_open")
    await web.post(f"{API}/{onboarding_id}/qualify", headers=bearer(REP))
    await web.post(f"{API}/{onboarding_id}/won", headers=bearer(REP))
    await until_stage(web, onboarding_id, "approved")
    await mail_sink.arrived(onboarding_id, EmailKind.PROSPECT_APPROVED)
    (prospects, leads, _) = counts(stores, form["email"])

    refused = await web.post(API, json=form)

    assert refused.status_code == 202, refused.text
    assert refused.json() == {"duplicate": True, "detail": ALREADY_OPEN}
    assert counts(stores, form["email"])[:2] == (prospects, leads)
    page = await apply(web, {name: str(value) for name, value in form.items()})
    assert page.status_code == 303 and page.headers["location"] == "/apply/already-open"
    # Told once an hour, however often the email applies.
    (told,) = await mail_sink.arrived(onboarding_id, EmailKind.APPLIED_AGAIN)
    assert told["To"].addresses[0].addr_spec == form["email"]
    assert f"{web_settings.b2b_site_url}/signin" in text_of(told)
    assert "apply again from" not in text_of(told)


async def test_the_form_answers_as_for_a_duplicate_in_the_page_s_language(
    web_cooling: httpx.AsyncClient, stores: Stores, mail_sink: MailSink
) -> None:
    form = {name: str(value) for name, value in (await rejected(web_cooling, mail_sink)).items()}
    before = counts(stores, form["email"])[:2]

    web_cooling.cookies.set("lang", "it")
    italian = await apply(web_cooling, form)
    assert italian.status_code == 303 and italian.headers["location"] == "/apply/already-open"
    shown = await web_cooling.get("/apply/already-open")
    assert "Abbiamo già una richiesta da questo indirizzo email" in shown.text
    assert counts(stores, form["email"])[:2] == before


async def test_an_open_request_s_email_still_gets_the_duplicate_answer(
    web_cooling: httpx.AsyncClient,
) -> None:
    form = a_form()
    first = await web_cooling.post(API, json=form)
    await until_stage(web_cooling, first.json()["onboarding_id"], "lead_open")
    again = await web_cooling.post(API, json=form)
    assert again.status_code == 202
    assert again.json()["duplicate"] is True


async def test_the_same_key_sent_again_after_its_request_was_rejected_answers_as_before(
    web_cooling: httpx.AsyncClient,
) -> None:
    form, key = a_form(), {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
    first = await web_cooling.post(API, json=form, headers=key)
    onboarding_id = first.json()["onboarding_id"]
    await until_stage(web_cooling, onboarding_id, "lead_open")
    await web_cooling.post(f"{API}/{onboarding_id}/cancel", headers=bearer(REP), json={})
    await until_stage(web_cooling, onboarding_id, "rejected")

    retried = await web_cooling.post(API, json=form, headers=key)

    assert retried.status_code == 202, retried.text
    assert retried.json()["onboarding_id"] == onboarding_id


def rejected_earlier(stores: Stores, email: str, by: timedelta) -> None:
    """The email's decisions moved `by` into the past, as if that time had passed."""
    with Session(stores.commerce) as session:
        for prospect in session.exec(select(Prospect).where(Prospect.email == email)):
            assert prospect.decided_at is not None
            prospect.decided_at -= by
            session.add(prospect)
        session.commit()


def _prospects(stores: Stores, email: str) -> list[Prospect]:
    with Session(stores.commerce) as session:
        return list(session.exec(select(Prospect).where(Prospect.email == email)))


def a_prospect(stores: Stores, email: str, status: str, **fields: Any) -> Prospect:
    """A prospect row as the workflow leaves it, written straight into Commerce."""
    request = a_request(email=email)
    prospect = Prospect(
        onboarding_id=uuid.uuid4().hex[:16],
        status=status,
        company_name=request.company,
        first_name=request.first_name,
        last_name=request.last_name,
        email=email,
        created_at=datetime.now(UTC),
        undecided_email=email if status == "pending" else None,
        **fields,
    )
    with Session(stores.commerce) as session:
        session.add(prospect)
        session.commit()
        session.refresh(prospect)
    return prospect


def may_apply(stores: Stores, email: str, **kwargs: Any) -> None:
    check_may_apply(stores.commerce, email, timedelta(days=30), "http://b2b.test", **kwargs)


def test_the_policy_judges_the_email_s_newest_request(stores: Stores) -> None:
    now = datetime.now(UTC)
    fresh = f"fresh.{uuid.uuid4().hex[:8]}@contoso.example"
    may_apply(stores, fresh)

    rejected = f"rejected.{uuid.uuid4().hex[:8]}@contoso.example"
    last = a_prospect(stores, rejected, "rejected", decided_at=now - timedelta(days=29))
    with pytest.raises(CoolingDown) as refused:
        may_apply(stores, rejected)
    assert refused.value.may_apply_from == last.decided_at.replace(tzinfo=UTC) + timedelta(  # type: ignore[union-attr]
        days=30
    )
    # The same submission sent again (its id from its key) is not a new one.
    may_apply(stores, rejected, submission=last.onboarding_id)
    may_apply(stores, rejected, now=now + timedelta(days=1, seconds=1))

    expired = f"expired.{uuid.uuid4().hex[:8]}@contoso.example"
    a_prospect(stores, expired, "rejected", decided_at=now, reason_code=ReasonCode.EXPIRED.value)
    may_apply(stores, expired)

    approved = f"approved.{uuid.uuid4().hex[:8]}@contoso.example"
    a_prospect(stores, approved, "approved", decided_at=now - timedelta(days=400))
    with pytest.raises(AlreadyPartner) as partner:
        may_apply(stores, approved)
    assert partner.value.signin_url == "http://b2b.test/signin"

    # Undecided: the submission goes on, to be answered with that request.
    open_again = f"open.{uuid.uuid4().hex[:8]}@contoso.example"
    a_prospect(stores, open_again, "rejected", decided_at=now)
    a_prospect(stores, open_again, "pending")
    may_apply(stores, open_again)


@pytest.mark.parametrize(
    ("text", "read"),
    [("0", timedelta(0)), ("30", timedelta(seconds=30)), ("P30D", timedelta(days=30))],
)
def test_durations_are_read_from_the_environment_as_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, text: str, read: timedelta
) -> None:
    monkeypatch.setenv("REAPPLY_COOLDOWN", text)
    assert Settings(_env_file=None).reapply_cooldown == read  # type: ignore[call-arg]


def test_a_store_no_worker_has_set_up_yet_refuses_nobody(tmp_path: Path) -> None:
    fresh = make_engine(f"sqlite:///{tmp_path / 'commerce.db'}")
    try:
        check_may_apply(fresh, "new@contoso.example", timedelta(days=30), "http://b2b.test")
    finally:
        fresh.dispose()
