"""A request started before the received email existed completes after the deploy.

The worker that starts it runs the workflows with their patches off: it issues the
commands the code before them issued, which the `v1` histories prove (recorded by that
code, they replay against today's in test_replay). The request then moves to a worker
with today's code, as it does across a deploy: that worker replays its history to
where it stands, keeps it on the path it took (its received email was never due), and
takes it to the end.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

import client as onboarding
from models.payloads import Action, EmailKind, Stage
from settings import Settings
from stores import Stores
from tests.conftest import MailSink
from tests.scenario import finished, submit
from worker import build_worker
from workflows.onboarding import RECEIVED_EMAIL_PATCH


async def test_a_request_open_across_the_deploy_completes_on_the_new_code(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    mail_sink: MailSink,
) -> None:
    async with build_worker(client, settings, stores, activity_executor, patches=lambda _: False):
        request = await submit(client, settings)
    assert request.stage is Stage.LEAD_OPEN
    history = await client.get_workflow_handle(request.workflow_id).fetch_history()
    assert RECEIVED_EMAIL_PATCH not in history.to_json()

    async with build_worker(client, settings, stores, activity_executor):
        oid = request.onboarding_id
        await onboarding.decide(client, oid, Action.QUALIFY, actor="rep:after")
        won = await onboarding.decide(client, oid, Action.WON, actor="rep:after")
        status = await finished(client, won)

    assert status.stage is Stage.APPROVED
    assert status.received_notification is None
    assert status.notification is not None and status.notification.state == "sent"
    events = [message["X-Onboarding-Event"] for message in mail_sink.messages(oid)]
    assert events == [EmailKind.PROSPECT_APPROVED.event]
