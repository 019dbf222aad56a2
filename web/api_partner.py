"""The partner's JSON API: sign in for a session token, read My account, manage users.

A session token from `POST /api/partner/sessions` is sent as `Authorization: Bearer`;
it is the same kind of server-side session as the pages' (ended by signing out, by a
password change, or by the user's removal).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from client.connection import NotYetConfirmed
from models.partners import (
    PASSWORD_MAX,
    NewPartnerUser,
    PartnerRole,
    PartnerUserChanged,
    PartnerUserState,
)
from models.requests import IDEMPOTENCY_KEY, Email, Locale
from stores import accounts
from stores.accounts import PartnerAccount
from stores.credit_limits import CreditLimitView, credit_limit
from web.api import ERRORS, KEY_HEADER, NotConfirmed, Problem, not_confirmed
from web.auth import SESSION_LIFETIME
from web.dependencies import ClientDep, SettingsDep, StoresDep
from web.identifiers import RowId
from web.partners import add_user, change_role, remove, resend
from web.protection import client_key, limits

router = APIRouter(prefix="/api/partner", tags=["partner account"])

_bearer = HTTPBearer(auto_error=False, description="A session token from /api/partner/sessions")


def _session_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise HTTPException(
            401,
            "sign in: send Authorization: Bearer <session token>",
            {"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


async def _partner(
    request: Request, token: Annotated[str, Depends(_session_token)], stores: StoresDep
) -> PartnerAccount:
    attempt = await run_in_threadpool(limits(request).bearer.begin, client_key(request))
    account = await run_in_threadpool(
        accounts.partner_session_account, stores.commerce, token[:200]
    )
    if account is None:
        await run_in_threadpool(attempt.failed)
        raise HTTPException(401, "unknown or ended session", {"WWW-Authenticate": "Bearer"})
    await run_in_threadpool(attempt.succeeded)
    return account


async def _administrator(me: Annotated[PartnerAccount, Depends(_partner)]) -> PartnerAccount:
    if not me.is_admin:
        raise HTTPException(403, "this is for your organisation's administrators")
    return me


Partner = Annotated[PartnerAccount, Depends(_partner)]
Administrator = Annotated[PartnerAccount, Depends(_administrator)]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


class Session(BaseModel):
    token: str
    expires_at: datetime


class PartnerUserOut(BaseModel):
    """A user of the partner, as their administrators see them."""

    id: int
    email: str
    first_name: str
    last_name: str
    job_title: str | None
    locale: Locale
    state: PartnerUserState
    role: PartnerRole | None
    activated_at: datetime | None
    removed_at: datetime | None
    invitation_expires_at: datetime | None

    @classmethod
    def of(cls, account: PartnerAccount) -> PartnerUserOut:
        return cls.model_validate(
            {**account.model_dump(), "invitation_expires_at": account.pending_link_expires_at}
        )


class MyAccount(BaseModel):
    me: PartnerUserOut
    organization_customer_id: int
    organization_name: str
    credit_limit: CreditLimitView | None


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: PartnerRole


class Invited(BaseModel):
    partner_user_id: int
    invitation_expires_at: datetime | None

    @classmethod
    def of(cls, changed: PartnerUserChanged) -> Invited:
        return cls(
            partner_user_id=changed.partner_user_id, invitation_expires_at=changed.link_expires_at
        )


REFUSED: dict[int | str, dict[str, Any]] = {
    **{k: ERRORS[k] for k in (401, 403, 404, 413, 429, 503)},
    409: {"model": Problem, "description": "The rules refuse it; `detail` says why"},
}


@router.post(
    "/sessions",
    status_code=201,
    summary="Sign in",
    responses={k: ERRORS[k] for k in (401, 413, 429)},
)
async def sign_in(request: Request, body: SignIn, stores: StoresDep) -> Session:
    """Check an email and password; answers a session token for `Authorization: Bearer`."""
    guard = limits(request).partner_sign_in
    attempt = await run_in_threadpool(guard.begin, client_key(request), body.email)
    account = await run_in_threadpool(
        accounts.verify_password, stores.commerce, body.email, body.password
    )
    if account is None:
        await run_in_threadpool(attempt.failed)
        raise HTTPException(401, "that email and password do not match an active account")
    await run_in_threadpool(attempt.succeeded)
    token = await run_in_threadpool(
        accounts.start_session, stores.commerce, accounts.PARTNER, str(account.id), SESSION_LIFETIME
    )
    return Session(token=token, expires_at=datetime.now(UTC) + SESSION_LIFETIME)


@router.delete(
    "/sessions", status_code=204, summary="Sign out", responses={k: ERRORS[k] for k in (401, 429)}
)
async def sign_out(
    me: Partner, token: Annotated[str, Depends(_session_token)], stores: StoresDep
) -> Response:
    """End this session: its token opens nothing from now on."""
    await run_in_threadpool(accounts.end_session, stores.commerce, token)
    return Response(status_code=204)


@router.get("/account", summary="My account", responses={k: ERRORS[k] for k in (401, 429)})
async def my_account(me: Partner, stores: StoresDep) -> MyAccount:
    """Who I am, my organisation and its credit limit (which applies to all its users)."""
    return MyAccount(
        me=PartnerUserOut.of(me),
        organization_customer_id=me.organization_customer_id,
        organization_name=me.organization_name,
        credit_limit=await run_in_threadpool(
            credit_limit, stores.commerce, me.organization_customer_id
        ),
    )


@router.get(
    "/users", summary="Organisation users", responses={k: ERRORS[k] for k in (401, 403, 429)}
)
async def list_users(me: Administrator, stores: StoresDep) -> list[PartnerUserOut]:
    """Everyone who is or was a user of my organisation, with their state and role."""
    users = await run_in_threadpool(
        accounts.organization_users, stores.commerce, me.organization_customer_id
    )
    return [PartnerUserOut.of(user) for user in users]


@router.post(
    "/users",
    status_code=201,
    summary="Add a user",
    response_model=Invited,
    responses={
        **REFUSED,
        202: {
            "model": NotConfirmed,
            "description": "Recorded and not yet confirmed while no worker runs: the same"
            " call with the same Idempotency-Key (see Retry-After) answers its outcome",
            "headers": KEY_HEADER,
        },
    },
)
async def invite_user(
    request: Request,
    body: NewPartnerUser,
    me: Administrator,
    client: ClientDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY)] = None,
) -> Invited | JSONResponse:
    """Add a user with role User to my organisation's hierarchy and email their invitation;
    the same Idempotency-Key is the same invitation."""
    key = idempotency_key or uuid.uuid4().hex
    invitations = limits(request).invitations
    try:
        changed = await add_user(
            client, settings, invitations, me, body, f"api:invite:{me.id}:{key}"
        )
    except NotYetConfirmed:
        return not_confirmed(key)
    response.headers["Idempotency-Key"] = key
    return Invited.of(changed)


@router.post("/users/{user_id}/invitation", summary="Resend an invitation", responses=REFUSED)
async def resend_invitation(
    request: Request,
    user_id: RowId,
    me: Administrator,
    client: ClientDep,
    settings: SettingsDep,
    stores: StoresDep,
) -> Invited:
    """A fresh invitation email; the earlier link stops working."""
    changed = await resend(client, settings, stores, limits(request).invitations, me, user_id)
    return Invited.of(changed)


@router.delete("/users/{user_id}", summary="Remove a user", responses=REFUSED)
async def remove_user(
    user_id: RowId, me: Administrator, client: ClientDep, settings: SettingsDep, stores: StoresDep
) -> PartnerUserOut:
    """Unlink the user from the hierarchy (the customer record stays); their sign-in ends."""
    await remove(client, settings, stores, me, user_id)
    removed = await run_in_threadpool(accounts.partner_account, stores.commerce, user_id)
    assert removed is not None
    return PartnerUserOut.of(removed)


@router.put("/users/{user_id}/role", summary="Change a user's role", responses=REFUSED)
async def set_user_role(
    user_id: RowId, body: RoleChange, me: Administrator, stores: StoresDep
) -> PartnerUserOut:
    """Make a user an administrator, or step one down while another remains."""
    changed = await change_role(stores, me, user_id, body.role)
    return PartnerUserOut.of(changed)
