"""Sign-in link emails per recipient (issue 23, item 6): no administrator and no stranger
can flood an outside mailbox through invitations or "forgot your password"."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func
from sqlmodel import Session, select
from temporalio.client import Client

from models.commerce import EmailMessage
from settings import Settings
from stores import Stores, accounts
from tests.conftest import REDIS_URL, MailSink, browse, web_settings_for
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import PASSWORD, activate, approval_link, csrf
from web import partners
from web.app import create_app

A_USER = {"first_name": "Luca", "last_name": "Bianchi"}


def emails(stores: Stores, partner_user_id: int, kind: str) -> int:
    with Session(stores.commerce) as session:
        return session.exec(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.partner_user_id == partner_user_id, EmailMessage.kind == kind)
        ).one()


async def signed_in(web: httpx.AsyncClient, email: str) -> dict[str, str]:
    session = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    assert session.status_code == 201, session.text
    return {"Authorization": f"Bearer {session.json()['token']}"}


async def test_invitations_to_one_address_are_limited_across_web_processes(
    settings: Settings, client: Client, stores: Stores, mail_sink: MailSink, worker: None
) -> None:
    shared = web_settings_for(settings, rate_limit_storage_uri=REDIS_URL)
    one, two = create_app(shared, client, stores), create_app(shared, client, stores)
    onboarding_id, admin = await approved_partner(client, settings)
    invitee = f"luca.{uuid.uuid4().hex[:10]}@outside.example"
    async with browse(one) as web_one, browse(two) as web_two:
        await activate(web_one, approval_link(mail_sink, onboarding_id))
        auth = await signed_in(web_one, admin)
        once = {**auth, "Idempotency-Key": uuid.uuid4().hex}
        # The same invitation asked for again (a retry, its key) is counted once.
        for web in (web_one, web_two, web_one, web_two):
            added = await web.post(
                "/api/partner/users", json={**A_USER, "email": invitee}, headers=once
            )
            assert added.status_code == 201, added.text
        user_id = added.json()["partner_user_id"]
        resend = f"/api/partner/users/{user_id}/invitation"
        answers = [
            (await web.post(resend, headers=auth)).status_code
            for web in (web_two, web_one, web_two, web_one)
        ]
        assert answers == [200, 200, 429, 429]
        refused = await web_two.post(resend, headers=auth)
        assert refused.headers["Retry-After"].isdigit()
        assert "invitations" in refused.json()["detail"]
        # Removing and adding again is no way round it.
        assert (await web_one.delete(f"/api/partner/users/{user_id}", headers=auth)).is_success
        again = await web_two.post(
            "/api/partner/users", json={**A_USER, "email": invitee}, headers=auth
        )
        assert again.status_code == 429, again.text
    assert emails(stores, user_id, "user_invitation") == 3


async def test_forgot_password_emails_one_account_a_few_times_and_answers_alike(
    web_settings: Settings,
    settings: Settings,
    client: Client,
    stores: Stores,
    mail_sink: MailSink,
    worker: None,
) -> None:
    app = create_app(web_settings, client, stores)
    onboarding_id, email = await approved_partner(client, settings)
    async with browse(app) as web:
        await activate(web, approval_link(mail_sink, onboarding_id))
    pages = []
    for n in range(6):
        # From six addresses: the limit is the recipient's, not the asker's.
        async with browse(app, f"198.51.100.{n + 1}") as web:
            token = await csrf(web, "/password/forgot")
            asked = await web.post("/password/forgot", data={"email": email, "csrf_token": token})
            assert asked.status_code == 200
            pages.append(asked.text)
    assert len(set(pages)) == 1
    await asyncio.gather(*partners._background)
    account = accounts.partner_account_by_email(stores.commerce, email)
    assert account is not None
    assert emails(stores, account.id, "password_reset") == 3


async def test_invitations_keys_sent_again_in_turn_after_removals_are_counted_again(
    web_settings: Settings,
    settings: Settings,
    client: Client,
    stores: Stores,
    mail_sink: MailSink,
    worker: None,
) -> None:
    # A removal ends the user's workflow. Temporal answers a key again from the latest
    # run only: two keys sent in turn, each after a removal, each reach a new run as a new
    # invitation, and the limit must count each.
    app = create_app(web_settings, client, stores)
    onboarding_id, admin = await approved_partner(client, settings)
    invitee = f"luca.{uuid.uuid4().hex[:10]}@outside.example"
    async with browse(app) as web:
        await activate(web, approval_link(mail_sink, onboarding_id))
        auth = await signed_in(web, admin)
        keys = [{**auth, "Idempotency-Key": uuid.uuid4().hex} for _ in range(2)]
        answers = []
        for turn in range(4):
            added = await web.post(
                "/api/partner/users", json={**A_USER, "email": invitee}, headers=keys[turn % 2]
            )
            answers.append(added.status_code)
            if added.status_code == 201:
                user_id = added.json()["partner_user_id"]
                removed = await web.delete(f"/api/partner/users/{user_id}", headers=auth)
                assert removed.is_success, removed.text
    assert emails(stores, user_id, "user_invitation") == 3
    assert answers == [201, 201, 201, 429]


async def test_invitations_to_one_mailbox_under_tags_are_counted_together(
    web_settings: Settings,
    settings: Settings,
    client: Client,
    stores: Stores,
    mail_sink: MailSink,
    worker: None,
) -> None:
    # luca+1@ and luca+2@ are delivered to luca@ wherever subaddressing is on.
    app = create_app(web_settings, client, stores)
    onboarding_id, admin = await approved_partner(client, settings)
    mailbox = f"luca.{uuid.uuid4().hex[:10]}"
    async with browse(app) as web:
        await activate(web, approval_link(mail_sink, onboarding_id))
        auth = await signed_in(web, admin)
        answers = [
            (
                await web.post(
                    "/api/partner/users",
                    json={**A_USER, "email": f"{mailbox}+{n}@outside.example"},
                    headers=auth,
                )
            ).status_code
            for n in range(4)
        ]
    assert answers == [201, 201, 201, 429]


async def test_one_organisations_invitations_do_not_use_up_anothers(
    web_settings: Settings,
    settings: Settings,
    client: Client,
    stores: Stores,
    mail_sink: MailSink,
    worker: None,
) -> None:
    # A floods X up to the limit; B, where X works, can still invite X.
    app = create_app(web_settings, client, stores)
    invitee = f"luca.{uuid.uuid4().hex[:10]}@outside.example"
    headers = []
    async with browse(app) as web:
        for company in ("A Srl", "B Srl"):
            onboarding_id, admin = await approved_partner(client, settings, company=company)
            await activate(web, approval_link(mail_sink, onboarding_id))
            headers.append(await signed_in(web, admin))
        a, b = headers
        answers = []
        for _ in range(4):
            added = await web.post(
                "/api/partner/users", json={**A_USER, "email": invitee}, headers=a
            )
            answers.append(added.status_code)
            if added.status_code == 201:
                user_id = added.json()["partner_user_id"]
                removed = await web.delete(f"/api/partner/users/{user_id}", headers=a)
                assert removed.is_success, removed.text
        assert answers == [201, 201, 201, 429]
        by_b = await web.post("/api/partner/users", json={**A_USER, "email": invitee}, headers=b)
        assert by_b.status_code == 201, by_b.text
