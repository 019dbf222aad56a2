"""What a partner's administrator may do to their organisation's users: one set of rules
for the pages and the JSON API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from client.partner_users import (
    PartnerUserRefused,
    invite_partner_user,
    partner_update_known,
    remove_partner_user,
    send_partner_link,
)
from models.partners import (
    InviteInput,
    LinkPurpose,
    NewPartnerUser,
    PartnerRole,
    PartnerUserChanged,
    PartnerUserState,
    RemoveInput,
    SendLinkInput,
)
from settings import Settings
from stores import Stores, accounts
from stores.accounts import PartnerAccount
from web.i18n import N_
from web.protection import RateLimit, account_key

log = logging.getLogger("web.partners")
# Emails asked for by people who are not signed in run on after the answer, which is
# the same whether or not the address has an account.
_background: set[asyncio.Task[object]] = set()


OWN_ADDRESS = N_(
    "%(email)s is one of this service's own addresses: a user needs an address of their own."
)
NO_SUCH_USER = N_("There is no such user in your organisation.")
ALREADY_ACTIVE = N_("%(name)s has already activated their account.")
ALREADY_REMOVED = N_("%(name)s has already been removed.")
TOO_MANY_INVITATIONS = N_(
    "Too many invitations have been sent to %(email)s for now; try again later."
)
# The rules' refusals (the partner user workflow's and the store's), by type.
REFUSALS = {
    "AlreadyPartnerUser": N_("%(email)s is already a user of a business partner."),
    "LastAdministrator": N_(
        "The organisation must keep at least one administrator: make someone else an"
        " administrator first."
    ),
    "PartnerUserRemoved": ALREADY_REMOVED,
    "NoSuchPartnerUser": NO_SUCH_USER,
}


class PartnerActionRefused(Exception):
    """A refusal with its words, translated where it is shown: `refusal.text(_)`."""

    def __init__(self, status: int, message: str, **variables: str) -> None:
        super().__init__(message % variables if variables else message)
        self.status = status
        self.message = message
        self.variables = variables
        # Sent with the API's answer (a 429's Retry-After).
        self.headers: dict[str, str] = {}

    def text(self, translate: Callable[..., str]) -> str:
        return translate(self.message, **self.variables)


def _refused(
    refused: PartnerUserRefused | accounts.RoleRefused, **variables: str
) -> PartnerActionRefused:
    message = REFUSALS.get(refused.type)
    if message is None:
        return PartnerActionRefused(409, str(refused))
    return PartnerActionRefused(409, message, **variables)


def actor(account: PartnerAccount) -> str:
    """How a partner user is named in histories and rows: by id, never by email."""
    return f"partner:{account.id}"


async def colleague(stores: Stores, me: PartnerAccount, partner_user_id: int) -> PartnerAccount:
    """A user of my own organisation; anyone else's does not exist for me."""
    found = await run_in_threadpool(accounts.partner_account, stores.commerce, partner_user_id)
    if found is None or found.organization_customer_id != me.organization_customer_id:
        raise PartnerActionRefused(404, NO_SUCH_USER)
    return found


async def _invitation_allowed(
    client: Client,
    invitations: RateLimit,
    me: PartnerAccount,
    email: str,
    request_id: str | None = None,
) -> None:
    """Count one invitation from my organisation to `email`'s mailbox, or refuse it: no
    administrator floods a mailbox, under one address or under many tags. Counted per
    organisation, so that one organisation's flood never stops another's invitation.
    A retry of one invitation (the same `request_id`) is the same invitation while
    Temporal holds it against the user's workflow, and only then: a key remembered here
    would pass uncounted to a new run (after a removal) that sends a new email."""
    if request_id is not None and await partner_update_known(client, email, request_id):
        return
    try:
        await run_in_threadpool(
            invitations.take, account_key(f"{me.organization_customer_id}:{_mailbox(email)}")
        )
    except HTTPException as too_many:
        refused = PartnerActionRefused(429, TOO_MANY_INVITATIONS, email=email)
        refused.headers = dict(too_many.headers or {})
        raise refused from None


def _mailbox(email: str) -> str:
    """The mailbox an address reaches: `local+tag@domain` is delivered to `local@domain`
    wherever subaddressing is on (Gmail, Microsoft 365, Postfix's recipient_delimiter)."""
    local, _, domain = email.lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


async def add_user(
    client: Client,
    settings: Settings,
    invitations: RateLimit,
    me: PartnerAccount,
    new: NewPartnerUser,
    request_id: str | None = None,
) -> PartnerUserChanged:
    if _mailbox(new.email) in {_mailbox(own) for own in settings.own_addresses}:
        # Else the invitation, with names the administrator chose, lands in our own inbox.
        raise PartnerActionRefused(422, OWN_ADDRESS, email=new.email)
    await _invitation_allowed(client, invitations, me, new.email, request_id)
    invite = InviteInput(
        organization_customer_id=me.organization_customer_id, user=new, actor=actor(me)
    )
    try:
        return await invite_partner_user(client, settings, invite, request_id)
    except PartnerUserRefused as refused:
        raise _refused(
            refused, email=new.email, name=f"{new.first_name} {new.last_name}"
        ) from refused


async def resend(
    client: Client,
    settings: Settings,
    stores: Stores,
    invitations: RateLimit,
    me: PartnerAccount,
    user_id: int,
) -> PartnerUserChanged:
    user = await colleague(stores, me, user_id)
    if user.state is not PartnerUserState.INVITED:
        raise PartnerActionRefused(409, ALREADY_ACTIVE, name=user.name)
    await _invitation_allowed(client, invitations, me, user.email)
    request = SendLinkInput(
        partner_user_id=user.id, purpose=LinkPurpose.INVITATION, actor=actor(me)
    )
    try:
        return await send_partner_link(client, settings, user.email, request)
    except PartnerUserRefused as refused:
        raise _refused(refused, email=user.email, name=user.name) from refused


async def remove(
    client: Client, settings: Settings, stores: Stores, me: PartnerAccount, user_id: int
) -> PartnerUserChanged:
    user = await colleague(stores, me, user_id)
    if user.state is PartnerUserState.REMOVED:
        raise PartnerActionRefused(409, ALREADY_REMOVED, name=user.name)
    request = RemoveInput(
        partner_user_id=user.id,
        actor=actor(me),
        organization_customer_id=me.organization_customer_id,
    )
    try:
        return await remove_partner_user(client, settings, user.email, request)
    except PartnerUserRefused as refused:
        raise _refused(refused, email=user.email, name=user.name) from refused


async def change_role(
    stores: Stores, me: PartnerAccount, user_id: int, role: PartnerRole
) -> PartnerAccount:
    user = await colleague(stores, me, user_id)
    try:
        return await run_in_threadpool(
            accounts.set_role,
            stores.commerce,
            me.organization_customer_id,
            user.id,
            role,
            actor(me),
        )
    except accounts.RoleRefused as refused:
        raise _refused(refused, email=user.email, name=user.name) from refused


async def email_fresh_link(
    client: Client, settings: Settings, links_asked: RateLimit, account: PartnerAccount
) -> None:
    """A fresh link to the address on record: activation while invited, else a reset.

    Past the limit per recipient nothing is sent, and whoever asked is told the same as
    ever: the answer never says whether an address has an account.
    """
    if account.state is PartnerUserState.REMOVED:
        return
    try:
        await run_in_threadpool(links_asked.take, account_key(_mailbox(account.email)))
    except HTTPException:
        return
    purpose = (
        LinkPurpose.PASSWORD_RESET
        if account.state is PartnerUserState.ACTIVE
        else LinkPurpose.INVITATION
        if account.invited_by not in (None, "approval", "migration")
        else LinkPurpose.ACTIVATION
    )
    request = SendLinkInput(partner_user_id=account.id, purpose=purpose, actor=actor(account))

    async def send() -> object:
        try:
            return await send_partner_link(client, settings, account.email, request)
        except Exception:
            log.exception("could not email partner user %s a fresh link", account.id)
            return None

    task = asyncio.create_task(send())
    _background.add(task)
    task.add_done_callback(_background.discard)
