"""The process of DOMAIN.md end to end: real dev server, worker, SMTP server, and both stores
on each backend the product supports: SQLite files and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage as Mail
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from client.requests import decide, status, submit
from infra.links import site_secret, status_url
from models.commerce import (
    Customer,
    CustomerHierarchy,
    CustomerHierarchyMember,
    EmailMessage,
    Prospect,
)
from models.lifecycle import Action, Stage
from models.sales import DUAL_WRITE_NOTE, Account, Contact, Lead, Opportunity
from models.status import EmailKind, OnboardingStatus
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores, queues, views
from stores.queues import LEADS, OPEN_LEADS, PROSPECTS, Queue, View
from tests.conftest import MailSink, free_port
from tests.scenario import (
    ROWS_OF_A_WON_REQUEST,
    a_request,
    decided,
    finished,
    keep_history,
    row_counts,
    rows,
    submitted,
    text_of,
)
from worker import build_worker

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, stores: Stores) -> Stores:
    """Every scenario here runs on SQLite, then on PostgreSQL (the worker uses these too)."""
    if request.param == "sqlite":
        return stores
    postgres: Stores = request.getfixturevalue("postgres_stores")
    return postgres


T = TypeVar("T")


def only(items: list[T]) -> T:
    assert len(items) == 1, f"expected exactly one, found {len(items)}: {items}"
    return items[0]


def the_one_email(
    mail_sink: MailSink, stores: Stores, status: OnboardingStatus, kind: EmailKind
) -> Mail:
    """Exactly one message of `kind` for the request, matching its outbox row and its status."""
    message = only(mail_sink.messages(status.onboarding_id, kind))
    outbox = only(
        [
            row
            for row in rows(stores.commerce, EmailMessage, status.onboarding_id)
            if row.kind == kind
        ]
    )
    assert message["X-Onboarding-Event"] == kind.event
    assert message["X-Onboarding-Id"] == status.onboarding_id
    assert message["Message-ID"] == outbox.message_id
    assert message["To"].addresses[0].addr_spec == status.email
    assert message["Content-Language"] == status.locale
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert outbox.kind == kind.value and outbox.recipient == status.email
    assert outbox.sent_at is not None
    if kind is EmailKind.REQUEST_RECEIVED:
        note = status.received_notification
    else:
        note = status.notification
        assert status.records.email_message_id == outbox.id
    assert note is not None and (note.kind, note.state) == (kind, "sent")
    assert note.email_message_id == outbox.id
    return message


def the_emails(
    mail_sink: MailSink, stores: Stores, status: OnboardingStatus, decision: EmailKind
) -> tuple[Mail, Mail]:
    """A decided request's emails: one "we received your request", one of the decision."""
    events = sorted(
        message["X-Onboarding-Event"] for message in mail_sink.messages(status.onboarding_id)
    )
    assert events == sorted([EmailKind.REQUEST_RECEIVED.event, decision.event])
    return (
        the_one_email(mail_sink, stores, status, EmailKind.REQUEST_RECEIVED),
        the_one_email(mail_sink, stores, status, decision),
    )


async def test_won_lead_approves_the_prospect_with_a_hierarchy_and_one_italian_email(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    current = await submitted(client, settings, locale="it", email="Giulia.WON@Contoso.example")
    oid = current.onboarding_id
    assert current.stage is Stage.LEAD_OPEN
    assert current.workflow_id == f"onboarding-{oid}"

    prospect = only(rows(stores.commerce, Prospect, oid))
    assert prospect.status == "pending"
    assert prospect.email == "giulia.won@contoso.example"
    assert prospect.company_name == "Contoso Srl"

    lead = only(rows(stores.sales, Lead, oid))
    assert (lead.first_name, lead.last_name, lead.email) == ("Giulia", "Rossi", prospect.email)
    assert (lead.company_name, lead.website) == ("Contoso Srl", "https://contoso.example")
    assert lead.status == "open" and lead.commerce_prospect_id == prospect.id
    note = only(views.timeline(stores.sales, lead.id))
    assert note.kind == DUAL_WRITE_NOTE and "dual-write" in note.text

    current = await decided(client, oid, Action.QUALIFY, actor="rep:mario")
    assert current.stage is Stage.OPPORTUNITY_OPEN and current.workflow_status == "running"
    lead = only(rows(stores.sales, Lead, oid))
    assert (lead.status, lead.decided_by) == ("qualified", "rep:mario")
    account = only(rows(stores.sales, Account, oid))
    contact = only(rows(stores.sales, Contact, oid))
    opportunity = only(rows(stores.sales, Opportunity, oid))
    assert opportunity.status == "open"
    assert (opportunity.lead_id, opportunity.account_id, opportunity.contact_id) == (
        lead.id,
        account.id,
        contact.id,
    )
    assert contact.account_id == account.id and account.name == "Contoso Srl"
    customers = {c.customer_type: c for c in rows(stores.commerce, Customer, oid)}
    assert customers["person"].sales_contact_id == contact.id
    assert customers["organization"].sales_account_id == account.id
    assert customers["person"].email == prospect.email
    assert only(rows(stores.commerce, Prospect, oid)).status == "pending"
    received = only(await mail_sink.arrived(oid, EmailKind.REQUEST_RECEIVED))
    assert "Abbiamo ricevuto" in received["Subject"]
    assert status_url(settings.b2b_site_url, site_secret(settings), oid) in text_of(received)
    assert mail_sink.messages(oid, EmailKind.PROSPECT_APPROVED) == []

    current = await finished(client, await decide(client, oid, Action.WON, actor="rep:mario"))
    assert current.stage is Stage.APPROVED and current.prospect_status == "approved"
    assert only(rows(stores.sales, Opportunity, oid)).status == "won"
    prospect = only(rows(stores.commerce, Prospect, oid))
    assert (prospect.status, prospect.decided_by) == ("approved", "rep:mario")

    hierarchy = only(rows(stores.commerce, CustomerHierarchy, oid))
    assert hierarchy.root_customer_id == customers["organization"].id
    members = {m.role: m for m in rows(stores.commerce, CustomerHierarchyMember, oid)}
    assert members.keys() == {"organization", "b2b_admin"}
    assert members["b2b_admin"].customer_id == customers["person"].id
    assert members["b2b_admin"].parent_customer_id == customers["organization"].id

    _, message = the_emails(mail_sink, stores, current, EmailKind.PROSPECT_APPROVED)
    assert "Benvenuti" in message["Subject"]
    body = text_of(message)
    assert (
        "Gentile Giulia" in body
        and "http://b2b.test/signin" in body
        and "http://b2b.test/activate/" in body
    )

    records = current.records
    assert (records.prospect_id, records.lead_id, records.opportunity_id) == (
        prospect.id,
        lead.id,
        opportunity.id,
    )
    assert records.customer_hierarchy_id == hierarchy.id
    assert [d.action for d in current.decisions] == [Action.QUALIFY, Action.WON]
    assert row_counts(stores, oid) == ROWS_OF_A_WON_REQUEST
    assert (await status(client, oid)) == current
    await keep_history(client, current.workflow_id, "won")


async def test_the_views_reps_and_admins_work_from(
    client: Client, settings: Settings, stores: Stores
) -> None:
    status = await submitted(client, settings)
    with Session(stores.sales) as session:
        ordinary = Lead(
            topic="Walk-in",
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.com",
            company_name="Analytical Engines",
            created_at=datetime.now(UTC),
        )
        session.add(ordinary)
        session.commit()
        session.refresh(ordinary)

    def listed(engine: Engine, queue: Queue[Any], words: str, **filters: str) -> set[int | None]:
        found = queues.page(engine, queue, View(q=words, filters=filters), datetime.now(UTC))
        return {row.id for row in found.rows}

    # Each is found by what it was made with.
    reference, ada = status.onboarding_id, "analytical engines ada lovelace"
    assert status.records.lead_id in listed(stores.sales, LEADS, reference)
    assert status.records.lead_id not in listed(stores.sales, OPEN_LEADS, reference)
    assert ordinary.id in listed(stores.sales, OPEN_LEADS, ada)
    assert ordinary.id not in listed(stores.sales, LEADS, ada)

    pending = listed(stores.commerce, PROSPECTS, reference, status="pending")
    approved = listed(stores.commerce, PROSPECTS, reference, status="approved")
    assert status.records.prospect_id in pending and status.records.prospect_id not in approved
    assert status.records.prospect_id in listed(stores.commerce, PROSPECTS, reference)


async def test_cancelled_lead_rejects_the_prospect_with_one_email(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    status = await submitted(client, settings)
    oid = status.onboarding_id

    status = await decided(
        client, oid, Action.CANCEL, actor="rep:anna", reason="Not a business customer"
    )
    status = await finished(client, status)

    assert status.stage is Stage.REJECTED and status.prospect_status == "rejected"
    lead = only(rows(stores.sales, Lead, oid))
    assert (lead.status, lead.decision_reason) == ("disqualified", "Not a business customer")
    prospect = only(rows(stores.commerce, Prospect, oid))
    assert (prospect.status, prospect.decision_reason) == ("rejected", "Not a business customer")
    _, message = the_emails(mail_sink, stores, status, EmailKind.PROSPECT_REJECTED)
    assert "Not a business customer" in text_of(message)
    counts = row_counts(stores, oid)
    assert counts["opportunity"] == counts["contact"] == counts["account"] == 0
    assert counts["customer"] == counts["customer_hierarchy"] == 0
    await keep_history(client, status.workflow_id, "cancelled")


async def test_lost_opportunity_rejects_the_prospect_with_one_email(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    status = await submitted(client, settings)
    oid = status.onboarding_id
    await decide(client, oid, Action.QUALIFY, actor="rep:anna")

    status = await finished(
        client, await decide(client, oid, Action.LOST, actor="rep:anna", reason="Budget")
    )

    assert status.stage is Stage.REJECTED
    assert only(rows(stores.sales, Opportunity, oid)).status == "lost"
    assert only(rows(stores.commerce, Prospect, oid)).status == "rejected"
    assert rows(stores.commerce, CustomerHierarchy, oid) == []
    the_emails(mail_sink, stores, status, EmailKind.PROSPECT_REJECTED)
    await keep_history(client, status.workflow_id, "lost")


def kept_stage(stores: Stores, onboarding_id: str) -> str:
    """The stage the request's prospect keeps, as the pages and the stores' status read it."""
    return only(rows(stores.commerce, Prospect, onboarding_id)).stage


async def test_each_step_keeps_its_stage_on_the_prospect_as_the_workflow_tells_it(
    client: Client, settings: Settings, stores: Stores
) -> None:
    current = await submitted(client, settings)
    oid = current.onboarding_id
    assert kept_stage(stores, oid) == current.stage == Stage.LEAD_OPEN
    current = await decided(client, oid, Action.QUALIFY, actor="rep:mario")
    assert kept_stage(stores, oid) == current.stage == Stage.OPPORTUNITY_OPEN
    current = await finished(
        client, await decide(client, oid, Action.LOST, actor="rep:mario", reason="Not now")
    )
    assert kept_stage(stores, oid) == current.stage == Stage.REJECTED
    from_stores = views.request_status(stores, oid)
    assert from_stores is not None and from_stores.stage is Stage.REJECTED


@pytest.mark.usefixtures("worker_integration_off")
async def test_with_the_integration_off_the_prospect_keeps_awaiting_approval_then_approved(
    client: Client, settings_integration_off: Settings, stores: Stores
) -> None:
    current = await submitted(client, settings_integration_off)
    oid = current.onboarding_id
    assert kept_stage(stores, oid) == current.stage == Stage.AWAITING_APPROVAL
    current = await finished(client, await decide(client, oid, Action.APPROVE, actor="admin:luca"))
    assert kept_stage(stores, oid) == current.stage == Stage.APPROVED


@pytest.mark.usefixtures("worker_integration_off")
async def test_integration_off_admin_approves_in_commerce_without_any_lead(
    client: Client, settings_integration_off: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    status = await submitted(client, settings_integration_off)
    oid = status.onboarding_id
    assert status.stage is Stage.AWAITING_APPROVAL and not status.sales_integration_enabled

    status = await finished(client, await decide(client, oid, Action.APPROVE, actor="admin:luca"))

    assert status.stage is Stage.APPROVED
    counts = row_counts(stores, oid)
    assert (
        sum(counts[t] for t in ("lead", "timeline_note", "opportunity", "contact", "account")) == 0
    )
    customers = {c.customer_type: c for c in rows(stores.commerce, Customer, oid)}
    assert customers.keys() == {"person", "organization"}
    assert customers["person"].sales_contact_id is None
    hierarchy = only(rows(stores.commerce, CustomerHierarchy, oid))
    assert hierarchy.root_customer_id == customers["organization"].id
    assert only(rows(stores.commerce, Prospect, oid)).decided_by == "admin:luca"
    _, message = the_emails(mail_sink, stores, status, EmailKind.PROSPECT_APPROVED)
    assert message["Subject"].startswith("Welcome aboard")
    await keep_history(client, status.workflow_id, "integration_off_approved")


@pytest.mark.usefixtures("worker_integration_off")
async def test_integration_off_admin_rejects_in_commerce(
    client: Client, settings_integration_off: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    status = await submitted(client, settings_integration_off, locale="it")

    status = await decided(
        client, status.onboarding_id, Action.REJECT, actor="admin:luca", reason="Duplicato"
    )
    status = await finished(client, status)

    assert status.stage is Stage.REJECTED
    assert row_counts(stores, status.onboarding_id)["customer"] == 0
    _, message = the_emails(mail_sink, stores, status, EmailKind.PROSPECT_REJECTED)
    assert "Duplicato" in text_of(message, "html")
    await keep_history(client, status.workflow_id, "integration_off_rejected")


def test_the_spool_reader_sees_nothing_in_an_empty_folder(tmp_path) -> None:
    assert read_spool(tmp_path) == []


async def test_with_the_mail_server_down_the_rep_is_answered_and_one_email_goes_out_later(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    port = free_port()
    async with mail_to(port, client, settings, stores, activity_executor) as down:
        status = await submitted(client, down)
        oid = status.onboarding_id
        await decide(client, oid, Action.QUALIFY, actor="rep")

        status = await decided(client, oid, Action.WON, actor="rep")
        assert status.stage is Stage.APPROVED and status.pending_action is None
        assert status.notification is not None and status.notification.state == "sending"
        assert all(row.sent_at is None for row in rows(stores.commerce, EmailMessage, oid))
        # Decided, though its email is still on its way: the same email may apply again.
        again = await submit(client, a_request(email=status.email), down)
        assert not again.duplicate and again.onboarding_id != oid

        late = MailSink("127.0.0.1", port, tmp_path)
        controller = Controller(SpoolHandler(tmp_path), hostname=late.host, port=port)
        controller.start()
        try:
            status = await finished(client, status)
        finally:
            controller.stop()

    assert status.notification is not None and status.notification.state == "sent"
    the_emails(late, stores, status, EmailKind.PROSPECT_APPROVED)
    # Each email's first attempt (a local activity) failed: each went on as a regular one.
    assert await email_activities(client, status) == ["send_onboarding_email"] * 2


async def email_activities(client: Client, status: OnboardingStatus) -> list[str]:
    """The regular activities a request's workflow scheduled: its emails' handed-over sends."""
    history = await client.get_workflow_handle(status.workflow_id).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


@asynccontextmanager
async def mail_to(
    port: int,
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[Settings]:
    """A worker of its own whose mail goes to `port`; yields the settings to submit with."""
    settings = settings.model_copy(
        update={
            "smtp_port": port,
            "onboarding_task_queue": f"{settings.onboarding_task_queue}-mail-{port}",
        }
    )
    async with build_worker(client, settings, stores, activity_executor):
        yield settings


class RefusingHandler(SpoolHandler):
    """A mail server that knows no such recipient."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        return "550 5.1.1 No such user here"


async def test_a_refused_address_is_recorded_and_the_request_stays_decided(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    port = free_port()
    controller = Controller(RefusingHandler(tmp_path), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with mail_to(port, client, settings, stores, activity_executor) as refusing:
            status = await submitted(client, refusing)
            await decide(client, status.onboarding_id, Action.CANCEL, actor="rep")
            status = await finished(client, status)
    finally:
        controller.stop()

    assert status.stage is Stage.REJECTED and status.prospect_status == "rejected"
    for note in (status.received_notification, status.notification):
        assert note is not None and note.state == "failed"
        assert "refuses" in (note.error or "")
    assert read_spool(tmp_path) == []
    # Refused for good at the first attempt: not handed over to a regular activity.
    assert await email_activities(client, status) == []
