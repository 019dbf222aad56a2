"""Emailed links expire by the partner user workflow's durable timer (time-skipping server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment

from client.converter import data_converter
from client.partner_users import partner_link_used
from models import search_attributes
from models.commerce import Customer, CustomerHierarchy, CustomerHierarchyMember
from models.partners import (
    InviteInput,
    LinkPurpose,
    NewPartnerUser,
    PartnerUserChanged,
    PartnerUserInput,
    SendLinkInput,
    partner_user_workflow_id,
)
from settings import Settings
from stores import Stores, accounts
from tests.conftest import VENV_BIN, MailSink
from tests.test_partner_accounts import links_in, token_of
from worker import build_worker
from workflows.partner_user import PartnerUserWorkflow

TTL = timedelta(days=7)


@pytest.fixture
async def skipping(base_settings: Settings, stores: Stores) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
        data_converter=data_converter(base_settings, stores.commerce),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in search_attributes.ALL
            },
        )
    )
    yield env
    await env.shutdown()


async def change(
    env: WorkflowEnvironment, settings: Settings, email: str, update: Any, arg: object
) -> PartnerUserChanged:
    """What the client does with Update-with-Start, in two calls: the time-skipping test
    server does not run Update-with-Start."""
    with suppress(WorkflowAlreadyStartedError):
        await env.client.start_workflow(
            PartnerUserWorkflow.run,
            PartnerUserInput(email=email),
            id=partner_user_workflow_id(email),
            task_queue=settings.onboarding_task_queue,
        )
    handle = env.client.get_workflow_handle(partner_user_workflow_id(email))
    result: PartnerUserChanged = await handle.execute_update(update, arg)
    return result


@pytest.fixture
async def skipping_worker(
    skipping: WorkflowEnvironment,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[Settings]:
    with_ttl = settings.model_copy(update={"activation_ttl": TTL})
    async with build_worker(skipping.client, with_ttl, stores, activity_executor):
        yield with_ttl


def an_organization(stores: Stores) -> int:
    """An approved partner's organisation and hierarchy, as approval leaves them."""
    with Session(stores.commerce) as session:
        organization = Customer(
            customer_type="organization", name="Fabrikam Spa", created_at=datetime.now(UTC)
        )
        session.add(organization)
        session.flush()
        assert organization.id is not None
        hierarchy = CustomerHierarchy(
            name="Fabrikam Spa", root_customer_id=organization.id, created_at=datetime.now(UTC)
        )
        session.add(hierarchy)
        session.flush()
        assert hierarchy.id is not None
        session.add(
            CustomerHierarchyMember(
                hierarchy_id=hierarchy.id, customer_id=organization.id, role="organization"
            )
        )
        session.commit()
        return organization.id


def newest_link(mail_sink: MailSink, email: str) -> str:
    mails = [m for m in mail_sink.messages() if m["To"].addresses[0].addr_spec == email]
    return token_of(links_in(mails[-1])[0])


async def test_an_invitation_expires_after_the_ttl_and_a_resend_restarts_the_clock(
    skipping: WorkflowEnvironment,
    skipping_worker: Settings,
    stores: Stores,
    mail_sink: MailSink,
) -> None:
    email = f"sara.{uuid.uuid4().hex[:8]}@fabrikam.example"
    invite = InviteInput(
        organization_customer_id=an_organization(stores),
        user=NewPartnerUser(first_name="Sara", last_name="Neri", email=email),
        actor="partner:1",
    )
    changed = await change(
        skipping, skipping_worker, invite.user.email, PartnerUserWorkflow.invite, invite
    )
    first = newest_link(mail_sink, email)

    await skipping.sleep(timedelta(days=5))
    resend = SendLinkInput(
        partner_user_id=changed.partner_user_id, purpose=LinkPurpose.INVITATION, actor="partner:1"
    )
    await change(skipping, skipping_worker, email, PartnerUserWorkflow.send_link, resend)
    second = newest_link(mail_sink, email)
    assert second != first

    await skipping.sleep(timedelta(days=4))
    # Nine days after the first email: the first link was replaced, the second still works.
    with pytest.raises(accounts.LinkRefused) as replaced:
        accounts.open_link(stores.commerce, first)
    assert replaced.value.why == "superseded"
    assert accounts.open_link(stores.commerce, second).purpose is LinkPurpose.INVITATION

    await skipping.sleep(timedelta(days=4))
    with pytest.raises(accounts.LinkRefused) as expired:
        accounts.open_link(stores.commerce, second)
    assert expired.value.why == "expired" and expired.value.account is not None
    handle = skipping.client.get_workflow_handle(partner_user_workflow_id(email))
    await handle.result()
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    user = accounts.partner_account_by_email(stores.commerce, email)
    assert user is not None and user.state == "invited" and user.pending_link_expires_at is None


async def test_an_activation_link_expires_unless_used(
    skipping: WorkflowEnvironment,
    skipping_worker: Settings,
    stores: Stores,
    mail_sink: MailSink,
) -> None:
    organization_id = an_organization(stores)
    used_email = f"ugo.{uuid.uuid4().hex[:8]}@fabrikam.example"
    idle_email = f"ida.{uuid.uuid4().hex[:8]}@fabrikam.example"
    for email in (used_email, idle_email):
        invite = InviteInput(
            organization_customer_id=organization_id,
            user=NewPartnerUser(first_name="Ugo", last_name="Blu", email=email),
            actor="partner:1",
        )
        changed = await change(
            skipping, skipping_worker, invite.user.email, PartnerUserWorkflow.invite, invite
        )
        activation = SendLinkInput(
            partner_user_id=changed.partner_user_id,
            purpose=LinkPurpose.ACTIVATION,
            actor="commerce:anna",
        )
        await change(skipping, skipping_worker, email, PartnerUserWorkflow.send_link, activation)

    accounts.use_link(stores.commerce, newest_link(mail_sink, used_email), "ugo's long password")
    await partner_link_used(skipping.client, used_email)
    await skipping.client.get_workflow_handle(partner_user_workflow_id(used_email)).result()

    await skipping.sleep(TTL + timedelta(hours=1))
    with pytest.raises(accounts.LinkRefused) as expired:
        accounts.open_link(stores.commerce, newest_link(mail_sink, idle_email))
    assert expired.value.why == "expired"
    assert accounts.verify_password(stores.commerce, used_email, "ugo's long password")
