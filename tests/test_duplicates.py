"""While a contact email's request is undecided, submitting again answers with that request,
and its status link goes to the address on record (at most once an hour), not to the caller."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from client.requests import decide, submission_id, submit, wait_until_recorded
from infra.links import site_secret, status_url
from models.commerce import EmailMessage, Prospect
from models.ids import onboarding_workflow_id
from models.lifecycle import Action, Stage
from models.sales import Lead
from models.status import EmailKind
from settings import Settings
from stores import Stores, data_keys
from tests.conftest import MailSink
from tests.scenario import a_request, decided, finished, keep_history, rows, submitted, text_of

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_second_submit_while_undecided_answers_with_the_first_request(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    first = await submitted(client, settings)

    again = await submit(
        client, a_request(email=first.email.upper(), company="Another name"), settings
    )

    assert again.onboarding_id == first.onboarding_id and again.duplicate
    assert again.workflow_id == first.workflow_id
    prospects = rows(stores.commerce, Prospect, first.onboarding_id)
    assert len(prospects) == 1 and prospects[0].company_name == "Contoso Srl"
    assert len(rows(stores.sales, Lead, first.onboarding_id)) == 1
    # The link goes to the address the request was made with, in its words.
    (reminder,) = await mail_sink.arrived(first.onboarding_id, EmailKind.STATUS_LINK_REMINDER)
    assert reminder["To"].addresses[0].addr_spec == first.email
    text = text_of(reminder)
    assert status_url(settings.b2b_site_url, site_secret(settings), first.onboarding_id) in text
    assert "Contoso Srl" in text and "Another name" not in text


async def test_the_link_is_emailed_once_an_hour_and_the_request_ends_with_every_email_sent(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    first = await submitted(client, settings)
    oid = first.onboarding_id
    keys = [f"test:{uuid.uuid4().hex}" for _ in range(2)]
    for company, key in zip(("Another name", "Yet another name"), keys, strict=True):
        again = await submit(
            client, a_request(email=first.email, company=company), settings, idempotency_key=key
        )
        assert again.duplicate

    # Applied after both requests for the link, the decision answers with them handled.
    current = await decided(client, oid, Action.CANCEL, actor="rep:a")
    assert len(current.status_link_reminders) == 1
    current = await finished(client, current)

    assert current.stage is Stage.REJECTED
    (reminder,) = current.status_link_reminders
    outbox = {row.kind: row for row in rows(stores.commerce, EmailMessage, oid)}
    assert outbox.keys() == {
        EmailKind.REQUEST_RECEIVED,
        EmailKind.STATUS_LINK_REMINDER,
        EmailKind.PROSPECT_REJECTED,
    }
    assert reminder.state == "sent"
    assert reminder.email_message_id == outbox[EmailKind.STATUS_LINK_REMINDER].id
    assert outbox[EmailKind.STATUS_LINK_REMINDER].period != ""
    events = sorted(message["X-Onboarding-Event"] for message in mail_sink.messages(oid))
    assert events == ["prospect-rejected", "request-received", "status-link-reminder"]
    await keep_history(client, current.workflow_id, "status_link_reminded")
    # The duplicates were read from the store: no workflow, no data key of their own
    # holds what they typed (issue 21, item 7).
    for key in keys:
        duplicate_id = submission_id(key, first.email)
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle(onboarding_workflow_id(duplicate_id)).describe()
        assert missing.value.status is RPCStatusCode.NOT_FOUND
        assert data_keys.read(stores.commerce, duplicate_id) is None


async def test_concurrent_submits_with_one_email_make_one_request(
    client: Client, settings: Settings
) -> None:
    request = a_request()
    results = await asyncio.gather(*(submit(client, request, settings) for _ in range(8)))
    assert len({r.onboarding_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


async def test_once_decided_the_same_email_may_apply_again(
    client: Client, settings: Settings
) -> None:
    first = await submitted(client, settings)
    await decide(client, first.onboarding_id, Action.CANCEL, actor="rep:a")

    second = await submit(client, a_request(email=first.email), settings)

    assert second.onboarding_id != first.onboarding_id and not second.duplicate
    assert (await wait_until_recorded(client, second.onboarding_id)).email == first.email


async def test_a_key_used_again_answers_the_first_submission_even_once_finished(
    client: Client, settings: Settings
) -> None:
    request, key = a_request(), f"test:{uuid.uuid4().hex}"
    first = await submit(client, request, settings, idempotency_key=key)
    # The same key while the request runs: the same answer.
    assert await submit(client, request, settings, idempotency_key=key) == first
    await finished(client, await decide(client, first.onboarding_id, Action.CANCEL, actor="rep:a"))

    # Its workflow is closed; Temporal keeps the Update's outcome with it, and the
    # workflow id is never started again: still the first answer, nothing new.
    assert await submit(client, request, settings, idempotency_key=key) == first
    # Without the key, the decided email applies again.
    fresh = await submit(client, request, settings)
    assert not fresh.duplicate and fresh.onboarding_id != first.onboarding_id


async def test_concurrent_duplicates_of_an_open_request_start_no_workflow(
    client: Client, settings: Settings, stores: Stores
) -> None:
    first = await submitted(client, settings)
    keys = [f"test:{uuid.uuid4().hex}" for _ in range(6)]

    answers = await asyncio.gather(
        *(
            submit(client, a_request(email=first.email), settings, idempotency_key=key)
            for key in keys
        )
    )

    assert all(a.duplicate and a.onboarding_id == first.onboarding_id for a in answers)
    for key in keys:
        duplicate_id = submission_id(key, first.email)
        with pytest.raises(RPCError):
            await client.get_workflow_handle(onboarding_workflow_id(duplicate_id)).describe()
        assert data_keys.read(stores.commerce, duplicate_id) is None
