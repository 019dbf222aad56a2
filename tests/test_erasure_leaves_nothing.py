"""After an erasure, no workflow in the namespace decodes to the person's data (issue 23,
item 3): not the request's, not a duplicate submission's that raced it, not their
partner user workflow nor the request's resends (whose payloads are under a master key
no erasure destroys: they are deleted)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from client import requests
from client.converter import codec_of
from client.partner_users import send_partner_link
from client.personal_data import erase_personal_data
from client.requests import (
    decide,
    submission_id,
    submit,
    tell_applied_again,
    wait_until_recorded,
)
from infra.encryption import EncryptionError
from models.commerce import Prospect
from models.ids import hour_period, onboarding_workflow_id, resend_workflow_id
from models.lifecycle import Action
from models.partners import LinkPurpose, SendLinkInput, partner_user_workflow_id
from models.status import EmailKind
from settings import Settings
from stores import Stores, accounts, data_keys
from tests.conftest import PATIENCE, eventually
from tests.scenario import a_request, finished, payloads_in
from tests.test_personal_data import Person
from tests.test_reapply import a_prospect

pytestmark = pytest.mark.usefixtures("worker")


async def readable_secrets(client: Client, workflow_id: str, person: Person) -> list[str]:
    """The person's data that any payload of the workflow's runs decodes to, as a Commerce
    admin's codec would show it (reading each key fresh from the store)."""
    codec = codec_of(client).reading_fresh()
    found: list[str] = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as err:
            assert err.status is RPCStatusCode.NOT_FOUND
            continue
        for event in history.events:
            for payload in payloads_in(event):
                found += person.found_in(payload.SerializeToString())
                try:
                    (plain,) = await codec.decode([payload])
                except EncryptionError:
                    continue
                found += person.found_in(plain.SerializeToString())
    return found


async def gone(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status is RPCStatusCode.NOT_FOUND
    return False


async def test_after_an_erasure_no_workflow_decodes_to_the_persons_data(
    client: Client,
    settings: Settings,
    stores: Stores,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    person = Person()
    request = await submit(client, a_request(**person.request()), settings)
    await wait_until_recorded(client, request.onboarding_id)
    # The race: a second submission read the store before the first was recorded, so
    # its own workflow met the open request and answered with it.
    with monkeypatch.context() as race:

        async def not_yet_recorded(client: Client, email: str) -> None:
            return None

        race.setattr(requests, "_open_request", not_yet_recorded)
        raced = a_request(**person.request(), company="Raced Srl", comments="typed again")
        duplicate = await submit(client, raced, settings, idempotency_key="test:raced")
    assert duplicate.duplicate and duplicate.onboarding_id == request.onboarding_id
    duplicate_id = submission_id("test:raced", person.email)
    assert data_keys.duplicates_of(stores.commerce, request.onboarding_id) == [duplicate_id]

    oid = request.onboarding_id
    await decide(client, oid, Action.QUALIFY, actor="rep:mario")
    current = await decide(client, oid, Action.WON, actor="rep:mario")
    await finished(client, current)
    # The administrator asks for their activation link again: their partner user
    # workflow runs, waiting for the link to be used.
    admin = accounts.partner_account_by_email(stores.commerce, person.email)
    assert admin is not None
    await send_partner_link(
        client,
        settings,
        person.email,
        SendLinkInput(partner_user_id=admin.id, purpose=LinkPurpose.ACTIVATION, actor="anna"),
    )
    # The email applies again: its address is told by the request's resend workflow.
    await tell_applied_again(client, settings, oid, None)
    period = hour_period(datetime.now(UTC))
    told = resend_workflow_id(oid, EmailKind.APPLIED_AGAIN.value, period)
    await client.get_workflow_handle(told).result()
    partner_user = partner_user_workflow_id(person.email)
    duplicates_workflow = onboarding_workflow_id(duplicate_id)
    for workflow_id in (partner_user, duplicates_workflow):
        assert await readable_secrets(client, workflow_id, person), workflow_id

    erased = await erase_personal_data(client, stores, oid, actor="anna", reason="asked")

    assert erased.history == "key_destroyed"
    # Temporal deletes a closed workflow in the background: within seconds.
    for workflow_id in (partner_user, told):
        await eventually(partial(gone, client, workflow_id), PATIENCE, f"{workflow_id} deleted")
    # Every workflow started since, whatever it is, as visibility lists them.
    listed = set()
    async for execution in client.list_workflows(f"StartTime >= '{started.isoformat()}'"):
        listed.add(execution.id)
    assert {onboarding_workflow_id(oid), duplicates_workflow} <= listed
    for workflow_id in listed | {partner_user}:
        assert not await readable_secrets(client, workflow_id, person), workflow_id


def test_the_sweep_takes_a_duplicate_s_key_once_the_request_it_met_is_anonymised(
    stores: Stores,
) -> None:
    now = datetime.now(UTC)
    request = a_prospect(stores, f"swept.{uuid.uuid4().hex[:8]}@contoso.example", "rejected")
    duplicate = uuid.uuid4().hex[:16]
    data_keys.keep(stores.commerce, duplicate, "test-2", b"wrapped", now)
    with Session(stores.commerce) as session:
        data_keys.mark_duplicate(session, duplicate, request.onboarding_id)
        session.commit()
    # Within its day's grace, and its request not anonymised: it stays.
    assert duplicate not in data_keys.to_shred(stores.commerce, now - timedelta(days=1), 10_000)

    with Session(stores.commerce) as session:
        row = session.get(Prospect, request.id)
        assert row is not None
        row.anonymised_at = now
        session.add(row)
        session.commit()

    assert duplicate in data_keys.to_shred(stores.commerce, now - timedelta(days=1), 10_000)
