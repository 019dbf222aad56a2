"""Every link in every email, in both languages, opens a page that is not an error."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import Client

from activities.email import EmailRenderer, RenderedEmail
from infra.links import site_secret
from models.activity_io import SendEmailInput
from models.commerce import PartnerUser
from models.partners import LinkPurpose
from models.status import EmailKind
from settings import Settings
from stores import Stores, accounts
from stores.engine import transact
from tests.conftest import MailSink
from tests.scenario import a_request
from tests.test_partner_accounts import approved_partner

URL = re.compile(r"""https?://[^\s"'<>]+""")
SITE = "http://b2b.test"


def fresh_token(stores: Stores, user_id: int, purpose: LinkPurpose) -> str:
    """A link as the email activity makes one; every earlier link of the user stops."""

    def work(session: Session) -> str:
        _, token = accounts.issue_link(
            session, user_id, purpose, uuid.uuid4().hex, timedelta(days=7), fresh=True
        )
        assert token is not None
        return token

    return transact(stores.commerce, work)


async def assert_every_link_opens(web: httpx.AsyncClient, email: RenderedEmail) -> None:
    urls = set(URL.findall(email.text)) | set(URL.findall(email.html))
    assert urls, f"no link in {email.subject!r}"
    for url in urls:
        assert url.startswith(SITE), f"{url} leaves the site"
        response = await web.get(url.removeprefix(SITE) or "/", follow_redirects=True)
        title = re.search(r"<title>(.*?)</title>", response.text, re.S)
        assert response.status_code == 200, f"{url} in {email.subject!r}: {response.status_code}"
        assert title and not title[1].strip()[:1].isdigit(), f"{url}: an error page"


@pytest.mark.parametrize("locale", ["en", "it"])
async def test_every_link_in_every_email_kind_opens_a_page(
    locale: str,
    client: Client,
    settings: Settings,
    web_settings: Settings,
    stores: Stores,
    mail_sink: MailSink,
    web: httpx.AsyncClient,
) -> None:
    onboarding_id, email = await approved_partner(client, settings, locale=locale)
    with Session(stores.commerce) as session:
        user = session.exec(select(PartnerUser).where(PartnerUser.email == email)).one()
    assert user.id is not None and user.locale == locale
    renderer = EmailRenderer(SITE, site_secret(web_settings))
    request = a_request(email=email, locale=locale)
    # The requester's emails; the team reminder links to a staff page (its own test).
    for kind in (kind for kind in EmailKind if kind.to_requester):
        token = fresh_token(stores, user.id, LinkPurpose.ACTIVATION)
        input = SendEmailInput(onboarding_id=onboarding_id, kind=kind, request=request)
        await assert_every_link_opens(web, renderer.render(input, token))
    for purpose in LinkPurpose:
        token = fresh_token(stores, user.id, purpose)
        rendered = renderer.render_link(purpose, token, user, "Contoso Srl", "partner:1")
        await assert_every_link_opens(web, rendered)
