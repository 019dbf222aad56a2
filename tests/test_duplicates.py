"""While a contact email's request is undecided, submitting again answers with that request."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

import client as onboarding
from models.commerce import Prospect
from models.payloads import Action
from models.sales import Lead
from settings import Settings
from stores import Stores
from tests.scenario import a_request, rows, submit

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_second_submit_while_undecided_answers_with_the_first_request(
    client: Client, settings: Settings, stores: Stores
) -> None:
    first = await submit(client, settings)

    again = await onboarding.submit(
        client, a_request(email=first.email.upper(), company="Another name"), settings
    )

    assert again.onboarding_id == first.onboarding_id and again.duplicate
    assert again.workflow_id == first.workflow_id
    prospects = rows(stores.commerce, Prospect, first.onboarding_id)
    assert len(prospects) == 1 and prospects[0].company_name == "Contoso Srl"
    assert len(rows(stores.sales, Lead, first.onboarding_id)) == 1


async def test_concurrent_submits_with_one_email_make_one_request(
    client: Client, settings: Settings
) -> None:
    request = a_request()
    results = await asyncio.gather(
        *(onboarding.submit(client, request, settings) for _ in range(8))
    )
    assert len({r.onboarding_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


async def test_once_decided_the_same_email_may_apply_again(
    client: Client, settings: Settings
) -> None:
    first = await submit(client, settings)
    await onboarding.decide(client, first.onboarding_id, Action.CANCEL, actor="rep:a")

    second = await onboarding.submit(client, a_request(email=first.email), settings)

    assert second.onboarding_id != first.onboarding_id and not second.duplicate
    assert (await onboarding.wait_until_recorded(client, second.onboarding_id)).email == first.email
