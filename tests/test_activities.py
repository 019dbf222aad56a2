"""Activities run at least once: running any of them twice leaves one row and sends one email."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.commerce import CommerceActivities
from activities.email import EmailActivities, EmailRenderer
from activities.sales import SalesActivities
from infra.links import site_secret
from models.activity_io import (
    ApproveProspectInput,
    CloseOpportunityInput,
    CreateLeadInput,
    CreateProspectInput,
    DisqualifyLeadInput,
    QualifyLeadInput,
    RejectProspectInput,
    SendEmailInput,
    WriteCustomersInput,
)
from models.commerce import EmailMessage
from models.requests import (
    ACTOR_MAX,
    ADDRESS_MAX,
    COMMENTS_MAX,
    COMPANY_MAX,
    EMAIL_MAX,
    NAME_MAX,
    PHONE_MAX,
    REASON_MAX,
    WEBSITE_MAX,
)
from models.status import EmailKind
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores
from tests.conftest import MailSink, eventually, free_port
from tests.scenario import ROWS_OF_A_WON_REQUEST, a_request, row_counts, rows

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def twice(activity, input):  # type: ignore[no-untyped-def]
    """Run a store activity twice, as a retry after a lost completion would."""
    env = ActivityEnvironment()
    first, second = env.run(activity, input), env.run(activity, input)
    assert first == second
    return first


async def send_twice(email: EmailActivities, input: SendEmailInput) -> int:
    env = ActivityEnvironment()
    first = await env.run(email.send_onboarding_email, input)
    assert await env.run(email.send_onboarding_email, input) == first
    return first


def email_activities(stores: Stores, settings: Settings) -> EmailActivities:
    renderer = EmailRenderer(settings.b2b_site_url, site_secret(settings))
    return EmailActivities(stores.commerce, settings, renderer)


async def test_the_won_path_run_twice_leaves_one_of_everything(
    any_stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    sales, commerce = (
        SalesActivities(any_stores.sales),
        CommerceActivities(any_stores.commerce, True),
    )
    oid, request = uuid.uuid4().hex[:16], a_request()

    prospect_id = twice(
        commerce.create_prospect, CreateProspectInput(onboarding_id=oid, request=request, at=NOW)
    ).prospect_id
    lead = twice(
        sales.create_lead,
        CreateLeadInput(onboarding_id=oid, request=request, prospect_id=prospect_id, at=NOW),
    )
    qualified = twice(sales.qualify_lead, QualifyLeadInput(onboarding_id=oid, actor="rep", at=NOW))
    twice(
        commerce.write_customers,
        WriteCustomersInput(
            onboarding_id=oid,
            request=request,
            at=NOW,
            sales_contact_id=qualified.contact_id,
            sales_account_id=qualified.account_id,
        ),
    )
    twice(
        sales.close_opportunity,
        CloseOpportunityInput(onboarding_id=oid, won=True, actor="rep", at=NOW),
    )
    twice(commerce.approve_prospect, ApproveProspectInput(onboarding_id=oid, actor="rep", at=NOW))
    for kind in (EmailKind.REQUEST_RECEIVED, EmailKind.PROSPECT_APPROVED):
        await send_twice(
            email_activities(any_stores, base_settings),
            SendEmailInput(onboarding_id=oid, kind=kind, request=request),
        )

    assert lead.lead_id and qualified.opportunity_id
    assert row_counts(any_stores, oid) == ROWS_OF_A_WON_REQUEST
    assert len(mail_sink.messages(oid)) == 2


async def test_the_rejected_path_run_twice_leaves_one_of_everything(
    any_stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    sales, commerce = (
        SalesActivities(any_stores.sales),
        CommerceActivities(any_stores.commerce, True),
    )
    oid, request = uuid.uuid4().hex[:16], a_request(locale="it")
    prospect_id = commerce.create_prospect(
        CreateProspectInput(onboarding_id=oid, request=request, at=NOW)
    ).prospect_id
    sales.create_lead(
        CreateLeadInput(onboarding_id=oid, request=request, prospect_id=prospect_id, at=NOW)
    )

    twice(
        sales.disqualify_lead,
        DisqualifyLeadInput(onboarding_id=oid, actor="rep", reason="no", at=NOW),
    )
    twice(
        commerce.reject_prospect,
        RejectProspectInput(onboarding_id=oid, actor="rep", reason="no", at=NOW),
    )
    for kind in (EmailKind.REQUEST_RECEIVED, EmailKind.PROSPECT_REJECTED):
        await send_twice(
            email_activities(any_stores, base_settings),
            SendEmailInput(onboarding_id=oid, kind=kind, request=request, reason="no"),
        )

    counts = row_counts(any_stores, oid)
    assert (
        counts["lead"],
        counts["timeline_note"],
        counts["prospect"],
        counts["email_message"],
    ) == (1, 2, 1, 2)
    assert len(mail_sink.messages(oid)) == 2


async def test_a_reminder_goes_out_once_in_its_hour_and_again_in_the_next(
    any_stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    email = email_activities(any_stores, base_settings)
    reminder = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16],
        kind=EmailKind.STATUS_LINK_REMINDER,
        request=a_request(),
        period="2026-11-29T14",
    )

    first = await send_twice(email, reminder)
    second = await send_twice(email, reminder.model_copy(update={"period": "2026-11-29T15"}))

    assert first != second
    outbox = rows(any_stores.commerce, EmailMessage, reminder.onboarding_id)
    assert sorted(row.period for row in outbox) == ["2026-11-29T14", "2026-11-29T15"]
    sent = mail_sink.messages(reminder.onboarding_id, EmailKind.STATUS_LINK_REMINDER)
    assert sorted(message["Message-ID"] for message in sent) == sorted(
        row.message_id for row in outbox
    )
    assert all("2026-11-29T1" in row.message_id for row in outbox)


def test_deciding_a_request_the_store_does_not_have_fails_without_retrying(stores: Stores) -> None:
    env, unknown = ActivityEnvironment(), uuid.uuid4().hex[:16]
    sales, commerce = SalesActivities(stores.sales), CommerceActivities(stores.commerce, True)

    with pytest.raises(ApplicationError) as no_lead:
        env.run(sales.qualify_lead, QualifyLeadInput(onboarding_id=unknown, actor="rep", at=NOW))
    with pytest.raises(ApplicationError) as no_prospect:
        env.run(
            commerce.approve_prospect,
            ApproveProspectInput(onboarding_id=unknown, actor="rep", at=NOW),
        )

    for failure in (no_lead.value, no_prospect.value):
        assert failure.non_retryable and failure.type == "MissingRecord"
        assert unknown in failure.message


def test_a_cancelled_lead_cannot_be_qualified_later(stores: Stores) -> None:
    sales, commerce = SalesActivities(stores.sales), CommerceActivities(stores.commerce, True)
    oid, request = uuid.uuid4().hex[:16], a_request()
    prospect_id = commerce.create_prospect(
        CreateProspectInput(onboarding_id=oid, request=request, at=NOW)
    ).prospect_id
    sales.create_lead(
        CreateLeadInput(onboarding_id=oid, request=request, prospect_id=prospect_id, at=NOW)
    )
    sales.disqualify_lead(DisqualifyLeadInput(onboarding_id=oid, actor="rep", at=NOW))

    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(
            sales.qualify_lead, QualifyLeadInput(onboarding_id=oid, actor="rep", at=NOW)
        )
    assert failure.value.non_retryable and failure.value.type == "ConflictingState"


async def test_mail_server_down_retries_and_the_email_goes_out_once_it_is_back(
    stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    oid = uuid.uuid4().hex[:16]
    input = SendEmailInput(onboarding_id=oid, kind=EmailKind.PROSPECT_APPROVED, request=a_request())
    down = base_settings.model_copy(update={"smtp_port": free_port(), "smtp_timeout_seconds": 2})

    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(email_activities(stores, down).send_onboarding_email, input)
    assert not isinstance(failure.value, ApplicationError), "a down server must be retried"
    assert mail_sink.messages(oid) == []

    await send_twice(email_activities(stores, base_settings), input)
    assert len(mail_sink.messages(oid)) == 1
    assert row_counts(stores, oid)["email_message"] == 1


async def test_a_store_blip_after_sending_does_not_send_a_second_copy(
    stores: Stores, base_settings: Settings, mail_sink: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = email_activities(stores, base_settings)
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_REJECTED, request=a_request()
    )
    real_mark_sent, failures = email._mark_sent, iter([OperationalError("UPDATE", {}, Exception())])

    def mark_sent_after_a_blip(row_id: int) -> None:
        if (failure := next(failures, None)) is not None:
            raise failure
        real_mark_sent(row_id)

    monkeypatch.setattr(email, "_mark_sent", mark_sent_after_a_blip)
    monkeypatch.setattr("activities.email.MARK_SENT_BACKOFF", (0.01,))

    await send_twice(email, input)

    assert len(mail_sink.messages(input.onboarding_id)) == 1
    (row,) = rows(stores.commerce, EmailMessage, input.onboarding_id)
    assert row.sent_at is not None


async def test_a_retry_after_the_server_took_the_message_only_records_it(
    stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_APPROVED, request=a_request()
    )
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=["sent"])

    await retry.run(email_activities(stores, base_settings).send_onboarding_email, input)

    assert mail_sink.messages(input.onboarding_id) == []
    (row,) = rows(stores.commerce, EmailMessage, input.onboarding_id)
    assert row.sent_at is not None


class SlowHandler(SpoolHandler):
    """A mail server that takes its time: it accepts each message once `ready()` holds."""

    def __init__(self, directory: Path, ready: Callable[[], bool]) -> None:
        super().__init__(directory)
        self.ready = ready

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await eventually(self.ready)
        return await super().handle_DATA(server, session, envelope)


async def test_a_slow_send_heartbeats_so_a_dead_worker_would_be_noticed_soon(
    stores: Stores, base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("activities.email.KEEP_ALIVE_EVERY", 0.05)
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)
    # The server answers only after five heartbeats: as slow as that takes, however busy
    # the machine.
    slow = Controller(
        SlowHandler(tmp_path, lambda: len(beats) >= 5), hostname="127.0.0.1", port=free_port()
    )
    slow.start()
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_APPROVED, request=a_request()
    )
    try:
        settings = base_settings.model_copy(update={"smtp_port": slow.port})
        await env.run(email_activities(stores, settings).send_onboarding_email, input)
    finally:
        slow.stop()

    assert len(read_spool(tmp_path)) == 1
    # Alive all along, and never claiming "sent" before the server said so.
    assert len(beats) >= 5
    assert set(beats) <= {(), ("sent",)}


async def test_a_quick_send_does_not_heartbeat(
    stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_APPROVED, request=a_request()
    )
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)

    await env.run(email_activities(stores, base_settings).send_onboarding_email, input)

    assert len(mail_sink.messages(input.onboarding_id)) == 1
    assert beats == []


async def test_a_request_with_every_field_at_its_longest_fits_both_stores(
    any_stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    longest = a_request(
        company="C" * COMPANY_MAX,
        first_name="F" * NAME_MAX,
        last_name="L" * NAME_MAX,
        email=f"{'e' * 64}@{'d' * 63}.{'x' * 63}.example"[:EMAIL_MAX],
        job_title="J" * NAME_MAX,
        phone="+" + "1" * (PHONE_MAX - 1),
        company_phone="+" + "2" * (PHONE_MAX - 1),
        website="https://" + "w" * (WEBSITE_MAX - len("https://.example")) + ".example",
        company_address="A" * ADDRESS_MAX,
        comments="c" * COMMENTS_MAX,
    )
    sales = SalesActivities(any_stores.sales)
    commerce = CommerceActivities(any_stores.commerce, True)
    oid, reason, actor = uuid.uuid4().hex[:16], "r" * REASON_MAX, "a" * ACTOR_MAX

    prospect = commerce.create_prospect(
        CreateProspectInput(onboarding_id=oid, request=longest, at=NOW)
    )
    sales.create_lead(
        CreateLeadInput(
            onboarding_id=oid, request=longest, prospect_id=prospect.prospect_id, at=NOW
        )
    )
    qualified = sales.qualify_lead(QualifyLeadInput(onboarding_id=oid, actor=actor, at=NOW))
    commerce.write_customers(
        WriteCustomersInput(
            onboarding_id=oid, request=longest, at=NOW,
            sales_contact_id=qualified.contact_id, sales_account_id=qualified.account_id,
        )
    )  # fmt: skip
    sales.close_opportunity(
        CloseOpportunityInput(onboarding_id=oid, won=False, actor=actor, reason=reason, at=NOW)
    )
    commerce.reject_prospect(
        RejectProspectInput(onboarding_id=oid, actor=actor, reason=reason, at=NOW)
    )
    await ActivityEnvironment().run(
        email_activities(any_stores, base_settings).send_onboarding_email,
        SendEmailInput(
            onboarding_id=oid, kind=EmailKind.PROSPECT_REJECTED, request=longest, reason=reason
        ),
    )

    counts = row_counts(any_stores, oid)
    assert (counts["customer"], counts["email_message"], counts["timeline_note"]) == (2, 1, 3)


def test_a_row_the_database_refuses_fails_without_retrying(
    postgres_stores: Stores,
) -> None:
    too_long = a_request().model_copy(update={"company": "C" * (COMPANY_MAX + 1)})
    with pytest.raises(ApplicationError) as failure:
        CommerceActivities(postgres_stores.commerce, True).create_prospect(
            CreateProspectInput(onboarding_id=uuid.uuid4().hex[:16], request=too_long, at=NOW)
        )
    assert failure.value.non_retryable and failure.value.type == "InvalidData"


async def test_an_address_no_mail_server_can_take_fails_the_email_without_retrying(
    stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    # Accepted before the edge refused such addresses, so built without validation.
    request = a_request().model_copy(update={"email": "giülia@utf8.example"})
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_APPROVED, request=request
    )
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            email_activities(stores, base_settings).send_onboarding_email, input
        )
    assert failure.value.non_retryable and failure.value.type == "InvalidData"
    # Why, without the address: the reason reaches the status, the UI and the log.
    assert "cannot be written: local-part contains non-ASCII" in failure.value.message
    assert "giülia" not in failure.value.message
    assert mail_sink.messages(input.onboarding_id) == []


class RefusingSender(SpoolHandler):
    """A mail server that refuses our sender for good (a 5xx to MAIL FROM)."""

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.7.1 sender not allowed"


async def test_a_message_the_server_refuses_for_good_fails_without_retrying(
    stores: Stores, base_settings: Settings, tmp_path: Path
) -> None:
    refusing = Controller(RefusingSender(tmp_path), hostname="127.0.0.1", port=free_port())
    refusing.start()
    input = SendEmailInput(
        onboarding_id=uuid.uuid4().hex[:16], kind=EmailKind.PROSPECT_REJECTED, request=a_request()
    )
    try:
        settings = base_settings.model_copy(update={"smtp_port": refusing.port})
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(
                email_activities(stores, settings).send_onboarding_email, input
            )
    finally:
        refusing.stop()
    assert failure.value.non_retryable and failure.value.type == "InvalidData"
    assert "sender not allowed" in failure.value.message
    assert read_spool(tmp_path) == []
