"""What the tests do the way a user would: submit, decide, and read both stores."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage as Mail
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from client.requests import decide, status, submit, wait_until_recorded
from models.commerce import CommerceTable
from models.lifecycle import Action
from models.requests import OnboardingRequest
from models.sales import SalesTable
from models.status import DecisionAnswer, HoldAnswer, OnboardingStatus
from settings import Settings
from stores import Stores
from tests.conftest import eventually

# One folder per version of the workflows' command sequence; the scenarios record into
# the newest, and the replay test replays them all.
HISTORIES = Path(__file__).parent / "histories"
RECORDING_VERSION = "v8-emails-in-step"

# Every row a request leaves behind once qualified and won, in both stores.
ROWS_OF_A_WON_REQUEST = {
    "lead": 1,
    "timeline_note": 3,
    "account": 1,
    "contact": 1,
    "opportunity": 1,
    "prospect": 1,
    "customer": 2,
    "customer_hierarchy": 1,
    "customer_hierarchy_member": 2,
    # We received your request, then the approval.
    "email_message": 2,
}


def a_request(**overrides: Any) -> OnboardingRequest:
    """A valid request with an email of its own, so tests never meet each other's."""
    fields: dict[str, Any] = {
        "company": "Contoso Srl",
        "first_name": "Giulia",
        "last_name": "Rossi",
        "email": f"giulia.{uuid.uuid4().hex[:10]}@contoso.example",
        "phone": "+39 02 1234 5678",
        "job_title": "Purchasing manager",
        "website": "contoso.example",
        "company_address": "Via Roma 1, 20121 Milano",
        "company_phone": "+39 02 0000 0000",
        "locale": "en",
        "comments": "We resell office furniture.",
    }
    fields.update(overrides)
    return OnboardingRequest(**fields)


async def submitted(client: Client, settings: Settings, **overrides: Any) -> OnboardingStatus:
    """Submit a request and wait until it is recorded and ready for a decision."""
    result = await submit(client, a_request(**overrides), settings)
    return await wait_until_recorded(client, result.onboarding_id)


def text_of(message: Mail, subtype: str = "plain") -> str:
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


async def decided(
    client: Client, onboarding_id: str, action: Action, actor: str, **why: Any
) -> OnboardingStatus:
    """Decide, then read the whole status: the `decide` Update answers with less."""
    await decide(client, onboarding_id, action, actor, **why)
    return await status(client, onboarding_id)


async def finished(
    client: Client, current: OnboardingStatus | DecisionAnswer | HoldAnswer
) -> OnboardingStatus:
    """Wait until the request's workflow is done: decided, and its email sent or failed."""

    async def done() -> OnboardingStatus:
        now = await status(client, current.onboarding_id)
        assert now.workflow_status == "completed", f"{current.onboarding_id} is not done: {now}"
        return now

    return await eventually(done)


def rows(engine: Engine, model: type[SQLModel], onboarding_id: str) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model).filter_by(onboarding_id=onboarding_id)))


def row_counts(stores: Stores, onboarding_id: str) -> Counter[str]:
    """How many rows each table of both stores holds for one request."""
    counts: Counter[str] = Counter()
    for engine, base in ((stores.sales, SalesTable), (stores.commerce, CommerceTable)):
        with Session(engine) as session:
            for table in base.metadata.sorted_tables:
                # The partner account's tables (users, sessions, credit limits) belong to
                # the partner, not to one request; its data key encrypts what Temporal
                # keeps of it (infra/encryption.py) and is no record of the process.
                if "onboarding_id" not in table.c or table.name == "data_key":
                    continue
                query = table.select().where(table.c.onboarding_id == onboarding_id)
                counts[table.name] = len(session.connection().execute(query).all())
    return counts


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload anywhere in a protobuf message (a history event, a whole history)."""
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            items = [value]
        elif hasattr(value, "keys"):  # a map: its values
            items = [value[key] for key in value]
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


async def decoded_history(client: Client, workflow_id: str) -> WorkflowHistory:
    """The workflow's history as the server keeps it, every payload decoded."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    codec = client.data_converter.payload_codec
    assert codec is not None
    for event in history.events:
        for payload in payloads_in(event):
            payload.CopyFrom((await codec.decode([payload]))[0])
    return history


async def keep_history(client: Client, workflow_id: str, name: str) -> None:
    """With RECORD_HISTORIES=1, keep the workflow's history for the replay test.

    Kept decoded: the tests' data keys live in their own store and go with it, and a
    recorded history must replay for as long as it is kept.
    """
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    history = await decoded_history(client, workflow_id)
    folder = HISTORIES / RECORDING_VERSION
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(history.to_json())
