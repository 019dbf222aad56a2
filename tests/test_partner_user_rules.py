"""What a partner's administrator may not do when adding a user (issue 23): invite the
service's own mailboxes (item 15)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import Client

from models.commerce import PartnerUser
from settings import Settings
from stores import Stores
from tests.conftest import MailSink, web_settings_for
from tests.test_partner_accounts import approved_partner
from tests.test_partner_pages import PASSWORD, activate, approval_link, csrf

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


@pytest.mark.parametrize("address", [COMMERCE_TEAM.upper(), MAIL_FROM])
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
