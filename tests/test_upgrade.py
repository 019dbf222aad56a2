"""A request started before the received email existed completes after the deploy.

The worker that starts it runs the workflows with their patches off: it issues the
commands the code before them issued, which the `v1` histories prove (recorded by that
code, they replay against today's in test_replay). The request then moves to a worker
with today's code, as it does across a deploy: that worker replays its history to
where it stands, keeps it on the path it took (its received email was never due), and
takes it to the end. A duplicate after the deploy reaches it as a new request's would.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

from client import decide, status, submit
from models.lifecycle import Action, Stage
from models.status import EmailKind
from settings import Settings
from stores import Stores, accounts
from tests.conftest import MailSink
from tests.scenario import a_request, finished, submitted
from worker import build_worker
from workflows.onboarding import PARTNER_ACCOUNT_PATCH, RECEIVED_EMAIL_PATCH


async def test_requests_open_across_the_deploy_complete_on_the_new_code(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    mail_sink: MailSink,
) -> None:
    async with build_worker(client, settings, stores, activity_executor, patches=lambda _: False):
        quiet, asked = await submitted(client, settings), await submitted(client, settings)
        # Answered as before the change: no link emailed, nothing new in any history.
        assert (await submit(client, a_request(email=asked.email), settings)).duplicate
    for request in (quiet, asked):
        assert request.stage is Stage.LEAD_OPEN
        history = await client.get_workflow_handle(request.workflow_id).fetch_history()
        assert RECEIVED_EMAIL_PATCH not in history.to_json()

    async with build_worker(client, settings, stores, activity_executor):
        for request in (quiet, asked):
            # The applicant of `asked` replays its earlier duplicate unchanged.
            again = await submit(client, a_request(email=request.email), settings)
            assert again.duplicate and again.onboarding_id == request.onboarding_id
            oid = request.onboarding_id
            await decide(client, oid, Action.QUALIFY, actor="rep:after")
            won = await decide(client, oid, Action.WON, actor="rep:after")
            assert (await finished(client, won)).stage is Stage.APPROVED

    emails = {
        request.onboarding_id: sorted(
            message["X-Onboarding-Event"] for message in mail_sink.messages(request.onboarding_id)
        )
        for request in (quiet, asked)
    }
    assert emails == {
        # Its applicant's first duplicate comes after the deploy: the link is emailed.
        quiet.onboarding_id: [
            EmailKind.PROSPECT_APPROVED.event,
            EmailKind.STATUS_LINK_REMINDER.event,
        ],
        # Its applicant answered a duplicate before the deploy without emailing, and keeps to it.
        asked.onboarding_id: [EmailKind.PROSPECT_APPROVED.event],
    }
    for request in (quiet, asked):
        current = await status(client, request.onboarding_id)
        assert current.received_notification is None
        assert current.notification is not None and current.notification.state == "sent"
        # Approved on the new code, the administrator gets an account and the approval
        # email its activation link; the link expires by its date in the store, as no
        # partner user workflow was started for a request older than that patch.
        account = accounts.partner_account_by_email(stores.commerce, request.email)
        assert account is not None and account.state == "invited"
        assert account.pending_link_expires_at is not None
        history = await client.get_workflow_handle(request.workflow_id).fetch_history()
        assert PARTNER_ACCOUNT_PATCH not in history.to_json()
