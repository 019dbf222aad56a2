"""The production store choice: the whole process on PostgreSQL, both stores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

import client as onboarding
from models.payloads import Action, Stage
from settings import Settings
from stores import Stores
from tests.conftest import MailSink
from tests.scenario import ROWS_OF_A_WON_REQUEST, finished, row_counts, submit
from worker import build_worker


async def test_won_and_cancelled_requests_on_postgresql(
    client: Client,
    settings: Settings,
    postgres_stores: Stores,
    activity_executor: ThreadPoolExecutor,
    mail_sink: MailSink,
) -> None:
    async with build_worker(client, settings, postgres_stores, activity_executor):
        won = await submit(client, settings)
        await onboarding.decide(client, won.onboarding_id, Action.QUALIFY, actor="rep")
        won = await onboarding.decide(client, won.onboarding_id, Action.WON, actor="rep")
        cancelled = await submit(client, settings)
        cancelled = await onboarding.decide(
            client, cancelled.onboarding_id, Action.CANCEL, actor="rep"
        )
        won, cancelled = await finished(client, won), await finished(client, cancelled)

    assert (won.stage, cancelled.stage) == (Stage.APPROVED, Stage.REJECTED)
    assert row_counts(postgres_stores, won.onboarding_id) == ROWS_OF_A_WON_REQUEST
    assert row_counts(postgres_stores, cancelled.onboarding_id)["email_message"] == 1
    assert len(mail_sink.messages(won.onboarding_id)) == 1
    assert len(mail_sink.messages(cancelled.onboarding_id)) == 1
