"""Each step of a won request writes each store in one transaction, with one statement
per row it writes and no read of what it already knows (issue 22): the statements are
counted as the database receives them, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event
from temporalio.testing import ActivityEnvironment

from activities.commerce import CommerceActivities
from activities.email import EmailActivities, EmailRenderer
from activities.requests import RequestActivities, request_timing
from activities.sales import SalesActivities
from infra import encryption
from models.activity_io import ApplyDecisionInput, CreateProspectInput, SendEmailInput
from models.lifecycle import Action
from models.status import EmailKind
from settings import Settings
from stores import Stores
from tests.conftest import MailSink
from tests.scenario import a_request

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
# What the engine issues around a transaction, not the work in it.
FRAMING = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")


class Issued:
    """Transactions and statements each store received, by store."""

    def __init__(self) -> None:
        self.transactions: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()

    def as_pairs(self) -> dict[str, tuple[int, int]]:
        return {
            store: (self.transactions[store], self.statements[store])
            for store in sorted(set(self.transactions) | set(self.statements))
        }


@contextmanager
def counting(stores: Stores) -> Iterator[Callable[[], dict[str, tuple[int, int]]]]:
    """While open: a function answering (transactions, statements) per store since its
    last call."""
    issued = Issued()
    hooks: list[tuple[Engine, str, Callable[..., None]]] = []
    for name in ("sales", "commerce"):
        engine: Engine = getattr(stores, name)

        def began(_connection: Any, store: str = name) -> None:
            issued.transactions[store] += 1

        def executed(
            _conn: Any, _cursor: Any, statement: str, *_args: Any, store: str = name
        ) -> None:
            if not statement.lstrip().upper().startswith(FRAMING):
                issued.statements[store] += 1

        hooks += [(engine, "begin", began), (engine, "before_cursor_execute", executed)]
    for engine, name, hook in hooks:
        event.listen(engine, name, hook)

    def since() -> dict[str, tuple[int, int]]:
        counted = issued.as_pairs()
        issued.transactions.clear()
        issued.statements.clear()
        return counted

    try:
        yield since
    finally:
        for engine, name, hook in hooks:
            event.remove(engine, name, hook)


async def test_a_won_request_writes_each_store_once_per_step_a_statement_per_row(
    any_stores: Stores, base_settings: Settings, mail_sink: MailSink
) -> None:
    commerce = CommerceActivities(any_stores.commerce, True)
    requests = RequestActivities(
        commerce, SalesActivities(any_stores.sales), request_timing(base_settings)
    )
    email = EmailActivities(
        any_stores.commerce, base_settings, EmailRenderer(base_settings.b2b_site_url, b"s")
    )
    keys = encryption.codec(base_settings, any_stores.commerce).data_keys
    oid, request = uuid.uuid4().hex[:16], a_request()

    def decide(action: Action) -> ApplyDecisionInput:
        return ApplyDecisionInput(
            onboarding_id=oid, request=request, action=action, actor="rep", at=NOW
        )

    with counting(any_stores) as since:
        # Made by the submitting client: read (none yet; a read alone takes no
        # transaction, so no SQLite write lock), then kept; not read back.
        await keys.for_encoding(oid)
        assert since() == {"commerce": (1, 2)}
        requests.record_request(CreateProspectInput(onboarding_id=oid, request=request, at=NOW))
        # The prospect; the lead and its note.
        assert since() == {"commerce": (1, 1), "sales": (1, 2)}
        env = ActivityEnvironment()
        await env.run(
            email.send_onboarding_email,
            SendEmailInput(onboarding_id=oid, kind=EmailKind.REQUEST_RECEIVED, request=request),
        )
        # The outbox row claimed, then marked sent.
        assert since() == {"commerce": (2, 2)}
        requests.apply_decision(decide(Action.QUALIFY))
        # The lead read (its fields make the account and contact), account, contact,
        # opportunity, the lead qualified, its note; the two customers, the prospect's stage.
        assert since() == {"commerce": (1, 3), "sales": (1, 6)}
        requests.apply_decision(decide(Action.WON))
        # The opportunity won, its note; the prospect approved, its customers read, the
        # hierarchy, its two members, the administrator's invoice account.
        assert since() == {"commerce": (1, 5), "sales": (1, 2)}
        await env.run(
            email.send_onboarding_email,
            SendEmailInput(onboarding_id=oid, kind=EmailKind.PROSPECT_APPROVED, request=request),
        )
        # The outbox row; the requester and their hierarchy read, their account, its
        # activation link, their other links ended, the subject (it carries the link), the
        # administrator's role for Sales (dual-write's outbox); then marked sent.
        assert since() == {"commerce": (2, 8)}
    await email.aclose()
