"""The partner's users under faults: invitations sent while the worker is SIGKILLed."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlmodel import Session, select

from client.connection import NotYetConfirmed, TemporalUnavailable
from client.partner_users import invite_partner_user
from client.requests import status
from models.commerce import CustomerHierarchyMember, EmailMessage, PartnerUser
from models.lifecycle import Action
from models.partners import InviteInput, NewPartnerUser, PartnerUserChanged
from scripts.mailsink import read_spool
from stores import accounts
from tests.conftest import eventually
from tests.faults.harness import Site, record
from tests.faults.test_faults import site  # noqa: F401 - the fixture

# In `make test-faults` with the storms: on 2 cores `make test` stays under 10 minutes.
pytestmark = [pytest.mark.faults, pytest.mark.storm]
INVITEES = 16


async def test_invitations_while_the_worker_is_killed(site: Site) -> None:  # noqa: F811
    site.start_worker()
    (onboarding_id,) = await site.submit(1)
    await site.recorded([onboarding_id])
    await site.decide(onboarding_id, Action.QUALIFY)
    await site.decide(onboarding_id, Action.WON)
    await site.finished([onboarding_id])
    temporal = site.client
    assert temporal is not None
    current = await status(temporal, onboarding_id)
    admin = accounts.partner_account_by_email(site.stores.commerce, current.email)
    assert admin is not None
    invitees = [f"user{n}.{onboarding_id}@contoso.example" for n in range(INVITEES)]

    async def invite(email: str) -> PartnerUserChanged:
        request = InviteInput(
            organization_customer_id=admin.organization_customer_id,
            user=NewPartnerUser(first_name="User", last_name="Number", email=email),
            actor=f"partner:{admin.id}",
        )

        # A careful caller: the same request id again until the outcome is known.
        async def answered() -> PartnerUserChanged:
            try:
                return await invite_partner_user(
                    temporal, site.settings, request, request_id=f"invite:{email}"
                )
            except (TemporalUnavailable, NotYetConfirmed) as err:
                raise AssertionError(f"the invitation of {email} has no outcome: {err}") from err

        return await eventually(answered, every=0.5)

    inviting = asyncio.ensure_future(asyncio.gather(*(invite(email) for email in invitees)))
    await eventually(
        lambda: any(m["X-Onboarding-Event"] == "user-invitation" for m in read_spool(site.spool)),
        every=0.02,
    )
    # Invitations are going out: kill the worker right there, then start a fresh one.
    site.workers[-1].kill()
    await asyncio.sleep(0.5)
    site.start_worker()
    await inviting

    sent = [m for m in read_spool(site.spool) if m["X-Onboarding-Event"] == "user-invitation"]
    copies = Counter(m["To"].addresses[0].addr_spec for m in sent)
    invitations = {
        email: {m["Message-ID"] for m in sent if m["To"].addresses[0].addr_spec == email}
        for email in invitees
    }
    with Session(site.stores.commerce) as session:
        users = session.exec(select(PartnerUser).where(PartnerUser.email.in_(invitees))).all()  # type: ignore[attr-defined]
        members = Counter(
            member.customer_id
            for member in session.exec(select(CustomerHierarchyMember)).all()
            if member.customer_id in {user.customer_id for user in users}
        )
        outbox = Counter(
            row.partner_user_id
            for row in session.exec(select(EmailMessage)).all()
            if row.partner_user_id in {user.id for user in users}
        )
    distinct = sum(map(len, invitations.values()))
    record(
        "partner invitations, worker killed",
        f"{INVITEES} invitees: users {len(users)}, invitations {distinct}, deliveries {len(sent)}",
    )
    assert sorted(user.email for user in users) == sorted(invitees), "one user row each"
    assert set(members.values()) == {1}, "each user once in the hierarchy"
    assert set(outbox.values()) == {1}, "one outbox row per invitee"
    assert all(len(ids) == 1 for ids in invitations.values()), "one invitation each"
    # A kill between the server's acceptance and the outbox's mark resends that email
    # once, with its Message-ID.
    assert max(copies.values()) <= 2
