"""A requester's personal data: nowhere in clear in Temporal, and gone once erased.

On the real dev server, worker and stores: a request's history read straight from the
server (`fetch_history`), its search attributes and the run's log lines hold neither the
requester's email, name nor phone; an erasure anonymises both stores, the outbox and the
status, and makes the history unreadable (its data key destroyed), on a closed request,
a running one (through its `erase` Update) and one whose history began in clear.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect
from sqlmodel import Session, select
from temporalio import workflow
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.commerce import CommerceActivities
from activities.requests import RequestActivities, request_timing
from activities.sales import SalesActivities
from client.connection import Connection, TemporalUnavailable
from client.converter import PayloadConverter, codec_of, data_converter
from client.personal_data import erase_personal_data, shred_keys
from client.requests import (
    ANONYMISED,
    PersonalDataErased,
    current_status,
    decide,
    signal_decision,
    status,
    submit,
    wait_until_recorded,
)
from infra.encryption import ENCODING, KEY_ID, REQUEST_KEY, RequestErased
from models import search_attributes as sa
from models.commerce import DataKey, EmailMessage, PartnerUser
from models.ids import onboarding_workflow_id
from models.lifecycle import Action, Stage
from models.personal_data import AnonymisationKind, AnonymiseRequestInput
from models.workflow_io import ErasePersonalData, OnboardingInput
from settings import Settings
from stores import Stores, data_keys, views
from stores.engine import make_engine
from stores.personal_data import ERASED, anonymise_request
from tests.conftest import ADMIN, PATIENCE, REP, bearer, eventually
from tests.scenario import a_request, finished, payloads_in, row_counts, submitted
from tests.test_pages import CSRF, sign_in
from workflows.onboarding import OnboardingWorkflow

pytestmark = pytest.mark.usefixtures("worker")
API = "/api/onboarding-requests"


class Person:
    """A requester whose every identifying string is unique to the test."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        digits = str(uuid.uuid4().int)[:7]
        self.first_name, self.last_name = f"Giulietta{tag}", f"Rossellini{tag}"
        self.email = f"giulia.{tag}@contoso.example"
        self.phone = f"+39 333 {digits}"
        self.job_title = f"Buyer {tag}"
        self.secrets = (
            self.first_name,
            self.last_name,
            self.email,
            self.phone,
            digits,
            self.job_title,
        )

    def request(self, **overrides: Any) -> dict[str, Any]:
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "phone": self.phone,
            "job_title": self.job_title,
            **overrides,
        }

    def found_in(self, text: str | bytes) -> list[str]:
        raw = text.encode() if isinstance(text, str) else text
        return [secret for secret in self.secrets if secret.encode() in raw]


async def decided(client: Client, settings: Settings, person: Person, *actions: Action) -> str:
    current = await submitted(client, settings, **person.request())
    for action in actions:
        await decide(client, current.onboarding_id, action, actor="rep:mario", reason="ok")
    await finished(client, current)
    return current.onboarding_id


def rows_holding(stores: Stores, onboarding_id: str, person: Person) -> list[str]:
    """Every row of both stores with the person's data in it, as `table.column`."""
    found = []
    for engine in (stores.sales, stores.commerce):
        tables = inspect(engine).get_table_names()
        with engine.connect() as connection:
            for table in tables:
                for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'):
                    for column, value in row._mapping.items():
                        if isinstance(value, str) and person.found_in(value):
                            found.append(f"{table}.{column}")
    return found


async def test_the_history_search_attributes_and_logs_hold_no_personal_data(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    person = Person()
    current = await submitted(client, settings, **person.request())
    onboarding_id = current.onboarding_id
    await decide(client, onboarding_id, Action.QUALIFY, actor="rep:mario")
    # Refused, so the workflow logs it: the logs are not empty.
    await signal_decision(client, onboarding_id, Action.CANCEL, actor="rep:mario")
    await decide(client, onboarding_id, Action.LOST, actor="rep:mario", reason="no budget")
    await finished(client, current)
    handle = client.get_workflow_handle(onboarding_workflow_id(onboarding_id))

    history = await handle.fetch_history()
    assert not person.found_in(history.to_json())
    payloads = [payload for event in history.events for payload in payloads_in(event)]
    for payload in payloads:
        assert not person.found_in(payload.SerializeToString())
    first = history.events[0]
    started = first.workflow_execution_started_event_attributes
    for payload in (*started.input.payloads, first.user_metadata.summary):
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID] == f"{REQUEST_KEY}{onboarding_id}".encode()
    # The product's own client reads it all back.
    decoded = await codec_of(client).decode(list(started.input.payloads))
    assert person.email.encode() in decoded[0].data

    description = await handle.describe()
    attributes = {pair.key.name: pair.value for pair in description.typed_search_attributes}
    assert sa.CONTACT_EMAIL.name not in attributes
    assert attributes[sa.COMPANY_NAME.name] == "Contoso Srl"
    assert not person.found_in(repr(attributes))

    # The tests' SMTP server (`mail.log`) stands in for the relay, whose log is its own.
    ours = [record for record in caplog.records if not record.name.startswith("mail.")]
    assert ours, "the run logged nothing: the check below would prove nothing"
    for record in ours:
        assert not person.found_in(caplog.handler.format(record)), record.getMessage()


async def test_a_failure_reason_reaches_temporal_encrypted(client: Client) -> None:
    """A refused decision's message (which names the stage) travels as an encoded failure."""
    failure_converter = client.data_converter.failure_converter
    failure = Failure()
    failure_converter.to_failure(
        ValueError("giulia@contoso.example refused"),
        client.data_converter.payload_converter,
        failure,
    )
    assert failure.message == "Encoded failure" and "giulia" not in failure.stack_trace


async def test_erasing_a_closed_request_empties_both_stores_the_outbox_and_the_status(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    person = Person()
    onboarding_id = await decided(client, settings, person, Action.QUALIFY, Action.WON)
    kept = row_counts(stores, onboarding_id)
    assert rows_holding(stores, onboarding_id, person)
    with Session(stores.commerce) as session:
        user = session.exec(select(PartnerUser).where(PartnerUser.email == person.email)).one()

    path = f"{API}/{onboarding_id}/erase"
    body = {"reason": "The requester asked by email"}
    assert (await web.post(path, json=body)).status_code == 401
    assert (await web.post(path, json=body, headers=bearer(REP))).status_code == 403
    assert (await web.post(path, json={"reason": " "}, headers=bearer(ADMIN))).status_code == 422
    erased = await web.post(path, json=body, headers=bearer(ADMIN))

    assert erased.status_code == 200, erased.text
    record = erased.json()
    assert record["kind"] == "erasure" and record["anonymised_by"] == ADMIN[0]
    assert record["reason"] == body["reason"] and record["history"] == "key_destroyed"
    # Counted in both stores: every row is still there, none holds the person.
    assert row_counts(stores, onboarding_id) == kept
    assert record["rows"] == {
        "prospect": 1,
        "customer": 2,
        "partner_user": 1,
        "email_message": kept["email_message"],
        "lead": 1,
        "contact": 1,
        "account": 1,
        "opportunity": 1,
        "timeline_note": kept["timeline_note"],
    }
    assert rows_holding(stores, onboarding_id, person) == []
    with Session(stores.commerce) as session:
        outbox = session.exec(
            select(EmailMessage).where(EmailMessage.onboarding_id == onboarding_id)
        ).all()
        assert outbox and {message.recipient for message in outbox} == {ERASED}
        assert session.get(PartnerUser, user.id).state == "removed"  # type: ignore[union-attr]
        key = session.exec(select(DataKey).where(DataKey.onboarding_id == onboarding_id)).one()
        assert key.wrapped_key is None and key.destroyed_at is not None

    answer = await web.get(f"{API}/{onboarding_id}", headers=bearer(ADMIN))
    assert answer.status_code == 200
    assert not person.found_in(answer.text)
    assert answer.json()["workflow_status"] == ANONYMISED
    assert answer.json()["stage"] == "approved"
    # Temporal still has the history; nobody can read it any more.
    with pytest.raises(PersonalDataErased):
        await status(client, onboarding_id)
    history = await client.get_workflow_handle(
        onboarding_workflow_id(onboarding_id)
    ).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    with pytest.raises(RequestErased):
        await codec_of(client).decode(list(started))
    refused = await web.post(f"{API}/{onboarding_id}/approve", headers=bearer(ADMIN))
    assert refused.status_code == 409

    again = await web.post(path, json={"reason": "asked twice"}, headers=bearer(ADMIN))
    assert again.status_code == 200
    assert again.json()["anonymised_at"] == record["anonymised_at"]
    assert again.json()["reason"] == body["reason"]


async def test_only_a_decided_request_is_erased(
    web: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    person = Person()
    current = await submitted(client, settings, **person.request())
    body = {"reason": "The requester asked"}

    refused = await web.post(
        f"{API}/{current.onboarding_id}/erase", json=body, headers=bearer(ADMIN)
    )
    nowhere = f"{API}/0123456789abcdef/erase"
    missing = await web.post(nowhere, json=body, headers=bearer(ADMIN))

    assert refused.status_code == 409 and refused.json()["stage"] == "lead_open"
    assert missing.status_code == 404
    assert person.email in (await status(client, current.onboarding_id)).email


async def test_a_request_whose_history_began_in_clear_has_its_workflow_deleted(
    client: Client, settings: Settings, stores: Stores
) -> None:
    """Started by a release before encryption: its history cannot be shredded, so it goes."""
    clear = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=DataConverter(payload_converter_class=PayloadConverter),
    )
    person = Person()
    onboarding_id = uuid.uuid4().hex[:16]
    workflow_id = onboarding_workflow_id(onboarding_id)
    await clear.start_workflow(
        OnboardingWorkflow.run,
        OnboardingInput(onboarding_id=onboarding_id, request=a_request(**person.request())),
        id=workflow_id,
        task_queue=settings.onboarding_task_queue,
    )
    await wait_until_recorded(client, onboarding_id)
    await decide(client, onboarding_id, Action.CANCEL, actor="rep:mario")
    await finished(client, await status(client, onboarding_id))

    erased = await erase_personal_data(
        client, stores, onboarding_id, actor="anna", reason="The requester asked"
    )

    assert erased.history == "history_deleted"

    # Temporal deletes it in the background (the dev server: some 20 s after accepting).
    async def deleted() -> bool:
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            assert err.status is RPCStatusCode.NOT_FOUND
            return True
        raise AssertionError("the workflow is still there")

    await eventually(deleted, timeout=20 + PATIENCE, every=0.1)
    assert rows_holding(stores, onboarding_id, person) == []


@workflow.defn(name="ErasableRequest")
class ErasableRequest:
    """A request's workflow as the lead's `erase` Update will have it: it anonymises both
    stores with the activity, and ends."""

    def __init__(self) -> None:
        self._erased = False

    @workflow.run
    async def run(self, input: OnboardingInput) -> None:
        await workflow.wait_condition(lambda: self._erased)

    @workflow.update(name="erase")
    async def erase(self, input: ErasePersonalData) -> None:
        await workflow.execute_activity_method(
            RequestActivities.anonymise_request,
            AnonymiseRequestInput(
                onboarding_id=workflow.info().workflow_id.removeprefix("onboarding-"),
                at=workflow.now(),
                actor=input.actor,
                reason=input.reason,
                kind=AnonymisationKind.ERASURE,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._erased = True


@pytest.fixture
async def erasable(
    client: Client, stores: Stores, activity_executor: ThreadPoolExecutor
) -> AsyncIterator[str]:
    task_queue = f"test-erasable-{uuid.uuid4().hex[:8]}"
    requests = RequestActivities(
        CommerceActivities(stores.commerce, True),
        SalesActivities(stores.sales),
        request_timing(Settings(_env_file=None)),  # type: ignore[call-arg]
    )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ErasableRequest],
        activities=[requests.anonymise_request],
        activity_executor=activity_executor,
        # Defined here, among this module's imports: no sandbox to import them again.
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield task_queue


async def test_a_running_request_is_erased_by_its_erase_update_then_its_key_goes(
    client: Client, settings: Settings, stores: Stores, erasable: str
) -> None:
    """A rejected request's workflow stays open for its retention: the client asks it."""
    person = Person()
    onboarding_id = await decided(client, settings, person, Action.CANCEL)
    workflow_id = onboarding_workflow_id(onboarding_id)
    # The request's workflow, still running (a new run, the same id and data key).
    await client.start_workflow(
        ErasableRequest.run,
        OnboardingInput(onboarding_id=onboarding_id, request=a_request(**person.request())),
        id=workflow_id,
        task_queue=erasable,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )

    erased = await erase_personal_data(
        client, stores, onboarding_id, actor="anna", reason="The requester asked"
    )

    assert erased.history == "key_destroyed" and erased.kind is AnonymisationKind.ERASURE
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED
    assert rows_holding(stores, onboarding_id, person) == []
    assert data_keys.read(stores.commerce, onboarding_id).wrapped_key is None  # type: ignore[union-attr]


async def test_the_sweep_destroys_the_key_of_a_request_anonymised_by_retention(
    client: Client, settings: Settings, stores: Stores
) -> None:
    """The workflow's retention timer anonymises; its key goes once the workflow has closed."""
    person = Person()
    onboarding_id = await decided(client, settings, person, Action.CANCEL)
    anonymise_request(
        stores,
        AnonymiseRequestInput(
            onboarding_id=onboarding_id,
            at=datetime.now(UTC),
            actor="system",
            reason="retention",
            kind=AnonymisationKind.RETENTION,
        ),
    )
    assert data_keys.read(stores.commerce, onboarding_id).wrapped_key is not None  # type: ignore[union-attr]

    while await shred_keys(client):
        pass

    assert data_keys.read(stores.commerce, onboarding_id).wrapped_key is None  # type: ignore[union-attr]
    current = await current_status(Connection(settings, client), stores, onboarding_id)
    assert current.stage is Stage.REJECTED and current.workflow_status == ANONYMISED
    assert not person.found_in(current.model_dump_json())


async def test_an_erased_requester_may_apply_again_as_anyone(
    client: Client, settings: Settings, stores: Stores
) -> None:
    person = Person()
    onboarding_id = await decided(client, settings, person, Action.CANCEL)
    await erase_personal_data(client, stores, onboarding_id, actor="anna", reason="asked")

    again = await submit(client, a_request(**person.request()), settings)

    assert not again.duplicate and again.onboarding_id != onboarding_id


async def test_while_commerce_cannot_be_read_a_submission_is_refused_and_nothing_starts(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A new request's key is made in Commerce before anything reaches Temporal."""
    no_commerce = Client(
        client.service_client,
        namespace=client.namespace,
        # A Commerce without its tables: every read fails, as while it is down.
        data_converter=data_converter(settings, make_engine(f"sqlite:///{tmp_path / 'c.db'}")),
    )
    key = f"down-{uuid.uuid4().hex}"

    with pytest.raises(TemporalUnavailable, match="Commerce"):
        await submit(no_commerce, a_request(), settings, idempotency_key=key)

    recorded = await submit(client, a_request(), settings, idempotency_key=key)
    assert not recorded.duplicate


async def test_an_admin_erases_from_the_prospect_page_with_a_reason_and_a_confirmation(
    web: httpx.AsyncClient, client: Client, settings: Settings, stores: Stores
) -> None:
    person = Person()
    onboarding_id = await decided(client, settings, person, Action.CANCEL)
    prospect = views.prospect_of_request(stores.commerce, onboarding_id)
    assert prospect is not None
    page = f"/commerce/prospects/{prospect.id}"
    await sign_in(web, ADMIN)
    shown = await web.get(page)
    assert "Erase personal data" in shown.text and person.email in shown.text
    token = CSRF.search(shown.text)
    assert token
    form = {"csrf_token": token[1], "reason": "The requester asked by email"}

    unconfirmed = await web.post(f"{page}/erase", data=form)
    assert unconfirmed.status_code == 303
    assert "Tick the box" in (await web.get(page)).text
    assert views.anonymised(stores, onboarding_id) is False

    confirmed = await web.post(f"{page}/erase", data={**form, "confirm": "yes"})

    assert confirmed.status_code == 303
    after = await web.get(page)
    assert "personal data is erased" in after.text and "Erased by anna" in after.text
    assert not person.found_in(after.text)
    assert rows_holding(stores, onboarding_id, person) == []
