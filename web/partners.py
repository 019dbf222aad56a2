"""What a partner's administrator may do to their organisation's users: one set of rules
for the pages and the JSON API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from client import PartnerUserRefused, invite_partner_user, remove_partner_user, send_partner_link
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


async def add_user(
    client: Client,
    settings: Settings,
    me: PartnerAccount,
    new: NewPartnerUser,
    request_id: str | None = None,
) -> PartnerUserChanged:
    if new.email.lower() in settings.own_addresses:
        # Else the invitation, with names the administrator chose, lands in our own inbox.
        raise PartnerActionRefused(422, OWN_ADDRESS, email=new.email)
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
    client: Client, settings: Settings, stores: Stores, me: PartnerAccount, user_id: int
) -> PartnerUserChanged:
    user = await colleague(stores, me, user_id)
    if user.state is not PartnerUserState.INVITED:
        raise PartnerActionRefused(409, ALREADY_ACTIVE, name=user.name)
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
    request = RemoveInput(partner_user_id=user.id, actor=actor(me))
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


def email_fresh_link(client: Client, settings: Settings, account: PartnerAccount) -> None:
    """A fresh link to the address on record: activation while invited, else a reset."""
    if account.state is PartnerUserState.REMOVED:
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
