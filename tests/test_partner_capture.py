"""A person invited by one organisation who applies for their own company (issue 23, items
1 and 2): the approval makes them their own organisation's administrator, whatever the
other organisation did with their address before."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client

from client.partner_users import PartnerUserRefused, invite_partner_user, remove_partner_user
from client.requests import decide
from models.lifecycle import Action
from models.partners import InviteInput, NewPartnerUser, RemoveInput
from settings import Settings
from stores import Stores, accounts
from stores.accounts import PartnerAccount
from tests.conftest import MailSink
from tests.scenario import finished, submitted
from tests.test_partner_accounts import (
    activation_link,
    approved_partner,
    eventually_mail,
    links_in,
    token_of,
)

pytestmark = pytest.mark.usefixtures("worker")


async def an_administrator(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> PartnerAccount:
    """Organisation A's active administrator."""
    onboarding_id, email = await approved_partner(client, settings, company="A Srl")
    accounts.use_link(
        stores.commerce, token_of(activation_link(mail_sink, onboarding_id)), "A's own password!"
    )
    admin = accounts.partner_account_by_email(stores.commerce, email)
    assert admin is not None and admin.is_admin
    return admin


@pytest.mark.parametrize("before", ["invited", "active", "removed"])
async def test_the_approval_makes_the_requester_their_own_organisations_administrator(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink, before: str
) -> None:
    a = await an_administrator(client, settings, stores, mail_sink)
    email = f"x.{uuid.uuid4().hex[:10]}@newco.example"
    invited = await invite_partner_user(
        client,
        settings,
        InviteInput(
            organization_customer_id=a.organization_customer_id,
            user=NewPartnerUser(first_name="X", last_name="Newco", email=email),
            actor=f"partner:{a.id}",
        ),
    )
    (invitation,) = await eventually_mail(
        mail_sink, lambda m: m["To"].addresses[0].addr_spec == email
    )
    a_link = token_of(links_in(invitation)[0])
    if before == "active":
        accounts.use_link(stores.commerce, a_link, "X's password at A")
        a_session = accounts.start_session(
            stores.commerce, accounts.PARTNER, str(invited.partner_user_id), timedelta(hours=1)
        )
    elif before == "removed":
        removal = RemoveInput(partner_user_id=invited.partner_user_id, actor=f"partner:{a.id}")
        await remove_partner_user(client, settings, email, removal)

    # X applies for their own company, and is won.
    request = await submitted(client, settings, email=email, company="NewCo Srl")
    await decide_all(client, request.onboarding_id)
    await finished(client, request)

    link = activation_link(mail_sink, request.onboarding_id)
    opened = accounts.open_link(stores.commerce, token_of(link))
    assert opened.account.organization_name == "NewCo Srl"
    assert opened.account.organization_customer_id != a.organization_customer_id
    x = accounts.use_link(stores.commerce, token_of(link), "X's own NewCo password")
    assert x.is_admin and x.organization_name == "NewCo Srl"
    assert accounts.organization_users(stores.commerce, x.organization_customer_id) == [x]
    # A sees X no more, and nothing A sent or opened for X still works.
    assert email not in {
        user.email
        for user in accounts.organization_users(stores.commerce, a.organization_customer_id)
    }
    with pytest.raises(accounts.LinkRefused):
        accounts.open_link(stores.commerce, a_link)
    if before == "active":
        assert accounts.partner_session_account(stores.commerce, a_session) is None
        assert accounts.verify_password(stores.commerce, email, "X's password at A") is None
    assert accounts.verify_password(stores.commerce, email, "X's own NewCo password") == x


async def decide_all(client: Client, onboarding_id: str) -> None:
    await decide(client, onboarding_id, Action.QUALIFY, actor="rep:mario")
    await decide(client, onboarding_id, Action.WON, actor="rep:mario")


async def test_a_removal_checked_before_the_approval_and_applied_after_it_changes_nothing(
    client: Client, settings: Settings, stores: Stores, mail_sink: MailSink
) -> None:
    a = await an_administrator(client, settings, stores, mail_sink)
    email = f"x.{uuid.uuid4().hex[:10]}@newco.example"
    invited = await invite_partner_user(
        client,
        settings,
        InviteInput(
            organization_customer_id=a.organization_customer_id,
            user=NewPartnerUser(first_name="X", last_name="Newco", email=email),
            actor=f"partner:{a.id}",
        ),
    )
    # A's administrator removes X, who is A's user when the page checks; the removal
    # reaches X's workflow only once X's own company is approved (a worker was away, or
    # plain timing). It must not take X from NewCo.
    removal = RemoveInput(
        partner_user_id=invited.partner_user_id,
        actor=f"partner:{a.id}",
        organization_customer_id=a.organization_customer_id,
    )
    request = await submitted(client, settings, email=email, company="NewCo Srl")
    await decide_all(client, request.onboarding_id)
    await finished(client, request)
    with pytest.raises(PartnerUserRefused):
        await remove_partner_user(client, settings, email, removal)

    link = activation_link(mail_sink, request.onboarding_id)
    x = accounts.use_link(stores.commerce, token_of(link), "X's own NewCo password")
    assert x.is_admin and x.organization_name == "NewCo Srl"
