"""Adding a partner user (issue 23): the service's own mailboxes cannot be invited (item
15); with no worker running, the answer is "recorded, not yet confirmed" with a key, as a
submission's, never a 503 that happens anyway (item 8)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.worker import Worker

from models.commerce import PartnerUser
from settings import Settings
from stores import Stores
from tests.conftest import MailSink, browse, until_confirmed, web_settings_for
from tests.test_partner_accounts import approved_partner, eventually_mail
from tests.test_partner_pages import PASSWORD, activate, approval_link, csrf
from web.app import create_app

COMMERCE_TEAM = "commerce-team@b2b-service.example"
MAIL_FROM = "no-reply@b2b-service.example"


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    return web_settings_for(
        settings, commerce_team_email=COMMERCE_TEAM, mail_from=f"B2B <{MAIL_FROM}>"
    )


async def signed_in(
    client: Client, settings: Settings, mail_sink: MailSink, web: httpx.AsyncClient
) -> dict[str, str]:
    """An approved partner's activated administrator: their API session's header."""
    onboarding_id, email = await approved_partner(client, settings)
    await activate(web, approval_link(mail_sink, onboarding_id))
    session = await web.post("/api/partner/sessions", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {session.json()['token']}"}


def partner_user(stores: Stores, email: str) -> PartnerUser | None:
    with Session(stores.commerce) as session:
        return session.exec(select(PartnerUser).where(PartnerUser.email == email)).first()


# A "+tag" reaches the same mailbox wherever subaddressing is on (Gmail, Microsoft 365,
# Postfix's recipient_delimiter).
SUBADDRESSED = COMMERCE_TEAM.replace("@", "+invoices@")


@pytest.mark.parametrize("address", [COMMERCE_TEAM.upper(), MAIL_FROM, SUBADDRESSED])
async def test_the_services_own_addresses_cannot_be_invited(
    client: Client,
    settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
    web: httpx.AsyncClient,
    address: str,
) -> None:
    auth = await signed_in(client, settings, mail_sink, web)
    user = {"first_name": "Pay", "last_name": "Now", "email": address}

    answer = await web.post("/api/partner/users", json=user, headers=auth)
    assert answer.status_code == 422, answer.text
    assert "own addresses" in answer.json()["detail"]
    token = await csrf(web, "/account/users")
    page = await web.post("/account/users", data={**user, "csrf_token": token})
    assert page.status_code == 422 and "own addresses" in page.text

    assert partner_user(stores, address.lower()) is None
    assert not [m for m in mail_sink.messages() if m["To"].addresses[0].addr_spec == address]


@pytest.mark.usefixtures("short_accept_wait")
async def test_a_user_added_while_no_worker_runs_is_recorded_with_a_key_and_invited_once(
    client: Client,
    settings: Settings,
    web_settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
    stoppable_worker: Callable[[], Worker],
) -> None:
    app = create_app(web_settings, client=client, stores=stores)
    email = f"luca.{uuid.uuid4().hex[:10]}@contoso.example"
    user = {"first_name": "Luca", "last_name": "Bianchi", "email": email}
    async with browse(app) as web:
        async with stoppable_worker():
            auth = await signed_in(client, settings, mail_sink, web)

        held = await web.post("/api/partner/users", json=user, headers=auth)
        assert held.status_code == 202, held.text
        key = held.headers["Idempotency-Key"]
        assert held.json()["idempotency_key"] == key and "Retry-After" in held.headers
        assert partner_user(stores, email) is None
        # The page says the same, and its "Check again" posts the same form, id included.
        token = await csrf(web, "/account/users")
        on_page = {**user, "email": f"page.{email}", "request_id": uuid.uuid4().hex}
        page = await web.post("/account/users", data={**on_page, "csrf_token": token})
        assert page.status_code == 202 and "not yet confirmed" in page.text
        assert f'value="{on_page["request_id"]}"' in page.text

        async with stoppable_worker():
            answer = await until_confirmed(
                lambda: web.post(
                    "/api/partner/users", json=user, headers={**auth, "Idempotency-Key": key}
                ),
                lambda response: response.status_code == 202,
            )
            assert answer.status_code == 201, answer.text
            (invitation,) = await eventually_mail(
                mail_sink, lambda m: m["To"].addresses[0].addr_spec == email
            )
            # The page's invitation is applied too, once.
            await eventually_mail(
                mail_sink, lambda m: m["To"].addresses[0].addr_spec == on_page["email"]
            )
    added = partner_user(stores, email)
    assert added is not None and answer.json()["partner_user_id"] == added.id
    assert invitation["X-Onboarding-Event"] == "user-invitation"
