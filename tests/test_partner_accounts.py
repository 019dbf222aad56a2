"""The partner's account after approval: the administrator's activation, users, links."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as Mail

import pytest
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError

from client.partner_users import (
    PartnerUserRefused,
    invite_partner_user,
    partner_link_used,
    remove_partner_user,
    send_partner_link,
)
from client.requests import decide
from models.commerce import AccessLink, Customer, CustomerHierarchyMember, PartnerUser
from models.lifecycle import Action
from models.partners import (
    InviteInput,
    LinkPurpose,
    NewPartnerUser,
    RemoveInput,
    SendLinkInput,
    partner_user_workflow_id,
)
from settings import Settings
from stores import Stores, accounts
from tests.conftest import MailSink, eventually
from tests.scenario import finished, keep_history, submitted

LINK = re.compile(r"http://b2b\.test/(activate|password/reset)/([A-Za-z0-9_-]+)")


def links_in(message: object) -> list[str]:
    body = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    return [match.group(0) for match in LINK.finditer(body)]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def approved_partner(client: Client, settings: Settings, **overrides: str) -> tuple[str, str]:
    """A won request; its onboarding id and the requester's email."""
    status = await submitted(client, settings, **overrides)
    await decide(client, status.onboarding_id, Action.QUALIFY, actor="rep:mario")
    await decide(client, status.onboarding_id, Action.WON, actor="rep:mario")
    await finished(client, status)
    return status.onboarding_id, status.email


def activation_link(mail_sink: MailSink, onboarding_id: str) -> str:
    """The activation link in the request's approval email."""
    (approval,) = [
        m
        for m in mail_sink.messages(onboarding_id)
        if m["X-Onboarding-Event"] == "prospect-approved"
    ]
    (link,) = [url for url in links_in(approval) if "/activate/" in url]
    return link


async def eventually_mail(
    mail_sink: MailSink, predicate: Callable[[Mail], bool], count: int = 1
) -> list[Mail]:
    def arrived() -> list[Mail]:
        found = [m for m in mail_sink.messages() if predicate(m)]
        assert len(found) >= count, f"{len(found)} of {count} emails arrived"
        return found

    return await eventually(arrived)


async def test_approval_email_activates_the_administrator(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    onboarding_id, email = await approved_partner(client, settings)
    link = activation_link(mail_sink, onboarding_id)
    account = accounts.partner_account_by_email(stores.commerce, email)
    assert account is not None and account.state == "invited" and account.role == "b2b_admin"
    opened = accounts.open_link(stores.commerce, token_of(link))
    assert opened.purpose is LinkPurpose.ACTIVATION and opened.account.id == account.id

    # Nothing runs for the request once it is done: the link expires by its date.
    request = client.get_workflow_handle(f"onboarding-{onboarding_id}")
    await request.result()
    with pytest.raises(RPCError):
        await client.get_workflow_handle(partner_user_workflow_id(email)).describe()
    assert opened.expires_at == account.pending_link_expires_at

    active = accounts.use_link(stores.commerce, token_of(link), "a long enough password")
    assert active.state == "active" and active.is_admin
    # The web app tells the user's workflow; there is none, and that is no error.
    await partner_link_used(client, email)
    with pytest.raises(accounts.LinkRefused):
        accounts.use_link(stores.commerce, token_of(link), "another long password")
    assert accounts.verify_password(stores.commerce, email, "a long enough password") is not None
    assert accounts.verify_password(stores.commerce, email, "a wrong password!!") is None


async def test_an_unused_activation_link_stops_working_at_its_date_with_no_workflow(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    onboarding_id, email = await approved_partner(client, settings)
    link = activation_link(mail_sink, onboarding_id)
    account = accounts.partner_account_by_email(stores.commerce, email)
    assert account is not None
    # ACTIVATION_TTL later, as the store sees it.
    with Session(stores.commerce) as session:
        (row,) = session.exec(
            select(AccessLink).where(
                AccessLink.state == "valid", AccessLink.partner_user_id == account.id
            )
        )
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
        session.commit()
    with pytest.raises(accounts.LinkRefused) as expired:
        accounts.open_link(stores.commerce, token_of(link))
    # The page then offers a fresh link, which the user's workflow sends and watches.
    assert expired.value.why == "expired" and expired.value.account is not None


async def test_an_expected_refusal_is_one_line_in_the_worker_s_log(
    client: Client,
    settings: Settings,
    stores: Stores,
    worker: None,
    mail_sink: MailSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    onboarding_id, admin_email = await approved_partner(client, settings)
    link = activation_link(mail_sink, onboarding_id)
    admin = accounts.use_link(stores.commerce, token_of(link), "a long enough password")
    # Invited again, as a user of the partner that has them already: refused.
    already = NewPartnerUser(first_name="Giulia", last_name="Rossi", email=admin_email)
    invite = InviteInput(
        organization_customer_id=admin.organization_customer_id,
        user=already,
        actor=f"partner:{admin.id}",
    )

    with caplog.at_level(logging.INFO), pytest.raises(PartnerUserRefused):
        await invite_partner_user(client, settings, invite)

    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in logged if r.exc_info or r.levelno >= logging.WARNING] == []
    (line,) = [r.getMessage() for r in logged if "refused" in r.getMessage()]
    assert line.startswith("add_partner_user refused: AlreadyPartnerUser"), line
    assert admin_email not in line


async def test_administrator_adds_resends_and_removes_a_user(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    _, admin_email = await approved_partner(client, settings)
    admin = accounts.partner_account_by_email(stores.commerce, admin_email)
    assert admin is not None
    new = NewPartnerUser(
        first_name="Luca",
        last_name="Bianchi",
        email=f"luca.{admin.id}@contoso.example",
        locale="it",
    )
    invite = InviteInput(
        organization_customer_id=admin.organization_customer_id,
        user=new,
        actor=f"partner:{admin.id}",
    )
    changed = await invite_partner_user(client, settings, invite)
    assert changed.link_expires_at is not None
    (invitation,) = await eventually_mail(
        mail_sink, lambda m: m["To"].addresses[0].addr_spec == new.email
    )
    assert invitation["X-Onboarding-Event"] == "user-invitation"
    assert invitation["Content-Language"] == "it"
    first_link = token_of(links_in(invitation)[0])

    resend = SendLinkInput(
        partner_user_id=changed.partner_user_id, purpose=LinkPurpose.INVITATION, actor="partner:1"
    )
    await send_partner_link(client, settings, new.email, resend)
    mails = await eventually_mail(
        mail_sink, lambda m: m["To"].addresses[0].addr_spec == new.email, 2
    )
    assert len({m["Message-ID"] for m in mails}) == 2
    with pytest.raises(accounts.LinkRefused) as refused:
        accounts.open_link(stores.commerce, first_link)
    assert refused.value.why == "superseded"
    second_link = token_of(links_in(mails[-1])[0])
    user = accounts.use_link(stores.commerce, second_link, "luca's own password")
    assert user.role == "b2b_user" and user.state == "active"
    # Both order on the organisation's invoice account, so its credit limit is theirs.
    with Session(stores.commerce) as session:
        for person in (admin.customer_id, user.customer_id):
            customer = session.get(Customer, person)
            assert customer is not None
            assert customer.invoice_customer_id == admin.organization_customer_id
    session_token = accounts.start_session(
        stores.commerce, accounts.PARTNER, str(user.id), __import__("datetime").timedelta(hours=1)
    )
    assert accounts.partner_session_account(stores.commerce, session_token) is not None

    with pytest.raises(PartnerUserRefused):
        await invite_partner_user(client, settings, invite)

    removal = RemoveInput(partner_user_id=user.id, actor=f"partner:{admin.id}")
    await remove_partner_user(client, settings, new.email, removal)
    await client.get_workflow_handle(partner_user_workflow_id(new.email)).result()
    await keep_history(client, partner_user_workflow_id(new.email), "partner_user")
    assert accounts.partner_session_account(stores.commerce, session_token) is None
    assert accounts.verify_password(stores.commerce, new.email, "luca's own password") is None
    with Session(stores.commerce) as session:
        row = session.exec(select(PartnerUser).where(PartnerUser.email == new.email)).one()
        assert row.state == "removed"
        assert (
            session.exec(
                select(CustomerHierarchyMember).where(
                    CustomerHierarchyMember.customer_id == row.customer_id
                )
            ).first()
            is None
        )
        assert all(
            link.state != "valid"
            for link in session.exec(select(AccessLink).where(AccessLink.partner_user_id == row.id))
        )
